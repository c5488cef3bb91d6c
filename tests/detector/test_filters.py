"""Causal band-pass + notch filter bank with carried state."""

from __future__ import annotations

import numpy as np
import pytest

from ictal.detector.config import FrontendConfig
from ictal.detector.filters import CausalFilterBank, design_sos

FS = 256.0


def _sine(f_hz: float, seconds: float, amplitude_uv: float = 100.0) -> np.ndarray:
    return amplitude_uv * np.sin(2 * np.pi * f_hz * np.arange(int(seconds * FS)) / FS)[None]


def _steady_amplitude(y: np.ndarray, settle_s: float = 4.0) -> float:
    return float(np.abs(y[..., int(settle_s * FS) :]).max())


def test_60_hz_notch_removes_a_60_hz_sinusoid() -> None:
    y = CausalFilterBank(FrontendConfig(notch_hz=60.0), n_channels=1).process(_sine(60.0, 8.0))
    assert _steady_amplitude(y) < 100.0 * 10 ** (-30 / 20)  # > 30 dB


def test_50_hz_site_notches_50_not_60_hz() -> None:
    bank = CausalFilterBank(FrontendConfig(notch_hz=50.0), n_channels=2)
    y = bank.process(np.concatenate([_sine(50.0, 8.0), _sine(60.0, 8.0)]))
    assert _steady_amplitude(y[0]) < 100.0 * 10 ** (-30 / 20)
    assert _steady_amplitude(y[1]) > 90.0


def test_without_notch_60_hz_passes() -> None:
    y = CausalFilterBank(FrontendConfig(notch_hz=None), n_channels=1).process(_sine(60.0, 8.0))
    assert _steady_amplitude(y) > 95.0
    assert design_sos(FrontendConfig(notch_hz=None)).shape == (4, 6)
    assert design_sos(FrontendConfig()).shape == (5, 6)


def test_passband_eeg_rhythm_keeps_its_amplitude() -> None:
    y = CausalFilterBank(FrontendConfig(), n_channels=1).process(_sine(10.0, 8.0))
    assert 97.0 < _steady_amplitude(y) < 103.0


def test_band_pass_removes_dc_offset_and_a_dc_step() -> None:
    bank = CausalFilterBank(FrontendConfig(), n_channels=1)
    constant = bank.process(np.full((1, int(10 * FS)), 400.0))
    assert np.abs(constant).max() < 1e-6  # steady-state start: an offset causes no transient
    step = bank.process(np.full((1, int(30 * FS)), 900.0))  # +500 uV electrode shift
    assert np.abs(step[0, :10]).max() > 100.0
    assert np.abs(step[0, -int(FS) :]).max() < 5.0  # decayed to < 1 % after 30 s


def test_band_pass_removes_content_above_120_hz() -> None:
    y = CausalFilterBank(FrontendConfig(), n_channels=1).process(_sine(126.0, 8.0))
    assert _steady_amplitude(y) < 100.0 * 10 ** (-10 / 20)


def test_filter_bank_is_causal() -> None:
    x = np.zeros((1, 2048))
    x[0, 1000] = 1000.0
    y = CausalFilterBank(FrontendConfig(), n_channels=1).process(x)
    assert np.all(y[0, :1000] == 0.0)
    assert abs(y[0, 1000]) > 1.0


def test_chunked_filtering_equals_one_call() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(200.0, 40.0, (19, int(40 * FS)))
    whole = CausalFilterBank(FrontendConfig()).process(x)
    bank = CausalFilterBank(FrontendConfig())
    out, start = [], 0
    while start < x.shape[1]:
        size = int(rng.integers(0, 4097))
        out.append(bank.process(x[:, start : start + size]))
        start += size
    assert np.abs(np.concatenate(out, axis=1) - whole).max() <= 1e-9


def test_reset_restarts_from_the_next_first_sample() -> None:
    bank = CausalFilterBank(FrontendConfig(), n_channels=1)
    x = np.random.default_rng(2).normal(50.0, 10.0, (1, 1000))
    first = bank.process(x)
    bank.reset()
    np.testing.assert_array_equal(bank.process(x), first)


def test_chunk_with_wrong_channel_count_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(19, n_samples\)"):
        CausalFilterBank(FrontendConfig()).process(np.zeros((3, 10)))
