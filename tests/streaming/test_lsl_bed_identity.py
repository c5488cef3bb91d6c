"""A bed (``BedWorker`` with a real ``LslSource``) whose amplifier is lost while another amplifier announces
the same stream name: the bed reports the refused stream, receives none of its samples, and takes its
own amplifier back when it returns (the journal no longer shows a silent ``stream_connected``)."""

from __future__ import annotations

import time
import uuid

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.metrics import IctalMetrics
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed_worker import BedWorker
from ictal.streaming.config import BedConfig, LslSourceConfig, SchedulerConfig
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.sources.lsl import LslSource
from tests.streaming.daemon_helpers import wait_for
from tests.streaming.test_lsl_identity import Amplifier


def test_a_bed_never_takes_another_patients_same_named_stream():
    name = f"ictal-test-bed-swap-{uuid.uuid4().hex[:8]}"
    config = LslSourceConfig(name=name, resolve_timeout_s=1.0, reconnect_s=0.2)
    events: list = []
    metrics = IctalMetrics()
    worker = BedWorker(BedConfig(bed_id="bed-s", source=config), LslSource(config), FrontendConfig(),
                       SchedulerConfig(hop_s=2.0, min_history_s=4.0), AlarmThresholds(),
                       lambda event, **_: events.append(event), metrics,
                       daemon_metrics=DaemonMetrics(metrics.registry))

    def received() -> float:
        return metrics.registry.get_sample_value("ictal_samples_received_total", {"bed": "bed-s"}) or 0.0

    def reasons() -> list[str]:
        return [e.reason for e in events if e.kind == "signal_quality"]

    patient_a = Amplifier(name, "amp-A", 1.0)
    worker.start()
    patient_b = None
    try:
        assert wait_for(lambda: received() >= 512, 20.0), reasons()
        patient_b = Amplifier(name, "amp-B", 2.0)
        patient_a.close()
        assert wait_for(lambda: "stream_identity_mismatch" in reasons(), 15.0), reasons()
        during = received()
        time.sleep(2.0)
        assert received() == during  # not one sample of patient B reached the bed
        assert reasons().count("stream_connected") == 1
        patient_a = Amplifier(name, "amp-A", 1.0)
        assert wait_for(lambda: reasons().count("stream_connected") == 2, 15.0), reasons()
        assert wait_for(lambda: received() > during, 10.0)
    finally:
        assert worker.stop()
        patient_a.close()
        if patient_b is not None:
            patient_b.close()
    sequence = reasons()
    assert sequence.index("stream_lost") < sequence.index("stream_identity_mismatch")
    mismatch = next(e for e in events if e.reason == "stream_identity_mismatch")
    assert "'amp-A'" in mismatch.detail and "'amp-B'" in mismatch.detail
    assert sequence.count("stream_identity_mismatch") == 1
