"""Bootstrap confidence intervals of event and sample figures, resampling whole units (patients).

A dataset of seizure EEG holds a handful of seizures from a handful of patients, and the recordings of
one patient are not independent: an interval that resamples seizures or samples would be far too
narrow. Every interval here resamples **units** (the caller's choice; ``ictal evaluate`` uses
patients) with replacement and recomputes the figure from the resampled units' summed counts:

- a ratio figure (sensitivity = hits / targets, FA/24h = false alarms / duration x 86400):
  :func:`ratio_interval`, over the units whose denominator is positive (the units with seizures for
  sensitivity: the others do not change it);
- AUROC: :func:`auroc_interval`, stratified: units with seizure samples and units without are
  resampled separately (each resample keeps both classes), AUROC from per-unit histograms of the
  probabilities in :data:`AUROC_BINS` equal bins (ties within a bin count half; the value reported is
  the exact AUROC, the interval is from the binned one).

Method: ``scipy.stats.bootstrap`` with ``method="percentile"`` (BCa needs a jackknife over units, which
misbehaves with a few units whose figure is 0 or 1), :data:`CONFIDENCE_LEVEL` = 95 %,
:data:`N_RESAMPLES` resamples, ``numpy.random.default_rng(SEED)``: the same data give the same
interval. With fewer than :data:`MIN_UNITS` contributing units no interval is computed: ``lo`` and
``hi`` are None and ``note`` says why (an interval from 2 patients means nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE_LEVEL = 0.95
"""Two-sided coverage of the intervals."""

N_RESAMPLES = 2000
"""Bootstrap resamples: percentile limits of a 95 % interval are stable to about 0.01 at 2000."""

SEED = 0
"""Seed of the resampling generator (fixed: a report is reproducible)."""

MIN_UNITS = 5
"""Fewest contributing units for an interval: with fewer, the resamples take a handful of distinct
values and the percentile limits say little (Efron & Tibshirani 1993 warn below about 10)."""

AUROC_BINS = 1000
"""Equal-width probability bins of the AUROC histograms (ties within 0.001 count half)."""

METHOD = (f"percentile bootstrap (scipy.stats.bootstrap, method='percentile'), {CONFIDENCE_LEVEL:.0%}, "
          f"{N_RESAMPLES} resamples, seed {SEED}, resampling whole units; AUROC stratified (units with and "
          f"without seizure samples resampled separately) on probabilities binned to 1/{AUROC_BINS}")


def _result(value: float, lo: float | None, hi: float | None, n_units: int, note: str | None) -> dict:
    return {"value": None if not np.isfinite(value) else float(value),
            "lo": None if lo is None or not np.isfinite(lo) else float(lo),
            "hi": None if hi is None or not np.isfinite(hi) else float(hi),
            "n_units": int(n_units), "note": note}


def _too_few(value: float, n: int, unit: str, what: str) -> dict:
    return _result(value, None, None, n, f"no interval: {n} {unit}s {what}, fewer than {MIN_UNITS}")


def _counts_matrix(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each unit is drawn in each resample: idx (..., n_draws) -> counts (..., n)."""
    flat = idx.reshape(-1, idx.shape[-1])
    rows = np.repeat(np.arange(flat.shape[0]) * n, flat.shape[1])
    counts = np.bincount(rows + flat.ravel(), minlength=flat.shape[0] * n).astype(np.float64)
    return counts.reshape(*idx.shape[:-1], n)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float], scale: float = 1.0,
                   unit: str = "patient", what: str = "contribute") -> dict:
    """Value and percentile-bootstrap interval of ``scale x sum(numerators) / sum(denominators)``.

    Parameters
    ----------
    numerators, denominators : sequence of float, shape (n_units,)
        Per-unit counts (e.g. hits and targets, or false alarms and seconds).
    scale : float
        Factor of the figure (86400 for a rate per 24 h from seconds).
    unit : str
        What a unit is, for the note (``"patient"``).
    what : str
        What makes a unit contribute, for the note (``"with seizures"``).

    Returns
    -------
    dict
        ``{"value", "lo", "hi", "n_units", "note"}``: the figure over all units, the interval limits
        (None with fewer than :data:`MIN_UNITS` units whose denominator is positive, or when every unit
        has the same rate, e.g. no false alarm in any patient, where every resample would give the
        value itself; ``note`` then says so), the contributing units. ``value`` is None when every denominator is 0.

    Raises
    ------
    ValueError
        If the sequences differ in length or hold a negative or non-finite count.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"numerators {num.shape} and denominators {den.shape}, expected two 1-d arrays of one length")
    if not (np.all(np.isfinite(num)) and np.all(np.isfinite(den))) or (num < 0).any() or (den < 0).any():
        raise ValueError("counts must be finite and >= 0")
    keep = den > 0
    num, den = num[keep], den[keep]
    n = int(num.size)
    value = scale * num.sum() / den.sum() if n else float("nan")
    if n < MIN_UNITS:
        return _too_few(value, n, unit, what)
    ratios = num / den
    if np.all(ratios == ratios[0]):
        # Every unit has the same rate (no false alarm in any patient, say): every resample gives it, and
        # a percentile interval [v, v] would claim a certainty the data do not have.
        return _result(value, None, None, n, f"no interval: all {n} {unit}s have the same rate, so every "
                       "resample does; see the exact interval")

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        w = _counts_matrix(np.asarray(idx, dtype=np.intp), n)
        return scale * (w @ num) / (w @ den)

    res = bootstrap((np.arange(n),), statistic, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE_LEVEL,
                    method="percentile", vectorized=True, batch=500, rng=np.random.default_rng(SEED))
    return _result(value, res.confidence_interval.low, res.confidence_interval.high, n, None)


def unit_histograms(probs: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit histograms of the probabilities of positive and negative samples.

    Parameters
    ----------
    probs : sequence of ndarray of float, each shape (n_samples_u,)
        Each unit's scored, labelled probabilities in [0, 1].
    targets : sequence of ndarray of bool, each shape (n_samples_u,)
        True for seizure samples.

    Returns
    -------
    pos, neg : ndarray of float, shape (n_units, AUROC_BINS)
        Counts per bin (bin ``k`` holds ``[k, k + 1) / AUROC_BINS``; 1.0 in the last bin).
    """
    n = len(probs)
    pos = np.zeros((n, AUROC_BINS))
    neg = np.zeros((n, AUROC_BINS))
    for i, (p, y) in enumerate(zip(probs, targets, strict=True)):
        b = np.clip((np.asarray(p, dtype=np.float64) * AUROC_BINS).astype(np.intp), 0, AUROC_BINS - 1)
        y = np.asarray(y, dtype=bool)
        pos[i] = np.bincount(b[y], minlength=AUROC_BINS)
        neg[i] = np.bincount(b[~y], minlength=AUROC_BINS)
    return pos, neg


def _binned_auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC from histograms (..., bins): P(pos > neg) + 0.5 P(same bin)."""
    below = np.cumsum(neg, axis=-1) - neg
    n_pos, n_neg = pos.sum(axis=-1), neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=-1) / (n_pos * n_neg)


def auroc_interval(value: float, probs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                   unit: str = "patient") -> dict:
    """Percentile-bootstrap interval of the sample-level AUROC, resampling units (stratified).

    Parameters
    ----------
    value : float
        The exact AUROC over all samples (reported as ``value``; NaN when undefined).
    probs, targets : sequence of ndarray
        Per unit, its scored, labelled probabilities and whether each sample is a seizure sample.
    unit : str
        What a unit is, for the note.

    Returns
    -------
    dict
        As :func:`ratio_interval`; ``n_units`` counts the units with samples. No interval with fewer
        than :data:`MIN_UNITS` units holding seizure samples or fewer than :data:`MIN_UNITS` holding
        background samples.
    """
    pos, neg = unit_histograms(probs, targets)
    has = (pos.sum(axis=1) + neg.sum(axis=1)) > 0
    pos, neg = pos[has], neg[has]
    n = int(pos.shape[0])
    n_seiz = int((pos.sum(axis=1) > 0).sum())
    n_bckg = int((neg.sum(axis=1) > 0).sum())
    if n_seiz < MIN_UNITS:
        return _too_few(value, n_seiz, unit, "with seizure samples")
    if n_bckg < MIN_UNITS:
        return _too_few(value, n_bckg, unit, "with background samples")
    seiz_units = np.flatnonzero(pos.sum(axis=1) > 0)
    other_units = np.flatnonzero(pos.sum(axis=1) == 0)
    groups = [g for g in (seiz_units, other_units) if g.size]

    def statistic(*idx_groups: np.ndarray, axis: int = -1) -> np.ndarray:
        p_tot = 0.0
        n_tot = 0.0
        for g, idx in zip(groups, idx_groups, strict=True):
            w = _counts_matrix(np.asarray(idx, dtype=np.intp), g.size)
            p_tot = p_tot + w @ pos[g]
            n_tot = n_tot + w @ neg[g]
        return _binned_auroc(p_tot, n_tot)

    res = bootstrap(tuple(np.arange(g.size) for g in groups), statistic, n_resamples=N_RESAMPLES,
                    confidence_level=CONFIDENCE_LEVEL, method="percentile", vectorized=True, batch=200,
                    rng=np.random.default_rng(SEED))
    return _result(value, res.confidence_interval.low, res.confidence_interval.high, n, None)


def exact_proportion_interval(hits: int, targets: int) -> dict:
    """Clopper-Pearson ("exact") 95 % interval of a proportion ``hits / targets`` (e.g. sensitivity).

    It treats the ``targets`` events as independent trials, so it is honest about a handful of seizures
    (1 of 2 found: 1.3 % to 98.7 %) but, unlike the bootstrap by patient, blind to how a patient's
    seizures resemble each other. ``ictal evaluate`` reports it beside the bootstrap, and it is the only
    interval there is when fewer than :data:`MIN_UNITS` patients hold a seizure.

    Parameters
    ----------
    hits, targets : int
        Events found and events in the reference (``0 <= hits <= targets``).

    Returns
    -------
    dict
        ``{"value", "lo", "hi", "n_units", "note"}``; ``n_units`` is ``targets``; value, lo and hi are None
        with no target (``note`` says so).

    Raises
    ------
    ValueError
        If ``hits`` is negative or above ``targets``.

    References
    ----------
    Clopper C. J., Pearson E. S., Biometrika 26(4):404-413, 1934 (``scipy.stats.binomtest(...).proportion_ci``).
    """
    from scipy.stats import binomtest

    if hits < 0 or hits > targets:
        raise ValueError(f"hits {hits} must lie in [0, targets {targets}]")
    if targets == 0:
        return _result(float("nan"), None, None, 0, "no interval: no seizure in the reference")
    ci = binomtest(int(hits), int(targets)).proportion_ci(confidence_level=CONFIDENCE_LEVEL, method="exact")
    return _result(hits / targets, ci.low, ci.high, targets, None)


def poisson_rate_interval(count: int, exposure: float, scale: float = 1.0) -> dict:
    """Exact (Garwood) 95 % interval of a rate ``scale x count / exposure`` (e.g. false alarms per 24 h).

    The count is taken as Poisson over the exposure: with 0 false alarms in 2 h the rate is 0 per 24 h, but
    the upper limit (-ln 0.025 / 2 h = 44.3 per 24 h) says how little 2 h can rule out.

    Parameters
    ----------
    count : int
        Events counted (false alarms), >= 0.
    exposure : float
        Time observed (seconds for a rate per 24 h with ``scale=86400``), > 0 for a value.
    scale : float
        Factor of the rate.

    Returns
    -------
    dict
        ``{"value", "lo", "hi", "n_units", "note"}``; ``n_units`` is ``count``; None values with no
        exposure.

    Raises
    ------
    ValueError
        If ``count`` or ``exposure`` is negative or not finite.

    References
    ----------
    Garwood F., Biometrika 28(3/4):437-442, 1936 (chi-square limits of a Poisson mean).
    """
    from scipy.stats import chi2

    if count < 0 or not np.isfinite(exposure) or exposure < 0:
        raise ValueError(f"count {count} and exposure {exposure} must be finite and >= 0")
    if exposure == 0:
        return _result(float("nan"), None, None, int(count), "no interval: no time observed")
    alpha = 1.0 - CONFIDENCE_LEVEL
    lo = 0.0 if count == 0 else chi2.ppf(alpha / 2, 2 * count) / 2
    hi = chi2.ppf(1 - alpha / 2, 2 * count + 2) / 2
    return _result(scale * count / exposure, scale * lo / exposure, scale * hi / exposure, int(count), None)


def format_interval(ci: dict, spec: str = ".2f", scale: float = 1.0, unit: str = "") -> str:
    """``value [lo, hi]`` (``n/a`` for an undefined value; the note instead of an interval when there is none)."""
    if ci.get("value") is None:
        return "n/a"
    text = f"{format(scale * ci['value'], spec)}{unit}"
    if ci.get("lo") is None or ci.get("hi") is None:
        return f"{text} ({ci.get('note') or 'no interval'})"
    return f"{text} [{format(scale * ci['lo'], spec)}{unit}, {format(scale * ci['hi'], spec)}{unit}]"
