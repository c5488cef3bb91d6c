"""Streaming polyphase resampler: chunk-invariant, causal, accurate, anti-aliased."""

from __future__ import annotations

from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.detector.resample import MAX_INPUT_FS_HZ, MIN_INPUT_FS_HZ, StreamingResampler, rational_rate


def _random_chunks(rng: np.random.Generator, n: int, high: int = 4096) -> list[int]:
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(0, high + 1)))  # 0-length chunks included
    return sizes


def _stream(resampler: StreamingResampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, start = [], 0
    for size in sizes:
        out.append(resampler.process(x[:, start : start + size]))
        start += size
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("fs_in", [200.0, 250.0, 256.0, 400.0, 500.0, 512.0, 1000.0])
def test_chunked_output_equals_one_call_output(fs_in: float) -> None:
    rng = np.random.default_rng(int(fs_in))
    x = rng.normal(300.0, 50.0, (3, int(12 * fs_in)))  # a DC offset, as raw EEG has
    whole = StreamingResampler(fs_in, n_channels=3).process(x)
    resampler = StreamingResampler(fs_in, n_channels=3)
    for sizes in (_random_chunks(rng, x.shape[1], 600), [1] * 700 + [x.shape[1]]):
        resampler.reset()
        chunked = _stream(resampler, x, sizes)
        assert chunked.shape == whole.shape == (3, resampler.n_out_for(x.shape[1]))
        assert np.abs(chunked - whole).max() <= 1e-9


def test_real_eeg_chunked_equals_whole_at_500_and_200_hz(shared_data: Path) -> None:
    rng = np.random.default_rng(3)
    for path in (shared_data / "background/eegmat/Subject01_2.edf", shared_data / "labelled/iiic_03.edf"):
        edf = edfio.read_edf(path)
        fs = edf.signals[0].sampling_frequency
        x = np.stack([s.data[: int(30 * fs)] for s in edf.signals[:19]])
        whole = StreamingResampler(fs).process(x)
        chunked = _stream(StreamingResampler(fs), x, _random_chunks(rng, x.shape[1]))
        assert whole.shape == chunked.shape
        assert 30 * 256 - 2 <= whole.shape[1] <= 30 * 256
        assert np.abs(chunked.astype(np.float32) - whole.astype(np.float32)).max() <= 1e-4


@pytest.mark.parametrize("fs_in", [200.0, 250.0, 400.0, 500.0])
def test_output_is_the_sinusoid_at_256_hz_delayed_by_the_group_delay(fs_in: float) -> None:
    f_hz, seconds = 10.0, 4.0
    t_in = np.arange(int(seconds * fs_in)) / fs_in
    resampler = StreamingResampler(fs_in, n_channels=1)
    y = resampler.process(np.sin(2 * np.pi * f_hz * t_in)[None])[0]
    t_out = np.arange(y.size) / 256.0 - resampler.group_delay_s
    expected = np.sin(2 * np.pi * f_hz * t_out)
    settled = t_out > 0.5
    assert np.abs(y[settled] - expected[settled]).max() < 0.01


def test_frequencies_above_the_output_nyquist_are_removed() -> None:
    fs_in = 500.0
    t = np.arange(int(4 * fs_in)) / fs_in
    y = StreamingResampler(fs_in, n_channels=1).process(np.sin(2 * np.pi * 200.0 * t)[None])[0]
    assert np.abs(y[256:]).max() < 0.01  # 200 Hz would alias to 56 Hz; attenuated by > 40 dB


def test_resampler_is_causal() -> None:
    fs_in = 500.0
    x = np.zeros((1, 2000))
    x[0, 1000] = 1.0
    resampler = StreamingResampler(fs_in, n_channels=1)
    y = resampler.process(x)[0]
    k = np.arange(y.size)
    depends_only_on_earlier_input = (k * resampler.down) // resampler.up < 1000
    assert np.all(y[depends_only_on_earlier_input] == 0.0)
    assert np.abs(y[~depends_only_on_earlier_input]).max() > 0.1


def test_constant_input_gives_constant_output_from_the_first_sample() -> None:
    y = StreamingResampler(200.0, n_channels=2).process(np.full((2, 400), -250.0))
    np.testing.assert_allclose(y, -250.0, rtol=2e-3)


def test_256_hz_input_passes_through_unchanged() -> None:
    x = np.random.default_rng(0).normal(size=(19, 1000))
    np.testing.assert_array_equal(StreamingResampler(256.0).process(x), x)


def test_irrational_ratio_and_bad_rates_are_errors() -> None:
    with pytest.raises(ValueError, match="257.3"):
        StreamingResampler(257.3)
    with pytest.raises(ValueError, match="positive"):
        StreamingResampler(0.0)


def test_chunk_with_wrong_channel_count_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(19, n_samples\)"):
        StreamingResampler(500.0).process(np.zeros((18, 10)))


@pytest.mark.parametrize("fs_in, up, down", [(250.1, 781, 763), (499.9, 402, 785), (100.3, 707, 277)])
def test_a_non_integer_rate_is_approximated_by_a_ratio_the_resampler_takes_exactly(fs_in, up, down):
    fs = rational_rate(fs_in)
    assert abs(fs / fs_in - 1) < 2e-6
    resampler = StreamingResampler(fs)
    assert (resampler.up, resampler.down) == (up, down)
    assert fs == 256.0 * down / up
    # A 10 Hz sine at the announced rate is still a 10 Hz sine at 256 Hz (to the stated precision).
    x = np.sin(2 * np.pi * 10.0 * np.arange(int(20 * fs_in)) / fs_in)[None, :].repeat(19, axis=0)
    y = resampler.process(x)[0, 512:]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    assert np.argmax(spectrum) * 256.0 / y.size == pytest.approx(10.0, abs=256.0 / y.size)


@pytest.mark.parametrize("fs_in", [100.0, 128.0, 200.0, 250.0, 256.0, 500.0, 512.0, 1000.0, 2048.0, 4096.0])
def test_a_rate_with_a_small_ratio_is_kept_as_announced(fs_in):
    assert rational_rate(fs_in) == fs_in


def test_every_rate_of_the_supported_range_is_approximated_within_the_stated_bound():
    rates = np.random.default_rng(1).uniform(MIN_INPUT_FS_HZ, MAX_INPUT_FS_HZ, 2000)
    errors = [abs(rational_rate(fs) / fs - 1) for fs in rates]
    assert max(errors) <= 5.1e-4
    for fs in rates[:50]:  # and the resampler takes every approximation
        StreamingResampler(rational_rate(fs))
