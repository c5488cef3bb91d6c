"""The daemon path feeds a double-banana model: EDF replay of CHB-MIT and LSL from a referential stream."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.detector.config import FrontendConfig
from ictal.detector.montage import DOUBLE_BANANA_CHANNELS
from ictal.streaming.config import EdfSourceConfig, LslSourceConfig
from ictal.streaming.edf import load_canonical
from ictal.streaming.sources.edf_replay import EdfReplaySource

BIPOLAR = FrontendConfig(montage="double_banana")


class RecordingScorer:
    """A scorer that keeps every window the daemon path hands it and answers probability 0.1."""

    max_batch = 4
    lookahead_s = 0.0

    def __init__(self) -> None:
        self.windows: list[np.ndarray] = []

    def predict(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows)
        self.windows.extend(windows)
        return np.full((windows.shape[0], windows.shape[2]), 0.1, dtype=np.float32)


def test_edf_replay_of_a_chbmit_clip_gives_chunks_of_the_18_derivations(shared_data):
    path = shared_data / "bipolar" / "chbmit" / "chb02_sz01_ictal.edf"
    source = EdfReplaySource(EdfSourceConfig(path=path, speed=0.0, chunk_s=1.0), BIPOLAR)
    source.open()
    chunks = []
    while (chunk := source.read(0.0)) is not None:
        chunks.append(chunk)
    source.close()
    data = np.concatenate([c.data for c in chunks], axis=1)
    assert data.shape == (18, 2560)
    np.testing.assert_array_equal(data, load_canonical(path, BIPOLAR).data)


def test_the_bed_session_scores_windows_of_18_rows_from_a_chbmit_clip(shared_data):
    from ictal.streaming.bed import run_recording

    path = shared_data / "bipolar" / "chbmit" / "chb02_sz01_ictal.edf"
    scorer = RecordingScorer()
    run_recording(path, scorer, BIPOLAR, AlarmThresholds(), hop_s=4.0, min_history_s=4.0)
    assert scorer.windows, "no window was scored"
    assert all(w.shape == (18, 15360) for w in scorer.windows)
    last = scorer.windows[-1]
    assert np.abs(last[:, -2560:]).sum(axis=1).min() > 0  # every derivation carries signal
    assert not np.any(last[:, : 15360 - 2560])  # the warm-up window is left-padded with zeros


def test_lsl_stream_of_referential_channels_is_derived_to_the_double_banana(shared_data):
    from ictal.streaming.sources.lsl import LslSource

    path = shared_data / "labelled" / "iiic_05.edf"
    expected = load_canonical(path, BIPOLAR).data
    name = f"ictal-test-bipolar-{uuid.uuid4().hex[:10]}"
    process = subprocess.Popen([sys.executable, "-m", "ictal", "replay", str(path), "--name", name,
                                "--wait-consumer-s", "30", "--speed", "20"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=30.0), BIPOLAR)
        source.open()
        assert source.montage is not None and source.montage.channels == DOUBLE_BANANA_CHANNELS
        chunks, deadline = [], time.monotonic() + 30.0
        while sum(c.n_samples for c in chunks) < expected.shape[1]:
            assert time.monotonic() < deadline, "the stream did not arrive within 30 s"
            chunk = source.read(timeout_s=0.2)
            if chunk is not None:
                chunks.append(chunk)
        source.close()
    finally:
        process.kill()
        process.wait()
    received = np.concatenate([c.data for c in chunks], axis=1)
    np.testing.assert_array_equal(received, expected)  # float32 referential over LSL, derived as offline


def test_the_daemon_serves_double_banana_beds_from_a_bipolar_and_a_referential_file(tmp_path, shared_data):
    from ictal.streaming.daemon import Daemon
    from ictal.streaming.notify import SystemdNotifier
    from tests.streaming.daemon_helpers import LineLengthScorer, daemon_config, wait_for

    class ShapeScorer(LineLengthScorer):
        def __init__(self) -> None:
            super().__init__()
            self.shapes: set[tuple[int, ...]] = set()

        def predict(self, windows):
            self.shapes.add(tuple(windows.shape[1:]))
            return super().predict(windows)

    beds = {"bed-chbmit": shared_data / "bipolar" / "chbmit" / "chb01_sz03_ictal.edf",
            "bed-derived": shared_data / "background" / "eegmat" / "Subject09_2.edf"}
    config = daemon_config(tmp_path, beds, speed=0.0, queue_windows=16)
    config = config.model_copy(update={"frontend": BIPOLAR})
    scorer = ShapeScorer()
    daemon = Daemon(config, scorer, notifier=SystemdNotifier(socket_path=""))
    daemon.start()
    try:
        assert wait_for(lambda: all(w.closed for w in daemon.workers.values()), 60.0)
        scored = {bed: w.session.windows_scored for bed, w in daemon.workers.items()}
        quality = daemon.metrics.signal_quality.labels(bed="bed-derived", channel="Fp1-F7")._value.get()
    finally:
        daemon.shutdown()
    assert scorer.shapes == {(18, 15360)}  # the capacity check and every bed's windows
    assert scored["bed-chbmit"] >= 1 and scored["bed-derived"] >= 10
    assert quality == 1.0
