"""Prometheus metrics of the daemon (prometheus-client, own registry, read-only HTTP endpoint).

Names follow the Prometheus conventions (https://prometheus.io/docs/practices/naming/): base units
(seconds, bytes, ratios 0..1), ``_total`` for counters, label ``bed`` on everything that is per bed.
One name predates the guide and is kept as a contract: ``ictal_alarm_rate_per_24h`` (FA/24h, the unit
the ward and ``ictal tune`` speak); the by-the-book equivalent is a query,
``increase(ictal_alarms_raised_total[24h])``.

What a scrape of the daemon carries (the exposition contract)
--------------------------------------------------------------
- Process and platform collectors in ictal's registry: ``process_*`` (resident memory, CPU seconds,
  open descriptors, start time), ``python_info``, ``python_gc_*``.
- ``ictal_build_info{version,checkpoint_id,stack,backend,device} 1``: the ictal distribution version and
  the model served (set with :meth:`IctalMetrics.set_model_info`). ``ictal_model_info`` carries the
  model labels too (older name, kept).
- No ``_created`` series: the registry (:class:`IctalRegistry`) leaves them out of every exposition
  (text and OpenMetrics, ``name[]`` filters included); each counter and histogram child would add one
  series that no rule or panel uses (``process_start_time_seconds`` dates the daemon).
- Per-bed series exist from the moment a bed is known (:meth:`IctalMetrics.register_bed`, called by
  :meth:`IctalMetrics.set_thresholds`, which the daemon calls for every configured bed at start and the
  bed worker again when it is built): every counter and histogram of the registry whose only label is
  ``bed`` (ictal's and the daemon's), at 0, so ``increase(ictal_alarms_raised_total[5m])`` sees a bed's
  first alarm; ``ictal_alarm_rate_per_24h`` 0; ``ictal_alarm_active`` 0 (``ictal_stream_connected`` and
  ``ictal_signal_usable``: 0 from the bed worker). Gauges whose 0 would be a false reading are not pre-set:
  ``ictal_seizure_probability`` is NaN until the bed's first window is scored (a gap in a trend, never a
  made-up "no seizure"), and gauges the daemon owns (``ictal_stream_effective_rate_hz``: absent until
  measured) keep their own rule. A bed removed by a reload loses every series
  (:meth:`IctalMetrics.forget_bed`), else its ``ictal_bed_monitored`` 0 would alert until a restart.
- ``ictal_seizure_probability{bed}``: the newest probability of the bed given to the post-processor (the
  last sample of the newest scored window's stitched segment, 0..1; NaN before the first), for trends.
- ``ictal_alarm_active{bed}``: 1 from a published onset (:meth:`IctalMetrics.record_alarm`) to its offset
  (:meth:`IctalMetrics.record_offset`), else 0: an alarm in progress. It also reads 0 once the bed's
  ``max_duration_s`` (from :meth:`IctalMetrics.set_thresholds`) has passed since the onset: the
  post-processor closes every event by then, so a lost offset cannot leave the gauge at 1.
- ``ictal_scoring_latency_bound_seconds``: ``alarms.metrics.scoring_latency_bound_s``, set by
  :func:`serve_metrics`; the alert rules compare the p99 of ``ictal_scoring_latency_seconds`` with it.
- The bed's monitored state is ``ictal_bed_monitored{bed}`` and ``ictal_bed_state{bed,state}``
  (``streaming.daemon_metrics``).
- Label values known in advance exist from start at 0: ``ictal_events_published_total{kind}`` (every
  event kind), ``ictal_catchup_requests_total{result}`` (ok, error, dropped),
  ``ictal_journal_faults_total{fault}`` (deleted, replaced, unwritable, stalled),
  ``ictal_alarm_connections_refused_total{socket}`` (pub, catchup).
"""

from __future__ import annotations

import importlib.metadata
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import get_args

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ictal.alarms.config import AlarmThresholds, MetricsConfig
from ictal.alarms.metrics_auth import BasicAuth
from ictal.alarms.metrics_http import MetricsHTTPServer, tls_context
from ictal.alarms.schema import EventKind

# Label values known before the first event (pre-created at 0 so a rate over them starts at the first one).
CATCHUP_RESULTS = ("ok", "error", "dropped")
JOURNAL_FAULTS = ("deleted", "replaced", "unwritable", "stalled")
ALARM_SOCKETS = ("pub", "catchup")

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

    def add_bed(self, bed: str) -> None:
        with self._lock:
            self._times.setdefault(bed, deque())

    def forget_bed(self, bed: str) -> None:
        with self._lock:
            self._times.pop(bed, None)

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


def _without_created(metrics: Iterable[Metric]) -> Iterable[Metric]:
    for metric in metrics:
        created = metric.name + "_created"
        if not any(sample.name == created for sample in metric.samples):
            yield metric
            continue
        kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
        kept.samples = [sample for sample in metric.samples if sample.name != created]
        yield kept


class _WithoutCreated:
    """A restricted registry's view without ``_created`` samples (what ``generate_latest`` reads)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def collect(self) -> Iterable[Metric]:
        return _without_created(self._inner.collect())


class IctalRegistry(CollectorRegistry):
    """A ``CollectorRegistry`` that knows its metric objects and never exposes ``_created`` samples.

    ``prometheus_client.disable_created_metrics()`` would do the second for the whole process (a module
    global); this registry does it for itself only, in :meth:`collect` and in
    :meth:`restricted_registry` (the ``name[]=`` filter of ``/metrics``), so every exposition of it,
    text or OpenMetrics, is without them. :attr:`wrappers` lists the registered metric objects
    (Counter, Gauge, Histogram, ...) so :meth:`IctalMetrics.register_bed` can pre-create the per-bed
    series of metrics registered by others (``streaming.daemon_metrics``).
    """

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        self._wrappers: list[MetricWrapperBase] = []
        self._wrappers_lock = threading.Lock()

    def register(self, collector: Collector) -> None:
        super().register(collector)
        if isinstance(collector, MetricWrapperBase):
            with self._wrappers_lock:
                self._wrappers.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        with self._wrappers_lock:
            self._wrappers = [w for w in self._wrappers if w is not collector]

    @property
    def wrappers(self) -> list[MetricWrapperBase]:
        """The registered metric objects, in registration order (a copy)."""
        with self._wrappers_lock:
            return list(self._wrappers)

    def collect(self) -> Iterable[Metric]:
        return _without_created(super().collect())

    def restricted_registry(self, names: Iterable[str]) -> _WithoutCreated:  # type: ignore[override]
        return _WithoutCreated(super().restricted_registry(names))


def ictal_version() -> str:
    """The installed ``ictal`` distribution's version; ``0+unknown`` when run from a tree never installed."""
    try:
        return importlib.metadata.version("ictal")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class _AlarmActiveCollector(Collector):
    """``ictal_alarm_active{bed}``: 1 from an onset until its offset or the bed's max_duration_s (computed at scrape)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._onset: dict[str, float | None] = {}
        self._max_duration_s: dict[str, float] = {}
        self._lock = threading.Lock()

    def add_bed(self, bed: str) -> None:
        with self._lock:
            self._onset.setdefault(bed, None)

    def forget_bed(self, bed: str) -> None:
        with self._lock:
            self._onset.pop(bed, None)
            self._max_duration_s.pop(bed, None)

    def set_max_duration(self, bed: str, max_duration_s: float) -> None:
        with self._lock:
            self._max_duration_s[bed] = max_duration_s

    def onset(self, bed: str, when: float) -> None:
        with self._lock:
            self._onset[bed] = when

    def offset(self, bed: str) -> None:
        with self._lock:
            self._onset[bed] = None

    def active(self, bed: str) -> bool:
        now = self.clock()
        with self._lock:
            onset = self._onset.get(bed)
            limit = self._max_duration_s.get(bed, AlarmThresholds.model_fields["max_duration_s"].default)
        return onset is not None and now - onset <= limit

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("ictal_alarm_active", "1 from a published onset alarm to its offset (an alarm in "
                                   "progress; at most the bed's max_duration_s), else 0.", labels=["bed"])
        with self._lock:
            beds = list(self._onset)
        for bed in beds:
            family.add_metric([bed], 1.0 if self.active(bed) else 0.0)
        yield family


class IctalMetrics:
    """Every metric of the daemon, in a registry of its own.

    Parameters
    ----------
    registry : IctalRegistry, optional
        Default a new one (never the global registry, so tests and several instances don't collide).
        The process, platform and GC collectors are registered in it.
    alarm_rate_window_h : float, default 24.0
        Rolling window of ``ictal_alarm_rate_per_24h``.
    clock : callable, default time.time
        Wall clock (s) of the rolling window; injectable for tests.

    Attributes
    ----------
    Counters, gauges and histograms named as exported (without the ``ictal_`` prefix): see the
    ``help`` text of each. Record through the helper methods or the attributes directly.

    Raises
    ------
    TypeError
        If ``registry`` is not an :class:`IctalRegistry` (a plain one would expose ``_created`` series
        and could not pre-create the per-bed series of the daemon's metrics).
    """

    def __init__(self, registry: IctalRegistry | None = None, alarm_rate_window_h: float = 24.0,
                 clock: Callable[[], float] = time.time) -> None:
        if registry is not None and not isinstance(registry, IctalRegistry):
            raise TypeError(f"IctalMetrics registry is a {type(registry).__name__} (expected IctalRegistry)")
        self.registry = registry if registry is not None else IctalRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Info("ictal_build", "Build and model served: ictal version, checkpoint id, stack, "
                               "backend, device.", registry=r)
        self.probability = Gauge("ictal_seizure_probability", "Newest seizure probability of the bed given to the "
                                 "post-processor (0..1); NaN before the first scored window.",
                                 ["bed"], registry=r)
        self.scoring_latency_bound = Gauge("ictal_scoring_latency_bound_seconds", "Configured bound on the p99 "
                                           "of ictal_scoring_latency_seconds (alarms.metrics."
                                           "scoring_latency_bound_s).", registry=r)
        self._alarm_active = _AlarmActiveCollector(clock)
        r.register(self._alarm_active)
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
        self.windows_scored = Counter("ictal_windows_scored",
                                      "Windows (window mode) or hops (stream mode) scored by the model.",
                                      ["bed"], registry=r)
        self.inference_latency = Histogram("ictal_inference_latency_seconds",
                                           "Model time per batch: predict (window mode) or one step round (stream mode) (s).", ["bed"],
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
        self._beds: set[str] = set()
        self._beds_lock = threading.Lock()
        for kind in get_args(EventKind):
            self.events_published.labels(kind=kind)
        for result in CATCHUP_RESULTS:
            self.catchup_requests.labels(result=result)
        for fault in JOURNAL_FAULTS:
            self.journal_faults.labels(fault=fault)
        for name in ALARM_SOCKETS:
            self.connections_refused.labels(socket=name)

    # -- helpers for the daemon -------------------------------------------------------------------

    def register_bed(self, bed: str) -> None:
        """Create every per-bed series of ``bed`` now, so each exists (0, not absent) before its first event.

        Every counter and histogram of the registry whose only label is ``bed`` (this object's and those
        registered later in the same registry, e.g. ``streaming.daemon_metrics``) gets its ``bed`` child
        at 0; so do ``ictal_alarm_rate_per_24h`` and ``ictal_alarm_active``; ``ictal_seizure_probability``
        is NaN until the first window. The helpers that set a per-bed value call it first, and calling it
        again (a reload, the bed worker after the daemon) changes no value. (``ictal_stream_connected``
        and ``ictal_signal_usable`` are set to 0 by the bed worker when it is built.)

        Parameters
        ----------
        bed : str
            The bed id (label ``bed``).
        """
        with self._beds_lock:
            known = bed in self._beds
            self._beds.add(bed)
        for wrapper in self.registry.wrappers:
            # _labelnames: prometheus-client has no public accessor for a wrapper's label names
            if isinstance(wrapper, (Counter, Histogram)) and tuple(wrapper._labelnames) == ("bed",):
                wrapper.labels(bed=bed)
        if known:
            return
        self._alarm_rate.add_bed(bed)
        self._alarm_active.add_bed(bed)
        self.probability.labels(bed=bed).set(math.nan)

    def forget_bed(self, bed: str) -> None:
        """Remove every series of ``bed`` (a bed taken out of the configuration by a reload).

        Without it a removed bed's ``ictal_bed_monitored`` would stay at 0 and fire
        ``IctalBedNotMonitored`` until the daemon restarts. Every metric object of the registry with a
        ``bed`` label loses the children of ``bed`` (``ictal_bed_state{bed,state}`` and
        ``ictal_signal_quality_ok{bed,channel}`` included), and so do the computed gauges. A bed
        configured again later starts from 0 (Prometheus reads that as a counter reset).

        Parameters
        ----------
        bed : str
        """
        with self._beds_lock:
            self._beds.discard(bed)
        for wrapper in self.registry.wrappers:
            names = tuple(wrapper._labelnames)
            if "bed" not in names:
                continue
            if hasattr(wrapper, "remove_by_labels"):  # recent prometheus-client; older: by its children below
                wrapper.remove_by_labels({"bed": bed})
                continue
            position = names.index("bed")
            for values in [key for key in list(wrapper._metrics) if key[position] == bed]:
                wrapper.remove(*values)
        self._alarm_rate.forget_bed(bed)
        self._alarm_active.forget_bed(bed)

    def register_beds(self, beds: Sequence[str]) -> None:
        """:meth:`register_bed` for each of ``beds``."""
        for bed in beds:
            self.register_bed(bed)

    def set_probability(self, bed: str, probability: float) -> None:
        """Export the newest seizure probability of ``bed`` (``ictal_seizure_probability``).

        Parameters
        ----------
        bed : str
        probability : float
            In [0, 1]: the last sample of the newest scored window's stitched segment (what the
            post-processor received last).

        Raises
        ------
        ValueError
            If ``probability`` is not a finite number in [0, 1] (a model fault must not draw a trend).
        """
        p = float(probability)
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ValueError(f"seizure probability of bed {bed!r} is {probability!r} (expected a number in [0, 1])")
        self.register_bed(bed)
        self.probability.labels(bed=bed).set(p)

    def record_alarm(self, bed: str, when: float | None = None) -> None:
        """Count an onset alarm for ``bed`` (at wall time ``when``, default now); the alarm is in progress."""
        self.register_bed(bed)
        self.alarms_raised.labels(bed=bed).inc()
        when = self._clock() if when is None else when
        self._alarm_active.onset(bed, when)
        self._alarm_rate.record(bed, when)

    def record_offset(self, bed: str) -> None:
        """The alarm of ``bed`` ended (its offset was published): ``ictal_alarm_active{bed}`` 0."""
        self.register_bed(bed)
        self._alarm_active.offset(bed)

    def alarm_active(self, bed: str) -> bool:
        """Current value of ``ictal_alarm_active`` for ``bed``."""
        return self._alarm_active.active(bed)

    def alarm_rate_per_24h(self, bed: str) -> float:
        """Current value of ``ictal_alarm_rate_per_24h`` for ``bed``."""
        return self._alarm_rate.rate(bed)

    def set_thresholds(self, bed: str, thresholds: AlarmThresholds) -> None:
        """Export the thresholds in force for ``bed``, and create its per-bed series (:meth:`register_bed`)."""
        self.register_bed(bed)
        self._alarm_active.set_max_duration(bed, thresholds.max_duration_s)
        self.tau_on.labels(bed=bed).set(thresholds.tau_on)
        self.tau_off.labels(bed=bed).set(thresholds.tau_off)
        self.min_duration.labels(bed=bed).set(thresholds.min_duration_s)
        self.merge_gap.labels(bed=bed).set(thresholds.merge_gap_s)
        self.max_duration.labels(bed=bed).set(thresholds.max_duration_s)
        self.refractory.labels(bed=bed).set(thresholds.refractory_s)

    def set_model_info(self, *, stack: str, backend: str, device: str, checkpoint_id: str,
                       version: str | None = None) -> None:
        """Export the model in use (``ictal_model_info``) and the build (``ictal_build_info``).

        Parameters
        ----------
        stack, backend, device, checkpoint_id : str
            The model served.
        version : str, optional
            The ictal version; default the installed distribution's (:func:`ictal_version`).
        """
        self.model_info.info({"stack": stack, "backend": backend, "device": device,
                              "checkpoint_id": checkpoint_id})
        self.build_info.info({"version": version if version is not None else ictal_version(),
                              "checkpoint_id": checkpoint_id, "stack": stack, "backend": backend, "device": device})

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

    ``server`` is the :class:`ictal.alarms.metrics_http.MetricsHTTPServer` (limits and counters: see
    that module); ``thread`` the thread running its loop.
    """

    server: MetricsHTTPServer
    thread: threading.Thread
    host: str
    port: int
    tls: bool = False

    @property
    def url(self) -> str:
        """``http://host:port/metrics`` (``https`` with TLS)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.close()


def serve_metrics(config: MetricsConfig, metrics: IctalMetrics) -> MetricsServer:
    """Serve ``metrics`` over HTTP (GET /metrics, read-only) on ``config.host:config.port``.

    The endpoint bounds what a client can hold (see :mod:`ictal.alarms.metrics_http`): 64 connections at
    once (the oldest half-sent request is dropped for a new one), 5 s to send a request, 8 KiB of
    request head, one request per connection.

    Parameters
    ----------
    config : MetricsConfig
        Bind address (loopback by default), port (0 = any free port), TLS and basic auth (both required
        off loopback; see :mod:`ictal.alarms.metrics_http`).
    metrics : IctalMetrics

    Returns
    -------
    server : MetricsServer
        Call ``close()`` to stop it. ``ictal_scoring_latency_bound_seconds`` is set from ``config``.

    Raises
    ------
    OSError
        If the address cannot be bound (the message names host and port), or a TLS file cannot be loaded.
    ValueError
        If the basic-auth password hash or file is unusable, or the host is not loopback without TLS
        and basic auth.
    """
    metrics.scoring_latency_bound.set(config.scoring_latency_bound_s)
    context = tls_context(config.tls) if config.tls is not None else None
    auth = BasicAuth(config.basic_auth) if config.basic_auth is not None else None
    server = MetricsHTTPServer(metrics.registry, config.host, config.port, ssl_context=context, basic_auth=auth)
    server.start()
    return MetricsServer(server, server.thread, config.host, server.port, tls=context is not None)
