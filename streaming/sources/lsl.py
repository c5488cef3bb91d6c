"""`LslSource`: a bed's EEG from a Lab Streaming Layer inlet (an amplifier, or ``ictal replay``).

Stream identity (no silent patient swap): a bed whose config selects its stream by ``name`` is bound,
at its first connection, to that stream's ``source_id`` and ``hostname`` (:class:`StreamIdentity`).
Every later connection takes only a stream with the same ``source_id`` and ``hostname``; another
stream with the same name (a second amplifier, another patient) is refused and reported once per loss
as a ``stream_identity_mismatch`` notice naming both. An outlet with an empty ``source_id`` is bound
to its ``hostname``, ``name`` and channel count instead: weaker, since two such devices on one host
with the same name and channel count cannot be told apart (configure a ``source_id`` to be safe).
A config that gives ``source_id`` is bound from the start (the resolution predicate names it).
At the first connection, two or more matching streams at once are not a choice the source can make:
none is taken and a ``stream_ambiguous`` notice names them.

Resolution runs in a background thread (one per source), so ``read`` never blocks its caller longer
than its ``timeout_s``: a ``pylsl.ContinuousResolver`` keeps querying the network (multicast and the
``KnownPeers`` of unicast discovery) while the stream is missing, the first matching stream is opened
(``info``, ``open_stream`` and ``time_correction``, each waiting up to ``INLET_OPEN_TIMEOUT_S``) and handed
to the reading thread. It never gives up: after a loss it looks for the stream until ``close()``.
A stream that cannot be opened, or is refused (montage, unit, rate), is tried again ``reconnect_s``
later. When no matching stream has been seen ``resolve_timeout_s`` after the search began (at
``open`` and after each loss) a ``stream_not_found`` notice is raised, once per search.

Rates: the nominal rate must lie in [``detector.resample.MIN_INPUT_FS_HZ``,
``detector.resample.MAX_INPUT_FS_HZ``] (100-4096 Hz); a rate whose ratio to 256 Hz has no small
factors (250.1 Hz) is treated as :func:`ictal.detector.resample.rational_rate` (250.09987 Hz, stated
precision there): ``fs`` and ``Chunk.fs`` carry that rate and ``announced_fs`` the stream's own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from ictal.detector.config import FrontendConfig
from ictal.detector.montage import MontageMapping, map_montage
from ictal.detector.resample import MAX_INPUT_FS_HZ, MIN_INPUT_FS_HZ, rational_rate
from ictal.detector.units import scale_to_uv
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import LslSourceConfig
from ictal.streaming.lsl_config import configure_liblsl
from ictal.streaming.sources.base import Source

configure_liblsl()  # before any LSL call: liblsl reads its configuration once

log = logging.getLogger(__name__)

XDF_UNITS: dict[str, str] = {"microvolts": "uV", "millivolts": "mV", "volts": "V", "nanovolts": "nV"}
"""Unit words of the XDF meta-data convention, mapped to the symbols ``detector.units`` reads."""

TIME_CORRECTION_EVERY_S = 5.0
"""Seconds between refreshes of the clock offset (liblsl measures it in the background)."""

RATE_SPAN_S = 20.0
"""Sliding span (s of timestamps) over which the effective sampling rate is measured."""

RATE_MIN_SPAN_S = 10.0
"""Contiguous samples (s of timestamps) needed before the effective rate is judged: over 10 s, the
timestamp jitter of a chunked USB/Wi-Fi amplifier (tens of ms per chunk) moves the estimate by well
under 1 %."""

RATE_TOLERANCE = 0.02
"""Largest relative difference between the effective and the nominal rate that is accepted (2 %):
crystal drift of amplifiers is ~1e-4, jitter over ``RATE_MIN_SPAN_S`` below 1 %; a wrong nominal rate
(200 Hz announced as 256 Hz: -22 %) is far beyond it. A mismatch ends when the difference is back
within ``RATE_TOLERANCE / 2`` (hysteresis: no flapping at the border)."""

RESOLVER_POLL_S = 0.05
"""Seconds between two looks at the continuous resolver's results: the stream is taken within 50 ms
of its discovery (liblsl itself queries every 0.5 s by default, ``continuous_resolve_interval``)."""

RESOLVER_FORGET_S = 5.0
"""A stream not heard of for this long leaves the resolver's results (pylsl's default): a lost outlet
may still be listed for 5 s; opening it fails and is retried ``reconnect_s`` later."""

INLET_OPEN_TIMEOUT_S = 5.0
"""Longest wait of each step of opening an inlet on a resolved stream (``info``, ``open_stream``,
``time_correction``), or ``resolve_timeout_s`` when longer: liblsl's first ``time_correction`` alone
sends 8 probes 64 ms apart (~0.5 s), so a short resolve timeout must not cut it."""

RESOLVER_REFRESH_S = 2.0
"""While no usable stream is listed, the continuous resolver is replaced by a fresh one this often. A
fresh resolver lists the live outlets in its first query wave (20 ms on loopback multicast, ~0.5 s
with unicast KnownPeers), while an old one lists an outlet that appeared later only at one of its
next waves (0.2-1.2 s measured on loopback) and keeps a dead outlet for ``RESOLVER_FORGET_S``. 2 s
leaves unicast discovery four times the time it needs."""

NOTICE_REASONS: tuple[str, ...] = (
    "clock_jump_back", "rate_mismatch", "rate_ok", "stream_not_found", "stream_identity_mismatch",
    "stream_ambiguous",
)
"""Every ``SourceNotice.reason`` this source raises (see :class:`SourceNotice`)."""


@dataclass(frozen=True)
class SourceNotice:
    """Something about the stream that the bed must report (drained with ``LslSource.take_notices``).

    Attributes
    ----------
    reason : str
        One of ``NOTICE_REASONS``:

        - ``clock_jump_back``: timestamps went back within one connection (samples kept).
        - ``rate_mismatch``: the timestamps advance at a rate other than the nominal one.
        - ``rate_ok``: they match again.
        - ``stream_not_found``: no stream matching the selector (and the binding) was seen within
          ``resolve_timeout_s`` of the start of a search (``open``, or a loss); once per search. The
          source keeps looking; the next ``connected`` True ends the condition.
        - ``stream_identity_mismatch``: a stream matching the selector was refused because it is not
          the one the bed is bound to (detail: bound and refused ``source_id``/``hostname``/uid); once per
          distinct refused stream (uid) per search. The source keeps looking for its own stream.
        - ``stream_ambiguous``: at the first connection several streams matched the selector and
          none was taken (detail: their ids); once per distinct set per search.
    detail : str
        Human-readable description with the measured values.
    first_index : int
        Absolute sample index (at the nominal rate) of the first sample the notice applies to (for the
        stream notices: the index the next sample would have, 0 before any sample).
    value : float
        The measured quantity: seconds the clock went back, the effective rate in Hz; for the stream
        notices the seconds since the search began.
    """

    reason: str
    detail: str
    first_index: int
    value: float


@dataclass(frozen=True)
class StreamIdentity:
    """What binds a bed to one device: the stream facts that survive the device's restarts.

    Attributes
    ----------
    name, source_id, hostname : str
        As the outlet announces them (``source_id`` may be ``""``).
    channel_count : int
    uid : str
        The outlet instance (changes at every restart; not part of the binding).
    """

    name: str
    source_id: str
    hostname: str
    channel_count: int
    uid: str

    @classmethod
    def of(cls, info: pylsl.StreamInfo) -> StreamIdentity:
        """The identity of a resolved or connected stream."""
        return cls(info.name(), info.source_id(), info.hostname(), info.channel_count(), info.uid())

    def same_device(self, other: StreamIdentity) -> bool:
        """Whether ``other`` is the device this identity was bound to.

        Same non-empty ``source_id`` and ``hostname``; for an empty ``source_id``, same ``hostname``,
        ``name`` and ``channel_count`` (weaker: see the module docstring).
        """
        if self.source_id:
            return other.source_id == self.source_id and other.hostname == self.hostname
        return (not other.source_id and other.hostname == self.hostname and other.name == self.name
                and other.channel_count == self.channel_count)

    def describe(self) -> str:
        """``source_id 'x' on host 'h'`` (or the weaker identity when the source_id is empty)."""
        if self.source_id:
            return f"source_id {self.source_id!r} on host {self.hostname!r}"
        return (f"empty source_id, name {self.name!r}, {self.channel_count} channels on host "
                f"{self.hostname!r}")


def channels_from_description(info: pylsl.StreamInfo) -> tuple[list[str], list[str]]:
    """Channel labels and units from an LSL stream description (XDF EEG meta-data convention).

    Parameters
    ----------
    info : pylsl.StreamInfo
        Full info of a stream (from an inlet's ``info()``, which carries ``desc``).

    Returns
    -------
    labels, units : list of str, list of str
        One per channel, in stream order; a unit is ``""`` when the description gives none.

    Raises
    ------
    ValueError
        If the description lists no channels or a number different from ``channel_count``.
    """
    labels: list[str] = []
    units: list[str] = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        labels.append(channel.child_value("label").strip())
        units.append(channel.child_value("unit").strip())
        channel = channel.next_sibling("channel")
    if len(labels) != info.channel_count():
        raise ValueError(
            f"LSL stream {info.name()!r} describes {len(labels)} channels in desc/channels/channel, expected "
            f"one per channel ({info.channel_count()}); the montage cannot be mapped without labels"
        )
    return labels, units


class LslSource(Source):
    """EEG from an LSL inlet, mapped to the canonical 19 channels in microvolts.

    Resolution: by ``source_id`` when given (the most specific), else by ``name``, always restricted
    to ``stream_type`` (an XPath predicate of ``pylsl.ContinuousResolver``), in a background thread;
    a stream selected by ``name`` is bound to the device of its first connection (module docstring).

    Time: every sample's timestamp is the outlet's, plus the inlet's ``time_correction()`` offset
    (refreshed every few seconds), so ``Chunk.clock_s`` is on this machine's ``pylsl.local_clock``.

    Gaps: within one connection, a first timestamp later than ``last + 1 / fs`` by more than
    ``gap_tolerance_s`` means samples were lost; their number ``round(delta * fs)`` is added to the
    sample index (``Chunk.gap_samples``). Jumps inside one pulled chunk split it. After the outlet is
    lost (``LostError``: the amplifier or replay went away) the background thread looks for it again
    (forever); on reconnection the gap is measured from the timestamps when they moved
    forward, and from the time spent disconnected when they did not (a restarted device with another
    clock, or a sped-up replay whose timestamps run ahead of the wall clock), at least one sample.
    Every gap is logged and kept in ``gaps``.

    Clock jumps back: within one connection, timestamps that go back by more than
    ``gap_tolerance_s`` (a device clock stepped back, or a replay restarted its timeline) cannot
    tell whether samples were repeated or the clock was reset; the samples are kept as they came,
    contiguous with the previous ones (the absolute sample index stays monotonic: no sample is
    dropped and no index is reused), and ``Chunk.clock_s`` follows the new timestamps. The jump is
    logged, counted (``n_clock_jumps_back``, ``clock_jump_back_s``) and reported as a
    :class:`SourceNotice` (reason ``clock_jump_back``). A jump back inside one pulled chunk splits it,
    like a jump forward.

    Effective rate: the timestamps of contiguous samples (reset at every gap, jump back and
    reconnection) give the rate at which the device really samples: the samples received divided by
    the timestamp span, over the last ``RATE_SPAN_S`` s, judged once ``RATE_MIN_SPAN_S`` s are held
    (``effective_fs``). When it differs from the nominal rate by more than ``RATE_TOLERANCE`` a
    notice ``rate_mismatch`` is raised (``rate_mismatch`` True), and ``rate_ok`` when it is back within
    half the tolerance. The samples are still delivered at the nominal rate: the notice is what tells
    the bed that the front-end resamples them at the wrong ratio. Limit: a mis-announced rate whose
    chunks are long enough for the back-dated timestamps (liblsl spaces a chunk's samples by the
    nominal period) to jump by more than ``gap_tolerance_s`` between chunks shows as recurring gaps
    or jumps back instead (each reported), since the estimate restarts at every discontinuity.

    Threads: ``open``, ``read``, ``take_notices`` and ``close`` are called from one thread (the bed's);
    the resolver thread only hands opened inlets over (and appends notices under a lock).

    Parameters
    ----------
    config : LslSourceConfig
        Stream selection, timeouts, gap tolerance.
    frontend_config : FrontendConfig, optional
        Supplies ``repair_missing`` for the montage (default: no repair).

    Attributes
    ----------
    gaps : list of (first_index, n_samples)
        Recorded gaps: the index of the first sample after each gap and the samples missing.
    n_connections : int
        Successful connections (1 after a connected ``open``; more after reconnections).
    connected : bool
        Whether an inlet is currently open.
    montage : MontageMapping
        The mapping of the stream's labels (after a connection).
    identity : StreamIdentity or None
        The device the source is bound to (after the first connection).
    announced_fs : float or None
        The nominal rate the stream announces (``fs`` is :func:`ictal.detector.resample.rational_rate` of it).
    n_clock_jumps_back : int
        Times the timestamps went back within one connection.
    clock_jump_back_s : float
        Total seconds they went back.
    effective_fs : float or None
        Latest effective rate (Hz) measured from the timestamps; None until ``RATE_MIN_SPAN_S`` s of
        contiguous samples were received.
    rate_mismatch : bool
        True while the effective rate differs from the nominal one (see above).
    """

    def __init__(self, config: LslSourceConfig, frontend_config: FrontendConfig | None = None) -> None:
        self.config = config
        self.frontend_config = frontend_config or FrontendConfig()
        self.gaps: list[tuple[int, int]] = []
        self.n_connections = 0
        self.montage: MontageMapping | None = None
        self.identity: StreamIdentity | None = None
        self.announced_fs: float | None = None
        self._inlet: pylsl.StreamInlet | None = None
        self._fs: float | None = None
        self._scale: np.ndarray | None = None
        self._offset_s = 0.0
        self._offset_at = 0.0
        self._next_index = 0
        self._last_ts: float | None = None
        self._lost_at: float | None = None
        self._pending: deque[Chunk] = deque()
        self.n_clock_jumps_back = 0
        self.clock_jump_back_s = 0.0
        self.effective_fs: float | None = None
        self.rate_mismatch = False
        self._rate_points: deque[tuple[float, int]] = deque()  # (timestamp, index) of a chunk's last sample
        self._notices: deque[SourceNotice] = deque()
        self._notice_lock = threading.Lock()
        # Resolver thread state: it hands (inlet, full info, clock offset) over through _handover.
        self._opened = False
        self._closing = threading.Event()
        self._wanted = threading.Event()  # set while the reading thread needs a connection
        self._ready = threading.Event()  # set when _handover holds an inlet
        self._opening = threading.Event()  # set while the resolver thread opens an inlet
        self._handover: deque[tuple[pylsl.StreamInlet, pylsl.StreamInfo, float]] = deque()
        self._retry_after = 0.0  # monotonic time before which the resolver opens nothing
        self._search_id = 0  # incremented at every loss: the resolver starts a new search
        self._not_found_said = False  # stream_not_found raised in the current search
        self._resolver_thread: threading.Thread | None = None

    @property
    def fs(self) -> float:
        """Sampling rate of the chunks in Hz (known after the first connection).

        The stream's nominal rate, or :func:`ictal.detector.resample.rational_rate` of it when its ratio to
        256 Hz has no small factors (``announced_fs`` keeps the stream's own).
        """
        if self._fs is None:
            raise RuntimeError("LslSource.fs is known only after the first connection (open())")
        return self._fs

    @property
    def connected(self) -> bool:
        """True while an inlet is open."""
        return self._inlet is not None

    def clock_offset_s(self) -> float:
        """UTC minus ``pylsl.local_clock()`` now (s): ``Chunk.clock_s`` + this = the sample's Unix time.

        ``Chunk.clock_s`` is on this machine's ``pylsl.local_clock`` (the outlet timestamp plus the
        inlet's ``time_correction``); both clocks are read here, microseconds apart.
        """
        return time.time() - pylsl.local_clock()

    def predicate(self) -> str:
        """The XPath predicate used to resolve the stream."""
        for value in (self.config.stream_type, self.config.source_id, self.config.name):
            if value is not None and "'" in value:
                raise ValueError(f"LSL selector {value!r} contains a quote; expected a plain name")
        parts = [f"type='{self.config.stream_type}'"]
        if self.config.source_id is not None:
            parts.append(f"source_id='{self.config.source_id}'")
        if self.config.name is not None:
            parts.append(f"name='{self.config.name}'")
        return " and ".join(parts)

    def open(self, require_stream: bool = True) -> None:
        """Start looking for the stream and wait up to ``resolve_timeout_s`` for the first connection.

        Calling ``open`` again (after an error) closes the source and starts a new search; the
        binding to the device of the first connection is kept.

        Parameters
        ----------
        require_stream : bool
            True (the default): a stream that is not found in time is an error, and the search stops
            (call ``open`` again to retry). False: return unconnected (``connected`` False, ``fs``
            unknown) and keep looking in the background; ``read`` returns None until the stream is
            there, then its chunks (``fs`` is known from the first connection on).

        Raises
        ------
        ConnectionError
            If ``require_stream`` and no stream was connected within ``resolve_timeout_s`` (the message
            gives the predicate); a ``stream_not_found`` notice is raised too.
        detector.montage.MontageError, ValueError
            If the stream's channels cannot be mapped, a unit is missing or not a voltage, or the
            rate is irregular or out of range; with ``require_stream`` the search stops, else it goes
            on (next try ``reconnect_s`` later).
        """
        self.predicate()  # a selector with a quote fails here, not in the resolver thread
        if self._opened:  # opened again (after a refusal): a new search; the binding is kept
            self.close()
        self._opened = True
        self._closing.clear()
        self._wanted.set()
        self._resolver_thread = threading.Thread(
            target=self._resolve_loop, name=f"lsl-resolve-{self.config.name or self.config.source_id}", daemon=True
        )
        self._resolver_thread.start()
        deadline = time.monotonic() + self.config.resolve_timeout_s
        last_call = deadline + 3 * self._open_timeout_s()  # a stream found in time is given time to open
        while self._inlet is None:
            now = time.monotonic()
            left = (last_call if self._opening.is_set() else deadline) - now
            if left <= 0:
                break
            try:
                self._take_handover(min(left, RESOLVER_POLL_S))
            except ValueError:
                if require_stream:
                    self.close()
                raise
        if self._inlet is None and not self._not_found_said:
            self._say_not_found(self.config.resolve_timeout_s)
        if self._inlet is None and require_stream:
            self.close()
            raise ConnectionError(
                f"no LSL stream matching {self.predicate()} found within {self.config.resolve_timeout_s} s"
            )

    def close(self) -> None:
        """Stop looking for the stream and close the inlet; idempotent."""
        self._closing.set()
        self._wanted.set()  # wakes the resolver thread so that it sees _closing
        thread = self._resolver_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=3 * self._open_timeout_s() + 1.0)
        self._resolver_thread = None
        while self._handover:
            self._handover.popleft()[0].close_stream()
        self._ready.clear()
        if self._inlet is not None:
            self._inlet.close_stream()
        self._inlet = None
        self._opened = False

    # -- the resolver thread ----------------------------------------------------------------------

    def _notice(self, reason: str, detail: str, value: float) -> None:
        log.warning("LSL stream %s: %s: %s", self.predicate(), reason, detail)
        with self._notice_lock:
            self._notices.append(SourceNotice(reason, detail, self._next_index, value))

    def _resolve_loop(self) -> None:
        """Look for the stream while one is wanted; open it and hand it over; until ``close``.

        An unexpected error of one search (liblsl) is logged with its traceback, reported as a
        ``stream_not_found`` notice naming it, and the search starts again ``reconnect_s`` later: the
        thread never ends before ``close``, or the bed would wait for its stream forever.
        """
        while not self._closing.is_set():
            self._wanted.wait()
            if self._closing.is_set():
                return
            try:
                self._search()
            except Exception as exc:  # noqa: BLE001 - reported and retried, see the docstring
                log.exception("LSL resolver of %s failed; searching again in %s s", self.predicate(),
                              self.config.reconnect_s)
                self._notice("stream_not_found", f"the LSL resolver failed ({type(exc).__name__}: {exc}); "
                             f"searching again in {self.config.reconnect_s:g} s", 0.0)
                self._closing.wait(self.config.reconnect_s)

    def _search(self) -> None:
        """One search (from ``open`` or a loss) until a stream is handed over or the source closes."""
        search_id = self._search_id
        started = time.monotonic()
        resolver = pylsl.ContinuousResolver(pred=self.predicate(), forget_after=RESOLVER_FORGET_S)
        born = started
        refused: set[str] = set()
        unopenable: set[str] = set()  # uids that could not be opened in this search
        ambiguous: set[frozenset[str]] = set()
        self._not_found_said = False
        try:
            while not self._closing.is_set() and self._wanted.is_set():
                now = time.monotonic()
                results = resolver.results()
                found = [StreamIdentity.of(info) for info in results]
                infos = {f.uid: info for f, info in zip(found, results, strict=True)}
                bound = self.identity
                if bound is not None:
                    own = [f for f in found if bound.same_device(f)]
                    for other in found:
                        if other.uid not in refused and not bound.same_device(other):
                            refused.add(other.uid)
                            self._notice("stream_identity_mismatch", (
                                f"refused LSL stream {other.name!r} ({other.describe()}, uid {other.uid}): this "
                                f"bed is bound to {bound.describe()} since its first connection; still "
                                f"looking for that stream"), now - started)
                else:
                    own = found
                    if len(found) > 1:
                        key = frozenset(f.uid for f in found)
                        if key not in ambiguous:
                            ambiguous.add(key)
                            listed = "; ".join(f.describe() for f in found)
                            self._notice("stream_ambiguous", (
                                f"{len(found)} LSL streams match {self.predicate()} ({listed}): none taken; give "
                                f"the bed a source_id"), now - started)
                        own = []
                usable = [f for f in own if f.uid not in unopenable]
                if usable and now >= self._retry_after:
                    if self._open_inlet(infos[usable[0].uid]):
                        return
                    unopenable.add(usable[0].uid)  # a lost outlet still listed, or a timeout
                    self._retry_after = time.monotonic() + self.config.reconnect_s
                elif not usable and not self._not_found_said and now - started >= self.config.resolve_timeout_s:
                    self._say_not_found(now - started)
                if not usable and time.monotonic() - born >= RESOLVER_REFRESH_S:
                    del resolver  # a fresh resolver lists only live outlets, and lists them at once
                    resolver = pylsl.ContinuousResolver(pred=self.predicate(), forget_after=RESOLVER_FORGET_S)
                    born = time.monotonic()
                    unopenable.clear()
                if self._closing.wait(RESOLVER_POLL_S) or search_id != self._search_id:
                    return
        finally:
            del resolver

    def _say_not_found(self, searched_s: float) -> None:
        """Raise the ``stream_not_found`` notice of the current search (once)."""
        self._not_found_said = True
        bound = self.identity
        bound_text = f", bound to {bound.describe()}" if bound is not None else ""
        self._notice("stream_not_found", (
            f"no LSL stream matching {self.predicate()}{bound_text} connected within {searched_s:.1f} s (none "
            f"found, or only refused ones: see the notices before); still looking"), searched_s)

    def _open_inlet(self, info: pylsl.StreamInfo) -> bool:
        """Open an inlet on a resolved stream and hand it over; False when it could not be opened."""
        timeout = self._open_timeout_s()
        self._opening.set()
        inlet = pylsl.StreamInlet(info, max_buflen=360, recover=False)
        try:
            full = inlet.info(timeout=timeout)
            inlet.open_stream(timeout=timeout)
            offset = inlet.time_correction(timeout=timeout)
        except (LostError, LslTimeoutError) as exc:
            log.warning("LSL stream %s found but not opened (%s); will retry in %s s", self.predicate(), exc,
                        self.config.reconnect_s)
            inlet.close_stream()
            self._opening.clear()
            return False
        if self._closing.is_set():
            inlet.close_stream()
            self._opening.clear()
            return True
        self._wanted.clear()
        self._handover.append((inlet, full, offset))
        self._opening.clear()
        self._ready.set()
        return True

    def _open_timeout_s(self) -> float:
        return max(self.config.resolve_timeout_s, INLET_OPEN_TIMEOUT_S)

    # -- the reading thread -----------------------------------------------------------------------

    def _take_handover(self, timeout_s: float) -> bool:
        """Install an inlet the resolver handed over (waiting up to ``timeout_s``); True when connected.

        Raises
        ------
        ValueError
            If the stream is refused (montage, unit, rate): the inlet is closed and the resolver
            tries again ``reconnect_s`` later.
        """
        if not self._handover and not self._ready.wait(max(timeout_s, 0.0)):
            return False
        self._ready.clear()
        if not self._handover:
            return False
        inlet, full, offset = self._handover.popleft()
        try:
            self._configure(full)
        except ValueError:  # MontageError included: refused, the caller reports it; retried later
            inlet.close_stream()
            self._retry_after = time.monotonic() + self.config.reconnect_s
            self._wanted.set()
            raise
        identity = StreamIdentity.of(full)
        if self.identity is None:
            self.identity = identity
            log.info("LSL source %s bound to %s", self.predicate(), identity.describe())
        self._inlet = inlet
        self._offset_s = offset
        self._offset_at = time.monotonic()
        self.n_connections += 1
        log.info("LSL stream %r (%s, uid %s) connected: %s", full.name(), identity.describe(), identity.uid,
                 self.montage.describe())
        return True

    def _configure(self, info: pylsl.StreamInfo) -> None:
        announced = info.nominal_srate()
        if not math.isfinite(announced) or announced == pylsl.IRREGULAR_RATE or announced <= 0:
            kind = "an irregular rate" if announced == pylsl.IRREGULAR_RATE else f"a nominal rate of {announced} Hz"
            raise ValueError(
                f"LSL stream {info.name()!r} announces {kind}; expected a fixed, finite EEG rate > 0 Hz"
            )
        if not MIN_INPUT_FS_HZ <= announced <= MAX_INPUT_FS_HZ:
            raise ValueError(
                f"LSL stream {info.name()!r} announces {announced:g} Hz; expected a rate within "
                f"[{MIN_INPUT_FS_HZ:g}, {MAX_INPUT_FS_HZ:g}] Hz (detector.resample.MIN_INPUT_FS_HZ/MAX_INPUT_FS_HZ)"
            )
        if self.announced_fs is not None and announced != self.announced_fs:
            raise ValueError(
                f"LSL stream {info.name()!r} came back at {announced:g} Hz, expected {self.announced_fs:g} Hz as "
                f"before the loss"
            )
        fs = rational_rate(announced)
        labels, units = channels_from_description(info)
        montage = map_montage(
            labels, source=f"LSL stream {info.name()!r}", repair_missing=self.frontend_config.repair_missing,
            montage=self.frontend_config.montage,
        )
        scale = np.ones(len(labels), dtype=np.float32)
        for i in {i for i in montage.indices if i >= 0}:
            unit = XDF_UNITS.get(units[i].lower(), units[i])
            if not unit:
                raise ValueError(
                    f"LSL stream {info.name()!r}: channel {labels[i]!r} has no unit in its description; "
                    f"expected microvolts, millivolts or volts"
                )
            try:
                scale[i] = scale_to_uv(unit)
            except ValueError as exc:
                raise ValueError(f"LSL stream {info.name()!r}: channel {labels[i]!r}: {exc}") from None
        if fs != announced and self._fs is None:
            log.warning("LSL stream %r announces %r Hz; resampled as %.6f Hz (relative error %.1e, "
                        "detector.resample.rational_rate)", info.name(), announced, fs, fs / announced - 1)
        self._fs = fs
        self.announced_fs = announced
        self.montage = montage
        self._scale = scale

    def _lose(self, reason: str) -> None:
        log.warning("LSL stream %s lost (%s); looking for it again", self.predicate(), reason)
        if self._inlet is not None:
            self._inlet.close_stream()
        self._inlet = None
        self._lost_at = time.monotonic()
        self._search_id += 1
        self._retry_after = 0.0
        self._wanted.set()

    def read(self, timeout_s: float) -> Chunk | None:
        """The next chunk of samples, waiting at most ``timeout_s``; None on timeout or while lost.

        Parameters
        ----------
        timeout_s : float
            Longest wait in seconds (also while the stream is being looked for: the resolution runs
            in the background).

        Returns
        -------
        chunk : Chunk or None
            (19, n) float32 uV at ``fs``, with ``gap_samples`` > 0 after lost samples.

        Raises
        ------
        RuntimeError
            If the source was never opened.
        ValueError
            If a reconnected stream (or, after ``open(require_stream=False)``, the first one) has another
            rate or unmappable channels (MontageError included). The stream stays lost: the next
            attempt comes ``reconnect_s`` later, so the caller may report the refusal and keep calling
            ``read``.
        """
        if not self._opened:
            raise RuntimeError("LslSource.read called before open()")
        if self._pending:
            return self._pending.popleft()
        if self._inlet is None:
            started = time.monotonic()
            if not self._take_handover(timeout_s):
                return None
            timeout_s = max(0.0, timeout_s - (time.monotonic() - started))
        try:
            samples, timestamps = self._inlet.pull_chunk(
                timeout=timeout_s, max_samples=4096, min_samples=1, as_numpy=True
            )
            self._refresh_offset()
        except LostError as exc:
            self._lose(str(exc))
            return None
        if len(timestamps) == 0:
            return None
        self._split(np.asarray(samples, dtype=np.float32), np.asarray(timestamps) + self._offset_s)
        return self._pending.popleft()

    def _refresh_offset(self) -> None:
        now = time.monotonic()
        if now - self._offset_at < TIME_CORRECTION_EVERY_S:
            return
        self._offset_at = now
        try:
            self._offset_s = self._inlet.time_correction(timeout=0.5)
        except LslTimeoutError:
            log.warning("LSL time_correction timed out; keeping the offset %.6f s", self._offset_s)

    def take_notices(self) -> list[SourceNotice]:
        """The notices raised since the last call, oldest first (the list is emptied).

        Returns
        -------
        notices : list of SourceNotice
        """
        with self._notice_lock:
            out = list(self._notices)
            self._notices.clear()
        return out

    def _split(self, samples: np.ndarray, timestamps: np.ndarray) -> None:
        """Turn one pull into chunks at every timestamp jump, with their gaps, into ``_pending``."""
        period = 1.0 / self._fs
        tol = self.config.gap_tolerance_s
        step = np.diff(timestamps) - period
        jumps = np.flatnonzero((step > tol) | (step < -tol)) + 1
        bounds = [0, *jumps.tolist(), len(timestamps)]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            contiguous = self._last_ts is not None and self._lost_at is None
            gap = self._gap_before(timestamps[lo])
            if not contiguous or gap or self._jumped_back(timestamps[lo]):
                self._rate_points.clear()
            self._last_ts = float(timestamps[hi - 1])
            self._lost_at = None
            data = self.montage.apply(samples[lo:hi].T * self._scale[:, None])
            first = self._next_index + gap
            if gap:
                self.gaps.append((first, gap))
                log.warning("LSL stream %s: %d samples (%.3f s) lost before sample %d",
                            self.predicate(), gap, gap / self._fs, first)
            self._pending.append(
                Chunk(data=data, first_index=first, clock_s=float(timestamps[lo]), fs=self._fs, gap_samples=gap)
            )
            self._next_index = first + (hi - lo)
            self._track_rate(float(timestamps[hi - 1]), self._next_index - 1)

    def _jumped_back(self, first_ts: float) -> bool:
        """Whether ``first_ts`` went back (beyond the tolerance) from the previous sample, same connection;
        reported as a notice when it did (call after ``_gap_before``, before ``_last_ts`` moves)."""
        if self._last_ts is None or self._lost_at is not None:
            return False
        back_s = (self._last_ts + 1.0 / self._fs) - first_ts
        if back_s <= self.config.gap_tolerance_s:
            return False
        self.n_clock_jumps_back += 1
        self.clock_jump_back_s += back_s
        detail = (f"timestamps went back by {back_s:.3f} s within one connection before input sample "
                  f"{self._next_index}; samples kept in arrival order, contiguous with the previous ones")
        log.warning("LSL stream %s: %s", self.predicate(), detail)
        with self._notice_lock:
            self._notices.append(SourceNotice("clock_jump_back", detail, self._next_index, back_s))
        return True

    def _track_rate(self, last_ts: float, last_index: int) -> None:
        """Update the effective-rate estimate with a chunk's last sample; raise rate notices."""
        points = self._rate_points
        points.append((last_ts, last_index))
        while len(points) > 2 and points[1][0] <= last_ts - RATE_SPAN_S:
            points.popleft()
        span_s = last_ts - points[0][0]
        if span_s < RATE_MIN_SPAN_S:
            return
        rate = (last_index - points[0][1]) / span_s
        self.effective_fs = rate
        error = rate / self._fs - 1.0
        if not self.rate_mismatch and abs(error) > RATE_TOLERANCE:
            self.rate_mismatch = True
            detail = (f"stream announces {self._fs:g} Hz but its timestamps advance at {rate:.1f} Hz "
                      f"({100 * error:+.1f} % over {span_s:.1f} s; tolerance {100 * RATE_TOLERANCE:g} %): the "
                      f"front-end resamples at the wrong ratio")
            log.warning("LSL stream %s: %s", self.predicate(), detail)
            with self._notice_lock:
                self._notices.append(SourceNotice("rate_mismatch", detail, last_index + 1, rate))
        elif self.rate_mismatch and abs(error) <= RATE_TOLERANCE / 2:
            self.rate_mismatch = False
            detail = (f"timestamps advance at {rate:.1f} Hz again, within {100 * RATE_TOLERANCE / 2:g} % of the "
                      f"announced {self._fs:g} Hz")
            log.info("LSL stream %s: %s", self.predicate(), detail)
            with self._notice_lock:
                self._notices.append(SourceNotice("rate_ok", detail, last_index + 1, rate))

    def _gap_before(self, first_ts: float) -> int:
        if self._last_ts is None:
            return 0
        delta = first_ts - (self._last_ts + 1.0 / self._fs)
        tol = self.config.gap_tolerance_s
        if self._lost_at is None:  # same connection
            if delta > tol:
                return round(delta * self._fs)
            return 0  # a jump back is reported by _jumped_back
        if delta >= -tol:  # reconnected, timestamps moved forward
            return max(0, round(delta * self._fs))
        offline_s = time.monotonic() - self._lost_at
        return max(1, round(offline_s * self._fs))
