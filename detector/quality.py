"""Per-channel signal quality of one window: flat line, saturation, non-finite samples, mains noise.

Two depths: :func:`assess_window` judges the band-passed window the model scores (flat line, large
deviations, non-finite samples, mains noise); clipping at an amplifier's rails is judged on the RAW
microvolt samples (before resampling and filtering), where a rail is a plateau at the extreme value:
the band-pass makes the plateaus of a clipped lead droop and overshoot, so neither the amplitude nor
the plateau criterion finds them afterwards. :func:`rail_stats` summarises each raw piece of input as
it arrives (cheap: a few passes over the piece), :func:`rail_summary` combines the pieces of a window,
and ``assess_window(..., rails=...)`` reports the channels whose raw samples sit on a rail.

Rail (clipping) criterion
-------------------------
A rail is a value the lead keeps returning to: the raw samples of a window that equal (within
``plateau_tolerance_uv``) the window's highest or lowest value. Natural EEG reaches its extreme once
(a sample, or a few at the flat top of a slow wave: at most 6 samples per channel-window in all the
real recordings of ``../shared/data``); a clipped lead sits there every time the signal would go
beyond the rail, whatever the rail's level (+/-50 uV or +/-2 mV). A channel is clipped when more than
``saturation_fraction`` (1 %) of the window's raw samples lie on a rail and the window's raw samples
span at least ``rail_min_range_uv`` (5 uV; a constant or nearly constant lead, whose few digitisation
levels each hold many samples, is the flat check's, not a rail). The level of the rail plays no part
(the former criterion, a plateau more than 100 uV from the piece's mean or 2 mV from 0, missed leads
clipped at +/-100 uV). Every sample at the extreme counts, not only runs of consecutive ones: an
excursion beyond the rail lasts one sample at 200 Hz when it is a spike. The problem line reads
``"T5: saturated (clipped at -100 uV and 100 uV: 78.0% of raw samples on a rail)"``; a side is
named when it holds more than half of ``saturation_fraction``.

Validation (``python -m ictal.detector.bench_quality --scan``: 147 real EDFs of ``../shared/data``, every
EEG signal at its own rate, every window of 8-60 s of 4 s pieces ending on a piece boundary, 24518
channel-windows): no unclipped channel-window is found clipped, as recorded or re-digitised at a
0.5 uV step (largest rail fraction 0.375 % and 0.5 %, against the 1 % threshold). The same EEG
clipped with ``np.clip`` at +/-100 uV (+/-150 uV) is found clipped in 6307 of the 6313 (4225 of the
4227) channel-windows with more than 1 % of their samples clipped; the rest are leads pinned on the
rail for the whole window (constant: flat), and no channel-window without a clipped sample is found.
At +/-50 uV: 9869 of 10040, the rest pinned (142 constant, 29 with excursions under 5 uV). The one
really clipped recording there, ``quirks/neonatal_bipolar_8ch.edf`` (amplifier rails at +/-1000 uV),
is found in all 50 of its channel-windows with more than 1 % of samples on the rails.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.fft import rfft
from scipy.signal import get_window

from ictal.detector import CANONICAL_CHANNELS


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
        "clipping plateau: a rail is one digital value (an ADC's full scale), so the samples on it are "
        "equal; the tolerance only absorbs float32 rounding of the calibrated microvolts (~1e-5 uV at "
        "100 uV) and stays below the EDF digitisation steps of ../shared/data (0.001-0.18 uV, up to "
        "0.5 uV elsewhere)."
    )
    rail_min_range_uv: float = Field(
        5.0, ge=0, description="The raw samples of a window must span at least this for a rail to be "
        "judged: a constant lead, or one pinned on its rail with excursions of a few uV, is the flat "
        "check's, and a nearly constant lead has so few digitisation levels that its top one holds many "
        "samples (the neonatal file's Cz reference: 1.8 uV span, 0.15 uV steps, 1 % of its samples on "
        "its top level); at a 0.5 uV step, 5 uV is 10 levels, whose top one held at most 0.5 % of the "
        "samples of any real window. A lead clipped at +/-50 uV spans 100 uV."
    )
    plateau_min_uv: float = Field(
        100.0, ge=0, description="In the FILTERED window, a plateau counts as clipping only at "
        "amplitudes beyond this (a quiet channel has many equal small values). The raw-sample rail "
        "criterion has no such level (see the module docstring): rails are found at any level."
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
        Samples within ``plateau_tolerance_uv`` of ``high`` (``low``), at any level; 0 for a channel
        without a finite sample. A constant piece has all its samples in both.
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
        Fraction of the window's raw samples at the window's highest (lowest) value; 0 for a channel
        whose raw samples span less than ``rail_min_range_uv`` (no rail can be told from the rest).
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


def rail_stats(raw: np.ndarray, thresholds: QualityThresholds | None = None) -> RailStats:
    """Summarise one piece of raw input for rail (clipping) detection.

    Parameters
    ----------
    raw : ndarray, shape (n_channels, n_samples)
        Raw samples in uV at the source's rate, before any filtering; may contain NaN/Inf (left out).
        ``n_samples`` may be 0.
    thresholds : QualityThresholds, optional
        ``plateau_tolerance_uv`` is read (default :data:`DEFAULT_THRESHOLDS`).

    Returns
    -------
    stats : RailStats

    Raises
    ------
    ValueError
        If ``raw`` is not 2-D.

    Notes
    -----
    Four vectorised passes over the piece: its maximum and minimum per channel, and the count of
    samples within ``plateau_tolerance_uv`` of each (see the module docstring for why every sample at
    the extreme counts, at any level, and not only runs of consecutive ones: a clipped spike sits on
    the rail for a single sample at 200 Hz). Whether those samples are a rail is decided for the whole
    window by :func:`rail_summary`.
    """
    t = thresholds or DEFAULT_THRESHOLDS
    x = np.asarray(raw)
    if x.ndim != 2:
        raise ValueError(f"raw piece must have shape (n_channels, n_samples), found {x.shape}")
    n_channels, n = x.shape
    if n == 0:
        zeros = np.zeros(n_channels, dtype=np.int64)
        return RailStats(0, np.full(n_channels, -np.inf), np.full(n_channels, np.inf), zeros, zeros.copy())
    high, low = x.max(axis=1), x.min(axis=1)
    if not (np.isfinite(high).all() and np.isfinite(low).all()):  # NaN/Inf: left out
        x = np.where(np.isfinite(x), x, np.nan)  # comparisons with NaN are False: never on a rail
        finite_rows = ~np.isnan(x).all(axis=1)
        high = np.full(n_channels, -np.inf, dtype=x.dtype)
        low = np.full(n_channels, np.inf, dtype=x.dtype)
        high[finite_rows] = np.nanmax(x[finite_rows], axis=1)
        low[finite_rows] = np.nanmin(x[finite_rows], axis=1)
    tol = x.dtype.type(t.plateau_tolerance_uv) if x.dtype.kind == "f" else t.plateau_tolerance_uv
    n_high = np.count_nonzero(x >= (high - tol)[:, None], axis=1).astype(np.int64)
    n_low = np.count_nonzero(x <= (low + tol)[:, None], axis=1).astype(np.int64)
    return RailStats(n, high.astype(np.float64), low.astype(np.float64), n_high, n_low)


def rail_summary(pieces: Iterable[RailStats], thresholds: QualityThresholds | None = None) -> RailSummary | None:
    """Combine the :class:`RailStats` of the pieces of a window.

    Parameters
    ----------
    pieces : iterable of RailStats
        The raw pieces whose samples make up the window (same number of channels).
    thresholds : QualityThresholds, optional
        ``plateau_tolerance_uv`` and ``rail_min_range_uv`` are read (default :data:`DEFAULT_THRESHOLDS`).

    Returns
    -------
    summary : RailSummary or None
        None when there is no piece or no sample.

    Notes
    -----
    The window's rails are its highest and lowest values; a piece's samples at its own extreme count
    when that extreme lies within ``plateau_tolerance_uv`` of the window's (every clipped piece
    touches the rail exactly). Pieces whose extreme is lower contribute nothing. A channel whose
    window spans less than ``rail_min_range_uv`` gets 0 on both sides (constant, or nearly: the flat
    check's).
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
    judged = top - bottom >= t.rail_min_range_uv  # False for a channel without a finite sample too
    return RailSummary(fraction_high=np.where(judged, n_top / total, 0.0),
                       fraction_low=np.where(judged, n_bottom / total, 0.0), high=top, low=bottom)


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
        filtered window's and, for a channel found clipped on its raw samples (``rails``), the raw
        samples' rail fraction).
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
        ``saturation_fraction`` of its raw samples on a rail, at any level, is saturated (the problem
        line gives the rails, e.g. ``"T5: saturated (clipped at -100 uV and 100 uV: 78.0% of raw
        samples on a rail)"``); a flat channel is reported as flat only. Without it only the filtered
        window is judged.

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

    is_nonfinite = n_nonfinite > 0
    is_flat = (n_nonfinite < n) & (std < t.flat_std_uv)
    raw_clipped = np.zeros(n_channels, dtype=bool)
    if rails is not None:
        if rails.fraction.shape != (n_channels,):
            raise ValueError(f"rails must describe {n_channels} channels, found {rails.fraction.shape}")
        raw_clipped = (rails.fraction > t.saturation_fraction) & ~is_flat  # a flat lead: one problem, flat
        saturated_fraction = np.maximum(saturated_fraction, np.where(raw_clipped, rails.fraction, 0.0))
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
            sides = ((rails.low[i], rails.fraction_low[i]), (rails.high[i], rails.fraction_high[i]))
            at = [f"{v:.0f} uV" for v, f in sides if f > t.saturation_fraction / 2]
            problems.append(
                f"{name}: saturated (clipped at {' and '.join(at)}: {100 * rails.fraction[i]:.1f}% of raw "
                "samples on a rail)"
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
