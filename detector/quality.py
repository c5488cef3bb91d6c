"""Per-channel signal quality of one window: flat line, saturation, non-finite samples, mains noise."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.signal import welch

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
        of saturation would take for clipping. May contain NaN/Inf. At least ``fs`` samples (1 s) are needed for the line-noise estimate.
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
    Line-noise power is estimated with Welch's method (Welch 1967; 1 s Hann segments, 50 % overlap,
    1 Hz resolution) on the finite samples (non-finite ones are set to the channel median first).
    A flat channel (std below ``flat_std_uv``) is not also tested for line noise.
    """
    x = np.asarray(window, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(channels):
        raise ValueError(f"window must have shape ({len(channels)}, n_samples), found {x.shape}")
    if not fs > 120:
        raise ValueError(f"fs must exceed 120 Hz to resolve 60 Hz mains (found {fs} Hz)")
    n_channels, n = x.shape
    if n < fs:
        raise ValueError(f"window must hold at least 1 s ({int(np.ceil(fs))} samples), found {n}")
    finite = np.isfinite(x)
    n_nonfinite = (~finite).sum(axis=1)
    # Non-finite samples set to the channel's median of finite samples (0 if none) for the statistics.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": such a channel's median is 0
        medians = np.nan_to_num(np.nanmedian(np.where(finite, x, np.nan), axis=1))
    clean = np.where(finite, x, medians[:, None])
    n_finite = np.maximum(finite.sum(axis=1), 1)
    mean = (clean * finite).sum(axis=1) / n_finite
    std = np.sqrt((((clean - mean[:, None]) * finite) ** 2).sum(axis=1) / n_finite)

    t = thresholds
    magnitude = np.abs(clean - medians[:, None])  # deviation from the median: an electrode offset is not clipping
    beyond = (magnitude >= t.saturation_uv) & finite
    peak = magnitude.max(axis=1)
    # Clipping: samples sitting on the channel's maximum or minimum (a rail), far from the median.
    at_rail = (clean >= clean.max(axis=1, keepdims=True) - t.plateau_tolerance_uv) | (
        clean <= clean.min(axis=1, keepdims=True) + t.plateau_tolerance_uv
    )
    on_plateau = at_rail & (magnitude > t.plateau_min_uv)
    saturated_fraction = (beyond | (on_plateau & finite)).sum(axis=1) / n

    freqs, psd = welch(clean, fs=fs, nperseg=int(fs), axis=-1)
    band = (freqs >= t.band_hz[0]) & (freqs <= t.band_hz[1])
    band_power = psd[:, band].sum(axis=1)
    line_power = np.zeros(n_channels)
    for mains_hz in (50.0, 60.0):
        sel = np.abs(freqs - mains_hz) <= t.line_band_hz
        line_power = np.maximum(line_power, psd[:, sel].sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        line_ratio = np.where(band_power > 0, line_power / band_power, 0.0)

    problems: list[str] = []
    bad: list[str] = []
    for i, name in enumerate(channels):
        found: list[str] = []
        if n_nonfinite[i]:
            found.append(f"{name}: non-finite ({n_nonfinite[i]} NaN/Inf samples of {n})")
        if n_nonfinite[i] < n and std[i] < t.flat_std_uv:
            found.append(f"{name}: flat (std {std[i]:.2f} uV)")
        if saturated_fraction[i] > t.saturation_fraction:
            found.append(
                f"{name}: saturated ({100 * saturated_fraction[i]:.1f}% of samples clipped or beyond "
                f"+/-{t.saturation_uv:.0f} uV, peak {peak[i]:.0f} uV from the median)"
            )
        if std[i] >= t.flat_std_uv and line_ratio[i] > t.line_noise_ratio:
            found.append(f"{name}: line noise ({100 * line_ratio[i]:.0f}% of the power at 50/60 Hz)")
        if found:
            bad.append(name)
            problems.extend(found)
    return QualityReport(
        usable=len(bad) <= t.max_bad_channels,
        problems=problems,
        bad_channels=tuple(bad),
        std_uv=std,
        n_nonfinite=n_nonfinite.astype(np.int64),
        saturated_fraction=saturated_fraction,
        line_noise_ratio=line_ratio,
    )
