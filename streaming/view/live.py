"""`attach_view`: feed a :class:`~ictal.streaming.view.hub.ViewHub` from a running daemon, without touching its code paths.

Where each piece of the page comes from (all existing seams of ``streaming.daemon.Daemon``):

- EEG: every bed's source is wrapped (:class:`TappedSource`, through ``Daemon.source_factory``, which
  ``Daemon._make_worker`` calls for each bed at start and reload): each chunk the bed thread reads is
  handed to ``ViewHub.on_chunk`` (a resampling of the chunk under the hub's lock) and returned unchanged.
- Probabilities: ``ScoringLoop.on_scored(bed, pending, result)``, called by the scoring thread after
  each window; an observer already set there is kept and called first.
- Events (alarms, signal quality, monitored-state changes): the journal, read by the feed's own thread
  every :data:`POLL_S` through ``Daemon.journal.since`` (the journal's lock, as the catch-up endpoint
  does; a page of events takes about 1.5 ms per 1,000). Only journaled events reach the page, so the
  alarm list is the journal's.
- Monitored states and thresholds: ``Daemon.bed_states()`` and ``Daemon.thresholds``, read by the same
  thread.

:func:`attach_view` must be called before ``Daemon.start`` (the sources are made there).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ictal.alarms.journal import JournalError
from ictal.detector.config import FrontendConfig
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import BedConfig
from ictal.streaming.sources.base import Source
from ictal.streaming.view.hub import ViewHub

log = logging.getLogger("ictal.view")

POLL_S: float = 0.5
"""Period of the journal and state reads (the page updates every second)."""

JOURNAL_PAGE: int = 1000
"""Events read from the journal per call (catch-up after a restart of the view takes a few pages)."""


class TappedSource(Source):
    """A bed's source whose chunks are also handed to the view hub.

    Parameters
    ----------
    inner : Source
        The bed's real source; everything but :meth:`read` is delegated to it unchanged.
    bed_id : str
    hub : ViewHub
    """

    def __init__(self, inner: Source, bed_id: str, hub: ViewHub) -> None:
        self.inner = inner
        self.bed_id = bed_id
        self.hub = hub
        self.labels = inner.labels

    @property
    def fs(self) -> float:
        return self.inner.fs

    def open(self) -> None:
        self.inner.open()

    def read(self, timeout_s: float) -> Chunk | None:
        chunk = self.inner.read(timeout_s)
        if chunk is not None:
            self.hub.on_chunk(self.bed_id, chunk)
        return chunk

    def close(self) -> None:
        self.inner.close()

    def clock_offset_s(self) -> float | None:
        return self.inner.clock_offset_s()

    @property
    def exhausted(self) -> bool:
        return self.inner.exhausted

    def __getattr__(self, name: str):
        # source-specific attributes the bed worker reads (e.g. LslSource's notices)
        return getattr(self.inner, name)


class LiveFeed:
    """The thread that copies journal events, bed states and thresholds into the hub.

    Parameters
    ----------
    daemon : streaming.daemon.Daemon
        Started after the feed is attached; the feed waits for its journal.
    hub : ViewHub
    """

    def __init__(self, daemon, hub: ViewHub) -> None:
        self.daemon = daemon
        self.hub = hub
        self._stop = threading.Event()
        self._journal_id = None
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name="ictal-view-feed", daemon=True)

    def start(self) -> LiveFeed:
        self._thread.start()
        return self

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def poll(self) -> None:
        """One read of the journal, the states and the thresholds (the thread calls it every POLL_S)."""
        journal = self.daemon.journal
        if journal is not None:
            if journal.journal_id != self._journal_id:  # a recreated journal starts again at 1
                self._journal_id, self._seq = journal.journal_id, 0
            while True:
                events = journal.since(self._seq, limit=JOURNAL_PAGE)
                for event in events:
                    self.hub.on_event(event)
                    self._seq = max(self._seq, event.journal_seq or self._seq)
                if len(events) < JOURNAL_PAGE:
                    break
        for bed_id, status in self.daemon.bed_states().items():
            self.hub.on_state(bed_id, status)
        th = self.daemon.thresholds
        self.hub.set_thresholds(th.tau_on, th.tau_off)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except JournalError as exc:
                if not getattr(self.daemon, "_started", True):  # the daemon shut down and closed its journal
                    log.info("view_feed_stopped: the daemon has stopped (%s)", exc)
                    return
                log.warning("view_feed_journal_unreadable: %s; retried at the next read", exc)
            except Exception:  # noqa: BLE001 - the page must never take the daemon down; logged, retried
                log.exception("view_feed_failed: the page misses updates until the next read")


def attach_view(daemon, hub: ViewHub) -> LiveFeed:
    """Hook ``hub`` to ``daemon`` (before ``daemon.start()``); returns the feed, started.

    Parameters
    ----------
    daemon : streaming.daemon.Daemon
    hub : ViewHub

    Returns
    -------
    feed : LiveFeed
        Close it after the daemon's shutdown.

    Raises
    ------
    RuntimeError
        If the daemon is already started (its sources exist and would not be tapped).
    """
    if getattr(daemon, "_started", False):
        raise RuntimeError("attach_view must be called before Daemon.start(): the beds' sources are made there")
    make = daemon.source_factory

    def tapped_factory(bed: BedConfig, frontend: FrontendConfig) -> Source:
        return TappedSource(make(bed, frontend), bed.bed_id, hub)

    daemon.source_factory = tapped_factory
    previous: Callable | None = daemon.scoring.on_scored

    def on_scored(bed_id, pending, result) -> None:
        if previous is not None:
            previous(bed_id, pending, result)
        hub.on_scored(bed_id, pending, result)

    daemon.scoring.on_scored = on_scored
    hub.set_thresholds(daemon.thresholds.tau_on, daemon.thresholds.tau_off)
    for bed in daemon.config.beds:
        hub.bed(bed.bed_id)
    return LiveFeed(daemon, hub).start()


class LiveView:
    """The page of a running daemon: its hub, journal feed and server (what ``ictal serve`` starts).

    Attributes
    ----------
    hub : ViewHub
    feed : LiveFeed
    server : streaming.view.server.ViewServer
    """

    def __init__(self, hub: ViewHub, feed: LiveFeed, server) -> None:
        self.hub, self.feed, self.server = hub, feed, server

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        """Stop the feed and the server (after the daemon's shutdown); idempotent."""
        self.feed.close()
        self.server.close()


def start_live_view(daemon, config) -> LiveView:
    """Attach a hub to ``daemon`` (before ``daemon.start()``) and serve the page.

    Parameters
    ----------
    daemon : streaming.daemon.Daemon
    config : streaming.view.config.ViewConfig

    Returns
    -------
    view : LiveView
        Listening; close it after the daemon's shutdown.

    Raises
    ------
    OSError
        The page's port cannot be bound (nothing is left running then).
    RuntimeError
        The daemon is already started.
    """
    from ictal.streaming.view.server import ViewServer

    hub = ViewHub(config.minutes, mode="live")
    feed = attach_view(daemon, hub)
    try:
        server = ViewServer(hub, config).start()
    except BaseException:
        feed.close()
        raise
    log.info("view_serving url=%s minutes=%g", server.url, config.minutes)
    return LiveView(hub, feed, server)
