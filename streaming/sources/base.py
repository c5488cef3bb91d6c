"""`Source`: the interface every EEG source of a bed implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ictal.detector import CANONICAL_CHANNELS
from ictal.streaming.chunk import Chunk


class Source(ABC):
    """A bed's EEG source, already mapped to the canonical 19 channels in microvolts.

    Lifecycle: ``open()`` once, then ``read(timeout_s)`` repeatedly, then ``close()`` (also usable
    as a context manager). Chunks come out in order with increasing ``first_index``; a jump of the
    index (``Chunk.gap_samples``) marks samples the source knows were lost.

    Attributes
    ----------
    fs : float
        Sampling rate of the chunks in Hz (the native rate of the device or file; the bed's
        ``BedPipeline`` resamples to 256 Hz). Valid after ``open()``.
    labels : tuple of str
        Channel labels of ``Chunk.data`` rows: ``detector.CANONICAL_CHANNELS``.
    """

    labels: tuple[str, ...] = CANONICAL_CHANNELS

    @property
    @abstractmethod
    def fs(self) -> float:
        """Sampling rate in Hz (raises RuntimeError before ``open()``)."""

    @abstractmethod
    def open(self) -> None:
        """Connect to the device or open the file; raises on a montage, unit or rate problem."""

    @abstractmethod
    def read(self, timeout_s: float) -> Chunk | None:
        """The next chunk, waiting at most ``timeout_s`` seconds; None when none is ready in time.

        Parameters
        ----------
        timeout_s : float
            Longest wait in seconds (0: do not wait).

        Returns
        -------
        chunk : Chunk or None
            ``data`` of shape (19, n) float32 uV at ``fs``; None on timeout, while disconnected, or at
            the end of a finite source (see ``exhausted``).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device or file; idempotent."""

    def clock_offset_s(self) -> float | None:
        """UTC minus source clock, now: Unix time (s) = ``Chunk.clock_s`` + this offset.

        The source's clock mapping, measured when called (so a stepped wall clock is followed); the
        daemon turns sample times into UTC with it (``streaming.sources.wall_clock``). None when the
        source's clock is not tied to real time (the default, and an unpaced replay): the daemon then
        dates a sample by the moment it received it.

        Returns
        -------
        offset_s : float or None
            Seconds; ``time.time() - <source clock now>``.
        """
        return None

    @property
    def exhausted(self) -> bool:
        """True when a finite source (EDF replay without loop) has delivered its last chunk."""
        return False

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
