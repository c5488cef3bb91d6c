"""The daemon: many beds, one model on one device, alarms out; its lifecycle under systemd.

Composition (one process)::

    BedWorker thread per bed (source -> BedSession.push -> bounded window queue)
        \\
         ScoringLoop thread (newest window of every bed, batches of max_batch, one Detector)
            -> BedSession.score -> events -> AlarmPublisher (journal fsync, then ZeroMQ PUB)
    keep-alive thread: STATUS= lines, WATCHDOG=1 only while the scoring loop makes progress
    main thread: signals (SIGTERM/SIGINT: drain and exit 0; SIGHUP: reload)

Lifecycle
---------
1. ``Daemon.from_config``: the checkpoint is loaded (``detector.inference.Detector``), its front-end
   config compared with the daemon's (a difference refuses the start, naming every differing field:
   the model would see inputs it was not trained on) and the model warmed up. With
   ``detector.mode: stream`` the checkpoint must be causal and ``scheduler.hop_s`` /
   ``min_history_s`` multiples of its ``stream_multiple_samples`` (:func:`stream_mode_refusals`; a refusal
   names each problem, ``ictal serve --check`` reports it too); the beds then queue
   ``StreamHop`` s and the scoring loop steps their carried states (``streaming.scoring``).
2. ``start``: journal (a relative path resolves in the working directory: ``/var/lib/ictal`` under
   systemd), metrics endpoint, publisher (its own heartbeat thread), bed threads, scoring thread, a
   ``daemon`` event (reason ``started``; the beds' first state events follow it), then ``READY=1``. Beds whose stream is not there yet do not
   delay READY: they connect when their stream appears; each bed says its monitored state from its start
   (``streaming.bed_worker``, "Monitored state"). Before READY the model is timed on a batch like the
   daemon's and compared with what the configured beds need (``streaming.capacity``): a daemon that
   cannot keep up says so (``daemon`` event ``over_capacity``, ERROR log, ``ictal_scoring_load_ratio``),
   and the keep-alive thread repeats the check on the measured scoring every ``STATUS_INTERVAL_S``.
3. SIGHUP (``systemctl reload``): the config file is read again. Thresholds (``alarms.thresholds`` or
   ``alarms.thresholds_file``) apply to every bed (an open alarm is closed, reason
   ``thresholds_reloaded``); beds added are started, beds removed are stopped (an open alarm is
   closed, reason ``bed_removed``), beds whose source changed are restarted; the other beds are not
   touched. Changes to the front-end, scheduler, detector or endpoints need a restart (logged). An
   invalid file is refused (logged) and the running config stays.
4. SIGTERM/SIGINT: ``STOPPING=1``; bed threads stop; the scoring loop finishes the batch in flight and
   scores what was queued (abandoned after ``shutdown_timeout_s``); open alarms are closed (reason
   ``shutdown``); a ``daemon`` event (reason ``stopped``); the publisher and the journal are closed;
   exit code 0. A thread still inside native code then (an abandoned batch in PyTorch, a bed blocked in
   liblsl) cannot be stopped, and finalising the interpreter under it aborts the process (C++
   ``std::terminate``: "terminate called without an active exception", exit 134, seen with 64 beds
   under SIGTERM): :meth:`Daemon.threads_left_running` names them, and ``ictal serve`` then ends the
   process with ``os._exit`` after flushing its logs, once everything durable is closed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.journal import Journal
from ictal.alarms.metrics import IctalMetrics, MetricsServer, serve_metrics
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent, BedStatus, ModelInfo
from ictal.alarms.thresholds import ThresholdsSource, threshold_warnings, thresholds_in_force
from ictal.detector import FS_HZ
from ictal.detector.config import FrontendConfig
from ictal.detector.montage import montage_channels
from ictal.streaming.bed import Scorer
from ictal.streaming.bed_worker import BedWorker
from ictal.streaming.capacity import measure_start
from ictal.streaming.config import BedConfig, DaemonConfig, EdfSourceConfig
from ictal.streaming.daemon_metrics import DaemonMetrics
from ictal.streaming.logfmt import kv
from ictal.streaming.notify import SystemdNotifier
from ictal.streaming.pipeline import stream_mode_problems
from ictal.streaming.scoring import ScoringLoop
from ictal.streaming.sources.base import Source

log = logging.getLogger("ictal.daemon")

STATUS_INTERVAL_S = 5.0
"""Seconds between STATUS= lines (and status log lines every ``STATUS_LOG_EVERY`` of them)."""

STATUS_LOG_EVERY = 12


class DaemonError(RuntimeError):
    """The daemon refuses to start; the message says what is wrong and what to do."""


def make_source(bed: BedConfig, frontend_config: FrontendConfig) -> Source:
    """The source of a bed from its config (``LslSource`` or ``EdfReplaySource``)."""
    if isinstance(bed.source, EdfSourceConfig):
        from ictal.streaming.sources.edf_replay import EdfReplaySource

        return EdfReplaySource(bed.source, frontend_config)
    from ictal.streaming.sources.lsl import LslSource

    return LslSource(bed.source, frontend_config)


def frontend_differences(checkpoint: FrontendConfig, daemon: FrontendConfig) -> list[str]:
    """Fields where two front-end configs differ, as ``"name: checkpoint X, daemon Y"`` lines."""
    a, b = checkpoint.model_dump(), daemon.model_dump()
    return [f"{name}: checkpoint {a[name]!r}, daemon config {b[name]!r}" for name in a if a[name] != b[name]]


def with_checkpoint_normalisation(config: DaemonConfig, trained: FrontendConfig | None) -> DaemonConfig:
    """The daemon config with ``frontend.normalisation`` taken from the checkpoint when the config leaves
    it unset.

    The normalisation belongs to the model (it was trained on inputs normalised so, and the choice is
    the checkpoint's: ``checkpoints/demo`` uses ``fixed_gain``), while the band-pass, notch and montage
    belong to the site. A config that sets ``frontend.normalisation`` insists on it: a checkpoint
    trained otherwise is refused by :func:`load_detector`. Unset, the checkpoint's is used and logged
    (``event=frontend_normalisation source=checkpoint``).

    Parameters
    ----------
    config : DaemonConfig
    trained : FrontendConfig or None
        The checkpoint's front-end (:func:`detector_frontend`); None for a scorer without a checkpoint.

    Returns
    -------
    DaemonConfig
        ``config`` itself when nothing is adopted.
    """
    if trained is None or "normalisation" in config.frontend.model_fields_set:
        return config
    if trained.normalisation == config.frontend.normalisation:
        return config
    frontend = config.frontend.model_copy(update={"normalisation": trained.normalisation})
    return config.model_copy(update={"frontend": frontend})


def _trained_frontend(detector: object) -> FrontendConfig | None:
    try:
        return detector_frontend(detector)
    except DaemonError:
        return None


def load_detector(config: DaemonConfig):
    """Load the configured checkpoint, check its front-end against the daemon's, warm it up.

    Parameters
    ----------
    config : DaemonConfig
        ``detector`` (checkpoint, device, backend, max_batch, warmup) and ``frontend``.

    Returns
    -------
    detector : detector.inference.Detector

    Raises
    ------
    DaemonError
        If the checkpoint directory is missing, cannot be loaded, or was trained with another
        front-end config (every differing field is named; ``frontend.normalisation`` only when the
        config sets it, see :func:`with_checkpoint_normalisation`).
    """
    path = Path(config.detector.checkpoint)
    if not path.is_dir():
        raise DaemonError(
            f"checkpoint {path} (resolved: {path.resolve()}) does not exist; expected a checkpoint directory "
            "(model.safetensors + metadata.json). Train one with `ictal train --config configs/train/cpu_small.yaml`"
            " or set detector.checkpoint in the config."
        )
    from ictal.detector.inference import Detector

    apply_model_threads(config)
    try:
        detector = Detector.from_checkpoint(path, device=config.detector.device, backend=config.detector.backend,
                                            max_batch=config.detector.max_batch)
    except (OSError, ValueError, KeyError) as exc:
        raise DaemonError(f"cannot load checkpoint {path}: {exc}") from exc
    trained = detector_frontend(detector)
    config = with_checkpoint_normalisation(config, trained)
    differences = frontend_differences(trained, config.frontend)
    if differences:
        raise DaemonError(
            f"checkpoint {path} was trained with another front-end than the daemon config's `frontend` "
            f"({'; '.join(differences)}); the model would see inputs unlike its training data. Set `frontend` "
            "in the config to the checkpoint's, or use a checkpoint trained with this front-end."
        )
    if config.detector.mode == "stream":
        problems = stream_mode_refusals(detector, config)
        if problems:
            raise DaemonError(f"detector.mode 'stream' refused for checkpoint {path}: {'; '.join(problems)}. "
                              "Use detector.mode 'window', or change what is named")
    if config.detector.warmup:
        t0 = time.monotonic()
        detector.warmup()
        if config.detector.mode == "stream":
            hop = round(config.scheduler.hop_s * FS_HZ)
            detector.step(np.zeros((1, detector.n_chans, hop), dtype=np.float32), detector.init_state(1))
        log.info(kv("model_warmed_up", seconds=time.monotonic() - t0))
    return detector


def apply_model_threads(config: DaemonConfig) -> int:
    """Set PyTorch's intra-op threads for the model (``detector.threads``; see its description).

    Returns
    -------
    threads : int
        The number now in force (``torch.get_num_threads()``).
    """
    import torch

    from ictal.detector.inference import resolve_device

    threads = config.detector.threads
    if threads is None and config.detector.mode == "stream" and resolve_device(config.detector.device).type == "cpu":
        threads = 1
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
        log.info(kv("model_threads", threads=threads, mode=config.detector.mode))
    return torch.get_num_threads()


def stream_mode_refusals(detector: object, config: DaemonConfig) -> list[str]:
    """Why ``detector.mode: stream`` cannot serve this checkpoint with this config (empty when it can).

    Parameters
    ----------
    detector : detector.inference.Detector
        The loaded checkpoint (``direction``, ``stream_multiple_samples``, ``lookahead_s``,
        ``frontend_config``).
    config : DaemonConfig
        ``scheduler.hop_s`` and ``scheduler.min_history_s``.

    Returns
    -------
    problems : list of str
        One sentence per problem: a bidirectional checkpoint (its probabilities need the future of a
        whole window), or ``streaming.pipeline.stream_mode_problems``.
    """
    direction = getattr(detector, "direction", None)
    if direction != "causal" or not callable(getattr(detector, "step", None)):
        return [f"the checkpoint's direction is {direction or 'bidirectional (declares none)'!s}; stream mode "
                "carries a model state from hop to hop, which only a causal checkpoint has"]
    return stream_mode_problems(
        detector_frontend(detector).normalisation, round(float(getattr(detector, "lookahead_s", 0.0)) * FS_HZ),
        round(config.scheduler.hop_s * FS_HZ), round(config.scheduler.min_history_s * FS_HZ),
        int(detector.stream_multiple_samples))


def detector_frontend(detector: object) -> FrontendConfig:
    """The front-end config a loaded detector's checkpoint records."""
    for attr in ("frontend_config",):
        value = getattr(detector, attr, None)
        if isinstance(value, FrontendConfig):
            return value
    checkpoint = getattr(detector, "checkpoint", None)
    value = getattr(checkpoint, "frontend_config", None)
    if isinstance(value, FrontendConfig):
        return value
    raise DaemonError(f"{type(detector).__name__} exposes no frontend_config; cannot check the checkpoint's "
                      "front-end against the daemon config")


def model_info(detector: object) -> ModelInfo:
    """The ``ModelInfo`` written into alarm events, from the detector's attributes."""
    return ModelInfo(model_id=str(getattr(detector, "model_id", "unknown")),
                     stack=str(getattr(detector, "stack", "unknown")),
                     backend=getattr(detector, "backend", None))


class Daemon:
    """Serve every configured bed with one detector; journal and publish the events.

    Parameters
    ----------
    config : DaemonConfig
    detector : Scorer
        Loaded and warmed up (``load_detector``); ``model_id``/``stack``/``backend``/``device``
        attributes, when present, are exported and written into events.
    config_path : path, optional
        The file re-read on SIGHUP; without it a reload needs a config object (:meth:`reload`).
    notifier : SystemdNotifier, optional
        Default one from the environment (``$NOTIFY_SOCKET``).
    source_factory : callable, optional
        ``(BedConfig, FrontendConfig) -> Source``; default :func:`make_source`.

    Attributes
    ----------
    metrics : IctalMetrics
    daemon_metrics : DaemonMetrics
    publisher : AlarmPublisher or None
        After :meth:`start`.
    metrics_server : MetricsServer or None
        After :meth:`start` (``metrics_server.url``).
    workers : dict of str to BedWorker
    scoring : ScoringLoop
    """

    def __init__(self, config: DaemonConfig, detector: Scorer, *, config_path: Path | str | None = None,
                 notifier: SystemdNotifier | None = None,
                 source_factory: Callable[[BedConfig, FrontendConfig], Source] = make_source) -> None:
        trained = _trained_frontend(detector)
        self.config = with_checkpoint_normalisation(config, trained)
        if self.config is not config:
            log.info(kv("frontend_normalisation", source="checkpoint", normalisation=self.config.frontend.normalisation,
                        detail="frontend.normalisation is not set in the config: the checkpoint's is used"))
        config = self.config
        self.detector = detector
        self.config_path = Path(config_path) if config_path is not None else None
        self.notifier = notifier if notifier is not None else SystemdNotifier()
        self.source_factory = source_factory
        self.model = model_info(detector)
        self.thresholds: AlarmThresholds
        self.thresholds_source: ThresholdsSource
        # the one precedence rule (alarms.thresholds); raises ThresholdsError (ictal serve: exit 2)
        self.thresholds, self.thresholds_source = thresholds_in_force(
            config.alarms, getattr(detector, "thresholds", None), getattr(detector, "model_id", None))
        self.metrics = IctalMetrics(alarm_rate_window_h=config.alarms.metrics.alarm_rate_window_h)
        self.daemon_metrics = DaemonMetrics(self.metrics.registry)
        self.metrics.set_model_info(stack=self.model.stack, backend=str(self.model.backend),
                                    device=str(getattr(detector, "device", "unknown")),
                                    checkpoint_id=self.model.model_id)
        self.journal: Journal | None = None
        self.publisher: AlarmPublisher | None = None
        self.metrics_server: MetricsServer | None = None
        self.workers: dict[str, BedWorker] = {}
        self._workers_lock = threading.Lock()
        max_batch = int(getattr(detector, "max_batch", config.detector.max_batch))
        self.scoring = ScoringLoop(detector, self._worker_list, self.publish, self.metrics, self.daemon_metrics,
                                   min(max_batch, config.detector.max_batch), mode=config.detector.mode)
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._keepalive = threading.Thread(target=self._keepalive_loop, name="ictal-keepalive", daemon=True)
        self._started = False
        self.watchdog_pings = 0

    # -- composition ------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: DaemonConfig, config_path: Path | str | None = None,
                    notifier: SystemdNotifier | None = None) -> Daemon:
        """Load the checkpoint (checked and warmed up, see :func:`load_detector`) and build the daemon.

        Raises
        ------
        DaemonError
            See :func:`load_detector`; also for an unreadable thresholds file.
        """
        detector = load_detector(config)
        return cls(config, detector, config_path=config_path, notifier=notifier)

    def _worker_list(self) -> list[BedWorker]:
        with self._workers_lock:
            return list(self.workers.values())

    def _make_worker(self, bed: BedConfig) -> BedWorker:
        source = self.source_factory(bed, self.config.frontend)
        return BedWorker(bed, source, self.config.frontend, self.config.scheduler, self.thresholds, self.publish,
                         self.metrics, model=self.model, queue_windows=self.config.detector.queue_windows,
                         no_data_s=self.config.no_data_s, on_window=self.scoring.wake,
                         daemon_metrics=self.daemon_metrics,
                         lookahead_s=float(getattr(self.detector, "lookahead_s", 0.0)),
                         mode=self.config.detector.mode,
                         stream_multiple_samples=int(getattr(self.detector, "stream_multiple_samples", 1)))

    def publish(self, event: AlarmEvent) -> None:
        """Journal and publish one event (any thread); a bed's events are stamped by its worker first
        (``BedWorker.stamp``: the UTC wall-clock times of their samples)."""
        if self.publisher is None:
            raise RuntimeError("Daemon.publish called before start()")
        self.publisher.publish(event)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the journal, serve metrics, bind the publisher, start beds and scoring; then READY=1.

        Raises
        ------
        alarms.journal.JournalError, alarms.publisher.PublisherError, OSError
            If the journal cannot be opened or a socket or port cannot be bound (nothing is left
            running then).
        """
        alarms = self.config.alarms
        self.journal = Journal(alarms.journal)
        try:
            self.metrics_server = serve_metrics(alarms.metrics, self.metrics)
            self.publisher = AlarmPublisher(alarms.publisher, self.journal, self.metrics,
                                            bed_states=self.bed_states)
        except BaseException:
            if self.metrics_server is not None:
                self.metrics_server.close()
            self.journal.close()
            raise
        log.info(kv("daemon_starting", journal=self.journal.path.resolve(), journal_head=self.journal.last_seq,
                    pub=self.publisher.pub_endpoint, catchup=self.publisher.catchup_endpoint,
                    metrics=self.metrics_server.url, model=self.model.model_id, stack=self.model.stack,
                    backend=self.model.backend, device=getattr(self.detector, "device", "unknown"),
                    beds=len(self.config.beds), hop_s=self.config.scheduler.hop_s, mode=self.config.detector.mode,
                    thresholds=self.thresholds_source, tau_on=self.thresholds.tau_on,
                    tau_off=self.thresholds.tau_off, min_duration_s=self.thresholds.min_duration_s))
        self._announce_thresholds("start")
        for bed in self.config.beds:
            self.metrics.set_thresholds(bed.bed_id, self.thresholds)
        with self._workers_lock:
            for bed in self.config.beds:
                self.workers[bed.bed_id] = self._make_worker(bed)
        self.daemon_metrics.beds.set(len(self.workers))
        self.publish(AlarmEvent(kind="daemon", reason="started", detail=(
            f"serving {len(self.workers)} bed(s) with model {self.model.model_id} ({self.model.stack}, "
            f"{self.model.backend}) at hop {self.config.scheduler.hop_s:g} s"
            + (" in stream mode (each bed's model state carried from hop to hop)"
               if self.config.detector.mode == "stream" else ""))))
        self._publish_foreign_thresholds()
        self._check_capacity_at_start()  # before the beds: a quiet measurement
        self.scoring.start()
        for worker in self._worker_list():
            worker.start()
        self._started = True
        self._keepalive.start()
        self.notifier.ready(self.status_line())
        log.info(kv("daemon_ready", beds=",".join(self.workers)))

    def _check_capacity_at_start(self) -> None:
        """Time the model on a batch like the daemon's; say so before READY if the beds cannot be served."""
        hop_s = self.config.scheduler.hop_s
        estimate, seconds = measure_start(self._score_like_serving(), len(self.workers), hop_s, self.scoring.max_batch,
                                          len(montage_channels(self.config.frontend.montage)))
        if estimate.n_beds:
            self.daemon_metrics.scoring_load.set(estimate.load_ratio)
        log.info(kv("capacity_measured", seconds=round(seconds, 3), detail=estimate.describe()))
        if estimate.load_ratio > 1.0:
            self.scoring.capacity.mark_over()
            detail = (f"cannot keep up at start: {estimate.describe()}; windows will be skipped and alarms come "
                      "late: serve fewer beds per process, a longer hop_s, or a faster device")
            log.error(kv("over_capacity", detail=detail))
            self.publish(AlarmEvent(kind="daemon", reason="over_capacity", detail=detail))

    def _score_like_serving(self):
        """What one batch of the daemon costs, as ``measure_start`` calls it: ``predict`` of B windows in window
        mode; in stream mode one ``step`` of B beds' states over one hop (``measure_start``'s windows
        give only the batch size)."""
        if self.config.detector.mode != "stream":
            return self.detector.predict
        hop = round(self.config.scheduler.hop_s * FS_HZ)
        detector = self.detector

        def step_one_hop(windows: np.ndarray) -> np.ndarray:
            batch = windows.shape[0]
            probs, _ = detector.step(np.zeros((batch, windows.shape[1], hop), dtype=np.float32),
                                     detector.init_state(batch))
            return probs

        return step_one_hop

    def _check_capacity(self) -> None:
        """The running check (``streaming.capacity``): gauges always, an event at a transition."""
        n_beds, hop_s = len(self._worker_list()), self.config.scheduler.hop_s
        busy, throughput, _ = self.scoring.capacity.snapshot()
        self.daemon_metrics.scoring_busy.set(busy)
        if throughput:
            self.daemon_metrics.scoring_load.set(n_beds / hop_s / throughput)
        transition, detail = self.scoring.capacity.judge(n_beds, hop_s)
        if transition == "over_capacity":
            log.error(kv("over_capacity", detail=f"cannot keep up: {detail}"))
            self.publish(AlarmEvent(kind="daemon", reason="over_capacity", detail=f"cannot keep up: {detail}"))
        elif transition == "capacity_ok":
            log.info(kv("capacity_ok", detail=detail))
            self.publish(AlarmEvent(kind="daemon", reason="capacity_ok", detail=f"keeps up again: {detail}"))

    def status_line(self) -> str:
        """One line: beds connected, windows scored and skipped, last journal sequence number."""
        workers = self._worker_list()
        connected = sum(1 for w in workers if w.connected)
        monitored = sum(1 for w in workers if w.status().state == "monitored")
        skipped = sum(w.session.windows_discarded for w in workers if w.session is not None)
        head = self.journal.last_seq if self.journal is not None else 0
        return (f"{monitored}/{len(workers)} beds monitored, {connected}/{len(workers)} connected, "
                f"{self.scoring.windows_scored} windows scored, "
                f"{skipped} skipped, journal at {head}")

    def _keepalive_loop(self) -> None:
        watchdog_s = self.notifier.watchdog_s
        period = min(STATUS_INTERVAL_S, watchdog_s / 2) if watchdog_s else STATUS_INTERVAL_S
        last_progress = -1
        last_status = 0.0
        n_status = 0
        while not self._stop.wait(period):
            progress = self.scoring.progress
            if watchdog_s and progress != last_progress and self.scoring.alive:
                self.notifier.watchdog()
                self.watchdog_pings += 1
            elif watchdog_s and progress == last_progress:
                log.error(kv("scoring_stalled", seconds=period, detail="no progress of the scoring loop; "
                             "watchdog keep-alive withheld"))
            last_progress = progress
            now = time.monotonic()
            if now - last_status >= STATUS_INTERVAL_S:
                last_status = now
                self._check_capacity()
                line = self.status_line()
                self.notifier.status(line)
                n_status += 1
                if n_status % STATUS_LOG_EVERY == 1:
                    log.info(kv("status", detail=line))

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (signal-safe)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask :meth:`run` to reload the config file (signal-safe)."""
        self._reload_requested.set()

    def run(self) -> int:
        """Start, then serve until SIGTERM/SIGINT (reloading on SIGHUP); shut down; return the exit code.

        Must be called from the main thread (it installs the signal handlers).
        """
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        try:
            if not self._started:
                self.start()
            while not self._stop.wait(0.25):
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self.reload()
                if self.scoring.error is not None:
                    log.error(kv("daemon_failing", detail="the scoring loop died", error=str(self.scoring.error)))
                    self.shutdown()
                    return 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0 if self.shutdown() else 1

    def shutdown(self) -> bool:
        """Drain and stop (see the module docstring); idempotent. True when everything closed in order."""
        if not self._started:
            return True
        self._started = False
        self._stop.set()
        self.notifier.stopping()
        t0 = time.monotonic()
        log.info(kv("daemon_stopping", detail=self.status_line()))
        workers = self._worker_list()
        for worker in workers:
            worker._stop.set()
        for worker in workers:
            if not worker.stop(timeout_s=2.0):
                log.warning(kv("bed_thread_stuck", bed=worker.bed_id, detail="source read did not return in 2 s"))
        drained = self.scoring.stop(self.config.shutdown_timeout_s)
        if not drained:
            log.warning(kv("batch_abandoned", timeout_s=self.config.shutdown_timeout_s,
                           detail="the batch in flight did not finish; its windows are not scored"))
        for worker in workers:
            self._close_bed(worker, "shutdown")
        self.publish(AlarmEvent(kind="daemon", reason="stopped", detail=self.status_line()))
        self._keepalive.join(timeout=STATUS_INTERVAL_S + 1)
        assert self.publisher is not None and self.journal is not None
        self.publisher.close()
        head = self.journal.last_seq
        self.journal.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.notifier.close()
        log.info(kv("daemon_stopped", seconds=time.monotonic() - t0, journal_head=head))
        return True

    def bed_states(self) -> dict[str, BedStatus]:
        """Every configured bed's monitored state, for the heartbeats (any thread; cheap).

        Returns
        -------
        states : dict of str to alarms.schema.BedStatus
            By bed id (``streaming.bed_worker``, "Monitored state").
        """
        states = {}
        for worker in self._worker_list():
            snapshot = worker.status()
            states[worker.bed_id] = BedStatus(state=snapshot.state, reason=snapshot.reason, since=snapshot.since)
        return states

    def threads_left_running(self) -> list[str]:
        """Names of the daemon's threads still alive (call after :meth:`shutdown`).

        The scoring thread of an abandoned batch, or a bed thread blocked in its source, is still
        inside native code: the process must then end without finalising the interpreter (see the
        module docstring, step 4).

        Returns
        -------
        names : list of str
            Thread names (``ictal-scoring``, ``ictal-bed-<bed>``); empty when every thread ended.
        """
        names = [f"ictal-bed-{w.bed_id}" for w in self._worker_list() if w.alive]
        if self.scoring.alive:
            names.append("ictal-scoring")
        return names

    def _close_bed(self, worker: BedWorker, reason: str) -> None:
        if worker.session is None or worker.closed:
            return
        with worker.lock:
            worker.closed = True
            events = worker.session.close(reason)
        for event in events:
            self.publish(worker.stamp(event))

    # -- thresholds -------------------------------------------------------------------------------

    def _announce_thresholds(self, when: str) -> None:
        """Log the thresholds in force with their source (INFO), what is unusual about them and an
        accepted foreign thresholds file (WARNING); ``when`` is ``start`` or ``reload``."""
        th, source = self.thresholds, self.thresholds_source
        log.info(kv("thresholds_in_force", at=when, source=source, **th.model_dump()))
        for warning in threshold_warnings(th):
            log.warning(kv("thresholds_unusual", at=when, source=source, detail=warning))
        foreign = getattr(source, "foreign_checkpoint_id", None)
        if foreign is not None:
            log.warning(kv("foreign_thresholds", at=when, file=self.config.alarms.thresholds_file,
                           tuned_for=foreign, checkpoint=self.model.model_id,
                           detail="accepted by alarms.accept_thresholds_of_checkpoint"))

    def _publish_foreign_thresholds(self) -> None:
        """A ``daemon`` event (reason ``foreign_thresholds``) when the thresholds file in force was tuned
        for another checkpoint and accepted; at start and after every reload."""
        foreign = getattr(self.thresholds_source, "foreign_checkpoint_id", None)
        if foreign is not None:
            self.publish(AlarmEvent(kind="daemon", reason="foreign_thresholds", detail=(
                f"thresholds file {self.config.alarms.thresholds_file} was tuned for checkpoint {foreign}, not for "
                f"the checkpoint served {self.model.model_id}; accepted by alarms.accept_thresholds_of_checkpoint")))

    # -- reload -----------------------------------------------------------------------------------

    def reload(self, new_config: DaemonConfig | None = None) -> bool:
        """Apply a new config: thresholds and the bed list (see the module docstring).

        Parameters
        ----------
        new_config : DaemonConfig, optional
            Default: the config file given at construction, read again.

        Returns
        -------
        applied : bool
            False when the new config could not be read or validated (the running one stays).
        """
        from ictal.alarms.thresholds import ThresholdsFileError

        self.notifier.reloading()
        try:
            if new_config is None:
                if self.config_path is None:
                    log.error(kv("reload_refused", detail="no config file to re-read"))
                    return False
                from ictal.config import ConfigError, load_config

                try:
                    new_config = load_config(self.config_path, kind="daemon")
                except ConfigError as exc:
                    log.error(kv("reload_refused", file=self.config_path, detail=str(exc)))
                    return False
            new_config = with_checkpoint_normalisation(new_config, _trained_frontend(self.detector))
            try:
                thresholds, thresholds_source = thresholds_in_force(
                    new_config.alarms, getattr(self.detector, "thresholds", None),
                    getattr(self.detector, "model_id", None))
            except (ThresholdsFileError, ValueError) as exc:
                log.error(kv("reload_refused", detail=str(exc)))
                return False
            for section in ("frontend", "scheduler", "detector", "log_level", "shutdown_timeout_s", "no_data_s"):
                if getattr(new_config, section) != getattr(self.config, section):
                    log.warning(kv("reload_needs_restart", section=section,
                                   detail="changed in the file; applied at the next restart"))
            for part in ("journal", "publisher", "metrics"):
                if getattr(new_config.alarms, part) != getattr(self.config.alarms, part):
                    log.warning(kv("reload_needs_restart", section=f"alarms.{part}",
                                   detail="changed in the file; applied at the next restart"))
            changed_thresholds = thresholds != self.thresholds
            self.thresholds, self.thresholds_source = thresholds, thresholds_source
            old_beds = {bed.bed_id: bed for bed in self.config.beds}
            new_beds = {bed.bed_id: bed for bed in new_config.beds}
            removed = [b for b in old_beds if b not in new_beds or new_beds[b] != old_beds[b]]
            added = [b for b in new_beds if b not in old_beds or new_beds[b] != old_beds[b]]
            for bed_id in removed:
                with self._workers_lock:
                    worker = self.workers.pop(bed_id, None)
                if worker is not None:
                    worker.stop(timeout_s=2.0)
                    self._close_bed(worker, "bed_removed")
                    self.metrics.forget_bed(bed_id)
                    log.info(kv("bed_removed", bed=bed_id))
            if changed_thresholds:
                for worker in self._worker_list():
                    worker.thresholds = thresholds
                    if worker.session is not None:
                        with worker.lock:
                            events = worker.session.set_thresholds(thresholds)
                        for event in events:
                            self.publish(worker.stamp(event))
                    self.metrics.set_thresholds(worker.bed_id, thresholds)
                log.info(kv("thresholds_reloaded", source=thresholds_source, **thresholds.model_dump()))
            self._announce_thresholds("reload")
            for bed_id in added:
                worker = self._make_worker(new_beds[bed_id])
                self.metrics.set_thresholds(bed_id, thresholds)  # its series exist from the start, at 0
                with self._workers_lock:
                    self.workers[bed_id] = worker
                worker.start()
                log.info(kv("bed_added", bed=bed_id, source=new_beds[bed_id].source.type))
            self.config = self.config.model_copy(update={"beds": new_config.beds, "alarms": self.config.alarms.model_copy(
                update={name: getattr(new_config.alarms, name) for name in (
                    "thresholds", "thresholds_file", "use_checkpoint_thresholds", "accept_thresholds_of_checkpoint")})})
            self.daemon_metrics.beds.set(len(self.workers))
            self.publish(AlarmEvent(kind="daemon", reason="reloaded", detail=(
                f"beds added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}; thresholds "
                f"{'changed' if changed_thresholds else 'unchanged'}")))
            self._publish_foreign_thresholds()
            return True
        finally:
            self.notifier.ready(self.status_line())
