"""The front-end of daemon and training: chunked streaming == whole recording offline, on real EEG."""

from __future__ import annotations

import zlib
from pathlib import Path

import edfio
import numpy as np
import pytest

from ictal.detector import WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend, process_recording
from ictal.detector.montage import map_montage
from ictal.detector.units import scale_to_uv


def _read_canonical(path: Path, seconds: float) -> tuple[np.ndarray, float]:
    """The first ``seconds`` of a real EDF as (19, n) uV in canonical order, and its rate in Hz."""
    edf = edfio.read_edf(path)
    fs = edf.signals[0].sampling_frequency
    n = int(seconds * fs)
    data = np.stack([s.data[:n] * scale_to_uv(s.physical_dimension) for s in edf.signals])
    return map_montage([s.label for s in edf.signals], source=path.name).apply(data), fs


def _stream(frontend: Frontend, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out, start = [], 0
    while start < x.shape[1]:
        size = int(rng.integers(1, 4097))
        out.append(frontend.process(x[:, start : start + size]))
        start += size
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize(
    ("relative_path", "seconds"),
    [("background/eegmat/Subject03_2.edf", 62.0), ("labelled/iiic_05.edf", 50.0)],  # 500 Hz, 200 Hz
)
@pytest.mark.parametrize("normalisation", ["window_robust", "running"])
def test_streaming_in_random_chunks_equals_offline_on_real_eeg(
    shared_data: Path, relative_path: str, seconds: float, normalisation: str
) -> None:
    x, fs = _read_canonical(shared_data / relative_path, seconds)
    config = FrontendConfig(normalisation=normalisation, running_tau_s=30.0)
    offline = process_recording(x, fs, config)
    assert offline.dtype == np.float32 and offline.shape[0] == 19
    assert abs(offline.shape[1] - seconds * 256) <= 2

    rng = np.random.default_rng(zlib.crc32(f"{relative_path}{normalisation}".encode()))
    frontend = Frontend(config, fs)
    streamed = _stream(frontend, x, rng)
    assert streamed.shape == offline.shape
    assert np.abs(streamed - offline).max() <= 1e-4

    # Windows: the offline path keeps every running snapshot; the stream normalises at each window end.
    offline_frontend = Frontend(config, fs, keep_running_s=None)
    offline_frontend.process(x)
    window_samples = min(WINDOW_SAMPLES, offline.shape[1])
    end = offline.shape[1]
    for window_end in (end, end - 1000, end - 3333):
        start = max(0, window_end - window_samples)
        a = offline_frontend.prepare_window(offline[:, start:window_end], end_index=window_end)
        b = frontend.prepare_window(streamed[:, start:window_end], end_index=window_end)
        assert a.dtype == np.float32 and a.shape == (19, window_end - start)
        assert np.abs(a - b).max() <= 1e-4
        assert np.abs(a).max() <= config.clip_sigma


def test_full_window_is_normalised_model_input(shared_data: Path) -> None:
    x, fs = _read_canonical(shared_data / "background/eegmat/Subject04_2.edf", 62.0)
    frontend = Frontend(FrontendConfig(clip_sigma=5.0), fs)
    filtered = frontend.process(x)
    z = frontend.prepare_window(filtered[:, -WINDOW_SAMPLES:])
    assert z.shape == (19, WINDOW_SAMPLES) and z.dtype == np.float32
    assert np.abs(np.median(z, axis=1)).max() < 1e-3
    assert np.abs(z).max() == pytest.approx(5.0)


def test_nan_samples_are_held_counted_and_never_reach_filter_state(shared_data: Path) -> None:
    x, fs = _read_canonical(shared_data / "labelled/iiic_06.edf", 20.0)
    dirty = x.astype(np.float64)
    dirty[4, 1000:1200] = np.nan
    dirty[7, 3000] = np.inf
    dirty[7, 3001] = -np.inf
    held = dirty.copy()
    held[4, 1000:1200] = held[4, 999]
    held[7, 3000:3002] = held[7, 2999]

    frontend = Frontend(FrontendConfig(), fs)
    first = frontend.process(dirty[:, :1100])
    assert frontend.n_nonfinite_last[4] == 100 and frontend.n_nonfinite_last.sum() == 100
    rest = frontend.process(dirty[:, 1100:])  # the hold carries across the chunk boundary
    assert frontend.n_nonfinite_last[4] == 100 and frontend.n_nonfinite_last[7] == 2
    assert frontend.n_nonfinite_total == 202
    out = np.concatenate([first, rest], axis=1)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, process_recording(held, fs, FrontendConfig()))


def test_leading_nan_is_replaced_by_zero() -> None:
    x = np.full((2, 600), 10.0)
    x[1, :50] = np.nan
    frontend = Frontend(FrontendConfig(), 200.0, n_channels=2)
    out = frontend.process(x)
    expected_input = x.copy()
    expected_input[1, :50] = 0.0
    np.testing.assert_array_equal(out, process_recording(expected_input, 200.0, FrontendConfig()))
    assert frontend.n_nonfinite_total == 50


def test_reset_starts_a_new_stream() -> None:
    x = np.random.default_rng(0).normal(100.0, 30.0, (19, 5000))
    frontend = Frontend(FrontendConfig(), 250.0)
    first = frontend.process(x)
    frontend.reset()
    assert frontend.n_out == 0 and frontend.n_nonfinite_total == 0
    np.testing.assert_array_equal(frontend.process(x), first)


def test_empty_chunks_give_empty_output_and_keep_state() -> None:
    frontend = Frontend(FrontendConfig(), 500.0)
    assert frontend.process(np.zeros((19, 0))).shape == (19, 0)
    out = frontend.process(np.ones((19, 1000)))
    assert out.shape == (19, frontend.n_out) and frontend.n_out == 512


def test_caller_array_is_not_modified() -> None:
    x = np.ones((19, 300))
    x[0, 10] = np.nan
    Frontend(FrontendConfig(), 200.0).process(x)
    assert np.isnan(x[0, 10])


def test_bad_chunk_and_window_shapes_are_errors() -> None:
    frontend = Frontend(FrontendConfig(), 256.0)
    with pytest.raises(ValueError, match=r"\(19, n_samples\) in uV, found \(18, 5\)"):
        frontend.process(np.zeros((18, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        frontend.prepare_window(np.full((19, 100), np.nan))
    with pytest.raises(ValueError, match="shape"):
        frontend.prepare_window(np.zeros((19, 0)))
