"""`EdfReplaySource`: an EDF/EDF+ file replayed as a bed's stream, paced in real time or faster."""

from __future__ import annotations

import time

import numpy as np

from ictal.detector.config import FrontendConfig
from ictal.detector.resample import MAX_INPUT_FS_HZ, MIN_INPUT_FS_HZ, rational_rate
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import EdfSourceConfig
from ictal.streaming.edf import BLOCK_S, CanonicalStream, open_canonical
from ictal.streaming.sources.base import Source


class EdfReplaySource(Source):
    """Replay of an EDF or EDF+ file (read by ``streaming.edf``) as consecutive chunks.

    Pacing follows an absolute schedule against the monotonic clock: the chunk that ends at sample
    ``i`` (exclusive) is released at ``t0 + i / (fs * speed)``, where ``t0`` is the monotonic time of
    the first ``read``. Each release time is computed from ``t0``, never from the previous release,
    so sleep overshoots do not accumulate: the replay never drifts. ``speed = 0`` releases chunks as
    fast as they are read.

    ``clock_s`` of a chunk is the scheduled monotonic time (``time.monotonic``, the clock of
    ``pylsl.local_clock`` on Linux) at which its first sample is acquired at ``speed > 0``:
    ``t0 + first_index / (fs * speed)``; at ``speed = 0`` it is the file time ``first_index / fs``.

    With ``loop``, the file starts again after its last sample; the sample index keeps increasing
    (no gap: the loop joint is a discontinuity of the signal, not of time).

    The file is read in blocks of ``streaming.edf.BLOCK_S`` seconds (``streaming.edf.open_canonical``):
    memory does not grow with the file's length. Every check of ``streaming.edf.load_canonical`` is
    made by ``open()``, before the first chunk; the samples are those of ``load_canonical``.

    Parameters
    ----------
    config : EdfSourceConfig
        File, speed, loop and chunk length.
    frontend_config : FrontendConfig, optional
        Supplies ``repair_missing`` for the montage (default: no repair).

    Attributes
    ----------
    stream : CanonicalStream or None
        The opened file (after ``open()``, None after ``close()``): ``fs``, ``n_samples``,
        ``duration_s``, ``montage``, ``annotations``.
    n_loops : int
        Times the file was restarted.
    """

    def __init__(self, config: EdfSourceConfig, frontend_config: FrontendConfig | None = None) -> None:
        self.config = config
        self.frontend_config = frontend_config
        self.stream: CanonicalStream | None = None
        self.n_loops = 0
        self._block = np.empty((0, 0), dtype=np.float32)
        self._block_start = 0
        self._chunk_samples = 0
        self._next_index = 0
        self._t0: float | None = None
        self._exhausted = False

    @property
    def fs(self) -> float:
        """Sampling rate of the chunks in Hz: the file's, or :func:`ictal.detector.resample.rational_rate` of it
        when its ratio to 256 Hz has no small factors (an EDF record of 0.9999 s makes 199.98 Hz; the
        replay then runs at most 5.1e-4 off, as for an LSL stream of such a rate)."""
        if self.stream is None:
            raise RuntimeError("EdfReplaySource.fs is known only after open()")
        return rational_rate(self.stream.fs)

    @property
    def exhausted(self) -> bool:
        """True after the last chunk of a non-looping replay."""
        return self._exhausted

    def open(self) -> None:
        """Open the file and map it to the canonical montage (no sample is read yet).

        Raises
        ------
        detector.montage.MontageError, ValueError, FileNotFoundError
            As ``streaming.edf.load_canonical``; ValueError also for a file with no samples or a rate
            outside [``MIN_INPUT_FS_HZ``, ``MAX_INPUT_FS_HZ``].
        """
        self.close()
        stream = open_canonical(self.config.path, self.frontend_config)
        if stream.n_samples == 0:
            stream.close()
            raise ValueError(f"{self.config.path} holds no samples")
        if not MIN_INPUT_FS_HZ <= stream.fs <= MAX_INPUT_FS_HZ:
            stream.close()
            raise ValueError(f"{self.config.path} is sampled at {stream.fs:g} Hz; the front-end takes "
                             f"[{MIN_INPUT_FS_HZ:g}, {MAX_INPUT_FS_HZ:g}] Hz (detector.resample)")
        self.stream = stream
        self._block = np.empty((stream.montage.n_out, 0), dtype=np.float32)
        self._block_start = 0
        self._chunk_samples = max(1, round(self.config.chunk_s * stream.fs))
        self._next_index = 0
        self._t0 = None
        self._exhausted = False

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        self._block = np.empty((0, 0), dtype=np.float32)

    def clock_offset_s(self) -> float | None:
        """UTC minus the replay's clock now (s), or None at ``speed = 0``.

        At ``speed > 0`` ``Chunk.clock_s`` is the pacing schedule on ``time.monotonic``, so the offset
        is ``time.time() - time.monotonic()``; at ``speed = 0`` it is file time, tied to no real clock.
        """
        if self.config.speed > 0:
            return time.time() - time.monotonic()
        return None

    def release_time(self, end_index: int) -> float:
        """Monotonic time in seconds at which the samples before ``end_index`` are acquired."""
        if self._t0 is None:
            raise RuntimeError("the replay schedule starts at the first read()")
        return self._t0 + end_index / (self.stream.fs * self.config.speed)

    def read(self, timeout_s: float) -> Chunk | None:
        """The next chunk once its last sample is due (see class Notes); None on timeout or at the end.

        Parameters
        ----------
        timeout_s : float
            Longest wait in seconds.

        Returns
        -------
        chunk : Chunk or None
            ``config.chunk_s`` seconds of signal (shorter at the end of the file), (19, n) float32 uV.

        Raises
        ------
        RuntimeError
            If the source is not open.
        """
        if self.stream is None:
            raise RuntimeError("EdfReplaySource.read called before open()")
        if self._exhausted:
            return None
        n_file = self.stream.n_samples
        position = self._next_index % n_file if self.config.loop else self._next_index
        if position >= n_file:
            self._exhausted = True
            return None
        n = min(self._chunk_samples, n_file - position)
        speed = self.config.speed
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        if speed > 0:
            wait = self.release_time(self._next_index + n) - now
            if wait > timeout_s:
                time.sleep(max(timeout_s, 0.0))
                return None
            if wait > 0:
                time.sleep(wait)
            clock_s = self.release_time(self._next_index)
        else:
            clock_s = self._next_index / self.stream.fs
        data = self._samples(position, n)
        chunk = Chunk(data=data, first_index=self._next_index, clock_s=clock_s, fs=self.fs)
        self._next_index += n
        if self.config.loop and position + n == n_file:
            self.n_loops += 1
        elif not self.config.loop and position + n == n_file:
            self._exhausted = True
        return chunk

    def _samples(self, position: int, n: int) -> np.ndarray:
        """Samples ``position`` to ``position + n`` of the file, (19, n) float32, from the current block.

        A block of ``BLOCK_S`` seconds (at least ``n`` samples, at most to the end of the file) is read
        when the current one does not hold them all.
        """
        offset = position - self._block_start
        if offset < 0 or offset + n > self._block.shape[1]:
            size = max(n, round(BLOCK_S * self.stream.fs))
            self._block = self.stream.read(position, min(self.stream.n_samples, position + size))
            self._block_start, offset = position, 0
        return np.ascontiguousarray(self._block[:, offset:offset + n])
