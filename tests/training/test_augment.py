"""Augmentations: gain range, noise level, channel dropout, time shift."""

from __future__ import annotations

import numpy as np

from ictal.training.augment import channel_dropout, scale_and_noise, time_shift_samples
from ictal.training.config import AugmentConfig


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


def test_hemisphere_mirror_swaps_left_and_right_and_keeps_the_midline():
    from ictal.detector import CANONICAL_CHANNELS
    from ictal.training.augment import hemisphere_mirror

    permutation = hemisphere_mirror(CANONICAL_CHANNELS)
    names = [CANONICAL_CHANNELS[i] for i in permutation]
    pairs = dict(zip(CANONICAL_CHANNELS, names, strict=True))
    assert pairs["Fp1"] == "Fp2" and pairs["T3"] == "T4" and pairs["T6"] == "T5" and pairs["O2"] == "O1"
    assert pairs["F7"] == "F8" and pairs["P4"] == "P3"
    assert all(pairs[z] == z for z in ("Fz", "Cz", "Pz"))
    assert np.array_equal(permutation[permutation], np.arange(len(CANONICAL_CHANNELS)))  # an involution
    assert sorted(permutation.tolist()) == list(range(len(CANONICAL_CHANNELS)))


def test_hemisphere_mirror_refuses_a_montage_without_the_mirror_electrode():
    import pytest

    from ictal.training.augment import hemisphere_mirror

    with pytest.raises(ValueError, match="F3.*'f4'"):
        hemisphere_mirror(["F3", "Cz", "C4"])
    with pytest.raises(ValueError, match="EKG"):
        hemisphere_mirror(["F3", "F4", "EKG"])


def test_hemisphere_flip_moves_a_left_focal_pattern_to_the_right_with_probability_p():
    from ictal.detector import CANONICAL_CHANNELS
    from ictal.training.augment import hemisphere_flip

    window = np.zeros((19, 50), dtype=np.float32)
    window[CANONICAL_CHANNELS.index("T3")] = 1.0  # a left temporal discharge
    window[CANONICAL_CHANNELS.index("Cz")] = 2.0
    flipped = hemisphere_flip(window, 1.0, np.random.default_rng(0))
    assert (flipped[CANONICAL_CHANNELS.index("T4")] == 1.0).all()
    assert (flipped[CANONICAL_CHANNELS.index("T3")] == 0.0).all()
    assert (flipped[CANONICAL_CHANNELS.index("Cz")] == 2.0).all()
    rng = np.random.default_rng(1)
    share = np.mean([hemisphere_flip(window, 0.3, rng) is not window for _ in range(2000)])
    assert abs(share - 0.3) < 0.04
    # p = 0 draws nothing: the generator's stream is untouched.
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert hemisphere_flip(window, 0.0, a) is window
    assert a.random() == b.random()
