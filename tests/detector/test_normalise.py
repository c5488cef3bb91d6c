"""Causal normalisation: per-window robust scaling and running statistics."""

from __future__ import annotations

from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import process_recording
from ictal.detector.normalise import IQR_TO_SIGMA, MIN_SCALE_UV, RunningNormaliser, normalise_window_robust


@pytest.fixture(scope="module")
def filtered_eeg(shared_data: Path) -> np.ndarray:
    """60 s of real EEG (EEGMAT Subject02_2, 500 Hz), through the front-end: (19, ~15360) uV at 256 Hz."""
    edf = edfio.read_edf(shared_data / "background/eegmat/Subject02_2.edf")
    x = np.stack([s.data[: 60 * 500] for s in edf.signals[:19]])
    return process_recording(x, 500.0, FrontendConfig())


def test_robust_window_has_zero_median_and_unit_iqr_sigma(filtered_eeg: np.ndarray) -> None:
    z = normalise_window_robust(filtered_eeg, clip_sigma=1e9)
    assert z.dtype == np.float32 and z.shape == filtered_eeg.shape
    q25, q50, q75 = np.percentile(z, [25, 50, 75], axis=1)
    np.testing.assert_allclose(q50, 0.0, atol=1e-5)
    np.testing.assert_allclose((q75 - q25) / IQR_TO_SIGMA, 1.0, rtol=1e-4)


def test_robust_scaling_ignores_channel_gain_and_offset(filtered_eeg: np.ndarray) -> None:
    gains = np.linspace(0.1, 10.0, 19)[:, None]
    offsets = np.linspace(-500.0, 500.0, 19)[:, None]
    a = normalise_window_robust(filtered_eeg, clip_sigma=20.0)
    b = normalise_window_robust(filtered_eeg * gains + offsets, clip_sigma=20.0)
    assert np.abs(a - b).max() < 1e-3


def test_robust_scale_is_not_set_by_a_few_large_artefacts(filtered_eeg: np.ndarray) -> None:
    spiky = filtered_eeg.copy()
    spiky[:, ::500] += 3000.0  # electrode pops on 0.2 % of the samples
    a = normalise_window_robust(filtered_eeg, clip_sigma=20.0)
    b = normalise_window_robust(spiky, clip_sigma=20.0)
    keep = np.ones(filtered_eeg.shape[1], dtype=bool)
    keep[::500] = False
    assert np.median(np.abs(a[:, keep] - b[:, keep])) < 0.02
    assert b.max() == pytest.approx(20.0)  # the pops are clipped to clip_sigma


def test_flat_channel_is_centred_not_blown_up() -> None:
    window = np.random.default_rng(0).normal(0.0, 20.0, (3, 2000))
    window[1] = 37.0 + 1e-6 * np.arange(2000)
    z = normalise_window_robust(window, clip_sigma=20.0)
    assert np.isfinite(z).all() and np.abs(z[1]).max() < 0.1


def test_robust_normalisation_is_causal_within_the_window(filtered_eeg: np.ndarray) -> None:
    window = filtered_eeg[:, :4000]
    z = normalise_window_robust(window, 20.0)
    later = filtered_eeg.copy()
    later[:, 4000:] = 1e4  # what follows the window cannot change it
    np.testing.assert_array_equal(normalise_window_robust(later[:, :4000], 20.0), z)


def test_running_statistics_are_chunk_invariant(filtered_eeg: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    whole = RunningNormaliser(tau_s=20.0, keep_s=None)
    whole.update(filtered_eeg)
    chunked = RunningNormaliser(tau_s=20.0, keep_s=None)
    start = 0
    while start < filtered_eeg.shape[1]:
        size = int(rng.integers(0, 4097))
        chunked.update(filtered_eeg[:, start : start + size])
        start += size
    for end in (256, 5000, 10240, filtered_eeg.shape[1]):
        window = filtered_eeg[:, max(0, end - 3000) : end]
        a, b = whole.normalise(window, end), chunked.normalise(window, end)
        assert np.abs(a - b).max() <= 1e-4


def test_running_statistics_estimate_mean_and_std_from_the_first_seconds() -> None:
    x = np.random.default_rng(1).normal(40.0, 15.0, (2, 10 * 256))
    norm = RunningNormaliser(tau_s=300.0, n_channels=2, clip_sigma=100.0)
    norm.update(x)
    z = norm.normalise(x, end_index=x.shape[1])  # bias correction: no 5-minute warm-up needed
    assert np.abs(z.mean(axis=1)).max() < 0.1
    assert np.abs(z.std(axis=1) - 1.0).max() < 0.1


def test_running_window_uses_only_statistics_before_its_end(filtered_eeg: np.ndarray) -> None:
    norm = RunningNormaliser(tau_s=20.0, keep_s=None)
    norm.update(filtered_eeg[:, :5000])
    norm.update(filtered_eeg[:, 5000:] * 50.0)  # a huge change after the window's end
    reference = RunningNormaliser(tau_s=20.0, keep_s=None)
    reference.update(filtered_eeg[:, :5000])
    window = filtered_eeg[:, 2000:5000]
    np.testing.assert_array_equal(norm.normalise(window, 5000), reference.normalise(window, 5000))


def test_running_statistics_missing_for_a_window_end_is_an_error() -> None:
    norm = RunningNormaliser(tau_s=10.0, n_channels=1, keep_s=2.0)
    norm.update(np.zeros((1, 100)))
    with pytest.raises(ValueError, match="no running statistics at sample 0"):
        norm.normalise(np.zeros((1, 100)), 100)
    norm.update(np.ones((1, 256 * 5)))
    with pytest.raises(ValueError, match="snapshots held: 1024..1280"):
        norm.normalise(np.zeros((1, 100)), 300)  # older than keep_s


@pytest.mark.parametrize("n_samples", [1, 2, 3, 4, 5, 101, 15360])
def test_robust_statistics_are_the_exact_median_and_quartiles(n_samples: int) -> None:
    window = np.random.default_rng(n_samples).standard_t(3, (4, n_samples)).astype(np.float32) * 40.0
    q25, q50, q75 = np.percentile(window.astype(np.float64), [25.0, 50.0, 75.0], axis=1, keepdims=True)
    expected = (window - q50) / np.maximum((q75 - q25) / IQR_TO_SIGMA, MIN_SCALE_UV)
    z = normalise_window_robust(window, clip_sigma=1e9)
    np.testing.assert_allclose(z, expected, rtol=1e-6, atol=1e-6)


def test_float32_and_float64_windows_give_the_same_model_input(filtered_eeg: np.ndarray) -> None:
    a = normalise_window_robust(filtered_eeg.astype(np.float32), clip_sigma=20.0)
    b = normalise_window_robust(filtered_eeg.astype(np.float64), clip_sigma=20.0)
    assert np.abs(a - b).max() <= 2e-6


def test_fixed_gain_keeps_absolute_amplitude_and_clips():
    """normalisation: fixed_gain (issue 22's "none + amplitude" arm): one fixed 50 uV scale."""
    from ictal.detector.config import FrontendConfig
    from ictal.detector.frontend import Frontend
    from ictal.detector.normalise import FIXED_GAIN_UV, normalise_fixed_gain, normalise_window_robust

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((19, 2560)) * 10.0).astype(np.float32)  # 10 uV EEG
    z, z2 = normalise_fixed_gain(w, 20.0), normalise_fixed_gain(2 * w, 20.0)
    np.testing.assert_allclose(z, w / FIXED_GAIN_UV, rtol=1e-6)
    np.testing.assert_allclose(z2, 2 * z, rtol=1e-6)  # twice the amplitude stays twice as large ...
    np.testing.assert_allclose(normalise_window_robust(2 * w, 20.0), normalise_window_robust(w, 20.0), atol=1e-5)
    big = np.full((19, 10), 5000.0, dtype=np.float32)  # ... where window_robust removes it
    assert normalise_fixed_gain(big, 20.0).max() == 20.0 and normalise_fixed_gain(-big, 20.0).min() == -20.0
    frontend = Frontend(FrontendConfig(normalisation="fixed_gain"), fs_in=256.0)
    np.testing.assert_array_equal(frontend.prepare_window(w), z)
    with pytest.raises(ValueError, match="2-D"):
        normalise_fixed_gain(np.zeros(5, dtype=np.float32), 20.0)
