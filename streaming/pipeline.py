"""`BedPipeline`: one bed's path from source chunks to scored-window inputs and stitched output.

The daemon and ``ictal evaluate`` both run recordings through this class, so evaluation scores
exactly what the daemon would have scored.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from ictal.detector import FS_HZ, WINDOW_SAMPLES
from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import Frontend
from ictal.detector.montage import montage_channels
from ictal.detector.output_position import check_positions, seconds_to_samples, served_span
from ictal.detector.quality import (
    QualityReport,
    RailStats,
    RailSummary,
    assess_window,
    rail_stats,
    rail_summary,
)
from ictal.streaming.chunk import Chunk
from ictal.streaming.ringbuffer import RingBuffer
from ictal.streaming.scheduler import WindowScheduler


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


@dataclass(frozen=True)
class StreamHop(Window):
    """One hop of a bed in stream mode: the model input that extends the bed's carried state.

    A warm hop's ``data`` is the hop's new samples of the bed's per-sample normalised stream
    (``BedPipeline.norm_ring``), ``[end_index - step_samples, end_index)``: the model steps the bed's
    state over them. A ``cold`` hop's ``data`` is the 60 s rebuild input instead, exactly the window
    window mode would score at the same end (the normalised samples since ``quality_start``,
    left-padded with ``padding_samples`` zeros as a warm-up window): the model starts from
    ``init_state`` and steps over all of it. Either way the probabilities are aligned to the hop's
    end and only the served span (``stitch_from``..``stitch_end``) is stitched.

    Attributes
    ----------
    step_samples : int
        New samples of this hop (a multiple of the checkpoint's ``stream_multiple_samples``).
    cold : bool
        The bed's state must be rebuilt at this hop (``cold_reason`` says why).
    cold_reason : str or None
        ``"start"`` (first hop after connecting or a restart of the warm-up), ``"gap"`` (the step span
        holds gap filler or follows a front-end reset), ``"signal_quality"`` (the first usable hop after
        unusable ones), ``"reconnect"`` (a new connection or generation of the bed), ``"discontinuous"``
        (a hop before it was skipped).
    quality_start : int
        ``max(origin, end_index - 15360)``: the first sample of the span the hop's ``quality`` was
        assessed on, the span window mode would assess (and score) at the same end.
    quality_valid : ndarray of bool, shape (end_index - quality_start,)
        False where the quality span is gap filler.
    padding_samples : int
        Cold hops: zeros at the left of ``data`` (``15360 - (end_index - quality_start)``); 0 otherwise.
    """

    step_samples: int = 0
    cold: bool = False
    cold_reason: str | None = None
    quality_start: int = 0
    quality_valid: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=bool))
    padding_samples: int = 0

    @property
    def step_start(self) -> int:
        """Absolute index (256 Hz) of the hop's first new sample; a carried state must end here."""
        return self.end_index - self.step_samples


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
    mode : {"window", "stream"}, default "window"
        ``window``: ``push`` returns 60 s :class:`Window` s. ``stream``: it returns :class:`StreamHop` s
        (see Notes).
    min_history_s : float, default 10
        Stream mode only: the first hop ends ``min_history_s`` after the origin (as the first
        warm-up window of ``streaming.bed`` in window mode).
    stream_multiple_samples : int, default 1
        Stream mode only: the checkpoint's ``Detector.stream_multiple_samples``; every hop, the warm-up and
        the 60 s window must be whole multiples of it.

    Raises
    ------
    ValueError
        If ``hop_s`` is not a whole number of samples at 256 Hz or out of range, ``ring_s`` < 60, or
        ``lookahead_s`` is negative, not a whole number of samples or does not fit beside the hop; in
        stream mode (:func:`stream_mode_problems`) if the front-end's normalisation is not ``running``,
        ``lookahead_s`` is not 0, or a hop, the warm-up or the window is not a multiple of
        ``stream_multiple_samples``.

    Notes
    -----
    Normalised stream: with ``running`` normalisation each processed piece is normalised per sample
    as it arrives (``RunningNormaliser.normalise_causal``: sample ``t`` with the statistics of the
    samples before its second) into a second ring buffer, ``norm_ring``, of the same capacity (gap
    filler 0: a channel's running mean); every window and hop reads its input from there, so a
    sample has the same normalised value in every window and hop, whatever the chunking and the
    gaps (the front-end's statistics restart at a gap; the samples before it keep the values they
    had).

    Stream mode: the hops end on the grid of window mode (``min_history_s`` after the origin, every
    hop, and the first full window's end ``origin + 15360`` on the way), so the two modes emit
    probabilities for the same samples. A hop is ``cold`` (the state must be rebuilt) when it is the
    first after the origin, or when its step span holds gap filler or starts before a front-end
    reset (a gap); a hop whose served span holds no real sample is skipped, and the next is cold.
    A cold hop carries the 60 s input window mode would score at its end (:meth:`cold_hop`); a
    warm one only its new samples. Its ``quality`` is assessed on the filtered span window mode
    would assess at the same end (``quality_start``), so both modes judge the input alike.
    """

    def __init__(self, frontend_config: FrontendConfig, fs_in: float, hop_s: float, ring_s: float = 120.0,
                 lookahead_s: float = 0.0, restart_gap_s: float | None = None, *,
                 mode: str = "window", min_history_s: float = 10.0, stream_multiple_samples: int = 1) -> None:
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
        self.channels = montage_channels(frontend_config.montage)  # the model's rows (detector.montage)
        # The ring holds at least one window plus two hops, so a window is always complete when due.
        capacity = max(int(round(ring_s * FS_HZ)), WINDOW_SAMPLES + 2 * hop_samples)
        self.ring = RingBuffer(len(self.channels), capacity)
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
        if mode not in ("window", "stream"):
            raise ValueError(f"mode must be 'window' or 'stream' (found {mode!r})")
        self.mode = mode
        self.min_history_samples = int(round(min_history_s * FS_HZ))
        self.norm_ring: RingBuffer | None = None
        if mode == "stream":
            problems = stream_mode_problems(frontend_config.normalisation, self.lookahead_samples, hop_samples,
                                            self.min_history_samples, stream_multiple_samples)
            if problems:
                raise ValueError("stream mode refused: " + "; ".join(problems))
        if self.frontend.running is not None:
            self.norm_ring = RingBuffer(len(self.channels), capacity)
        self._hop_origin: int | None = None  # scheduler origin the hop grid was laid from
        self._next_hop_end = 0
        self._prev_hop_end: int | None = None  # end of the previous hop emitted (None: next one is cold)
        self._resets_at_hop = 0  # n_resets when the previous hop was emitted

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
        if self.norm_ring is not None and filtered.shape[1]:
            running = self.frontend.running
            assert running is not None  # stream mode requires running normalisation (checked at __init__)
            self.norm_ring.append(running.normalise_causal(filtered, running.n_seen - filtered.shape[1]),
                                  self._out_end)
        self._out_end += filtered.shape[1]
        if self._raw_pending_n >= self._piece_in:
            self._flush_rails()
        if self.mode == "stream":
            return self._due_hops()
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
            data=self.normalised(filtered, start, end, end_in_frontend),
            end_index=end,
            quality=assess_window(filtered, FS_HZ, self.channels, rails=self.rails_between(start, end)),
            valid=valid,
            stitch_from=lo,
            end_clock_s=self.clock_at(end - 1),
            nonfinite_replaced=self.nonfinite_between(start, end),
            stitch_to=hi,
        )

    def _due_hops(self) -> list[Window]:
        """The stream-mode hops that became due (the grid of window mode, see Notes of the class)."""
        origin = self.scheduler.origin
        assert origin is not None
        if self._hop_origin != origin:  # connected, or the warm-up restarted after a long gap
            self._hop_origin = origin
            self._next_hop_end = origin + self.min_history_samples
            self._prev_hop_end = None
        hops: list[Window] = []
        full_end = origin + WINDOW_SAMPLES
        while self._next_hop_end <= self._out_end:
            end = self._next_hop_end
            following = end + self.hop_samples
            self._next_hop_end = full_end if end < full_end < following else following
            hop = self._make_hop(origin, end)
            self._prev_hop_end = None if hop is None else end
            self._resets_at_hop = self.n_resets
            if hop is not None:
                hops.append(hop)
        return hops

    def _make_hop(self, origin: int, end: int) -> StreamHop | None:
        assert self.norm_ring is not None
        lo, hi = served_span(end, self.hop_samples, self.lookahead_samples)
        lo = max(lo, origin)
        q_start = max(origin, end - WINDOW_SAMPLES)
        filtered, q_valid = self.ring.read_recent(q_start, end)
        if not q_valid[lo - q_start:].any():
            return None
        step_start = origin if self._prev_hop_end is None else self._prev_hop_end
        cold_reason = None
        if self._prev_hop_end is None:
            cold_reason = "start"
        elif self.n_resets != self._resets_at_hop or not q_valid[step_start - q_start:].all():
            cold_reason = "gap"
        hop = StreamHop(
            data=self.norm_ring.read_recent(step_start, end)[0], end_index=end,
            quality=assess_window(filtered, FS_HZ, self.channels, rails=self.rails_between(q_start, end)),
            valid=q_valid[step_start - q_start:], stitch_from=lo, end_clock_s=self.clock_at(end - 1),
            nonfinite_replaced=self.nonfinite_between(q_start, end), stitch_to=hi,
            step_samples=end - step_start, quality_start=q_start, quality_valid=q_valid,
        )
        return hop if cold_reason is None else self.cold_hop(hop, cold_reason)

    def cold_hop(self, hop: StreamHop, reason: str) -> StreamHop:
        """The same hop with the 60 s rebuild input as ``data`` (see :class:`StreamHop`).

        Parameters
        ----------
        hop : StreamHop
            A hop of this pipeline whose quality span is still in the ring buffer (a queued hop).
        reason : str
            ``cold_reason``; a hop already cold keeps its reason.

        Returns
        -------
        hop : StreamHop
            ``data`` (19, 15360): zeros then the normalised samples ``[quality_start, end_index)``;
            ``valid`` False on the padding and the gap filler.
        """
        if hop.cold:
            return hop
        assert self.norm_ring is not None
        history = hop.end_index - hop.quality_start
        data = np.zeros((len(self.channels), WINDOW_SAMPLES), dtype=np.float32)
        valid = np.zeros(WINDOW_SAMPLES, dtype=bool)
        data[:, WINDOW_SAMPLES - history:] = self.norm_ring.read_recent(hop.quality_start, hop.end_index)[0]
        valid[WINDOW_SAMPLES - history:] = hop.quality_valid
        return replace(hop, data=data, valid=valid, cold=True, cold_reason=reason,
                       padding_samples=WINDOW_SAMPLES - history)

    def extend_hop(self, hop: StreamHop, skipped: StreamHop) -> StreamHop:
        """The hop after a skipped one, extended back over the skipped hop's new samples.

        When scoring falls behind, the bed's thread discards the oldest queued hop; the state then ends
        where the skipped hop started. Instead of rebuilding it from 60 s of history (a whole window of
        work, at the moment the scorer is already behind), the next hop steps the state over the skipped
        samples and its own: work proportional to the new signal. Only the hop's own served span is
        stitched, as after a skipped window in window mode.

        Parameters
        ----------
        hop : StreamHop
            The queued hop that follows ``skipped``.
        skipped : StreamHop
            The hop discarded before it.

        Returns
        -------
        hop : StreamHop
            ``data`` = the normalised samples ``[skipped.step_start, hop.end_index)``; or the hop made
            cold (``discontinuous``) when ``skipped`` was itself cold (its state was never built), or the
            extended span holds gap filler or is no longer in the ring buffer; ``hop`` unchanged when it
            is cold already.
        """
        if hop.cold:
            return hop
        if skipped.cold:
            return self.cold_hop(hop, skipped.cold_reason or "discontinuous")
        assert self.norm_ring is not None
        start = skipped.step_start
        if start < self.norm_ring.start_index:
            return self.cold_hop(hop, "discontinuous")
        data, valid = self.norm_ring.read_recent(start, hop.end_index)
        if not valid.all():
            return self.cold_hop(hop, "gap")
        return replace(hop, data=data, valid=valid, step_samples=hop.end_index - start)

    def normalised(self, filtered: np.ndarray, start: int, end: int, end_in_frontend: int) -> np.ndarray:
        """Model input of the filtered samples ``[start, end)`` (absolute indices at 256 Hz).

        With ``running`` normalisation, the slice of :attr:`norm_ring` (each sample normalised once, as
        it arrived, with the statistics before its second; gap filler 0), so that a window is a slice
        of the per-sample normalised stream whatever the gaps before it; otherwise
        ``Frontend.prepare_window`` of ``filtered`` (``end_in_frontend``: ``end`` counted from the
        front-end's last reset).
        """
        if self.norm_ring is not None:
            return self.norm_ring.read_recent(start, end)[0]
        return self.frontend.prepare_window(filtered, end_index=end_in_frontend)

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
        counts = np.zeros(len(self.channels), dtype=np.int64)
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


def stream_mode_problems(normalisation: str, lookahead_samples: int, hop_samples: int, min_history_samples: int,
                         multiple: int) -> list[str]:
    """Why a bed cannot run in stream mode with these settings (empty when it can).

    Parameters
    ----------
    normalisation : str
        The checkpoint's ``FrontendConfig.normalisation`` (stream mode needs ``running``: per-sample
        causal normalisation; ``window_robust`` is a function of a whole 60 s window).
    lookahead_samples : int
        The checkpoint's lookahead at 256 Hz (stream mode needs 0: a hop's probabilities are final
        when the hop is in).
    hop_samples, min_history_samples : int
        ``scheduler.hop_s`` and ``scheduler.min_history_s`` at 256 Hz.
    multiple : int
        ``Detector.stream_multiple_samples``: every step's sample count must be a multiple of it.

    Returns
    -------
    problems : list of str
        One sentence per problem, naming the setting, the value found and the value expected.
    """
    problems = []
    if normalisation != "running":
        problems.append(f"the checkpoint's front-end normalisation is {normalisation!r}; stream mode needs "
                        "'running' (per-sample causal normalisation)")
    if lookahead_samples != 0:
        problems.append(f"the checkpoint's lookahead_s is {lookahead_samples / FS_HZ:g} s; stream mode needs 0")
    if multiple < 1:
        problems.append(f"stream_multiple_samples must be >= 1 (found {multiple})")
        return problems
    for name, samples in (("scheduler.hop_s", hop_samples), ("scheduler.min_history_s", min_history_samples),
                          ("the 60 s window", WINDOW_SAMPLES)):
        if samples % multiple:
            problems.append(
                f"{name} is {samples} samples ({samples / FS_HZ:g} s); stream mode steps the model by multiples "
                f"of {multiple} samples ({multiple / FS_HZ:g} s), e.g. {max(1, round(samples / multiple)) * multiple / FS_HZ:g} s"
            )
    return problems
