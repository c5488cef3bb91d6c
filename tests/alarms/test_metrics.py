"""The Prometheus metrics: a real HTTP scrape parsed by the Prometheus text parser."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ictal.alarms.config import AlarmThresholds, JournalConfig, MetricsConfig
from ictal.alarms.journal import Journal
from ictal.alarms.metrics import IctalMetrics, serve_metrics
from tests.alarms.helpers import onset


def scrape(url: str) -> dict[str, dict]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: dict[str, dict] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_http_scrape_parses_and_carries_every_metric(tmp_path):
    metrics = IctalMetrics()
    journal = Journal(JournalConfig(path=tmp_path / "j.sqlite3"))
    journal.append(onset())
    metrics.bind_journal_size(journal.size_bytes)
    metrics.samples_received.labels(bed="b1").inc(256 * 60)
    metrics.samples_lost.labels(bed="b1").inc(128)
    metrics.gap_seconds.labels(bed="b1").inc(0.5)
    metrics.stream_connected.labels(bed="b1").set(1)
    metrics.ring_buffer_fill.labels(bed="b1").set(0.75)
    metrics.windows_scored.labels(bed="b1").inc(3)
    metrics.inference_latency.labels(bed="b1").observe(0.02)
    metrics.alarm_latency.labels(bed="b1").observe(1.5)
    metrics.record_alarm("b1")
    metrics.record_alarm("b1")
    metrics.set_channel_quality("b1", {"T5": False, "O2": True})
    metrics.set_model_info(stack="bimamba2", backend="reference", device="cpu", checkpoint_id="ck1")
    metrics.set_thresholds("b1", AlarmThresholds(tau_on=0.9, tau_off=0.4))
    metrics.catchup_requests.labels(result="ok").inc()
    server = serve_metrics(MetricsConfig(host="127.0.0.1", port=0), metrics)
    try:
        assert server.port > 0
        s = scrape(server.url)
    finally:
        server.close()
        journal.close()
    bed = (("bed", "b1"),)
    assert s["ictal_samples_received_total"][bed] == 256 * 60
    assert s["ictal_samples_lost_total"][bed] == 128
    assert s["ictal_stream_gap_seconds_total"][bed] == 0.5
    assert s["ictal_stream_connected"][bed] == 1
    assert s["ictal_ring_buffer_fill_ratio"][bed] == 0.75
    assert s["ictal_windows_scored_total"][bed] == 3
    assert s["ictal_inference_latency_seconds_count"][bed] == 1
    assert s["ictal_inference_latency_seconds_bucket"][(("bed", "b1"), ("le", "0.025"))] == 1
    assert s["ictal_inference_latency_seconds_bucket"][(("bed", "b1"), ("le", "0.01"))] == 0
    assert s["ictal_alarm_latency_seconds_sum"][bed] == 1.5
    assert s["ictal_alarms_raised_total"][bed] == 2
    assert s["ictal_alarm_rate_per_24h"][bed] == 2
    assert s["ictal_signal_quality_ok"][(("bed", "b1"), ("channel", "T5"))] == 0
    assert s["ictal_signal_quality_ok"][(("bed", "b1"), ("channel", "O2"))] == 1
    assert s["ictal_signal_usable"][bed] == 0
    assert s["ictal_model_info"] == {(("backend", "reference"), ("checkpoint_id", "ck1"), ("device", "cpu"),
                                      ("stack", "bimamba2")): 1.0}
    assert s["ictal_threshold_tau_on"][bed] == 0.9
    assert s["ictal_threshold_min_duration_seconds"][bed] == 10.0
    assert s["ictal_journal_size_bytes"][()] > 4096
    assert s["ictal_catchup_requests_total"][(("result", "ok"),)] == 1


def test_alarm_rate_counts_only_the_rolling_window():
    now = [0.0]
    metrics = IctalMetrics(alarm_rate_window_h=24.0, clock=lambda: now[0])
    for hours in (0.0, 10.0, 30.0):
        now[0] = hours * 3600
        metrics.record_alarm("b1")
    assert metrics.alarm_rate_per_24h("b1") == 2  # the one at 0 h left the window at 24 h
    metrics6 = IctalMetrics(alarm_rate_window_h=6.0, clock=lambda: 0.0)
    metrics6.record_alarm("b2")
    assert metrics6.alarm_rate_per_24h("b2") == 4  # 1 in 6 h -> 4 per 24 h


def test_two_instances_do_not_collide():
    a, b = IctalMetrics(), IctalMetrics()
    a.record_alarm("x")
    assert b.registry.get_sample_value("ictal_alarms_raised_total", {"bed": "x"}) is None


def test_busy_port_is_named():
    first = serve_metrics(MetricsConfig(port=0), IctalMetrics())
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
            serve_metrics(MetricsConfig(port=first.port), IctalMetrics())
    finally:
        first.close()
