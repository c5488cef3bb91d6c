"""`BedPipeline`: one bed's path from source chunks to scored-window inputs and stitched output.

The daemon and ``ictal evaluate`` both run recordings through this class, so evaluation scores
exactly what the daemon would have scored.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from detector import CANONICAL_CHANNELS, FS_HZ, WINDOW_SAMPLES
from detector.config import FrontendConfig
from detector.frontend import Frontend
from detector.output_position import check_positions, seconds_to_samples, served_span
from detector.quality import QualityReport, RailStats, RailSummary, assess_window, rail_stats, rail_summary
from streaming.chunk import Chunk
from streaming.ringbuffer import RingBuffer
from streaming.scheduler import WindowScheduler


@dataclass(frozen=True)
class Window:
    """One 60 s window ready for the model.

    Attributes
    ----------
    data : ndarray of float32, shape (19, 15360)
        Normalised model input (``Frontend.prepare_window`` of the filtered uV window).
    end_index : int
        Absolute index at 256 Hz one past the window's last sample.
    quality : QualityReport
        ``detector.quality.assess_window`` of the filtered uV window (before normalisation), with the
        rail clipping of the window's raw samples (``BedPipeline.rails_between``).
    valid : ndarray of bool, shape (15360,)
        False where the sample is gap filler (see ``streaming.ringbuffer``).
    stitch_from : int
        First absolute index (256 Hz) whose probability this window contributes to the per-sample
        output: the start of its served span ``end_index - lookahead - hop``
        (``detector.output_position.served_span``), clipped to the samples the window really holds.
    end_clock_s : float
        Source clock time of the window's last sample in seconds (for latency).
    nonfinite_replaced : ndarray of int64, shape (19,)
        Non-finite input samples (NaN/Inf) per channel that the front-end replaced in the chunks
        overlapping this window (the filtered window itself is always finite, so
        ``quality.n_nonfinite`` cannot see them).
    """

    data: np.ndarray = field(repr=False)
    end_index: int
    quality: QualityReport = field(repr=False)
    valid: np.ndarray = field(repr=False)
    stitch_from: int
    end_clock_s: float
    nonfinite_replaced: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(19, dtype=np.int64))
    stitch_to: int | None = None

    @property
    def stitch_end(self) -> int:
        """One past the last absolute index (256 Hz) this window contributes (``end_index - lookahead``)."""
        return self.end_index if self.stitch_to is None else self.stitch_to

    @property
    def start_index(self) -> int:
        """Absolute index (256 Hz) of the window's first sample."""
        return self.end_index - self.data.shape[1]

    @property
    def gap_samples(self) -> int:
        """Number of gap-filler samples in the window (0 for a window of contiguous signal)."""
        return int(self.valid.size - np.count_nonzero(self.valid))

    @property
    def has_gap(self) -> bool:
        """True when the window overlaps a recorded gap."""
        return self.gap_samples > 0


class BedPipeline:
    """Front-end, ring buffer and window scheduler of one bed.

    ``push`` takes source chunks (canonical 19 channels, uV, ``fs_in`` Hz) in order, runs the
    stateful front-end (``detector.frontend.Frontend.process``: resampling to 256 Hz, causal
    band-pass and notch) on each, appends the result to the ring buffer and returns every window
    that became due (``WindowScheduler``: warm-up until the first full 60 s, then one per hop),
    normalised by ``Frontend.prepare_window``. Chunked input gives the same windows as the whole
    recording processed at once, whatever the chunk sizes. Each window yields the probabilities of
    its served span only (``detector.output_position``: ``[end - lookahead - hop, end - lookahead)``),
    the first window of a stream included.

    Raw statistics: the raw input is summarised, a hop at a time (and at every window and gap), by
    ``detector.quality.rail_stats`` (its extremes and the samples on a plateau at them), so that
    clipping at an amplifier's rails is judged on the raw microvolts (the band-pass makes the plateaus
    droop) while the spectral checks stay on the filtered window; a window's report combines the
    stretches whose output overlaps it (granularity: at most one hop).

    Gaps: a chunk whose ``first_index`` lies beyond the end of the previous one starts a new
    segment. The front-end state is reset (carrying filter and resampler state across missing
    samples would glue the two sides together), the new segment is placed at its true time
    (``ceil(first_index * 256 / fs_in)`` at 256 Hz) and the ring buffer records the gap (zeros, mask
    False). A window is emitted when its served span holds at least one real sample; windows whose
    span lies entirely in a gap are skipped (they would score only filler), so the stitched
    output has no probabilities for the gap. Emitted windows that overlap a gap say so
    (``Window.valid``, ``Window.has_gap``); the daemon decides what to do with them. A gap of
    ``restart_gap_s`` or more restarts the warm-up: the scheduler's origin moves to the first sample
    after the gap (``BedPipeline.n_restarts``), so no window reaches back across it (the per-bed
    session then scores left-padded warm-up windows again, as after connecting).

    Parameters
    ----------
    frontend_config : FrontendConfig
        The front-end (the checkpoint's).
    fs_in : float
        Rate of the incoming chunks in Hz.
    hop_s : float
        Seconds between windows; ``hop_s * 256`` must be a whole number of samples in (0, 15360].
    ring_s : float
        Seconds kept in the ring buffer (>= 60).
    lookahead_s : float, default 0
        The checkpoint's lookahead (``detector.output_position``); a whole number of samples at 256 Hz
        with ``hop_s + lookahead_s <= 60``.
    restart_gap_s : float or None, default None
        A gap at least this long restarts the warm-up at the first sample after it; None never does.

    Raises
    ------
    ValueError
        If ``hop_s`` is not a whole number of samples at 256 Hz or out of range, ``ring_s`` < 60, or
        ``lookahead_s`` is negative, not a whole number of samples or does not fit beside the hop.
    """

    def __init__(self, frontend_config: FrontendConfig, fs_in: float, hop_s: float, ring_s: float = 120.0,
                 lookahead_s: float = 0.0, restart_gap_s: float | None = None) -> None:
        hop_samples = round(hop_s * FS_HZ)
        if abs(hop_samples - hop_s * FS_HZ) > 1e-6 or not 1 <= hop_samples <= WINDOW_SAMPLES:
            raise ValueError(
                f"hop_s must be a whole number of samples at {FS_HZ} Hz within (0, 60] s (found {hop_s})"
            )
        if ring_s * FS_HZ < WINDOW_SAMPLES:
            raise ValueError(f"ring_s must hold one window (>= 60 s) (found {ring_s})")
        if not fs_in > 0:
            raise ValueError(f"fs_in must be > 0 Hz (found {fs_in})")
        self.lookahead_samples = seconds_to_samples(lookahead_s, "lookahead_s")
        check_positions(hop_samples, self.lookahead_samples)
        self.lookahead_s = self.lookahead_samples / FS_HZ
        self.restart_gap_samples = None if restart_gap_s is None else max(1, int(math.ceil(restart_gap_s * FS_HZ)))
        self.n_restarts = 0
        self.frontend_config = frontend_config
        self.fs_in = float(fs_in)
        self.hop_s = float(hop_s)
        self.hop_samples = hop_samples
        self.frontend = Frontend(frontend_config, self.fs_in)
        # The ring holds at least one window plus two hops, so a window is always complete when due.
        capacity = max(int(round(ring_s * FS_HZ)), WINDOW_SAMPLES + 2 * hop_samples)
        self.ring = RingBuffer(len(CANONICAL_CHANNELS), capacity)
        self._piece_in = max(1, int(hop_samples * self.fs_in / FS_HZ))  # input samples per processed piece
        self.scheduler = WindowScheduler(hop_samples, WINDOW_SAMPLES)
        self.n_resets = 0
        self._next_in: int | None = None  # expected first_index of the next chunk (at fs_in)
        self._out_end: int | None = None  # one past the newest front-end output (at 256 Hz)
        self._clock_anchor = (0, 0.0)  # (first_index at fs_in, clock_s) of the newest chunk
        self._nonfinite: deque[tuple[int, int, np.ndarray]] = deque()  # (out_start, out_end, counts)
        self._rails: deque[tuple[int, int, RailStats]] = deque()  # (out_start, out_end, raw piece stats)
        self._raw_pending: list[np.ndarray] = []  # raw input not yet summarised (see _flush_rails)
        self._raw_pending_n = 0
        self._raw_out_start = 0  # output index (256 Hz) where the pending raw input's output starts

    def out_index(self, in_index: int) -> int:
        """Index at 256 Hz of the first output sample of a segment starting at input index ``in_index``."""
        return math.ceil(in_index * FS_HZ / self.fs_in - 1e-9)

    _out_index = out_index

    def clock_at(self, index: int) -> float:
        """Source clock time in seconds of the sample at absolute index ``index`` (256 Hz)."""
        first_in, clock_s = self._clock_anchor
        return clock_s + index / FS_HZ - first_in / self.fs_in

    def push(self, chunk: Chunk) -> list[Window]:
        """Process the next chunk and return the windows it completed.

        Parameters
        ----------
        chunk : Chunk
            Next samples of the bed, ``data`` of shape (19, n) in uV at ``fs_in``; ``n`` may be 0.

        Returns
        -------
        windows : list of Window
            Windows that became due, oldest first (usually 0 or 1).

        Raises
        ------
        ValueError
            If the chunk's rate differs from ``fs_in`` or its ``first_index`` lies before the end of
            the previous chunk (overlap or out-of-order delivery).
        """
        if abs(chunk.fs - self.fs_in) > 1e-9 * self.fs_in:
            raise ValueError(f"chunk rate {chunk.fs} Hz differs from the pipeline's fs_in {self.fs_in} Hz")
        if self._next_in is None:
            self._next_in = chunk.first_index
            self._out_end = self._out_index(chunk.first_index)
            self.scheduler.start(self._out_end)
        elif chunk.first_index < self._next_in:
            raise ValueError(
                f"chunk starts at sample {chunk.first_index}, before the end of the previous chunk "
                f"({self._next_in}): overlapping or out-of-order samples"
            )
        elif chunk.first_index > self._next_in:
            self._flush_rails()  # a summary never spans a gap
            self.frontend.reset()
            self.n_resets += 1
            resume = max(self._out_end, self._out_index(chunk.first_index))
            if self.restart_gap_samples is not None and resume - self._out_end >= self.restart_gap_samples:
                self.scheduler.restart(resume)
                self.n_restarts += 1
            self._out_end = resume
        self._next_in = chunk.end_index
        self._clock_anchor = (chunk.first_index, chunk.clock_s)
        windows = []
        # Long chunks (a whole recording in ``ictal evaluate``) are processed a hop at a time, so
        # that every due window is read before the ring buffer overwrites its start; the front-end
        # gives the same output whatever the chunking.
        for lo in range(0, max(chunk.n_samples, 1), self._piece_in):
            windows += self._push_piece(chunk.data[:, lo : lo + self._piece_in])
        return windows

    def _push_piece(self, data: np.ndarray) -> list[Window]:
        if data.shape[1]:
            if not self._raw_pending:
                self._raw_out_start = self._out_end
            self._raw_pending.append(np.array(data, copy=True))
            self._raw_pending_n += data.shape[1]
        filtered = self.frontend.process(data)
        if self.frontend.n_nonfinite_last.any():
            self._nonfinite.append(
                (self._out_end, self._out_end + filtered.shape[1], self.frontend.n_nonfinite_last.copy())
            )
        while self._nonfinite and self._nonfinite[0][1] <= self._out_end - self.ring.capacity:
            self._nonfinite.popleft()
        self.ring.append(filtered, self._out_end)
        self._out_end += filtered.shape[1]
        if self._raw_pending_n >= self._piece_in:
            self._flush_rails()
        windows = []
        for end in self.scheduler.due(self._out_end):
            window = self._make_window(end)
            if window is not None:
                windows.append(window)
        return windows

    def _make_window(self, end: int) -> Window | None:
        start = end - WINDOW_SAMPLES
        filtered, valid = self.ring.read_recent(start, end)  # a gap longer than the ring: filler, not an error
        lo, hi = served_span(end, self.hop_samples, self.lookahead_samples)
        if not valid[lo - start : hi - start].any():
            return None
        # The front-end counts its output from its last reset; running normalisation needs the
        # window's end in that count. A window ending before the newest segment's first running
        # statistics (possible only right after a gap) cannot be normalised that way and is skipped.
        end_in_frontend = self.frontend.n_out - (self._out_end - end)
        if self.frontend.running is not None and end_in_frontend < 1:
            return None
        return Window(
            data=self.frontend.prepare_window(filtered, end_index=end_in_frontend),
            end_index=end,
            quality=assess_window(filtered, FS_HZ, rails=self.rails_between(start, end)),
            valid=valid,
            stitch_from=lo,
            end_clock_s=self.clock_at(end - 1),
            nonfinite_replaced=self.nonfinite_between(start, end),
            stitch_to=hi,
        )

    def nonfinite_between(self, start: int, end: int) -> np.ndarray:
        """Non-finite input samples replaced by the front-end in the output range ``[start, end)``.

        Parameters
        ----------
        start, end : int
            Absolute indices at 256 Hz (within the newest ``ring_s`` seconds).

        Returns
        -------
        counts : ndarray of int64, shape (19,)
            Per channel, the replaced NaN/Inf input samples of every processed piece whose output
            overlaps the range (piece granularity: at most one hop).
        """
        counts = np.zeros(len(CANONICAL_CHANNELS), dtype=np.int64)
        for lo, hi, n in self._nonfinite:
            if lo < end and hi > start:
                counts += n
        return counts

    def _flush_rails(self) -> None:
        """Summarise the raw input received since the last summary (``detector.quality.rail_stats``).

        Raw input is summarised by the hop (or at a window, or a gap, whichever comes first) rather
        than by the chunk: one call per hop keeps the cost per bed a few tens of microseconds per hop.
        """
        if not self._raw_pending:
            return
        raw = self._raw_pending[0] if len(self._raw_pending) == 1 else np.concatenate(self._raw_pending, axis=1)
        self._rails.append((self._raw_out_start, self._out_end, rail_stats(raw)))
        self._raw_pending = []
        self._raw_pending_n = 0
        while self._rails and self._rails[0][1] <= self._out_end - self.ring.capacity:
            self._rails.popleft()

    def rails_between(self, start: int, end: int) -> RailSummary | None:
        """Rail clipping of the raw input whose output lies in ``[start, end)``.

        Parameters
        ----------
        start, end : int
            Absolute indices at 256 Hz (within the newest ``ring_s`` seconds).

        Returns
        -------
        rails : RailSummary or None
            ``detector.quality.rail_summary`` of every summarised stretch of raw input (at most one hop,
            see ``_flush_rails``) whose output overlaps the range; None when none does.
        """
        self._flush_rails()
        return rail_summary(stats for lo, hi, stats in self._rails if lo < end and hi > start)

    _nonfinite_between = nonfinite_between  # the name streaming.bed used before it was public

    def stitch(self, window: Window, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """The part of a window's probabilities that becomes the per-sample output.

        Parameters
        ----------
        window : Window
            A window returned by ``push``.
        probs : ndarray, shape (15360,)
            The model's per-sample probabilities for ``window``.

        Returns
        -------
        first_index : int
            Absolute index (256 Hz) of the first returned probability (``window.stitch_from``).
        probs_new : ndarray of float32, shape (window.stitch_end - first_index,)
            The probabilities of the window's served span (``detector.output_position``:
            ``hop_s * 256`` samples ending ``lookahead`` before the window's end, fewer for a padded
            window whose history does not reach back that far).

        Raises
        ------
        ValueError
            If ``probs`` does not have shape (15360,).

        Notes
        -----
        Every probability is emitted once, when the window whose served span holds it is scored, and
        never revised; none is computed with more than ``lookahead + hop`` samples of future signal.
        The first window of a stream emits only its span too (it used to emit all 60 s, backdating
        onsets with up to a minute of future context); the samples before it are covered by the
        left-padded warm-up windows of ``streaming.bed`` from ``min_history_s`` on.
        """
        probs = np.asarray(probs)
        if probs.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"stitch expects probabilities of shape ({WINDOW_SAMPLES},) (found {probs.shape})")
        offset = window.stitch_from - window.start_index
        stop = window.stitch_end - window.start_index
        return window.stitch_from, probs[offset:stop].astype(np.float32, copy=True)
