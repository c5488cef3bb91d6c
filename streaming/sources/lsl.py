"""`LslSource`: a bed's EEG from a Lab Streaming Layer inlet (an amplifier, or ``ictal replay``)."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from detector.config import FrontendConfig
from detector.montage import MontageMapping, map_montage
from detector.units import scale_to_uv
from streaming.chunk import Chunk
from streaming.config import LslSourceConfig
from streaming.sources.base import Source

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


@dataclass(frozen=True)
class SourceNotice:
    """Something about the stream that the bed must report (drained with ``LslSource.take_notices``).

    Attributes
    ----------
    reason : str
        ``clock_jump_back`` (timestamps went back within one connection), ``rate_mismatch`` (the
        timestamps advance at a rate other than the nominal one) or ``rate_ok`` (they match again).
    detail : str
        Human-readable description with the measured values.
    first_index : int
        Absolute sample index (at the nominal rate) of the first sample the notice applies to.
    value : float
        The measured quantity: seconds the clock went back, or the effective rate in Hz.
    """

    reason: str
    detail: str
    first_index: int
    value: float


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
    to ``stream_type`` (an XPath predicate of ``pylsl.resolve_bypred``).

    Time: every sample's timestamp is the outlet's, plus the inlet's ``time_correction()`` offset
    (refreshed every few seconds), so ``Chunk.clock_s`` is on this machine's ``pylsl.local_clock``.

    Gaps: within one connection, a first timestamp later than ``last + 1 / fs`` by more than
    ``gap_tolerance_s`` means samples were lost; their number ``round(delta * fs)`` is added to the
    sample index (``Chunk.gap_samples``). Jumps inside one pulled chunk split it. After the outlet is
    lost (``LostError``: the amplifier or replay went away) the source retries every
    ``reconnect_s``; on reconnection the gap is measured from the timestamps when they moved
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
        Successful connections (1 after ``open``; more after reconnections).
    connected : bool
        Whether an inlet is currently open.
    montage : MontageMapping
        The mapping of the stream's labels (after a connection).
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
        self._inlet: pylsl.StreamInlet | None = None
        self._fs: float | None = None
        self._scale: np.ndarray | None = None
        self._offset_s = 0.0
        self._offset_at = 0.0
        self._next_index = 0
        self._last_ts: float | None = None
        self._lost_at: float | None = None
        self._next_attempt = 0.0
        self._pending: deque[Chunk] = deque()
        self.n_clock_jumps_back = 0
        self.clock_jump_back_s = 0.0
        self.effective_fs: float | None = None
        self.rate_mismatch = False
        self._rate_points: deque[tuple[float, int]] = deque()  # (timestamp, index) of a chunk's last sample
        self._notices: deque[SourceNotice] = deque()

    @property
    def fs(self) -> float:
        """Nominal sampling rate of the stream in Hz (known after the first connection)."""
        if self._fs is None:
            raise RuntimeError("LslSource.fs is known only after open()")
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
        parts = [f"type='{self.config.stream_type}'"]
        if self.config.source_id is not None:
            parts.append(f"source_id='{self.config.source_id}'")
        if self.config.name is not None:
            parts.append(f"name='{self.config.name}'")
        for value in (self.config.stream_type, self.config.source_id, self.config.name):
            if value is not None and "'" in value:
                raise ValueError(f"LSL selector {value!r} contains a quote; expected a plain name")
        return " and ".join(parts)

    def open(self) -> None:
        """Resolve the stream and open the inlet (waits up to ``resolve_timeout_s``).

        Raises
        ------
        ConnectionError
            If no stream matches within ``resolve_timeout_s`` (the message gives the predicate).
        detector.montage.MontageError, ValueError
            If the stream's channels cannot be mapped, a unit is missing or not a voltage, or the
            rate is irregular.
        """
        if not self._connect(self.config.resolve_timeout_s):
            raise ConnectionError(
                f"no LSL stream matching {self.predicate()} found within {self.config.resolve_timeout_s} s"
            )

    def close(self) -> None:
        """Close the inlet; idempotent."""
        if self._inlet is not None:
            self._inlet.close_stream()
        self._inlet = None

    def _connect(self, timeout_s: float) -> bool:
        infos = pylsl.resolve_bypred(self.predicate(), 1, max(timeout_s, 0.01))
        if not infos:
            return False
        inlet = pylsl.StreamInlet(infos[0], max_buflen=360, recover=False)
        try:
            full = inlet.info(timeout=self.config.resolve_timeout_s)
            inlet.open_stream(timeout=self.config.resolve_timeout_s)
            offset = inlet.time_correction(timeout=self.config.resolve_timeout_s)
        except (LostError, LslTimeoutError) as exc:
            log.warning("LSL stream %s found but not opened (%s); will retry", self.predicate(), exc)
            inlet.close_stream()
            return False
        try:
            self._configure(full)
        except ValueError:  # MontageError included: refused, the caller reports it and retries later
            inlet.close_stream()
            raise
        self._inlet = inlet
        self._offset_s = offset
        self._offset_at = time.monotonic()
        self.n_connections += 1
        log.info("LSL stream %r (source_id %r) connected: %s", full.name(), full.source_id(), self.montage.describe())
        return True

    def _configure(self, info: pylsl.StreamInfo) -> None:
        fs = info.nominal_srate()
        if not math.isfinite(fs) or fs == pylsl.IRREGULAR_RATE or fs <= 0:
            kind = "an irregular rate" if fs == pylsl.IRREGULAR_RATE else f"a nominal rate of {fs} Hz"
            raise ValueError(
                f"LSL stream {info.name()!r} announces {kind}; expected a fixed, finite EEG rate > 0 Hz"
            )
        if self._fs is not None and fs != self._fs:
            raise ValueError(
                f"LSL stream {info.name()!r} came back at {fs:g} Hz, expected {self._fs:g} Hz as before the loss"
            )
        labels, units = channels_from_description(info)
        montage = map_montage(
            labels, source=f"LSL stream {info.name()!r}", repair_missing=self.frontend_config.repair_missing
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
        self._fs = fs
        self.montage = montage
        self._scale = scale

    def _lose(self, reason: str) -> None:
        log.warning("LSL stream %s lost (%s); reconnecting every %s s", self.predicate(), reason, self.config.reconnect_s)
        if self._inlet is not None:
            self._inlet.close_stream()
        self._inlet = None
        self._lost_at = time.monotonic()
        self._next_attempt = self._lost_at

    def read(self, timeout_s: float) -> Chunk | None:
        """The next chunk of samples, waiting at most ``timeout_s``; None on timeout or while lost.

        Parameters
        ----------
        timeout_s : float
            Longest wait in seconds.

        Returns
        -------
        chunk : Chunk or None
            (19, n) float32 uV at ``fs``, with ``gap_samples`` > 0 after lost samples.

        Raises
        ------
        RuntimeError
            If the source was never opened.
        ValueError
            If a reconnected stream has another rate or unmappable channels (MontageError included).
            The stream stays lost: the next attempt comes ``reconnect_s`` later, so the caller may
            report the refusal and keep calling ``read``.
        """
        if self._fs is None:
            raise RuntimeError("LslSource.read called before open()")
        if self._pending:
            return self._pending.popleft()
        if self._inlet is None:
            now = time.monotonic()
            if now < self._next_attempt:
                time.sleep(min(timeout_s, self._next_attempt - now))
                return None
            self._next_attempt = now + self.config.reconnect_s
            if not self._connect(min(timeout_s, self.config.resolve_timeout_s)):
                return None
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
            self._notices.append(SourceNotice("rate_mismatch", detail, last_index + 1, rate))
        elif self.rate_mismatch and abs(error) <= RATE_TOLERANCE / 2:
            self.rate_mismatch = False
            detail = (f"timestamps advance at {rate:.1f} Hz again, within {100 * RATE_TOLERANCE / 2:g} % of the "
                      f"announced {self._fs:g} Hz")
            log.info("LSL stream %s: %s", self.predicate(), detail)
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
