"""The alarm post-processor: per-sample seizure probability in, onset/offset transitions out.

One state machine serves the daemon (fed chunk by chunk, :class:`PostProcessor`) and offline
evaluation and threshold tuning (a whole array, :func:`detect_events`). Both give the same events
for the same probabilities, whatever the chunking.

Semantics
---------
Let ``p[i]`` be the probability of sample ``i`` (absolute index, counted from the first sample ever
fed) at stream time ``t(i) = t_origin + i / rate_hz``. Durations are converted once to whole samples,
rounding to the nearest sample: ``n_min = max(1, round(min_duration_s * rate_hz))``, ``n_gap =
max(1, round(merge_gap_s * rate_hz))``, ``n_max = max(1, round(max_duration_s * rate_hz))``, ``n_refr =
round(refractory_s * rate_hz)``. "Above tau_on" means ``p >= tau_on``; "below tau_off" means
``p < tau_off``.

1. **Onset (hysteresis entry + minimum duration).** A *candidate* starts at the first sample above
   tau_on that is not in the refractory period (see 4). It becomes an event when ``n_min`` consecutive
   samples, starting at the candidate start, are all above tau_on; any sample not above tau_on before
   that discards the candidate (flicker around tau_on never raises an alarm). The event's reported
   ``onset_s`` is ``t(candidate start)``, the time the probability first crossed tau_on; the onset
   transition is *emitted* at ``t(candidate start + n_min - 1)``, the sample that satisfied the
   minimum duration. The difference is the post-processor's share of the alarm latency
   (``Transition.latency_s``).
2. **Offset (hysteresis exit + merge gap).** Once raised, the event lasts while the probability stays
   at or above tau_off (not tau_on: this is the hysteresis). A *dip* is a run of consecutive samples
   below tau_off. A dip shorter than ``n_gap`` samples is merged into the event; the first dip that
   reaches ``n_gap`` samples ends it. The reported ``offset_s`` is ``t(first sample of that dip)``; the
   offset is emitted at ``t(dip start + n_gap - 1)``.
3. **Maximum duration.** An event that reaches ``n_max`` samples is closed at sample ``m = onset +
   n_max``, emitted at ``t(m)``, with ``offset_s = t(m)`` (or the start of the dip in progress at
   ``m``, if any). A new candidate may then start at ``m`` (subject to 4), so a seizure that goes on
   (status epilepticus) is announced again rather than silent. When a dip would end the event at the
   same sample ``m``, the dip wins.
4. **Refractory period.** After an offset at sample ``o``, no candidate may start before sample
   ``o + n_refr``; probability that stays above tau_on through the refractory period starts a
   candidate exactly at ``o + n_refr``.
5. **End of data and gaps.** :meth:`PostProcessor.finish` closes an open event with
   ``reason="end_of_data"`` and ``offset_s`` = the end of the data (or the start of a dip in
   progress); a candidate not yet confirmed is dropped. A chunk whose first sample lies after the
   next expected sample (a gap in the stream) does the same at the gap (``reason="gap"``): missing
   probabilities never sustain nor raise an alarm. The refractory period carries across a gap.

An event's ``peak`` and ``mean`` are over its samples from ``onset_s`` (inclusive) to ``offset_s``
(exclusive); dips merged into the event count, the final dip does not. In an onset transition they are
over the samples up to the emission sample.

Implementation: each chunk is scanned with numpy run detection (runs above tau_on and below tau_off,
and the runs long enough to matter) and the Python loop runs once per transition, not per sample, so
days of 256 Hz probabilities are processed in well under a second per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ictal.alarms.config import AlarmThresholds

_IDLE, _ACTIVE = 0, 1


@dataclass(frozen=True)
class Transition:
    """An onset or offset emitted by the post-processor.

    Attributes
    ----------
    kind : {"onset", "offset"}
    time_s : float
        Stream time (s) at which the transition is emitted: for an onset the sample that completed the
        minimum duration, for an offset the sample that completed the merge gap (or the maximum
        duration, or the end of data).
    onset_s : float
        Stream time (s) at which the probability first crossed tau_on for this event.
    offset_s : float or None
        Stream time (s) of the end of the event (first sample of the final dip); None for onsets.
    peak, mean : float
        Highest and mean probability of the event's samples so far (see the module docstring).
    reason : str
        ``"min_duration"`` for onsets; ``"below_tau_off"``, ``"max_duration"``, ``"end_of_data"`` or
        ``"gap"`` for offsets.
    """

    kind: Literal["onset", "offset"]
    time_s: float
    onset_s: float
    offset_s: float | None
    peak: float
    mean: float
    reason: str

    @property
    def latency_s(self) -> float:
        """Seconds from the onset crossing to the emission of this transition (onsets: alarm latency)."""
        return self.time_s - self.onset_s


@dataclass(frozen=True)
class DetectedEvent:
    """A complete event found by :func:`detect_events`.

    Attributes
    ----------
    onset_s, offset_s : float
        Start (first crossing of tau_on) and end (first sample of the final dip, or end of data) in
        seconds of stream time.
    peak, mean : float
        Highest and mean probability over ``[onset_s, offset_s)``.
    raised_s : float
        Stream time (s) at which the onset alarm was emitted; ``raised_s - onset_s`` is the latency
        the post-processor adds.
    end_reason : str
        Why the event ended (see :class:`Transition`).
    """

    onset_s: float
    offset_s: float
    peak: float
    mean: float
    raised_s: float = float("nan")
    end_reason: str = ""

    @property
    def duration_s(self) -> float:
        """Event duration in seconds."""
        return self.offset_s - self.onset_s


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) indices of the runs of True in a 1-D boolean array."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]


def _samples(seconds: float, rate_hz: float, minimum: int) -> int:
    return max(minimum, int(round(seconds * rate_hz)))


class _ChunkRuns:
    """Runs of one chunk, with the runs long enough to qualify on their own, for O(log n) lookups."""

    def __init__(self, mask: np.ndarray, n_needed: int) -> None:
        self.starts, self.ends = _runs(mask)
        self.long = np.flatnonzero(self.ends - self.starts >= n_needed)

    def first_from(self, pos: int) -> int:
        """Index of the first run that ends after local sample ``pos``."""
        return int(np.searchsorted(self.ends, pos, side="right"))

    def first_long_after(self, run: int) -> int | None:
        """Index of the first run after ``run`` (exclusive) that is long enough on its own."""
        k = int(np.searchsorted(self.long, run, side="right"))
        return int(self.long[k]) if k < len(self.long) else None


class PostProcessor:
    """Streaming hysteresis post-processor (see the module docstring for the exact semantics).

    Parameters
    ----------
    thresholds : AlarmThresholds
        tau_on, tau_off (<= tau_on), min_duration_s, merge_gap_s, max_duration_s, refractory_s.

    Notes
    -----
    Hysteresis thresholding with a minimum duration and a merge gap is the usual post-processing of
    per-sample seizure detectors (e.g. the SzCORE evaluation framework, Dan et al., Epilepsia 2024,
    and the any-overlap event scoring of the TUH seizure challenge); the precise rules are this
    project's and are the ones the threshold tuning optimises.
    """

    def __init__(self, thresholds: AlarmThresholds) -> None:
        self.thresholds = thresholds
        self._rate_hz: float | None = None
        self._origin_s = 0.0
        self._next = 0  # absolute index of the next expected sample
        self._refr_end = 0
        self._reset_event()

    def _reset_event(self) -> None:
        self._mode = _IDLE
        # candidate carried over a chunk boundary (run above tau_on still open)
        self._cand_start: int | None = None
        self._cand_sum = 0.0
        self._cand_max = 0.0
        # active event
        self._onset = 0
        self._sum = 0.0
        self._count = 0
        self._max = 0.0
        # dip in progress carried over a chunk boundary
        self._dip_start: int | None = None
        self._dip_sum = 0.0

    @property
    def active(self) -> bool:
        """True while an onset has been raised and its offset not yet."""
        return self._mode == _ACTIVE

    def _t(self, index: int) -> float:
        assert self._rate_hz is not None
        return self._origin_s + index / self._rate_hz

    def _set_rate(self, rate_hz: float, first_time_s: float) -> None:
        if not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be a positive finite number (found {rate_hz!r})")
        if self._rate_hz is None:
            th = self.thresholds
            self._rate_hz = float(rate_hz)
            self._origin_s = float(first_time_s)
            self._n_min = _samples(th.min_duration_s, rate_hz, 1)
            self._n_gap = _samples(th.merge_gap_s, rate_hz, 1)
            # at least one sample more than the minimum duration, so an event can always be raised
            self._n_max = max(_samples(th.max_duration_s, rate_hz, 1), self._n_min + 1)
            self._n_refr = _samples(th.refractory_s, rate_hz, 0)
        elif rate_hz != self._rate_hz:
            raise ValueError(f"rate_hz changed between chunks (found {rate_hz}, expected {self._rate_hz})")

    def feed(self, first_time_s: float, probs: np.ndarray, rate_hz: float) -> list[Transition]:
        """Consume the next chunk of probabilities.

        Parameters
        ----------
        first_time_s : float
            Stream time (s) of ``probs[0]``. The first call fixes the time origin; later chunks must
            start at the next expected sample (within half a sample) or after it (a gap, see the module
            docstring).
        probs : array_like of float, shape (n_samples,)
            Seizure probabilities in [0, 1]; any length, including 0.
        rate_hz : float
            Sample rate of ``probs`` in Hz; the same for every call.

        Returns
        -------
        transitions : list of Transition
            Onsets and offsets emitted by the samples of this chunk, in time order.

        Raises
        ------
        ValueError
            If ``probs`` is not 1-D, holds non-finite values or values outside [0, 1], if
            ``first_time_s`` is not finite, if ``rate_hz`` is not positive or changes, or if the chunk starts before the next expected sample (overlap or time going
            backwards).
        """
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 1:
            raise ValueError(f"probs must be 1-D of shape (n_samples,) (found shape {p.shape})")
        if not np.isfinite(first_time_s):
            raise ValueError(f"first_time_s must be a finite stream time in seconds (found {first_time_s!r})")
        self._set_rate(rate_hz, first_time_s)
        if p.size == 0:
            return []
        if not np.isfinite(p).all():
            bad = int(np.flatnonzero(~np.isfinite(p))[0])
            raise ValueError(f"probs holds a non-finite value at index {bad} ({p[bad]!r}); expected [0, 1]")
        lo, hi = float(p.min()), float(p.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"probs must lie in [0, 1] (found min {lo}, max {hi})")
        start = int(round((first_time_s - self._origin_s) * self._rate_hz))
        transitions: list[Transition] = []
        if start < self._next:
            raise ValueError(
                f"chunk starts at {first_time_s} s (sample {start}) but the next expected sample is "
                f"{self._next} (t = {self._t(self._next)} s): chunks must not overlap or go back in time"
            )
        if start > self._next:
            transitions.extend(self._close_at_end(self._next, self._t(self._next), "gap"))
        self._process(start, p, transitions)
        self._next = start + p.size
        return transitions

    def finish(self, end_time_s: float | None = None) -> list[Transition]:
        """Close the stream: an open event ends (``reason="end_of_data"``), a pending candidate is dropped.

        Parameters
        ----------
        end_time_s : float, optional
            Stream time (s) at which the offset is emitted; default the end of the last sample fed.
            The reported ``offset_s`` is the end of the data (or the start of a dip in progress).

        Returns
        -------
        transitions : list of Transition
            The closing offset, if an event was open. The processor is then reset to its initial state.
        """
        if self._rate_hz is None:
            return []
        emit_s = self._t(self._next) if end_time_s is None else float(end_time_s)
        out = self._close_at_end(self._next, emit_s, "end_of_data")
        self.__init__(self.thresholds)
        return out

    # -- the state machine -------------------------------------------------------------------------

    def _close_at_end(self, end_index: int, emit_s: float, reason: str) -> list[Transition]:
        out: list[Transition] = []
        if self._mode == _ACTIVE:
            if self._dip_start is not None:
                offset, total, count = self._dip_start, self._sum - self._dip_sum, self._count - (
                    end_index - self._dip_start)
            else:
                offset, total, count = end_index, self._sum, self._count
            out.append(Transition("offset", emit_s, self._t(self._onset), self._t(offset), self._max,
                                  total / count, reason))
            self._refr_end = offset + self._n_refr
        self._reset_event()
        return out

    def _process(self, base: int, p: np.ndarray, out: list[Transition]) -> None:
        n = p.size
        on_runs: _ChunkRuns | None = None
        off_runs: _ChunkRuns | None = None
        j = 0  # local index of the first sample not yet consumed
        while j < n:
            if self._mode == _IDLE:
                if on_runs is None:
                    on_runs = _ChunkRuns(p >= self.thresholds.tau_on, self._n_min)
                j = self._scan_idle(base, p, j, on_runs, out)
            else:
                if off_runs is None:
                    off_runs = _ChunkRuns(p < self.thresholds.tau_off, self._n_gap)
                j = self._scan_active(base, p, j, off_runs, out)

    def _scan_idle(self, base: int, p: np.ndarray, j: int, runs: _ChunkRuns, out: list[Transition]) -> int:
        n = p.size
        clip = max(j, self._refr_end - base)
        r = runs.first_from(clip)
        if r >= len(runs.starts):
            self._cand_start = None
            return n
        # the first run may contain the clip point, or continue a candidate from the previous chunk
        carried = self._cand_start is not None and runs.starts[r] == 0 and j == 0
        eff = self._cand_start - base if carried else max(int(runs.starts[r]), clip)
        end = int(runs.ends[r])
        if end - eff < self._n_min:
            k = runs.first_long_after(r)
            if k is None:
                # no run completes the minimum duration in this chunk; carry a run open at the end
                last = len(runs.starts) - 1
                if int(runs.ends[last]) == n:
                    if last == r:
                        seg = p[max(eff, 0):n]
                        prev_sum, prev_max = (self._cand_sum, self._cand_max) if carried else (0.0, 0.0)
                        self._cand_start = base + eff
                    else:
                        eff_last = max(int(runs.starts[last]), clip)
                        seg = p[eff_last:n]
                        prev_sum, prev_max = 0.0, 0.0
                        self._cand_start = base + eff_last
                    self._cand_sum = prev_sum + float(seg.sum())
                    self._cand_max = max(prev_max, float(seg.max()))
                else:
                    self._cand_start = None
                return n
            r, carried = k, False
            eff, end = int(runs.starts[k]), int(runs.ends[k])
        # confirmed: onset at eff, emitted at eff + n_min - 1
        c = eff + self._n_min - 1
        seg = p[max(eff, 0):c + 1]
        total, peak = float(seg.sum()), float(seg.max())
        count = c + 1 - eff
        if carried:
            total += self._cand_sum
            peak = max(peak, self._cand_max)
        self._cand_start = None
        self._mode = _ACTIVE
        self._onset = base + eff
        self._sum, self._count, self._max = total, count, peak
        self._dip_start, self._dip_sum = None, 0.0
        out.append(Transition("onset", self._t(base + c), self._t(self._onset), None, peak, total / count,
                              "min_duration"))
        return c + 1

    def _scan_active(self, base: int, p: np.ndarray, j: int, runs: _ChunkRuns, out: list[Transition]) -> int:
        n = p.size
        # a dip open at the end of the previous chunk (only possible when this chunk starts active)
        dip_prev = self._dip_start if j == 0 else None
        dip_prev_sum = self._dip_sum if j == 0 else 0.0
        self._dip_start, self._dip_sum = None, 0.0
        m = self._onset + self._n_max - base  # local index where the maximum duration is reached (>= j)
        r = runs.first_from(j)
        carried = dip_prev is not None and r < len(runs.starts) and int(runs.starts[r]) == 0
        # first dip (from j) that reaches n_gap samples: (local start, local emission index)
        dip_close: tuple[int, int] | None = None
        if r < len(runs.starts):
            eff = dip_prev - base if carried else int(runs.starts[r])
            if int(runs.ends[r]) - eff >= self._n_gap:
                dip_close = (eff, eff + self._n_gap - 1)
            else:
                k = runs.first_long_after(r)
                if k is not None:
                    dip_close = (int(runs.starts[k]), int(runs.starts[k]) + self._n_gap - 1)
        if dip_close is not None and dip_close[1] <= m:
            offset, emit = dip_close
            self._close(base, p, j, offset, dip_prev, dip_prev_sum, self._t(base + emit), "below_tau_off", out)
            return emit + 1
        if m < n:
            # maximum duration reached at sample m; the event ends at the start of a dip in progress
            offset = m
            if m > 0 and p[m - 1] < self.thresholds.tau_off:
                rr = int(np.searchsorted(runs.ends, m - 1, side="right"))
                offset = dip_prev - base if (carried and rr == r) else int(runs.starts[rr])
            elif m == 0 and dip_prev is not None:
                offset = dip_prev - base
            self._close(base, p, j, offset, dip_prev, dip_prev_sum, self._t(base + m), "max_duration", out)
            return m
        # the event goes on past this chunk: accumulate, and carry a dip open at the end
        seg = p[j:n]
        self._sum += float(seg.sum())
        self._count += n - j
        self._max = max(self._max, float(seg.max()))
        if len(runs.starts) and int(runs.ends[-1]) == n:
            last = len(runs.starts) - 1
            if carried and last == r:
                self._dip_start, self._dip_sum = dip_prev, dip_prev_sum + float(seg.sum())
            else:
                s = max(int(runs.starts[last]), j)
                self._dip_start, self._dip_sum = base + s, float(p[s:n].sum())
        return n

    def _close(self, base: int, p: np.ndarray, j: int, offset: int, dip_prev: int | None, dip_prev_sum: float,
               emit_s: float, reason: str, out: list[Transition]) -> None:
        """End the active event at local sample ``offset`` (< 0: the dip carried from the last chunk)."""
        total, count, peak = self._sum, self._count, self._max
        if offset < 0:
            assert dip_prev is not None and base + offset == dip_prev
            total -= dip_prev_sum
            count -= base - dip_prev
        elif offset > j:
            seg = p[j:offset]
            total += float(seg.sum())
            count += offset - j
            peak = max(peak, float(seg.max()))
        out.append(Transition("offset", emit_s, self._t(self._onset), self._t(base + offset), peak,
                              total / count, reason))
        self._refr_end = base + offset + self._n_refr
        self._reset_event()


def detect_events(probs: np.ndarray, rate_hz: float, thresholds: AlarmThresholds,
                  t0_s: float = 0.0) -> list[DetectedEvent]:
    """Run the post-processor over a whole recording.

    Parameters
    ----------
    probs : array_like of float, shape (n_samples,)
        Per-sample seizure probabilities in [0, 1].
    rate_hz : float
        Sample rate of ``probs`` in Hz.
    thresholds : AlarmThresholds
        The rules (see the module docstring).
    t0_s : float, default 0.0
        Stream time (s) of ``probs[0]``.

    Returns
    -------
    events : list of DetectedEvent
        Complete events in time order; an event still open at the end of the data ends there.

    Raises
    ------
    ValueError
        As :meth:`PostProcessor.feed`.
    """
    pp = PostProcessor(thresholds)
    transitions = pp.feed(t0_s, probs, rate_hz)
    transitions += pp.finish()
    return events_from_transitions(transitions)


def events_from_transitions(transitions: list[Transition]) -> list[DetectedEvent]:
    """Pair the onset and offset transitions of one post-processor run into closed events.

    Parameters
    ----------
    transitions : list of Transition
        Everything a :class:`PostProcessor` returned from ``feed`` and ``finish``, in order (so every
        onset is followed by its offset).

    Returns
    -------
    events : list of DetectedEvent
        One per offset, with ``raised_s`` the time of the onset transition that opened it (NaN when the
        run started inside an event whose onset was not in ``transitions``).
    """
    events: list[DetectedEvent] = []
    raised = float("nan")
    for tr in transitions:
        if tr.kind == "onset":
            raised = tr.time_s
        else:
            if tr.offset_s is None:
                raise ValueError(f"an {tr.kind!r} transition without offset_s cannot close an event: {tr}")
            events.append(DetectedEvent(tr.onset_s, tr.offset_s, tr.peak, tr.mean, raised, tr.reason))
    return events
