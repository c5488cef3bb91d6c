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

Samples within a recording are strongly dependent (256 per second, seizures last tens of seconds): the
figures describe the pooled samples, and their uncertainty is that of the few recordings behind them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    ps, ys = [], []
    for rec in recordings:
        keep = (rec.labels >= 0) & np.isfinite(rec.probs)
        ps.append(rec.probs[keep])
        ys.append(rec.labels[keep] == 1)
    p = np.concatenate(ps) if ps else np.zeros(0)
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=bool)
    return calibration(p, y, n_bins)


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
