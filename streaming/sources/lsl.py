"""`LslSource`: a bed's EEG from a Lab Streaming Layer inlet (an amplifier, or ``ictal replay``)."""

from __future__ import annotations

import logging
import time
from collections import deque

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
        self._configure(full)
        self._inlet = inlet
        self._offset_s = offset
        self._offset_at = time.monotonic()
        self.n_connections += 1
        log.info("LSL stream %r (source_id %r) connected: %s", full.name(), full.source_id(), self.montage.describe())
        return True

    def _configure(self, info: pylsl.StreamInfo) -> None:
        fs = info.nominal_srate()
        if fs == pylsl.IRREGULAR_RATE or fs <= 0:
            raise ValueError(f"LSL stream {info.name()!r} has an irregular rate; expected a fixed EEG rate in Hz")
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
            If a reconnected stream has another rate or unmappable channels.
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

    def _split(self, samples: np.ndarray, timestamps: np.ndarray) -> None:
        """Turn one pull into chunks at every timestamp jump, with their gaps, into ``_pending``."""
        period = 1.0 / self._fs
        tol = self.config.gap_tolerance_s
        jumps = np.flatnonzero(np.diff(timestamps) > period + tol) + 1
        bounds = [0, *jumps.tolist(), len(timestamps)]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            gap = self._gap_before(timestamps[lo])
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

    def _gap_before(self, first_ts: float) -> int:
        if self._last_ts is None:
            return 0
        delta = first_ts - (self._last_ts + 1.0 / self._fs)
        tol = self.config.gap_tolerance_s
        if self._lost_at is None:  # same connection
            if delta > tol:
                return round(delta * self._fs)
            if delta < -tol:
                log.warning("LSL stream %s: timestamps went back by %.3f s within one connection",
                            self.predicate(), -delta)
            return 0
        if delta >= -tol:  # reconnected, timestamps moved forward
            return max(0, round(delta * self._fs))
        offline_s = time.monotonic() - self._lost_at
        return max(1, round(offline_s * self._fs))
