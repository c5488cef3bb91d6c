"""`WindowScheduler`: which 60 s windows are due, one every hop, after a warm-up of one full window."""

from __future__ import annotations

from ictal.detector import WINDOW_SAMPLES


class WindowScheduler:
    """Emit the end indices of due windows on a fixed hop grid.

    Window ``k`` covers samples ``[end_k - window_samples, end_k)`` with
    ``end_k = origin + window_samples + k * hop_samples``: nothing is due during the warm-up (until
    one full window has been acquired since ``origin``), then one window every ``hop_samples``.

    Parameters
    ----------
    hop_samples : int
        Samples between the ends of successive windows (``hop_s`` x 256 at the detector rate);
        ``1 <= hop_samples <= window_samples``.
    window_samples : int
        Samples per window (default 15360 = 60 s at 256 Hz).

    Raises
    ------
    ValueError
        If ``hop_samples`` or ``window_samples`` is out of range.
    """

    def __init__(self, hop_samples: int, window_samples: int = WINDOW_SAMPLES) -> None:
        if window_samples < 1:
            raise ValueError(f"window_samples must be >= 1 (found {window_samples})")
        if not 1 <= hop_samples <= window_samples:
            raise ValueError(f"hop_samples must lie in [1, {window_samples}] (found {hop_samples})")
        self.hop_samples = int(hop_samples)
        self.window_samples = int(window_samples)
        self.origin: int | None = None
        self._next_end: int | None = None

    def start(self, origin: int) -> None:
        """Set the index of the first sample of the stream (the warm-up starts there).

        Raises
        ------
        RuntimeError
            If the scheduler was already started.
        """
        if self.origin is not None:
            raise RuntimeError(f"scheduler already started at index {self.origin}")
        self.origin = int(origin)
        self._next_end = self.origin + self.window_samples

    def restart(self, origin: int) -> None:
        """Start the warm-up again at ``origin`` (a stream that resumed after a long gap).

        Parameters
        ----------
        origin : int
            Absolute index of the first sample after the gap; the next window is due one full window
            later, and the windows before it are the session's left-padded warm-up windows.

        Raises
        ------
        RuntimeError
            If the scheduler was never started.
        ValueError
            If ``origin`` lies before the current one.
        """
        if self.origin is None:
            raise RuntimeError("WindowScheduler.restart called before start(origin)")
        if origin < self.origin:
            raise ValueError(f"restart origin {origin} lies before the current origin {self.origin}")
        self.origin = int(origin)
        self._next_end = self.origin + self.window_samples

    @property
    def warming_up(self) -> bool:
        """True until the first window has been emitted."""
        return self._next_end is None or self._next_end == self.origin + self.window_samples

    @property
    def next_end(self) -> int | None:
        """End index (exclusive) of the next window to be due, or None before ``start``."""
        return self._next_end

    def due(self, available_end: int) -> list[int]:
        """End indices of the windows completed by the samples acquired so far.

        Parameters
        ----------
        available_end : int
            One past the newest acquired sample (absolute index).

        Returns
        -------
        ends : list of int
            End indices (exclusive), ascending; each is returned once.

        Raises
        ------
        RuntimeError
            If the scheduler was not started.
        """
        if self._next_end is None:
            raise RuntimeError("WindowScheduler.due called before start(origin)")
        ends = []
        while self._next_end <= available_end:
            ends.append(self._next_end)
            self._next_end += self.hop_samples
        return ends
