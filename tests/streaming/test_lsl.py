"""LSL on loopback: `ictal replay` -> LslSource round trip, reconnection, labels/units, gaps."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import numpy as np
import pylsl
import pytest

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend
from ictal.detector.montage import MontageError
from ictal.streaming.config import LslSourceConfig
from ictal.streaming.edf import load_canonical
from ictal.streaming.pipeline import BedPipeline
from ictal.streaming.sources.lsl import LslSource


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _replay(path, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ictal", "replay", str(path), "--name", name, "--wait-consumer-s", "30", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _read_until(source: LslSource, condition, deadline_s: float) -> list:
    chunks, end = [], time.monotonic() + deadline_s
    while not condition(chunks):
        assert time.monotonic() < end, f"condition not met within {deadline_s} s ({len(chunks)} chunks)"
        chunk = source.read(timeout_s=0.2)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def _samples(chunks) -> int:
    return sum(c.n_samples for c in chunks)


def test_replay_round_trip_gives_the_file_back_without_loss(shared_data):
    path = shared_data / "labelled" / "iiic_05.edf"
    rec = load_canonical(path)
    name = _unique("ictal-test-roundtrip")
    process = _replay(path, name, "--speed", "20")
    try:
        source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=30.0))
        source.open()
        assert source.fs == rec.fs == 200.0
        chunks = _read_until(source, lambda c: _samples(c) >= rec.data.shape[1], deadline_s=30.0)
    finally:
        process.kill()
        process.wait()
    received = np.concatenate([c.data for c in chunks], axis=1)
    np.testing.assert_array_equal(received, rec.data)  # float32 over LSL: bit-exact, no sample lost
    assert [c.first_index for c in chunks] == list(np.cumsum([0] + [c.n_samples for c in chunks[:-1]]))
    assert source.gaps == [] and all(c.gap_samples == 0 for c in chunks)
    clocks = np.array([c.clock_s for c in chunks])
    np.testing.assert_allclose(np.diff(clocks), np.diff([c.first_index for c in chunks]) / rec.fs, atol=1e-6)
    # After the same front-end, the stream equals the file processed offline.
    pipeline = BedPipeline(FrontendConfig(), source.fs, 4.0)
    for chunk in chunks:
        pipeline.push(chunk)
    streamed, valid = pipeline.ring.read(0, pipeline.ring.end_index)
    offline = Frontend(FrontendConfig(), rec.fs).process(rec.data)
    assert valid.all() and streamed.shape == offline.shape
    assert np.abs(streamed - offline).max() <= 1e-4
    source.close()


def test_restarted_outlet_is_reconnected_and_the_gap_recorded(shared_data):
    path = shared_data / "labelled" / "iiic_06.edf"
    rec = load_canonical(path)
    name = _unique("ictal-test-reconnect")
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=30.0, reconnect_s=0.2))
    process = _replay(path, name, "--speed", "10", "--loop")
    try:
        source.open()
        before = _read_until(source, lambda c: _samples(c) >= 1000, deadline_s=30.0)
        process.kill()
        process.wait()
        end = time.monotonic() + 10.0
        while source.connected:
            assert time.monotonic() < end, "the loss of the outlet was not detected"
            chunk = source.read(timeout_s=0.2)
            if chunk is not None:
                before.append(chunk)
        assert source.read(timeout_s=0.1) is None  # lost: nothing to read, no exception
        process = _replay(path, name, "--speed", "10", "--loop")
        after = _read_until(source, lambda c: _samples(c) >= 400, deadline_s=30.0)
    finally:
        process.kill()
        process.wait()
    assert source.n_connections == 2
    first = after[0]
    expected_end = before[-1].end_index
    assert first.gap_samples >= 1 and first.first_index == expected_end + first.gap_samples
    assert source.gaps == [(first.first_index, first.gap_samples)]
    # The restarted replay starts the file again: the resumed samples are the file's first ones.
    resumed = np.concatenate([c.data for c in after], axis=1)
    np.testing.assert_array_equal(resumed, rec.data[:, : resumed.shape[1]])
    # The bed pipeline records the gap instead of gluing the two connections together.
    pipeline = BedPipeline(FrontendConfig(), source.fs, 4.0)
    for chunk in before + after:
        pipeline.push(chunk)
    assert pipeline.n_resets == 1 and len(pipeline.ring.gaps) == 1
    source.close()


def _outlet(name: str, labels: list[str], units: list[str], fs: float = 256.0) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", len(labels), fs, "float32", name)
    channels = info.desc().append_child("channels")
    for label, unit in zip(labels, units, strict=True):
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        if unit:
            channel.append_child_value("unit", unit)
    return pylsl.StreamOutlet(info)


def test_labels_and_units_from_the_description_are_mapped_to_canonical_microvolts():
    name = _unique("ictal-test-units")
    aliases = {"T3": "EEG T7-LE", "T4": "T8", "T5": "EEG P7-Ref", "T6": "p8"}
    labels = ["EKG"] + [aliases.get(ch, f"EEG {ch.upper()}-REF") for ch in reversed(CANONICAL_CHANNELS)]
    outlet = _outlet(name, labels, [""] + ["millivolts"] * 19)
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=10.0, gap_tolerance_s=0.1))
    source.open()
    assert source.montage.ignored == ("EKG",)
    values = np.tile(np.arange(20, dtype=np.float32), (64, 1))  # column j holds j (in mV)
    stamp = pylsl.local_clock()
    outlet.push_chunk(values, stamp)
    outlet.push_chunk(values, stamp + 1.0 + 64 / 256)  # 1 s (256 samples) never sent
    chunks = _read_until(source, lambda c: _samples(c) >= 128, deadline_s=10.0)
    first = chunks[0]
    # Canonical channel k came from stream column 19 - k (reversed order, after EKG), in uV.
    expected = (19 - np.arange(19, dtype=np.float32)) * 1000.0
    np.testing.assert_array_equal(first.data[:, 0], expected)
    # LSL may deliver a pushed chunk in several pulls: check the indices, not the chunking.
    assert chunks[0].first_index == 0 and chunks[0].gap_samples == 0
    for previous, chunk in zip(chunks[:-1], chunks[1:], strict=True):
        assert chunk.first_index == previous.end_index + chunk.gap_samples
    assert [(c.first_index, c.gap_samples) for c in chunks if c.gap_samples] == [(64 + 256, 256)]
    assert _samples(chunks) == 128
    assert source.gaps == [(320, 256)]
    source.close()
    del outlet


def test_stream_without_units_or_with_missing_channels_is_refused():
    name = _unique("ictal-test-nounit")
    outlet = _outlet(name, list(CANONICAL_CHANNELS), [""] * 19)
    with pytest.raises(ValueError, match="channel 'Fp1' has no unit"):
        LslSource(LslSourceConfig(name=name, resolve_timeout_s=10.0)).open()
    del outlet
    name = _unique("ictal-test-missing")
    outlet = _outlet(name, list(CANONICAL_CHANNELS[:-1]), ["microvolts"] * 18)
    with pytest.raises(MontageError, match="missing: O2"):
        LslSource(LslSourceConfig(name=name, resolve_timeout_s=10.0)).open()
    del outlet


def test_absent_stream_is_a_clear_connection_error():
    name = _unique("ictal-test-absent")
    with pytest.raises(ConnectionError, match=f"name='{name}'"):
        LslSource(LslSourceConfig(name=name, resolve_timeout_s=0.3)).open()


def test_replay_command_refuses_a_bipolar_file_and_a_negative_speed(shared_data, capsys):
    from ictal.cli import main

    bipolar = shared_data / "quirks" / "neonatal_bipolar_8ch.edf"
    assert main(["replay", str(bipolar), "--name", _unique("ictal-test-bipolar")]) == 2
    assert "bipolar" in capsys.readouterr().err
    assert main(["replay", str(bipolar), "--speed", "-1"]) == 2
    assert "--speed must be >= 0 (found -1.0)" in capsys.readouterr().err


def _configured(fs: float = 256.0) -> LslSource:
    """An LslSource configured from an in-process stream description (no outlet): ``_split`` can be fed."""
    info = pylsl.StreamInfo("ictal-test-split", "EEG", 19, fs, "float32", "ictal-test-split")
    channels = info.desc().append_child("channels")
    for label in CANONICAL_CHANNELS:
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("unit", "microvolts")
    source = LslSource(LslSourceConfig(name="ictal-test-split", gap_tolerance_s=0.1))
    source._configure(info)
    return source


def _feed(source: LslSource, timestamps: np.ndarray, chunk: int) -> list:
    out = []
    for lo in range(0, timestamps.size, chunk):
        ts = timestamps[lo:lo + chunk]
        source._split(np.zeros((ts.size, 19), dtype=np.float32), ts)
        while source._pending:
            out.append(source._pending.popleft())
    return out


@pytest.mark.parametrize("fs", [float("nan"), float("inf"), 0.0])  # pylsl refuses negative rates itself
def test_a_non_finite_or_non_positive_rate_is_refused_naming_it(fs):
    with pytest.raises(ValueError, match="ictal-test-split.*(rate|irregular)"):
        _configured(fs)


def test_timestamps_going_back_are_a_notice_and_the_index_stays_monotonic():
    source = _configured()
    ts = 1000.0 + np.arange(2560) / 256.0
    ts[1280:] -= 3.0  # the device clock steps back by 3 s, inside one pulled chunk
    chunks = _feed(source, ts, 2560)
    assert [(c.first_index, c.n_samples, c.gap_samples) for c in chunks] == [(0, 1280, 0), (1280, 1280, 0)]
    assert chunks[1].clock_s == pytest.approx(ts[1280])
    notices = source.take_notices()
    assert [n.reason for n in notices] == ["clock_jump_back"] and notices[0].first_index == 1280
    assert notices[0].value == pytest.approx(3.0)  # behind where the next sample was due
    assert source.n_clock_jumps_back == 1 and source.take_notices() == []


@pytest.mark.parametrize("chunk", [1, 20, 64])
def test_a_stream_sending_200_samples_a_second_as_256_hz_is_a_rate_mismatch(chunk):
    source = _configured(256.0)
    n = 200 * 30
    # an amplifier pushing chunks of real 200 Hz samples: liblsl back-dates within a chunk at 1/256 s
    last = 1000.0 + (np.arange(n) // chunk * chunk + chunk - 1) / 200.0
    ts = last - ((np.arange(n) // chunk * chunk + chunk - 1) - np.arange(n)) / 256.0
    _feed(source, ts, chunk)
    notices = source.take_notices()
    assert [n.reason for n in notices] == ["rate_mismatch"], notices
    assert "256 Hz" in notices[0].detail and "200." in notices[0].detail
    assert source.rate_mismatch and source.effective_fs == pytest.approx(200.0, rel=0.01)


def test_a_jittery_stream_at_its_nominal_rate_raises_no_rate_notice():
    source = _configured(256.0)
    rng = np.random.default_rng(0)
    n = 256 * 40
    ts = 1000.0 + np.arange(n) / 256.0
    for lo in range(0, n, 32):  # chunk timestamps jittered by up to 30 ms, as a Wi-Fi amplifier's
        ts[lo:lo + 32] += rng.uniform(-0.03, 0.03)
    _feed(source, ts, 32)
    assert source.take_notices() == [] and not source.rate_mismatch
    assert source.effective_fs == pytest.approx(256.0, rel=0.005)


@pytest.mark.parametrize("fs", [50.0, 99.9, 4096.5, 20000.0])
def test_a_rate_outside_the_supported_range_is_refused_naming_the_range(fs):
    with pytest.raises(ValueError, match=r"ictal-test-split.*expected a rate within \[100, 4096\] Hz"):
        _configured(fs)


def test_a_non_integer_rate_is_delivered_at_its_rational_approximation():
    source = _configured(250.1)
    assert source.announced_fs == 250.1 and source.fs == 256.0 * 763 / 781
    chunks = _feed(source, 1000.0 + np.arange(2501) / 250.1, 250)
    assert all(c.fs == source.fs for c in chunks) and source.gaps == []
    assert sum(c.n_samples for c in chunks) == 2501
