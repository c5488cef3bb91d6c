"""Per-channel signal quality of one window: flat line, saturation, non-finite samples, mains noise."""

from __future__ import annotations

import functools
from collections.abc import Sequence
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
        Fraction of samples beyond ``saturation_uv`` or on the clipping plateau.
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

    Returns
    -------
    report : QualityReport

    Raises
    ------
    ValueError
        If the window is not 2-D, has a different number of rows than ``channels``, is shorter than
        1 s, or ``fs`` is 120 Hz or less.

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
        if is_saturated[i]:
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
