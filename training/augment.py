"""Augmentations of training windows: amplitude scaling, additive noise, channel dropout, time shift.

Gain and noise act on the filtered signal in uV before normalisation (they model amplifiers and
electrodes); channel dropout acts on the normalised window (a lead off reads as a flat, zero channel
after normalisation); the time shift moves the window start (see :class:`training.sampler.WindowSampler`).
"""

from __future__ import annotations

import math

import numpy as np

from training.config import AugmentConfig


def scale_and_noise(window: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random gain and white Gaussian noise on a filtered window.

    Parameters
    ----------
    window : ndarray of float32, shape (n_channels, n_times)
        Filtered EEG in uV.
    config : AugmentConfig
        ``amplitude_scale`` (gain drawn log-uniformly in that range, one per window) and
        ``noise_std_uv`` (noise standard deviation in uV).
    rng : numpy Generator
        Source of randomness (seeded per window for reproducible runs).

    Returns
    -------
    out : ndarray of float32, shape (n_channels, n_times)
        A new array; ``window`` is not modified.
    """
    low, high = config.amplitude_scale
    gain = math.exp(rng.uniform(math.log(low), math.log(high))) if high > low else low
    out = window.astype(np.float32, copy=True)
    out *= np.float32(gain)
    if config.noise_std_uv > 0:
        out += rng.normal(0.0, config.noise_std_uv, size=out.shape).astype(np.float32)
    return out


def channel_dropout(window: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Zero each channel of a normalised window with probability ``p`` (never all of them).

    Parameters
    ----------
    window : ndarray of float32, shape (n_channels, n_times)
        Normalised model input; modified in place and returned.
    p : float
        Drop probability per channel, in [0, 1).
    rng : numpy Generator

    Returns
    -------
    window : ndarray of float32, shape (n_channels, n_times)
    """
    if p <= 0:
        return window
    drop = rng.random(window.shape[0]) < p
    if drop.all():
        drop[rng.integers(window.shape[0])] = False
    window[drop] = 0.0
    return window


def time_shift_samples(config: AugmentConfig, fs: float, rng: np.random.Generator) -> int:
    """Random shift of a window start, uniform in +/- ``time_shift_s`` seconds, in samples at ``fs`` Hz."""
    max_shift = int(round(config.time_shift_s * fs))
    return int(rng.integers(-max_shift, max_shift + 1)) if max_shift > 0 else 0
