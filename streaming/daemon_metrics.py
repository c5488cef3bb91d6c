"""The daemon's own Prometheus metrics, registered beside ``alarms.metrics.IctalMetrics`` in its registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SCORING_LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Newest sample of a window entering the daemon -> its probabilities at the post-processor (s)."""

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class DaemonMetrics:
    """Scoring-loop metrics not covered by ``IctalMetrics``.

    Parameters
    ----------
    registry : CollectorRegistry
        The registry of the ``IctalMetrics`` instance served at ``/metrics``.

    Attributes
    ----------
    windows_skipped : Counter ``ictal_windows_skipped_total{bed}``
        Windows dropped because scoring fell behind (the daemon skipped to the newest window).
    scoring_latency : Histogram ``ictal_scoring_latency_seconds{bed}``
        From the arrival of the chunk that completed a window to its probabilities reaching the
        post-processor (front-end, queueing, batching and inference).
    batch_size : Histogram ``ictal_scoring_batch_windows``
        Windows per forward pass.
    queue_windows : Gauge ``ictal_scoring_queue_windows``
        Windows waiting to be scored, all beds.
    loop_iterations : Counter ``ictal_scoring_loop_iterations_total``
        Iterations of the scoring loop (idle ones included): flat means a hung loop.
    beds : Gauge ``ictal_beds``
        Beds configured.
    source_refusals : Counter ``ictal_source_refusals_total{bed}``
        Times a bed's (re)connecting stream was refused (missing channel, unit, rate), each also a
        ``source_error`` signal-quality event.
    clock_jumps_back : Counter ``ictal_clock_jumps_back_total{bed}``
        Times a stream's timestamps went back within one connection (``clock_jump_back`` events).
    clock_jump_back_seconds : Counter ``ictal_clock_jump_back_seconds_total{bed}``
        Seconds they went back in all.
    effective_rate : Gauge ``ictal_stream_effective_rate_hz{bed}``
        Sampling rate measured from the stream's timestamps (absent until measured).
    rate_mismatch : Gauge ``ictal_stream_rate_mismatch{bed}``
        1 while the measured rate differs from the announced one beyond the tolerance (alarms
        suppressed), else 0.
    bed_monitored : Gauge ``ictal_bed_monitored{bed}``
        1 while the bed is monitored (a window of its current connection was scored and its input was
        usable), else 0 (``streaming.bed_worker``, "Monitored state"). Set for every configured bed
        from its start: ``ictal_bed_monitored == 0`` is the alert a site needs.
    bed_state : Gauge ``ictal_bed_state{bed,state}``
        One-hot: 1 for the bed's current state (``connecting``, ``monitored``, ``not_monitored``).
    bed_failures : Counter ``ictal_bed_failures_total{bed}``
        Unexpected failures of a bed's thread (each reported, then the bed restarted after a back-off).
    scoring_busy : Gauge ``ictal_scoring_busy_ratio``
        Fraction of the last ``CAPACITY_SPAN_S`` seconds the scoring loop spent in the model (1: no
        spare time; windows are then being skipped or soon will be).
    scoring_load : Gauge ``ictal_scoring_load_ratio``
        Windows per second the configured beds need (beds / hop_s) divided by the windows per second the
        model scored per second of inference, measured (start: a timed batch; then over the last
        ``CAPACITY_SPAN_S``). Above 1 the daemon cannot keep up with its beds (``daemon`` event
        ``over_capacity``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.windows_skipped = Counter("ictal_windows_skipped", "Windows dropped because scoring fell behind "
                                       "(skipped to the newest window).", ["bed"], registry=registry)
        self.scoring_latency = Histogram(
            "ictal_scoring_latency_seconds", "Arrival of the chunk completing a window -> its probabilities at "
            "the post-processor (s).", ["bed"], buckets=SCORING_LATENCY_BUCKETS_S, registry=registry)
        self.batch_size = Histogram("ictal_scoring_batch_windows", "Windows per forward pass.",
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.queue_windows = Gauge("ictal_scoring_queue_windows", "Windows waiting to be scored, all beds.",
                                   registry=registry)
        self.loop_iterations = Counter("ictal_scoring_loop_iterations", "Scoring loop iterations (idle "
                                       "included); flat while the loop hangs.", registry=registry)
        self.beds = Gauge("ictal_beds", "Beds configured.", registry=registry)
        self.source_refusals = Counter("ictal_source_refusals", "Connections of a bed's stream refused "
                                       "(missing channel, unit or rate).", ["bed"], registry=registry)
        self.clock_jumps_back = Counter("ictal_clock_jumps_back", "Times a stream's timestamps went back "
                                        "within one connection.", ["bed"], registry=registry)
        self.clock_jump_back_seconds = Counter("ictal_clock_jump_back_seconds", "Seconds a stream's "
                                               "timestamps went back, in all.", ["bed"], registry=registry)
        self.effective_rate = Gauge("ictal_stream_effective_rate_hz", "Sampling rate measured from the "
                                    "stream's timestamps (Hz).", ["bed"], registry=registry)
        self.bed_monitored = Gauge("ictal_bed_monitored", "1 while the bed is monitored (scored, input "
                                   "usable), else 0.", ["bed"], registry=registry)
        self.bed_state = Gauge("ictal_bed_state", "1 for the bed's current state (connecting, monitored, "
                               "not_monitored).", ["bed", "state"], registry=registry)
        self.bed_failures = Counter("ictal_bed_failures", "Unexpected failures of a bed's thread (reported, "
                                    "restarted after a back-off).", ["bed"], registry=registry)
        self.scoring_busy = Gauge("ictal_scoring_busy_ratio", "Fraction of recent time the scoring loop spent "
                                  "in the model.", registry=registry)
        self.scoring_load = Gauge("ictal_scoring_load_ratio", "Windows/s the configured beds need divided by "
                                  "the windows/s the model achieves (above 1: cannot keep up).", registry=registry)
        self.rate_mismatch = Gauge("ictal_stream_rate_mismatch", "1 while the measured rate differs from "
                                   "the announced one (alarms suppressed).", ["bed"], registry=registry)
