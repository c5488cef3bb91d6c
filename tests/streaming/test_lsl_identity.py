"""LSL stream identity, resolution in the background and non-integer rates, with real outlets on loopback.

A bed selecting its stream by name is bound to the device of its first connection: another amplifier
with the same name (another patient) is refused after a loss, never read (``streaming.sources.lsl``).
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import pylsl
import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.config import FrontendConfig
from ictal.detector.resample import rational_rate
from ictal.streaming.bed import BedSession
from ictal.streaming.config import LslSourceConfig
from ictal.streaming.lsl_outlet import canonical_stream_info
from ictal.streaming.sources.lsl import LslSource
from tests.reliability.daemon_harness import EegOutlet


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def Amplifier(name: str, source_id: str, value: float, labels=CANONICAL_CHANNELS,  # noqa: N802
              fs: float = 256.0) -> EegOutlet:
    """A real LSL outlet, in a process of its own, sending ``value`` uV on every canonical channel (0 on
    any other) at ``fs`` in real time; ``.close()`` kills it, as when it is unplugged (liblsl may crash
    the process that destroys an outlet under a connected inlet: ``tests/reliability/amplifier.py``)."""
    data = np.full((len(CANONICAL_CHANNELS), int(fs)), value, dtype=np.float32)
    return EegOutlet(name, data, fs, chunk_s=0.125, labels=tuple(labels), source_id=source_id).start()


def _read_for(source: LslSource, seconds: float, until=None) -> list:
    chunks, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        chunk = source.read(timeout_s=0.1)
        if chunk is not None:
            chunks.append(chunk)
        if until is not None and until(chunks):
            break
    return chunks


def _wait_lost(source: LslSource, deadline_s: float = 10.0) -> list:
    chunks, end = [], time.monotonic() + deadline_s
    while source.connected:
        assert time.monotonic() < end, "the loss of the outlet was not detected"
        chunk = source.read(timeout_s=0.1)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def _values(chunks) -> set[float]:
    return {float(v) for c in chunks for v in np.unique(c.data)}


def test_two_same_named_streams_never_swap_patients():
    name = _unique("ictal-test-swap")
    patient_a = Amplifier(name, "amp-A", 1.0)
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=1.0, reconnect_s=0.2))
    source.open()
    assert source.identity is not None and source.identity.source_id == "amp-A"
    chunks = _read_for(source, 10.0, until=lambda c: sum(x.n_samples for x in c) >= 256)
    patient_b = Amplifier(name, "amp-B", 2.0)  # a second amplifier announces the same name
    try:
        patient_a.close()
        chunks += _wait_lost(source)
        lost = time.monotonic()
        # Patient B's stream is there, with the same name: it is refused, reported once, never read.
        chunks_while_lost = _read_for(source, 3.0)
        assert chunks_while_lost == [] and not source.connected
        notices = source.take_notices()
        mismatches = [n for n in notices if n.reason == "stream_identity_mismatch"]
        assert len(mismatches) == 1, notices
        assert "'amp-A'" in mismatches[0].detail and "'amp-B'" in mismatches[0].detail
        # Patient A's amplifier comes back (a new outlet, same source_id): the bed takes it again.
        patient_a = Amplifier(name, "amp-A", 1.0)
        after = _read_for(source, 15.0, until=lambda c: sum(x.n_samples for x in c) >= 256)
        back_s = time.monotonic() - lost
    finally:
        patient_a.close()
        patient_b.close()
        source.close()
    assert source.n_connections == 2 and sum(c.n_samples for c in after) >= 256
    assert _values(chunks + after) == {1.0}  # not one sample of patient B
    assert after[0].gap_samples >= 1  # the time away is a gap, not glued
    assert back_s < 10.0


def test_empty_source_id_binds_host_name_and_channel_count():
    name = _unique("ictal-test-nosid")
    first = Amplifier(name, "", 1.0)
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=1.0, reconnect_s=0.2))
    source.open()
    other = Amplifier(name, "", 2.0, labels=(*CANONICAL_CHANNELS, "EKG"))  # 20 channels: another device
    try:
        _read_for(source, 5.0, until=lambda c: len(c) > 0)
        first.close()
        _wait_lost(source)
        assert _read_for(source, 2.5) == []
        reasons = [n.reason for n in source.take_notices()]
        assert reasons.count("stream_identity_mismatch") == 1, reasons
    finally:
        other.close()
        source.close()


def test_first_connection_with_two_same_named_streams_takes_neither():
    name = _unique("ictal-test-ambiguous")
    a, b = Amplifier(name, "amp-A", 1.0), Amplifier(name, "amp-B", 2.0)
    time.sleep(0.3)
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=1.5))
    try:
        with pytest.raises(ConnectionError, match=name):
            source.open()
        reasons = [n.reason for n in source.take_notices()]
        assert "stream_ambiguous" in reasons and "stream_not_found" in reasons
        assert source.n_connections == 0
    finally:
        a.close()
        b.close()


def test_a_bed_opened_without_its_stream_reads_without_blocking_and_connects_when_it_appears():
    name = _unique("ictal-test-late")
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=0.5))
    started = time.monotonic()
    source.open(require_stream=False)
    opened_s = time.monotonic() - started
    assert not source.connected and 0.5 <= opened_s < 2.0
    assert [n.reason for n in source.take_notices()] == ["stream_not_found"]
    with pytest.raises(RuntimeError, match="first connection"):
        _ = source.fs
    waits = []
    for _ in range(5):
        t0 = time.monotonic()
        assert source.read(timeout_s=0.05) is None
        waits.append(time.monotonic() - t0)
    assert max(waits) < 0.5  # the search runs in the background, not in read
    amplifier = Amplifier(name, "amp-late", 3.0)
    try:
        chunks = _read_for(source, 10.0, until=lambda c: len(c) > 0)
    finally:
        amplifier.close()
        source.close()
    assert chunks and source.n_connections == 1
    assert source.fs == 256.0 and _values(chunks) == {3.0}
    assert source.take_notices() == []  # not found is said once per search, not at every attempt


def test_a_stream_at_250_1_hz_is_resampled_and_scored_by_the_bed_path():
    name = _unique("ictal-test-250.1")
    fs = 250.1
    outlet = pylsl.StreamOutlet(canonical_stream_info(name, fs, "amp-2501"))
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=5.0))
    source.open()
    assert source.announced_fs == fs and source.fs == pytest.approx(fs, rel=1e-6)
    assert source.fs == rational_rate(fs)
    # 20 s of a 10 Hz sine, pushed at once with the timestamps of real-time sampling.
    n = int(20 * fs)
    t = np.arange(n) / fs
    data = (50 * np.sin(2 * np.pi * 10 * t))[:, None].repeat(19, axis=1).astype(np.float32)
    t0 = pylsl.local_clock() - 20.0
    for lo in range(0, n, 250):
        block = data[lo:lo + 250]
        outlet.push_chunk(block, t0 + (lo + len(block) - 1) / fs)
    chunks = _read_for(source, 15.0, until=lambda c: sum(x.n_samples for x in c) >= n)
    source.close()
    del outlet
    assert sum(c.n_samples for c in chunks) == n and source.gaps == []
    session = BedSession("bed-2501", FrontendConfig(), source.fs, AlarmThresholds(), hop_s=4.0)
    windows = []
    for chunk in chunks:
        got, _ = session.push(chunk)
        windows += got
    assert len(windows) >= 2  # from min_history_s (10 s) on, one every hop
    out_end = session.pipeline.ring.end_index
    assert abs(out_end - n * 256 / fs) < 256 * 0.1  # 256 Hz output for the input's duration
    filtered, valid = session.pipeline.ring.read(out_end - 2048, out_end)
    spectrum = np.abs(np.fft.rfft(filtered[0] * np.hanning(2048)))
    assert np.argmax(spectrum) * 256 / 2048 == pytest.approx(10.0, abs=0.25)  # still 10 Hz at 256 Hz


def test_a_lost_stream_is_found_again_with_unicast_discovery_only():
    """Multicast off, the stream known only through KnownPeers (a resolve takes ~0.5 s): the bed,
    reading with short timeouts, finds its amplifier again after each return (within the 30 s deadline of
    ``measure_reconnects``; it was never found again when reconnection resolved for 0.2 s)."""
    import json
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ictal.streaming.bench_lsl_reconnect", "--unicast", "--cycles", "2", "--json"],
        capture_output=True, text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "LSLAPICFG"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seconds = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
