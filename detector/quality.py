"""Per-channel signal quality of one window: flat line, saturation, non-finite samples, mains noise.

Two depths: :func:`assess_window` judges the band-passed window the model scores (flat line, large
deviations, non-finite samples, mains noise); clipping at an amplifier's rails is judged on the RAW
microvolt samples (before resampling and filtering), where a rail is a plateau at the extreme value:
the band-pass makes the plateaus of a clipped lead droop and overshoot, so neither the amplitude nor
the plateau criterion finds them afterwards. :func:`rail_stats` summarises each raw piece of input as
it arrives (cheap: a few passes over the piece), :func:`rail_summary` combines the pieces of a window,
and ``assess_window(..., rails=...)`` reports the channels whose raw samples sit on a rail.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.fft import rfft
from scipy.signal import get_window

from detector import CANONICAL_CHANNELS


class QualityThresholds(BaseModel):
    """Thresholds of the signal-quality checks (amplitudes in uV of the signal assessed)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    flat_std_uv: float = Field(
        0.5, gt=0, description="A channel whose standard deviation is below this is flat (disconnected "
        "lead, or the reference electrode): scalp EEG is 5-100 uV; amplifier noise is ~0.5-1 uV."
    )
    saturation_uv: float = Field(
        2000.0, gt=0, description="Samples deviating from the channel median by this much or more count "
        "as saturated (the median removes electrode offsets): above the largest cerebral activity of the "
        "labelled ICU set (a seizure, iiic_02, peaks near 1.8 mV after the band-pass), so a high-voltage "
        "seizure is never mistaken for a saturated lead; ICU amplifiers clip at 2-5 mV."
    )
    saturation_fraction: float = Field(
        0.01, gt=0, le=1, description="A channel is saturated when more than this fraction of its samples "
        "is beyond saturation_uv or sits on a plateau at its extreme deviation (clipping at a rail)."
    )
    plateau_tolerance_uv: float = Field(
        0.01, ge=0, description="Samples within this of a channel's extreme value belong to its "
        "clipping plateau (EDF digitisation steps are ~0.03-0.5 uV)."
    )
    plateau_min_uv: float = Field(
        100.0, ge=0, description="A plateau counts as clipping only at amplitudes beyond this (a quiet "
        "channel has many equal small values)."
    )
    line_noise_ratio: float = Field(
        0.5, gt=0, le=1, description="A channel is noisy when the power within +/- line_band_hz of 50 or "
        "60 Hz exceeds this fraction of its power in band_hz."
    )
    line_band_hz: float = Field(1.0, gt=0, description="Half width (Hz) of the mains band around 50 and 60 Hz.")
    band_hz: tuple[float, float] = Field((0.5, 100.0), description="Band (Hz) of the reference power.")
    max_bad_channels: int = Field(
        3, ge=0, le=19, description="A window is usable while at most this many channels are bad (any "
        "problem); the model tolerates a few bad leads, not a missing hemisphere."
    )


DEFAULT_THRESHOLDS = QualityThresholds()
"""The thresholds used when none are given."""

MEDIAN_STEP: int = 8
"""The centre of a channel (what saturation deviations are measured from, and what non-finite
samples are replaced by) is the median of every 8th sample: 1920 of a 60 s window's 15360, at 1/8 of
the cost of a full median. It only has to remove electrode offsets at the scale of the 100 uV plateau
and 2000 uV saturation thresholds: its standard error, 1.25 sigma / sqrt(1920) = 0.03 sigma for
independent samples and a few times that for correlated EEG, is a few uV."""


@dataclass(frozen=True)
class RailStats:
    """Raw-sample statistics of one piece of input, per channel (see :func:`rail_stats`).

    Attributes
    ----------
    n_samples : int
        Samples of the piece (per channel).
    high, low : ndarray of float64, shape (n_channels,)
        Largest and smallest finite raw sample (uV); -inf / +inf for a channel without one.
    n_high, n_low : ndarray of int64, shape (n_channels,)
        Samples within ``plateau_tolerance_uv`` of ``high`` (``low``) that have a neighbour also within
        it (a plateau of at least two samples), counted only when the plateau lies more than
        ``plateau_min_uv`` from the piece's mean or at ``saturation_uv`` or more from 0 uV; 0
        otherwise. A constant piece counts in ``n_low`` only.
    """

    n_samples: int
    high: np.ndarray
    low: np.ndarray
    n_high: np.ndarray
    n_low: np.ndarray


@dataclass(frozen=True)
class RailSummary:
    """Rail clipping of the raw samples of one window, per channel (see :func:`rail_summary`).

    Attributes
    ----------
    fraction_high, fraction_low : ndarray of float64, shape (n_channels,)
        Fraction of the window's raw samples on a plateau at the window's highest (lowest) value.
    high, low : ndarray of float64, shape (n_channels,)
        The window's highest and lowest raw value (uV): the rails when the fractions are large.
    """

    fraction_high: np.ndarray
    fraction_low: np.ndarray
    high: np.ndarray
    low: np.ndarray

    @property
    def fraction(self) -> np.ndarray:
        """Fraction of the window's raw samples on either rail, shape (n_channels,)."""
        return np.minimum(self.fraction_high + self.fraction_low, 1.0)


def _plateau_count(x: np.ndarray, level: np.ndarray, scan: np.ndarray, *, above: bool) -> np.ndarray:
    """Per channel, the samples at or beyond ``level`` that have a neighbour there too (runs of >= 2).

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_samples)
    level : ndarray of float64, shape (n_channels,)
        Threshold per channel: samples ``>= level`` (``above``) or ``<= level`` count.
    scan : ndarray of bool, shape (n_channels,)
        Channels to scan; the others get 0.
    above : bool

    Returns
    -------
    counts : ndarray of int64, shape (n_channels,)
    """
    counts = np.zeros(x.shape[0], dtype=np.int64)
    if not scan.any():
        return counts
    limit = np.where(scan, level, np.inf if above else -np.inf).astype(x.dtype)[:, None]
    at = x >= limit if above else x <= limit
    n_at = np.count_nonzero(at, axis=1)
    rows = np.flatnonzero(n_at >= 2)  # natural EEG reaches its extreme once: most rows end here
    if rows.size:
        at = at[rows]
        pair = at[:, 1:] & at[:, :-1]
        in_run = np.zeros_like(at)
        in_run[:, 1:] |= pair
        in_run[:, :-1] |= pair
        counts[rows] = np.count_nonzero(in_run, axis=1)
    return counts


def rail_stats(raw: np.ndarray, thresholds: QualityThresholds | None = None) -> RailStats:
    """Summarise one piece of raw input for rail (clipping) detection.

    Parameters
    ----------
    raw : ndarray, shape (n_channels, n_samples)
        Raw samples in uV at the source's rate, before any filtering; may contain NaN/Inf (left out).
        ``n_samples`` may be 0.
    thresholds : QualityThresholds, optional
        ``plateau_tolerance_uv`` and ``plateau_min_uv`` are read (default :data:`DEFAULT_THRESHOLDS`).

    Returns
    -------
    stats : RailStats

    Raises
    ------
    ValueError
        If ``raw`` is not 2-D.

    Notes
    -----
    A clipped lead sits on its rail for runs of consecutive samples; natural EEG reaches its extreme
    for a sample or two (a few more at the top of a slow wave on a coarsely digitised record). Only
    channels whose extreme lies more than ``plateau_min_uv`` from the piece's mean are scanned (a quiet
    channel has many equal small values), and the mean, not a median, is the centre: the piece is a
    few seconds long, so the mean follows the slow drift of raw ICU signals. A lead pinned at its rail
    for a whole piece (its mean is the rail) is caught by the level instead: a plateau at
    ``saturation_uv`` or more from 0 uV. A lead stuck at a small constant (a disconnected electrode at
    0 uV) is not a rail: it is reported as flat by :func:`assess_window`.
    """
    t = thresholds or DEFAULT_THRESHOLDS
    x = np.asarray(raw)
    if x.ndim != 2:
        raise ValueError(f"raw piece must have shape (n_channels, n_samples), found {x.shape}")
    n_channels, n = x.shape
    zeros = np.zeros(n_channels, dtype=np.int64)
    if n == 0:
        return RailStats(0, np.full(n_channels, -np.inf), np.full(n_channels, np.inf), zeros, zeros.copy())
    high, low = x.max(axis=1), x.min(axis=1)
    if np.isfinite(high).all() and np.isfinite(low).all():
        mean = x.mean(axis=1)
    else:  # NaN/Inf: left out (the front-end replaces them and counts them)
        x = np.where(np.isfinite(x), x, np.nan)
        with np.errstate(all="ignore"):
            finite_rows = ~np.isnan(x).all(axis=1)
            high = np.full(n_channels, -np.inf)
            low = np.full(n_channels, np.inf)
            mean = np.zeros(n_channels)
            high[finite_rows] = np.nanmax(x[finite_rows], axis=1)
            low[finite_rows] = np.nanmin(x[finite_rows], axis=1)
            mean[finite_rows] = np.nanmean(x[finite_rows], axis=1)
    high, low, mean = high.astype(np.float64), low.astype(np.float64), mean.astype(np.float64)
    # A plateau is a rail when it lies far from the piece's mean, or at a level no EEG reaches (a lead
    # pinned at its rail for the whole piece has its mean on the rail); a constant piece is counted once.
    distinct = high - low > 2 * t.plateau_tolerance_uv
    scan_high = distinct & ((high - mean > t.plateau_min_uv) | (np.abs(high) >= t.saturation_uv))
    scan_low = (mean - low > t.plateau_min_uv) | (np.abs(low) >= t.saturation_uv)
    return RailStats(n, high, low, _plateau_count(x, high - t.plateau_tolerance_uv, scan_high, above=True),
                     _plateau_count(x, low + t.plateau_tolerance_uv, scan_low, above=False))


def rail_summary(pieces: Iterable[RailStats], thresholds: QualityThresholds | None = None) -> RailSummary | None:
    """Combine the :class:`RailStats` of the pieces of a window.

    Parameters
    ----------
    pieces : iterable of RailStats
        The raw pieces whose samples make up the window (same number of channels).
    thresholds : QualityThresholds, optional
        ``plateau_tolerance_uv`` is read (default :data:`DEFAULT_THRESHOLDS`).

    Returns
    -------
    summary : RailSummary or None
        None when there is no piece or no sample.

    Notes
    -----
    The window's rails are its highest and lowest values; a piece's plateau counts when the piece's
    extreme lies within ``plateau_tolerance_uv`` of the window's (the plateau of every clipped piece
    sits exactly on the rail). Pieces whose extreme is lower contribute nothing.
    """
    t = thresholds or DEFAULT_THRESHOLDS
    pieces = [p for p in pieces if p.n_samples]
    if not pieces:
        return None
    high = np.stack([p.high for p in pieces])
    low = np.stack([p.low for p in pieces])
    top, bottom = high.max(axis=0), low.min(axis=0)
    on_top = high >= top - t.plateau_tolerance_uv
    on_bottom = low <= bottom + t.plateau_tolerance_uv
    total = sum(p.n_samples for p in pieces)
    n_top = np.where(on_top, np.stack([p.n_high for p in pieces]), 0).sum(axis=0)
    n_bottom = np.where(on_bottom, np.stack([p.n_low for p in pieces]), 0).sum(axis=0)
    return RailSummary(fraction_high=n_top / total, fraction_low=n_bottom / total, high=top, low=bottom)


@dataclass(frozen=True)
class QualityReport:
    """Signal quality of one window.

    Attributes
    ----------
    usable : bool
        True when at most ``max_bad_channels`` channels have a problem.
    problems : list of str
        One line per problem, e.g. ``"T5: flat (std 0.02 uV)"``; empty for a clean window.
    bad_channels : tuple of str
        Channels with at least one problem.
    std_uv : ndarray of float64, shape (n_channels,)
        Standard deviation of each channel over its finite samples (uV).
    n_nonfinite : ndarray of int64, shape (n_channels,)
        NaN/Inf samples per channel.
    saturated_fraction : ndarray of float64, shape (n_channels,)
        Fraction of samples beyond ``saturation_uv`` or on the clipping plateau (the larger of the
        filtered window's and, when ``rails`` was given, the raw samples' rail fraction).
    line_noise_ratio : ndarray of float64, shape (n_channels,)
        Power at 50 or 60 Hz (the larger) over the power in ``band_hz``.
    """

    usable: bool
    problems: list[str]
    bad_channels: tuple[str, ...]
    std_uv: np.ndarray
    n_nonfinite: np.ndarray
    saturated_fraction: np.ndarray
    line_noise_ratio: np.ndarray


def assess_window(
    window: np.ndarray,
    fs: float,
    channels: Sequence[str] = CANONICAL_CHANNELS,
    thresholds: QualityThresholds = DEFAULT_THRESHOLDS,
    rails: RailSummary | None = None,
) -> QualityReport:
    """Check each channel of a window for flat line, saturation, non-finite samples and mains noise.

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_samples)
        Samples in uV at ``fs`` Hz, meant to be the band-passed window the model scores ((19, 15360)
        at 256 Hz): raw ICU signals drift by millivolts below 0.5 Hz, which the amplitude criterion
        of saturation would take for clipping. May contain NaN/Inf. At least ``fs`` samples (1 s) are
        needed for the line-noise estimate. A float32 window (the ring buffer's) is assessed in
        float32 arithmetic, any other dtype in float64.
    fs : float
        Sampling rate in Hz (> 120, so that 60 Hz is resolved).
    channels : sequence of str
        Channel names used in the problem lines (the canonical 19 by default).
    thresholds : QualityThresholds
    rails : RailSummary, optional
        Rail clipping of the window's RAW samples (:func:`rail_summary`). A channel with more than
        ``saturation_fraction`` of its raw samples on a rail is saturated (the problem line gives the
        rails); without it only the filtered window is judged.

    Returns
    -------
    report : QualityReport

    Raises
    ------
    ValueError
        If the window is not 2-D, has a different number of rows than ``channels``, is shorter than
        1 s, ``fs`` is 120 Hz or less, or ``rails`` has another number of channels.

    Notes
    -----
    Vectorised over channels, with one FFT call for the whole window: the front-end assesses a
    window every hop (900 per hour of EEG at a 4 s hop) and must stay far below 1 ms per window;
    ``scipy.signal.welch`` alone took ~7 ms.

    - Centre: the median of every ``MEDIAN_STEP``-th finite sample (see :data:`MEDIAN_STEP`);
      non-finite samples are set to it, so they add nothing to the sums below.
    - Saturation: deviations ``c = x - centre``; a sample is saturated when ``|c| >= saturation_uv``
      or it sits within ``plateau_tolerance_uv`` of the channel's maximum or minimum (a rail) with
      ``|c| > plateau_min_uv``. Channels whose largest deviation is below both thresholds cannot
      have such samples and are not scanned.
    - Standard deviation over the finite samples, from the sums of ``c`` and ``c**2`` (centring on
      the median avoids cancellation: ``|mean - median| <= std`` for any distribution).
    - Line noise: Bartlett's method (Welch's without overlap; Welch 1967): the mean over the
      window's 1 s segments (the newest whole seconds) of the periodogram of each segment with its
      mean removed and a Hann taper, 1 Hz resolution as before. Line power is the power of the bins
      within ``+/- line_band_hz`` of 50 Hz or of 60 Hz (the larger), band power that of the bins in
      ``band_hz``. Against the former 50 %-overlap Welch estimate the ratio differs by < 0.03 on the
      real recordings of ``../shared/data`` (filtered 60 s windows and raw 30 s windows alike) and
      no problem line changed.

    A flat channel (std below ``flat_std_uv``) is not also tested for line noise.
    """
    x = np.asarray(window)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[0] != len(channels):
        raise ValueError(f"window must have shape ({len(channels)}, n_samples), found {x.shape}")
    if not fs > 120:
        raise ValueError(f"fs must exceed 120 Hz to resolve 60 Hz mains (found {fs} Hz)")
    n_channels, n = x.shape
    if n < fs:
        raise ValueError(f"window must hold at least 1 s ({int(np.ceil(fs))} samples), found {n}")
    t = thresholds

    x_max, x_min = x.max(axis=1), x.min(axis=1)  # NaN/Inf propagate: the finite check for free
    if np.isfinite(x_max).all() and np.isfinite(x_min).all():
        n_nonfinite = np.zeros(n_channels, dtype=np.int64)
        centre = _subsample_median(x)
        c = x - centre.astype(x.dtype)[:, None]
        c_max, c_min = x_max - centre.astype(x.dtype), x_min - centre.astype(x.dtype)
    else:
        finite = np.isfinite(x)
        n_nonfinite = (~finite).sum(axis=1).astype(np.int64)
        centre = _subsample_median(np.where(finite, x, np.nan))
        c = np.where(finite, x - centre.astype(x.dtype)[:, None], x.dtype.type(0.0))
        c_max, c_min = c.max(axis=1), c.min(axis=1)
    n_finite = np.maximum(n - n_nonfinite, 1)

    # Saturation: only channels whose largest deviation reaches a threshold are scanned.
    peak = np.maximum(c_max, -c_min).astype(np.float64)
    saturated_fraction = np.zeros(n_channels)
    rows = np.flatnonzero((peak >= t.saturation_uv) | (peak > t.plateau_min_uv))
    if rows.size:
        dev = c[rows]
        magnitude = np.abs(dev)
        clipped = (dev >= (c_max[rows] - t.plateau_tolerance_uv)[:, None])
        clipped |= dev <= (c_min[rows] + t.plateau_tolerance_uv)[:, None]
        clipped &= magnitude > t.plateau_min_uv  # on a rail, and far from the centre
        clipped |= magnitude >= t.saturation_uv
        saturated_fraction[rows] = np.count_nonzero(clipped, axis=1) / n

    sums = c.sum(axis=1).astype(np.float64)  # non-finite samples are 0 in c: sums over the finite ones
    sum_sq = np.einsum("ij,ij->i", c, c).astype(np.float64)
    mean = sums / n_finite
    std = np.sqrt(np.maximum(sum_sq / n_finite - mean**2, 0.0))

    # Line noise: Welch's periodogram without overlap (Bartlett's): the mean over the window's 1 s
    # segments of |FFT|^2 of each segment, mean removed and Hann-tapered, in one FFT call (the newest
    # whole seconds when n is not a multiple of fs).
    length = int(fs)
    n_segments = n // length
    segments = c[:, n - n_segments * length :].reshape(n_channels, n_segments, length)
    spectrum = rfft(segments * _hann(length, x.dtype), axis=2, overwrite_x=True)
    # Removing a segment's mean m before the taper subtracts m * FFT(hann): for the periodic Hann
    # taper that is m * L / 2 at bin 0 and -m * L / 4 at bin 1 and nothing elsewhere (saves a pass).
    segment_mean = segments @ np.ones(length, dtype=x.dtype) / length
    spectrum[:, :, 0] -= segment_mean * (length / 2)
    spectrum[:, :, 1] += segment_mean * (length / 4)
    power = spectrum.real**2
    power += spectrum.imag**2
    power = np.einsum("ijk->ik", power).astype(np.float64)
    df = fs / length

    def bins_power(lo_hz: float, hi_hz: float) -> np.ndarray:
        """Power of the bins whose frequency lies in [lo_hz, hi_hz], per channel."""
        lo, hi = max(int(np.ceil(lo_hz / df - 1e-9)), 0), int(np.floor(hi_hz / df + 1e-9))
        return power[:, lo : hi + 1].sum(axis=1)

    band_power = bins_power(*t.band_hz)
    line_power = np.maximum(*(bins_power(f - t.line_band_hz, f + t.line_band_hz) for f in (50.0, 60.0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        line_ratio = np.where(band_power > 0, line_power / band_power, 0.0)

    raw_clipped = np.zeros(n_channels, dtype=bool)
    if rails is not None:
        if rails.fraction.shape != (n_channels,):
            raise ValueError(f"rails must describe {n_channels} channels, found {rails.fraction.shape}")
        raw_clipped = rails.fraction > t.saturation_fraction
        saturated_fraction = np.maximum(saturated_fraction, rails.fraction)
    is_nonfinite = n_nonfinite > 0
    is_flat = (n_nonfinite < n) & (std < t.flat_std_uv)
    is_saturated = saturated_fraction > t.saturation_fraction
    is_noisy = (std >= t.flat_std_uv) & (line_ratio > t.line_noise_ratio)
    problems: list[str] = []
    bad: list[str] = []
    for i in np.flatnonzero(is_nonfinite | is_flat | is_saturated | is_noisy):  # channel order
        name = channels[i]
        bad.append(name)
        if is_nonfinite[i]:
            problems.append(f"{name}: non-finite ({n_nonfinite[i]} NaN/Inf samples of {n})")
        if is_flat[i]:
            problems.append(f"{name}: flat (std {std[i]:.2f} uV)")
        if raw_clipped[i]:
            at = [f"{v:.0f} uV" for v, f in ((rails.low[i], rails.fraction_low[i]),
                                               (rails.high[i], rails.fraction_high[i])) if f > 0]
            problems.append(
                f"{name}: saturated ({100 * rails.fraction[i]:.1f}% of raw samples clipped on a plateau at "
                f"{' and '.join(at)})"
            )
        elif is_saturated[i]:
            problems.append(
                f"{name}: saturated ({100 * saturated_fraction[i]:.1f}% of samples clipped or beyond "
                f"+/-{t.saturation_uv:.0f} uV, peak {peak[i]:.0f} uV from the median)"
            )
        if is_noisy[i]:
            problems.append(f"{name}: line noise ({100 * line_ratio[i]:.0f}% of the power at 50/60 Hz)")
    return QualityReport(
        usable=len(bad) <= t.max_bad_channels,
        problems=problems,
        bad_channels=tuple(bad),
        std_uv=std,
        n_nonfinite=n_nonfinite,
        saturated_fraction=saturated_fraction,
        line_noise_ratio=line_ratio,
    )


@functools.lru_cache(maxsize=8)
def _hann(n: int, dtype: np.dtype) -> np.ndarray:
    """Periodic Hann taper of ``n`` samples (as ``scipy.signal.welch`` uses), read-only."""
    taper = get_window("hann", n).astype(dtype)
    taper.setflags(write=False)
    return taper


def _subsample_median(x: np.ndarray) -> np.ndarray:
    """Median of every ``MEDIAN_STEP``-th finite sample of each channel (all finite ones if too few).

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_samples)
        Samples; NaN marks a sample to leave out.

    Returns
    -------
    centre : ndarray of float64, shape (n_channels,)
        The median; 0.0 for a channel with no finite sample.
    """
    sub = x[:, ::MEDIAN_STEP]
    if not np.isnan(sub).any():
        k = sub.shape[1] // 2
        return np.partition(sub, k, axis=1)[:, k].astype(np.float64)
    centre = np.zeros(x.shape[0])
    for i in range(x.shape[0]):
        row = sub[i][~np.isnan(sub[i])]
        if row.size == 0:
            row = x[i][~np.isnan(x[i])]
        if row.size:
            centre[i] = np.median(row)
    return centre
