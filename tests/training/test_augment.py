"""Augmentations: gain range, noise level, channel dropout, time shift."""

from __future__ import annotations

import numpy as np

from training.augment import channel_dropout, scale_and_noise, time_shift_samples
from training.config import AugmentConfig


def test_gain_stays_in_range_and_input_is_not_modified():
    rng = np.random.default_rng(0)
    window = np.ones((19, 100), dtype=np.float32)
    config = AugmentConfig(amplitude_scale=(0.5, 2.0), noise_std_uv=0.0)
    gains = [scale_and_noise(window, config, rng)[0, 0] for _ in range(500)]
    assert 0.5 <= min(gains) < 0.6 and 1.8 < max(gains) <= 2.0
    # log-uniform: half the gains fall below the geometric mean 1.0
    assert 0.4 < np.mean(np.array(gains) < 1.0) < 0.6
    assert (window == 1).all()


def test_noise_has_the_configured_standard_deviation_in_uv():
    rng = np.random.default_rng(1)
    window = np.zeros((19, 20000), dtype=np.float32)
    out = scale_and_noise(window, AugmentConfig(amplitude_scale=(1.0, 1.0), noise_std_uv=2.5), rng)
    assert out.dtype == np.float32
    assert abs(out.std() - 2.5) < 0.05


def test_channel_dropout_zeroes_whole_channels_but_never_all():
    rng = np.random.default_rng(2)
    dropped = []
    for _ in range(200):
        window = np.ones((19, 8), dtype=np.float32)
        out = channel_dropout(window, 0.3, rng)
        zero_rows = (out == 0).all(axis=1)
        assert ((out == 0) | (out == 1)).all() and ((out == 0).any(axis=1) == zero_rows).all()
        dropped.append(zero_rows.sum())
    assert abs(np.mean(dropped) / 19 - 0.3) < 0.05
    everything = channel_dropout(np.ones((19, 4), dtype=np.float32), 0.999999, np.random.default_rng(3))
    assert (everything != 0).any(axis=1).sum() == 1


def test_time_shift_is_bounded_and_zero_when_disabled():
    rng = np.random.default_rng(4)
    shifts = [time_shift_samples(AugmentConfig(time_shift_s=2.0), 256.0, rng) for _ in range(2000)]
    assert min(shifts) >= -512 and max(shifts) <= 512 and min(shifts) < -400 and max(shifts) > 400
    assert time_shift_samples(AugmentConfig(time_shift_s=0.0), 256.0, rng) == 0
