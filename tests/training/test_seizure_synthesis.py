"""Simulated seizures: labels match the injection, the pattern evolves and spreads, input is untouched."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch

from ictal.detector import CANONICAL_CHANNELS
from ictal.training.seizure_synthesis import SeizureSynthesisConfig, inject_seizure

FS = 256.0


def _background(seconds: float = 120.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Pink-ish background: integrated white noise, high-passed by a first difference mix, ~20 uV.
    white = rng.standard_normal((19, int(seconds * FS)))
    return (20.0 * white).astype(np.float32)


def _dominant_freq(x: np.ndarray) -> float:
    freqs, power = welch(x, fs=FS, nperseg=int(4 * FS))
    band = (freqs >= 1.0) & (freqs <= 12.0)
    return float(freqs[band][np.argmax(power[band])])


def test_labels_cover_exactly_the_injected_interval():
    signal = _background()
    augmented, labels, seizure = inject_seizure(signal, FS, int(30 * FS), np.random.default_rng(1))
    assert labels.dtype == np.int8 and labels.shape == (signal.shape[1],)
    assert labels[: seizure.onset_sample].sum() == 0
    assert labels[seizure.onset_sample:seizure.offset_sample].all()
    assert labels[seizure.offset_sample:].sum() == 0
    duration_s = (seizure.offset_sample - seizure.onset_sample) / FS
    assert 15.0 <= duration_s <= 90.0
    assert augmented.dtype == np.float32 and augmented.shape == signal.shape


def test_signal_before_onset_is_untouched_and_input_not_modified():
    signal = _background()
    original = signal.copy()
    onset = int(40 * FS)
    augmented, _, _ = inject_seizure(signal, FS, onset, np.random.default_rng(2))
    np.testing.assert_array_equal(signal, original)
    np.testing.assert_array_equal(augmented[:, :onset], original[:, :onset])


def test_discharge_frequency_evolves_downwards():
    config = SeizureSynthesisConfig(duration_s=(60.0, 60.0), start_freq_hz=(8.0, 8.0), end_freq_hz=(2.0, 2.0),
                                    amplitude_ratio=(8.0, 8.0), generalised_probability=1.0)
    signal = _background(100.0) * 0.1
    augmented, _, seizure = inject_seizure(signal, FS, int(10 * FS), np.random.default_rng(3), config)
    early = augmented[9, seizure.onset_sample + int(12 * FS): seizure.onset_sample + int(22 * FS)]
    late = augmented[9, seizure.offset_sample - int(16 * FS): seizure.offset_sample - int(10 * FS)]
    assert _dominant_freq(early) > _dominant_freq(late) + 2.0


def test_focal_onset_reaches_the_focus_first_and_spreads():
    config = SeizureSynthesisConfig(generalised_probability=0.0, spread_s=(10.0, 10.0))
    _, _, seizure = inject_seizure(_background(), FS, int(20 * FS), np.random.default_rng(4), config)
    assert seizure.focus in CANONICAL_CHANNELS
    focus_index = CANONICAL_CHANNELS.index(seizure.focus)
    assert seizure.channel_onset_samples[focus_index] == seizure.onset_sample
    assert seizure.channel_onset_samples.max() - seizure.onset_sample == pytest.approx(10 * FS, abs=1)


def test_seizure_raises_power_over_background():
    signal = _background()
    augmented, _, seizure = inject_seizure(signal, FS, int(30 * FS), np.random.default_rng(5))
    inside = slice(seizure.onset_sample + int(5 * FS), seizure.offset_sample - int(5 * FS))
    added = augmented[:, inside] - signal[:, inside]
    assert np.sqrt((added**2).mean()) > 0.5 * signal.std()


def test_same_seed_same_seizure_and_bad_input_refused():
    signal = _background()
    a = inject_seizure(signal, FS, 1000, np.random.default_rng(7))[0]
    b = inject_seizure(signal, FS, 1000, np.random.default_rng(7))[0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"shape \(19, n_samples\)"):
        inject_seizure(signal[:8], FS, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="onset_sample"):
        inject_seizure(signal, FS, signal.shape[1], np.random.default_rng(0))
