"""Prometheus metrics of the daemon (prometheus-client, own registry, read-only HTTP endpoint).

Names follow the Prometheus conventions (https://prometheus.io/docs/practices/naming/): base units
(seconds, bytes), ``_total`` for counters, label ``bed`` on everything that is per bed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alarms.config import AlarmThresholds, MetricsConfig
from alarms.metrics_http import MetricsHTTPServer

# Inference of a batch of 60 s windows: milliseconds on a GPU, up to seconds on a CPU.
INFERENCE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Time to alarm, onset sample -> event published (AlarmEvent.latency_s): the minimum duration (s to tens of
# s), the model's lookahead and hop, inference and the journal; after a (re)connection also the warm-up
# (min_history_s). Buckets reach 5 min so a slow alarm is counted, not lumped into +Inf.
ALARM_LATENCY_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0)


class _AlarmRateCollector(Collector):
    """``ictal_alarm_rate_per_24h{bed}``: onsets in the rolling window, scaled to 24 h (computed at scrape)."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self.clock = clock
        self._times: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def record(self, bed: str, when: float) -> None:
        with self._lock:
            self._times.setdefault(bed, deque()).append(when)

    def rate(self, bed: str) -> float:
        now = self.clock()
        with self._lock:
            times = self._times.get(bed, deque())
            while times and times[0] < now - self.window_s:
                times.popleft()
            return len(times) * 86400.0 / self.window_s

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ictal_alarm_rate_per_24h",
            f"Onset alarms per 24 h over the last {self.window_s / 3600:g} h (count in window x 24 h / window).",
            labels=["bed"],
        )
        with self._lock:
            beds = list(self._times)
        for bed in beds:
            family.add_metric([bed], self.rate(bed))
        yield family


class IctalMetrics:
    """Every metric of the daemon, in a registry of its own.

    Parameters
    ----------
    registry : CollectorRegistry, optional
        Default a new one (never the global registry, so tests and several instances don't collide).
    alarm_rate_window_h : float, default 24.0
        Rolling window of ``ictal_alarm_rate_per_24h``.
    clock : callable, default time.time
        Wall clock (s) of the rolling window; injectable for tests.

    Attributes
    ----------
    Counters, gauges and histograms named as exported (without the ``ictal_`` prefix): see the
    ``help`` text of each. Record through the helper methods or the attributes directly.
    """

    def __init__(self, registry: CollectorRegistry | None = None, alarm_rate_window_h: float = 24.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.samples_received = Counter("ictal_samples_received", "EEG samples received (per channel set).",
                                        ["bed"], registry=r)
        self.samples_lost = Counter("ictal_samples_lost", "EEG samples missing from the stream (gaps).",
                                    ["bed"], registry=r)
        self.gap_seconds = Counter("ictal_stream_gap_seconds", "Seconds of stream lost to gaps.",
                                   ["bed"], registry=r)
        self.stream_connected = Gauge("ictal_stream_connected", "1 while the bed's source is connected.",
                                      ["bed"], registry=r)
        self.ring_buffer_fill = Gauge("ictal_ring_buffer_fill_ratio", "Fill of the ring buffer (0..1).",
                                      ["bed"], registry=r)
        self.windows_scored = Counter("ictal_windows_scored", "60 s windows scored by the model.",
                                      ["bed"], registry=r)
        self.inference_latency = Histogram("ictal_inference_latency_seconds",
                                           "Model inference time per window (s).", ["bed"],
                                           buckets=INFERENCE_BUCKETS_S, registry=r)
        self.alarm_latency = Histogram("ictal_alarm_latency_seconds",
                                       "Time to alarm (s): wall time the onset event was published minus the "
                                       "UTC wall time of the onset sample (AlarmEvent.latency_s).", ["bed"],
                                       buckets=ALARM_LATENCY_BUCKETS_S, registry=r)
        self.alarms_raised = Counter("ictal_alarms_raised", "Onset alarms raised.", ["bed"], registry=r)
        self.signal_quality = Gauge("ictal_signal_quality_ok",
                                    "1 while the channel is usable, 0 while flat/saturated/non-finite/noisy.",
                                    ["bed", "channel"], registry=r)
        self.signal_usable = Gauge("ictal_signal_usable", "1 while the bed's input is usable (alarms on).",
                                   ["bed"], registry=r)
        self.model_info = Info("ictal_model", "Model in use: stack, backend, device, checkpoint id.",
                               registry=r)
        self.tau_on = Gauge("ictal_threshold_tau_on", "Post-processor tau_on in force.", ["bed"], registry=r)
        self.tau_off = Gauge("ictal_threshold_tau_off", "Post-processor tau_off in force.", ["bed"], registry=r)
        self.min_duration = Gauge("ictal_threshold_min_duration_seconds", "Minimum duration before an onset.",
                                  ["bed"], registry=r)
        self.merge_gap = Gauge("ictal_threshold_merge_gap_seconds", "Merge gap.", ["bed"], registry=r)
        self.max_duration = Gauge("ictal_threshold_max_duration_seconds", "Maximum event duration.",
                                  ["bed"], registry=r)
        self.refractory = Gauge("ictal_threshold_refractory_seconds", "Refractory period after an offset.",
                                ["bed"], registry=r)
        self.journal_size = Gauge("ictal_journal_size_bytes", "Size of the alarm journal on disk.", registry=r)
        self.journal_errors = Counter("ictal_journal_errors", "Journal appends that failed (event published "
                                      "live only).", registry=r)
        self.events_published = Counter("ictal_events_published", "Events sent on the PUB socket.", ["kind"],
                                        registry=r)
        self.catchup_requests = Counter("ictal_catchup_requests", "Catch-up requests served.", ["result"],
                                        registry=r)
        self.journal_faults = Counter("ictal_journal_faults", "Journal faults found (fault: deleted, replaced, "
                                      "unwritable, stalled); deleted/replaced/unwritable open a new journal.",
                                      ["fault"], registry=r)
        self.connections_refused = Counter("ictal_alarm_connections_refused", "Connections to an alarm socket "
                                           "closed at once because the socket had max_connections peers.",
                                           ["socket"], registry=r)
        self._alarm_rate = _AlarmRateCollector(alarm_rate_window_h * 3600.0, clock)
        r.register(self._alarm_rate)
        self._clock = clock

    # -- helpers for the daemon -------------------------------------------------------------------

    def record_alarm(self, bed: str, when: float | None = None) -> None:
        """Count an onset alarm for ``bed`` (at wall time ``when``, default now)."""
        self.alarms_raised.labels(bed=bed).inc()
        self._alarm_rate.record(bed, self._clock() if when is None else when)

    def alarm_rate_per_24h(self, bed: str) -> float:
        """Current value of ``ictal_alarm_rate_per_24h`` for ``bed``."""
        return self._alarm_rate.rate(bed)

    def set_thresholds(self, bed: str, thresholds: AlarmThresholds) -> None:
        """Export the thresholds in force for ``bed``."""
        self.tau_on.labels(bed=bed).set(thresholds.tau_on)
        self.tau_off.labels(bed=bed).set(thresholds.tau_off)
        self.min_duration.labels(bed=bed).set(thresholds.min_duration_s)
        self.merge_gap.labels(bed=bed).set(thresholds.merge_gap_s)
        self.max_duration.labels(bed=bed).set(thresholds.max_duration_s)
        self.refractory.labels(bed=bed).set(thresholds.refractory_s)

    def set_model_info(self, *, stack: str, backend: str, device: str, checkpoint_id: str) -> None:
        """Export the model in use."""
        self.model_info.info({"stack": stack, "backend": backend, "device": device,
                              "checkpoint_id": checkpoint_id})

    def set_channel_quality(self, bed: str, usable_by_channel: dict[str, bool]) -> None:
        """Export per-channel signal quality (True = usable) and the bed's overall usability."""
        for channel, ok in usable_by_channel.items():
            self.signal_quality.labels(bed=bed, channel=channel).set(1.0 if ok else 0.0)
        self.signal_usable.labels(bed=bed).set(1.0 if all(usable_by_channel.values()) else 0.0)

    def bind_journal_size(self, size_bytes: Callable[[], float]) -> None:
        """Make ``ictal_journal_size_bytes`` read ``size_bytes()`` at every scrape."""
        self.journal_size.set_function(size_bytes)


@dataclass
class MetricsServer:
    """A running metrics endpoint; ``port`` is the bound port (useful when configured as 0).

    ``server`` is the :class:`alarms.metrics_http.MetricsHTTPServer` (limits and counters: see
    that module); ``thread`` the thread running its loop.
    """

    server: MetricsHTTPServer
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.close()


def serve_metrics(config: MetricsConfig, metrics: IctalMetrics) -> MetricsServer:
    """Serve ``metrics`` over HTTP (GET /metrics, read-only) on ``config.host:config.port``.

    The endpoint bounds what a client can hold (see :mod:`alarms.metrics_http`): 64 connections at
    once (the oldest half-sent request is dropped for a new one), 5 s to send a request, 8 KiB of
    request head, one request per connection.

    Parameters
    ----------
    config : MetricsConfig
        Bind address (loopback by default) and port (0 = any free port).
    metrics : IctalMetrics

    Returns
    -------
    server : MetricsServer
        Call ``close()`` to stop it.

    Raises
    ------
    OSError
        If the address cannot be bound (the message names host and port).
    """
    server = MetricsHTTPServer(metrics.registry, config.host, config.port)
    server.start()
    return MetricsServer(server, server.thread, config.host, server.port)
