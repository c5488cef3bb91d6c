"""Calibration of per-sample seizure probabilities: expected calibration error, Brier score, reliability.

A probability a clinician reads on a trend (``ictal view``, ``ictal_seizure_probability``) should mean
what it says: of the samples scored near 0.8, about 80 % should be seizure. These figures measure that on
labelled, scored samples, i.e. on the probabilities the daemon path served (``ictal evaluate`` stitches
exactly the served positions), pooled over recordings.

- **Reliability** (DeGroot & Fienberg 1983; Niculescu-Mizil & Caruana 2005): the samples are put in
  ``n_bins`` equal-width bins of probability; per bin the mean probability (confidence) and the fraction
  of seizure samples (observed frequency). A calibrated model lies on the diagonal.
- **ECE**, expected calibration error (Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017, "On calibration
  of modern neural networks", ICML): :math:`\\sum_b \\frac{n_b}{n} |\\bar y_b - \\bar p_b|` over the
  bins, in probability units (0 = calibrated).
- **Brier score** (Brier 1950): :math:`\\frac1n \\sum_i (p_i - y_i)^2`; with the seizure prevalence
  :math:`\\pi` the score of always answering :math:`\\pi` is :math:`\\pi (1 - \\pi)`, given beside it.

**Post-hoc calibration** (:func:`fit_temperature`, :func:`fit_recordings_temperature`): temperature
scaling (Guo et al. 2017), one positive scalar :math:`T` with :math:`p = \\sigma(z / T)`, fitted by
minimising the negative log-likelihood of the labelled served samples of the TRAINING recordings (never
held-out ones). ``ictal tune --calibrate`` fits it and stores it in the checkpoint's metadata
(:mod:`ictal.detector.calibration` names the entry), where ``Detector`` applies it to every probability.

Samples within a recording are strongly dependent (256 per second, seizures last tens of seconds): the
figures describe the pooled samples, and their uncertainty is that of the few recordings behind them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOGIT_CLIP_P: float = 1e-7
"""Probabilities are clipped to [1e-7, 1 - 1e-7] before their logit is taken (float32 sigmoids reach 0
and 1 exactly beyond |z| of about 17; the clip keeps those samples at |z| = 16.1, finite)."""

DEFAULT_BINS: int = 15
"""Equal-width bins of the reliability diagram and the ECE (Guo et al. 2017 use 15)."""


@dataclass(frozen=True)
class Calibration:
    """Calibration figures of a set of probabilities against binary labels.

    Attributes
    ----------
    ece : float
        Expected calibration error in probability units (NaN without samples).
    brier : float
        Brier score (mean squared error of the probability; NaN without samples).
    brier_reference : float
        Brier score of always answering the prevalence, :math:`\\pi(1-\\pi)`.
    max_calibration_error : float
        Largest |observed - mean probability| over the non-empty bins.
    n : int
        Samples used.
    n_positive : int
        Seizure samples among them.
    bin_edges : ndarray, shape (n_bins + 1,)
        Probability edges of the bins.
    bin_count : ndarray of int, shape (n_bins,)
        Samples per bin.
    bin_confidence : ndarray, shape (n_bins,)
        Mean probability per bin (NaN where empty).
    bin_frequency : ndarray, shape (n_bins,)
        Fraction of seizure samples per bin (NaN where empty).
    p999 : float
        99.9th percentile of the probabilities of the seizure samples (NaN without any): how high the
        model's probabilities reach where it should be sure.
    """

    ece: float
    brier: float
    brier_reference: float
    max_calibration_error: float
    n: int
    n_positive: int
    bin_edges: np.ndarray = field(repr=False)
    bin_count: np.ndarray = field(repr=False)
    bin_confidence: np.ndarray = field(repr=False)
    bin_frequency: np.ndarray = field(repr=False)
    p999: float = float("nan")

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN as None)."""
        def clean(x):
            return None if isinstance(x, float) and not np.isfinite(x) else x

        return {
            "ece": clean(self.ece), "brier": clean(self.brier), "brier_reference": clean(self.brier_reference),
            "max_calibration_error": clean(self.max_calibration_error), "n": self.n,
            "n_positive": self.n_positive, "p999_seizure": clean(self.p999),
            "bins": [
                {"lo": float(lo), "hi": float(hi), "n": int(n), "confidence": clean(float(c)),
                 "frequency": clean(float(f))}
                for lo, hi, n, c, f in zip(self.bin_edges[:-1], self.bin_edges[1:], self.bin_count,
                                           self.bin_confidence, self.bin_frequency, strict=True)
            ],
        }


def calibration(probs: np.ndarray, targets: np.ndarray, n_bins: int = DEFAULT_BINS) -> Calibration:
    """Reliability bins, ECE and Brier score of probabilities against binary targets.

    Parameters
    ----------
    probs : ndarray of float, shape (n,)
        Probabilities in [0, 1].
    targets : ndarray of bool or int, shape (n,)
        1/True for seizure samples.
    n_bins : int
        Equal-width bins over [0, 1]; a probability of exactly 1 falls in the last bin.

    Returns
    -------
    cal : Calibration

    Raises
    ------
    ValueError
        If the shapes differ, ``n_bins < 1``, or a probability is outside [0, 1] or not finite.
    """
    p = np.asarray(probs, dtype=np.float64).ravel()
    y = np.asarray(targets).astype(bool).ravel()
    if p.shape != y.shape:
        raise ValueError(f"probs and targets must have the same length (found {p.size} and {y.size})")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1 (found {n_bins})")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must be finite and in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    sum_p = np.bincount(index, weights=p, minlength=n_bins)
    sum_y = np.bincount(index, weights=y.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(count > 0, sum_p / count, np.nan)
        frequency = np.where(count > 0, sum_y / count, np.nan)
    n = int(p.size)
    if n == 0:
        nan = float("nan")
        return Calibration(nan, nan, nan, nan, 0, 0, edges, count, confidence, frequency)
    gaps = np.abs(frequency - confidence)
    filled = count > 0
    ece = float(np.sum(count[filled] / n * gaps[filled]))
    prevalence = float(y.mean())
    p999 = float(np.percentile(p[y], 99.9)) if y.any() else float("nan")
    return Calibration(
        ece=ece, brier=float(np.mean((p - y) ** 2)), brier_reference=prevalence * (1.0 - prevalence),
        max_calibration_error=float(gaps[filled].max()), n=n, n_positive=int(y.sum()), bin_edges=edges,
        bin_count=count, bin_confidence=confidence, bin_frequency=frequency, p999=p999,
    )


def labelled_scored_samples(recordings) -> tuple[np.ndarray, np.ndarray]:
    """The served probabilities and seizure targets of the labelled, scored samples of ``recordings``.

    Parameters
    ----------
    recordings : iterable of training.evaluate_metrics.ScoredRecording
        ``probs`` (NaN where unscored) and ``labels`` (1 seizure, 0 background, -1 unrated).

    Returns
    -------
    probs : ndarray, shape (n,)
    targets : ndarray of bool, shape (n,)
    """
    ps, ys = [], []
    for rec in recordings:
        keep = (rec.labels >= 0) & np.isfinite(rec.probs)
        ps.append(rec.probs[keep])
        ys.append(rec.labels[keep] == 1)
    p = np.concatenate(ps) if ps else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=bool)
    return p, y


def recordings_calibration(recordings: Iterable, n_bins: int = DEFAULT_BINS) -> Calibration:
    """:func:`calibration` pooled over the labelled, scored samples of evaluated recordings.

    Parameters
    ----------
    recordings : iterable of training.evaluate_metrics.ScoredRecording
        Their ``probs`` (served positions, NaN where unscored) and ``labels`` (1 seizure, 0
        background, -1 unrated); unrated and unscored samples are left out.
    n_bins : int
        See :func:`calibration`.
    """
    return calibration(*labelled_scored_samples(recordings), n_bins)


def plot_reliability(cal: Calibration, path: Path | str, title: str = "Reliability of served probabilities") -> Path:
    """Write the reliability diagram (PNG): observed frequency against mean probability per bin, the
    diagonal, and the samples per bin (log scale) below.

    Parameters
    ----------
    cal : Calibration
    path : path
        PNG to write (its folder must exist).
    title : str
        Figure title; ECE, Brier score and the counts are added to it.

    Returns
    -------
    path : Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    centres = (cal.bin_edges[:-1] + cal.bin_edges[1:]) / 2
    width = cal.bin_edges[1] - cal.bin_edges[0]
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    filled = cal.bin_count > 0
    top.bar(centres[filled], cal.bin_frequency[filled], width=width * 0.9, color="#4c72b0", alpha=0.75,
            label="observed seizure fraction")
    top.plot(cal.bin_confidence[filled], cal.bin_frequency[filled], "o", color="#c44e52", markersize=4,
             label="bin mean probability")
    top.set_ylim(0, 1)
    top.set_ylabel("fraction of seizure samples")
    ece = "n/a" if not np.isfinite(cal.ece) else f"{cal.ece:.3f}"
    brier = "n/a" if not np.isfinite(cal.brier) else f"{cal.brier:.3f} (prevalence-only {cal.brier_reference:.3f})"
    top.set_title(f"{title}\nECE {ece}, Brier {brier}; {cal.n:,} samples, {cal.n_positive:,} seizure",
                  fontsize=9)
    top.legend(loc="upper left", fontsize=8, frameon=False)
    bottom.bar(centres, np.maximum(cal.bin_count, 0), width=width * 0.9, color="#8c8c8c")
    bottom.set_yscale("symlog")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("served probability")
    bottom.set_ylabel("samples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def logits_of(probs: np.ndarray) -> np.ndarray:
    r"""The logits :math:`z = \log p - \log(1 - p)` of probabilities (clipped by :data:`LOGIT_CLIP_P`).

    Parameters
    ----------
    probs : ndarray of float, any shape
        Probabilities in [0, 1] (NaN stays NaN).

    Returns
    -------
    z : ndarray of float64, same shape
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), LOGIT_CLIP_P, 1.0 - LOGIT_CLIP_P)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    r"""Recalibrate stored probabilities: :math:`\sigma(\mathrm{logit}(p) / T)`.

    Parameters
    ----------
    probs : ndarray of float, any shape
        Probabilities in [0, 1]; NaN (unscored samples) stays NaN.
    temperature : float
        ``T > 0``.

    Returns
    -------
    ndarray of float32, same shape

    Raises
    ------
    ValueError
        If ``temperature`` is not a finite number > 0.
    """
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0 (found {temperature})")
    z = logits_of(probs) / float(temperature)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean binary negative log-likelihood of logits ``z / T`` against 0/1 targets ``y`` (nats)."""
    s = z / temperature
    return float(np.mean(np.logaddexp(0.0, -s) * y + np.logaddexp(0.0, s) * (1.0 - y)))


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it was fitted on.

    Attributes
    ----------
    temperature : float
        ``T`` minimising the NLL (within [detector.calibration.MIN_TEMPERATURE, MAX_TEMPERATURE]).
    nll_before, nll_after : float
        Mean NLL in nats at ``T = 1`` and at ``T``.
    n, n_positive : int
        Labelled samples and seizure samples fitted on.
    """

    temperature: float
    nll_before: float
    nll_after: float
    n: int
    n_positive: int


def fit_temperature(probs: np.ndarray, targets: np.ndarray) -> TemperatureFit:
    r"""Temperature scaling (Guo et al. 2017): the ``T`` minimising the NLL of :math:`\sigma(z / T)`.

    Parameters
    ----------
    probs : ndarray of float, shape (n,)
        Probabilities of labelled samples, in [0, 1] (their logits are recovered by :func:`logits_of`).
    targets : ndarray of bool or int, shape (n,)
        1/True for seizure samples.

    Returns
    -------
    TemperatureFit

    Raises
    ------
    ValueError
        If the shapes differ, a probability is not finite or outside [0, 1], or the targets hold only
        one class (a temperature needs both seizure and background samples to be identified).

    Notes
    -----
    The NLL is convex in :math:`1/T`; it is minimised over :math:`\log T` on
    [log MIN_TEMPERATURE, log MAX_TEMPERATURE] by bounded Brent search (``scipy.optimize.minimize_scalar``),
    to 1e-6 in :math:`\log T`.
    """
    from scipy.optimize import minimize_scalar

    from ictal.detector.calibration import MAX_TEMPERATURE, MIN_TEMPERATURE

    p = np.asarray(probs, dtype=np.float64).ravel()
    y = np.asarray(targets).astype(bool).ravel()
    if p.shape != y.shape:
        raise ValueError(f"probs and targets must have the same length (found {p.size} and {y.size})")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must be finite and in [0, 1]")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(f"temperature scaling needs seizure and background samples (found {n_pos} seizure of "
                         f"{y.size} labelled samples)")
    z = logits_of(p)
    yf = y.astype(np.float64)
    res = minimize_scalar(lambda log_t: _nll(z, yf, float(np.exp(log_t))), method="bounded",
                          bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)), options={"xatol": 1e-6})
    t = float(np.exp(res.x))
    return TemperatureFit(temperature=t, nll_before=_nll(z, yf, 1.0), nll_after=_nll(z, yf, t), n=int(p.size),
                          n_positive=n_pos)


def fit_recordings_temperature(recordings: Iterable) -> TemperatureFit:
    """:func:`fit_temperature` on the labelled, scored samples of evaluated recordings (pooled).

    Parameters
    ----------
    recordings : iterable of training.evaluate_metrics.ScoredRecording
        Their served ``probs`` (NaN where unscored) and ``labels`` (1, 0, -1 unrated); only labelled,
        scored samples are used. Pass TRAINING recordings only.
    """
    return fit_temperature(*labelled_scored_samples(recordings))


def calibration_entry(fit: TemperatureFit, previous_temperature: float, *, checkpoint_id: str, dataset: str,
                      recordings: Sequence[str]) -> dict[str, Any]:
    """The checkpoint's ``calibration`` metadata entry (:mod:`ictal.detector.calibration`) for a fit.

    Parameters
    ----------
    fit : TemperatureFit
        Fitted on probabilities that already carried ``previous_temperature`` (1.0 when the checkpoint
        had no calibration): the stored temperature is their product, the temperature of the raw logits.
    previous_temperature : float
    checkpoint_id : str
        The weights it belongs to (``Detector`` refuses it for others).
    dataset : str
    recordings : sequence of str
        Ids of the recordings fitted on (training recordings).
    """
    return {"method": "temperature", "temperature": float(previous_temperature) * fit.temperature,
            "fitted_on": {"dataset": dataset, "recordings": list(recordings), "n_samples": fit.n,
                          "n_seizure_samples": fit.n_positive, "positions": "served",
                          "objective": "mean binary NLL of the labelled served samples"},
            "nll_before": fit.nll_before, "nll_after": fit.nll_after, "checkpoint_id": checkpoint_id}


def write_checkpoint_calibration(checkpoint: Path | str, entry: dict[str, Any]) -> Path:
    """Store a ``calibration`` entry in a checkpoint's ``metadata.json`` (atomically; weights untouched).

    Raises
    ------
    FileNotFoundError
        If the checkpoint has no ``metadata.json``.
    ValueError
        If the metadata is not a JSON object or the entry does not validate
        (:func:`ictal.detector.calibration.read_calibration`).
    """
    from ictal.detector.calibration import read_calibration

    meta_path = Path(checkpoint) / "metadata.json"
    read_calibration(entry, str(meta_path))
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: checkpoint metadata not found (expected a checkpoint directory)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object (found {type(meta).__name__})")
    meta["calibration"] = entry
    tmp = meta_path.with_name(meta_path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(meta_path)
    return meta_path
