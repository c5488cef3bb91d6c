"""`SampleWallClock`: the UTC wall-clock time of a bed's samples, from its source's clock mapping.

Alarm latency is measured in wall-clock time (``alarms.schema``: ``latency_s = wall_time -
onset_wall_time``), so the daemon needs the UTC time of the onset sample. Each source knows how its
clock relates to UTC (``Source.clock_offset_s``: LSL ``time.time() - pylsl.local_clock()``; a paced
EDF replay ``time.time() - time.monotonic()``; an unpaced replay or an unknown source None). The bed's
source thread records every chunk as it arrives (:meth:`SampleWallClock.record`): its stream-time
span, its source clock time mapped to UTC with the offset measured at that moment, and the Unix time
at which the daemon received it. The UTC time of the sample at stream time ``t`` in a recorded chunk
starting at stream time ``s`` is

    wall(t) = min(clock_s + offset + (t - s), arrived)    when the source has a clock mapping,
    wall(t) = arrived                                     when it has none,

in Unix seconds. The ``min``: a sample cannot have been acquired after the daemon received it. For an
amplifier, or a replay paced at real time, the mapped time is the earlier one (it includes the
transport delay the arrival time would miss). A replay sped up over LSL (``ictal replay --speed 4``)
stamps its samples with the stream's own time base, which runs ahead of the wall clock: the arrival
bounds it, and latency is then wall-clock time at the replay's pace. Each chunk carries its own
mapping, so a stepped wall clock, a clock jump back of the source or a reconnection with a new clock
only affects the chunks after it (unlike extrapolating from the newest chunk at the stream rate).

Stream time is the one of ``streaming.bed``: the sample index divided by the rate, seconds since the
bed's first sample. Samples older than ``horizon_s`` behind the newest are forgotten (their time is
None).
"""

from __future__ import annotations

import bisect
import threading
from datetime import datetime, timezone

from ictal.streaming.chunk import Chunk

HORIZON_S = 900.0
"""Stream seconds of chunks remembered (15 min): an onset is decided within a window (60 s), the
lookahead and the minimum duration of its sample; an offset reuses the time of its onset."""


class SampleWallClock:
    """UTC times of a bed's samples, recorded chunk by chunk (see the module docstring).

    Parameters
    ----------
    horizon_s : float, default :data:`HORIZON_S`
        Stream seconds remembered behind the newest chunk.

    Notes
    -----
    Thread safety: the source thread records, the scoring thread looks up; both under one lock.
    """

    def __init__(self, horizon_s: float = HORIZON_S) -> None:
        if not horizon_s > 0:
            raise ValueError(f"horizon_s must be > 0 s (found {horizon_s})")
        self.horizon_s = float(horizon_s)
        self._starts: list[float] = []  # stream time (s) of each chunk's first sample, increasing
        self._entries: list[tuple[float | None, float]] = []  # (mapped Unix s of the first sample, arrived)
        self._lock = threading.Lock()

    def record(self, chunk: Chunk, arrived_unix_s: float, offset_s: float | None) -> None:
        """Remember when the samples of ``chunk`` were acquired.

        Parameters
        ----------
        chunk : Chunk
            As the source delivered it (``first_index`` and ``fs`` give its stream time, ``clock_s``
            the source clock time of its first sample).
        arrived_unix_s : float
            ``time.time()`` when the daemon received the chunk (s).
        offset_s : float or None
            The source's ``clock_offset_s()`` measured at the same moment (UTC minus source clock, s);
            None when the source's clock is not tied to real time.
        """
        if chunk.n_samples == 0:
            return
        start_s = chunk.first_index / chunk.fs
        mapped = None if offset_s is None else chunk.clock_s + offset_s
        with self._lock:
            if self._starts and start_s <= self._starts[-1]:  # a restarted index: the old entries mean nothing
                keep = bisect.bisect_left(self._starts, start_s)
                del self._starts[keep:], self._entries[keep:]
            self._starts.append(start_s)
            self._entries.append((mapped, float(arrived_unix_s)))
            old = bisect.bisect_left(self._starts, start_s - self.horizon_s)
            if old > 1024 or (old and old * 2 > len(self._starts)):  # prune in batches
                del self._starts[:old], self._entries[:old]

    def unix_time_at(self, stream_s: float) -> float | None:
        """Unix time (s) of the sample at stream time ``stream_s``; None if not (or no longer) recorded.

        Parameters
        ----------
        stream_s : float
            Stream time of the sample (s since the bed's first sample).
        """
        with self._lock:
            i = bisect.bisect_right(self._starts, stream_s + 1e-9) - 1
            if i < 0 or stream_s < self._starts[-1] - self.horizon_s:
                return None
            mapped, arrived = self._entries[i]
            start_s = self._starts[i]
        if mapped is None:
            return arrived
        return min(mapped + (stream_s - start_s), arrived)

    def utc_at(self, stream_s: float | None) -> datetime | None:
        """:meth:`unix_time_at` as a timezone-aware UTC datetime (None passes through)."""
        if stream_s is None:
            return None
        unix_s = self.unix_time_at(stream_s)
        return None if unix_s is None else datetime.fromtimestamp(unix_s, timezone.utc)
