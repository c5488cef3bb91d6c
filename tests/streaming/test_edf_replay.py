"""streaming.sources.edf_replay: absolute-schedule pacing, as-fast-as-possible, loop, end of file."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ictal.streaming.config import EdfSourceConfig
from ictal.streaming.edf import load_canonical
from ictal.streaming.sources.edf_replay import EdfReplaySource


@pytest.fixture
def iiic(shared_data):
    return shared_data / "labelled" / "iiic_05.edf"


def test_paced_replay_releases_each_chunk_on_its_absolute_schedule(iiic):
    source = EdfReplaySource(EdfSourceConfig(path=iiic, speed=2.0, chunk_s=0.25))
    source.open()
    released = []
    while len(released) < 12:  # 3 s of signal at speed 2: 1.5 s
        chunk = source.read(timeout_s=1.0)
        assert chunk is not None
        released.append((time.monotonic(), chunk))
    for now, chunk in released:
        due = source.release_time(chunk.end_index)
        assert due - 0.001 <= now <= due + 0.25, "a chunk came before its last sample was due, or late"
        assert chunk.clock_s == pytest.approx(source.release_time(chunk.first_index))
    # The schedule is absolute: the last chunk is due exactly 3 s of signal / speed 2 after the start.
    assert source.release_time(released[-1][1].end_index) - source.release_time(0) == pytest.approx(1.5)


def test_read_returns_none_when_the_next_chunk_is_not_due_within_the_timeout(iiic):
    source = EdfReplaySource(EdfSourceConfig(path=iiic, speed=1.0, chunk_s=0.5))
    source.open()
    started = time.monotonic()
    assert source.read(timeout_s=0.05) is None
    assert 0.04 <= time.monotonic() - started < 1.0
    chunk = source.read(timeout_s=1.0)
    assert chunk is not None and chunk.first_index == 0 and chunk.n_samples == 100


def test_speed_zero_replays_the_whole_file_at_once_and_ends(iiic):
    rec = load_canonical(iiic)
    source = EdfReplaySource(EdfSourceConfig(path=iiic, speed=0.0, chunk_s=0.3))
    source.open()
    chunks = []
    started = time.monotonic()
    while not source.exhausted:
        chunks.append(source.read(timeout_s=10.0))
    assert time.monotonic() - started < 5.0, "speed 0 must not pace (50 s of signal)"
    assert source.read(timeout_s=0.0) is None
    np.testing.assert_array_equal(np.concatenate([c.data for c in chunks], axis=1), rec.data)
    assert [c.first_index for c in chunks] == list(range(0, rec.data.shape[1], 60))
    assert chunks[3].clock_s == pytest.approx(180 / rec.fs)


def test_loop_restarts_the_file_and_keeps_counting_samples(iiic):
    rec = load_canonical(iiic)
    n_file = rec.data.shape[1]
    source = EdfReplaySource(EdfSourceConfig(path=iiic, speed=0.0, chunk_s=20.0, loop=True))
    source.open()
    chunks = [source.read(timeout_s=1.0) for _ in range(8)]  # 20, 20, 10 | 20, 20, 10 | 20, 20 s
    assert [c.first_index for c in chunks] == [0, 4000, 8000, 10000, 14000, 18000, 20000, 24000]
    assert source.n_loops == 2 and not source.exhausted
    np.testing.assert_array_equal(chunks[3].data, rec.data[:, :4000])
    np.testing.assert_array_equal(chunks[5].data, rec.data[:, 8000:n_file])
    assert all(c.gap_samples == 0 for c in chunks)


def test_bipolar_file_cannot_be_replayed(shared_data):
    source = EdfReplaySource(EdfSourceConfig(path=shared_data / "quirks" / "neonatal_bipolar_8ch.edf"))
    with pytest.raises(ValueError, match="bipolar"):
        source.open()
    with pytest.raises(RuntimeError, match="before open"):
        source.read(0.0)


def test_chunks_across_block_boundaries_and_loops_are_the_files_samples(iiic):
    # 70-sample chunks do not divide the 6000-sample (30 s) blocks nor the 10000-sample file
    rec = load_canonical(iiic)
    n_file = rec.data.shape[1]
    source = EdfReplaySource(EdfSourceConfig(path=iiic, speed=0.0, chunk_s=0.35, loop=True))
    source.open()
    assert (source.stream.fs, source.stream.n_samples) == (rec.fs, n_file)
    chunks = []
    while source.n_loops < 2:
        chunks.append(source.read(timeout_s=1.0))
    got = np.concatenate([c.data for c in chunks], axis=1)
    assert got.shape[1] == 2 * n_file and all(c.data.flags.c_contiguous for c in chunks)
    np.testing.assert_array_equal(got, np.concatenate([rec.data, rec.data], axis=1))
    assert [c.first_index for c in chunks] == list(np.cumsum([0] + [c.n_samples for c in chunks[:-1]]))


def test_close_releases_the_file_and_open_starts_again(iiic):
    rec = load_canonical(iiic)
    source = EdfReplaySource(EdfSourceConfig(path=iiic, speed=0.0, chunk_s=1.0))
    source.open()
    stream = source.stream
    source.read(timeout_s=1.0)
    source.close()
    assert stream.closed and source.stream is None
    with pytest.raises(RuntimeError, match="before open"):
        source.read(0.0)
    source.open()
    chunk = source.read(timeout_s=1.0)
    assert chunk.first_index == 0
    np.testing.assert_array_equal(chunk.data, rec.data[:, :200])


def test_an_edf_at_a_rate_without_small_factors_is_replayed_and_accepted_by_the_bed_path(tmp_path):
    import edfio

    from ictal.alarms.config import AlarmThresholds
    from ictal.detector import CANONICAL_CHANNELS
    from ictal.detector.config import FrontendConfig
    from ictal.detector.resample import rational_rate
    from ictal.streaming.bed import BedSession
    from ictal.streaming.config import EdfSourceConfig
    from ictal.streaming.sources.edf_replay import EdfReplaySource

    fs = 9999 / 50  # 199.98 Hz: records of 50 s holding 9999 samples; 256/199.98 needs factors 12800/9999
    rng = np.random.default_rng(0)
    n = 9999 * 2
    signals = [edfio.EdfSignal(rng.normal(0, 30, n), fs, label=f"EEG {c.upper()}-REF", physical_dimension="uV",
                               physical_range=(-500, 500)) for c in CANONICAL_CHANNELS]
    path = tmp_path / "odd_rate.edf"
    edfio.Edf(signals, data_record_duration=50).write(path)
    source = EdfReplaySource(EdfSourceConfig(path=path, speed=0.0, chunk_s=1.0))
    source.open()
    try:
        assert source.fs == rational_rate(fs) and abs(source.fs / fs - 1) < 5.1e-4
        session = BedSession("bed-odd", FrontendConfig(), source.fs, AlarmThresholds(), hop_s=4.0)
        windows = []
        while (chunk := source.read(0.0)) is not None:
            assert chunk.fs == source.fs
            windows += session.push(chunk)[0]
    finally:
        source.close()
    assert windows, "no window from a 100 s file at 199.98 Hz"
