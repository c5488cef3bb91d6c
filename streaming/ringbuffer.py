"""`RingBuffer`: the newest N samples of all channels, addressed by absolute sample index, with gaps."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Fixed-capacity buffer of the newest samples of a multichannel stream.

    Samples are addressed by their absolute index (0 = first sample of the stream at the buffer's
    rate). The buffer holds indices ``[start_index, end_index)`` with
    ``end_index - start_index <= capacity``.

    Gaps are recorded, never glued: appending at an index beyond ``end_index`` records the gap
    ``[end_index, first_index)``; the buffer holds zeros there and its validity mask is False, so
    every later sample keeps its true index and a window that overlaps the gap is both correctly
    placed in time and told which of its samples are filler (``read`` returns the mask). Zero is
    the neutral value of band-passed EEG in uV (the band-pass removes the mean), so the filler adds
    no spurious rhythm; consumers must still treat masked samples as missing.

    Parameters
    ----------
    n_channels : int
        Number of channels (19 for the canonical montage).
    capacity : int
        Samples kept per channel (e.g. ``ring_s * 256``).
    dtype : numpy dtype
        Sample type (float32 by default).

    Raises
    ------
    ValueError
        If ``n_channels`` or ``capacity`` is below 1.
    """

    def __init__(self, n_channels: int, capacity: int, dtype: np.dtype = np.float32) -> None:
        if n_channels < 1 or capacity < 1:
            raise ValueError(f"RingBuffer needs n_channels >= 1 and capacity >= 1 (found {n_channels}, {capacity})")
        self.n_channels = int(n_channels)
        self.capacity = int(capacity)
        self._data = np.zeros((self.n_channels, self.capacity), dtype=dtype)
        self._valid = np.zeros(self.capacity, dtype=bool)
        self._start: int | None = None
        self._end: int | None = None
        self._gaps: list[tuple[int, int]] = []

    @property
    def start_index(self) -> int:
        """Index of the oldest sample held (raises RuntimeError while empty)."""
        self._require_started()
        return max(self._start, self._end - self.capacity)

    @property
    def end_index(self) -> int:
        """Index one past the newest sample held (raises RuntimeError while empty)."""
        self._require_started()
        return self._end

    @property
    def empty(self) -> bool:
        """True before the first append."""
        return self._end is None

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """Recorded gaps ``(start, stop)`` (half-open, absolute indices) that still overlap the buffer."""
        if self._end is None:
            return []
        oldest = self.start_index
        self._gaps = [(a, b) for a, b in self._gaps if b > oldest]
        return list(self._gaps)

    def _require_started(self) -> None:
        if self._end is None:
            raise RuntimeError("RingBuffer is empty: nothing has been appended yet")

    def append(self, data: np.ndarray, first_index: int | None = None) -> None:
        """Append samples at ``first_index`` (default: right after the newest sample).

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_samples)
            New samples; ``n_samples`` may be 0 (a gap alone can be recorded this way).
        first_index : int, optional
            Absolute index of ``data[:, 0]``. Must be >= ``end_index``; a larger value records a gap.
            The first append fixes the stream origin (default 0).

        Raises
        ------
        ValueError
            If ``data`` has the wrong number of channels, or ``first_index`` lies before
            ``end_index`` (overlapping or out-of-order samples).
        """
        data = np.asarray(data)
        if data.ndim != 2 or data.shape[0] != self.n_channels:
            raise ValueError(
                f"RingBuffer.append expects shape ({self.n_channels}, n_samples) (found {data.shape})"
            )
        if self._end is None:
            self._start = self._end = 0 if first_index is None else int(first_index)
        if first_index is None:
            first_index = self._end
        if first_index < self._end:
            raise ValueError(
                f"RingBuffer.append at index {first_index} overlaps the samples held (expected >= {self._end})"
            )
        if first_index > self._end:
            self._gaps.append((self._end, int(first_index)))
            self._write_fill(self._end, int(first_index))
        n = data.shape[1]
        if n > self.capacity:
            data = data[:, n - self.capacity :]
            first_index += n - self.capacity
            n = self.capacity
        self._write(first_index, data, valid=True)
        self._end = int(first_index) + n

    def _write_fill(self, start: int, stop: int) -> None:
        start = max(start, stop - self.capacity)
        for lo, hi, _ in self._slices(start, stop):
            self._data[:, lo:hi] = 0
            self._valid[lo:hi] = False

    def _write(self, start: int, data: np.ndarray, valid: bool) -> None:
        offset = 0
        for lo, hi, _ in self._slices(start, start + data.shape[1]):
            self._data[:, lo:hi] = data[:, offset : offset + hi - lo]
            self._valid[lo:hi] = valid
            offset += hi - lo

    def _slices(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """Physical slices ``(lo, hi, absolute_start)`` covering absolute ``[start, stop)`` (<= capacity)."""
        out = []
        pos = start
        while pos < stop:
            lo = pos % self.capacity
            hi = min(self.capacity, lo + (stop - pos))
            out.append((lo, hi, pos))
            pos += hi - lo
        return out

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy of the samples ``[start, stop)``.

        Parameters
        ----------
        start, stop : int
            Absolute indices, ``start_index <= start <= stop <= end_index``.

        Returns
        -------
        data : ndarray, shape (n_channels, stop - start)
            The samples; zeros where a gap was recorded.
        valid : ndarray of bool, shape (stop - start,)
            False where the sample is gap filler.

        Raises
        ------
        IndexError
            If the range is not held (older than ``start_index``: overwritten, or newer than
            ``end_index``: not acquired yet).
        """
        self._require_started()
        if not self.start_index <= start <= stop <= self._end:
            raise IndexError(
                f"RingBuffer.read [{start}, {stop}) outside the samples held [{self.start_index}, {self._end})"
            )
        data = np.empty((self.n_channels, stop - start), dtype=self._data.dtype)
        valid = np.empty(stop - start, dtype=bool)
        offset = 0
        for lo, hi, _ in self._slices(start, stop):
            data[:, offset : offset + hi - lo] = self._data[:, lo:hi]
            valid[offset : offset + hi - lo] = self._valid[lo:hi]
            offset += hi - lo
        return data, valid

    def read_recent(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`read`, but samples older than ``start_index`` come back as invalid filler.

        A window that reaches back before what the buffer holds (after an outage longer than the
        buffer, every sample before the outage has been overwritten or never existed) is read as gap
        filler there, like any lost sample: a gap of any length cannot make a read fail.

        Parameters
        ----------
        start, stop : int
            Absolute indices, ``start <= stop <= end_index`` (``start`` may lie before ``start_index``).

        Returns
        -------
        data : ndarray, shape (n_channels, stop - start)
            The samples; zeros where a gap was recorded or the sample is no longer (or never was) held.
        valid : ndarray of bool, shape (stop - start,)
            False where the sample is filler.

        Raises
        ------
        IndexError
            If ``stop`` lies beyond ``end_index`` (samples not acquired yet) or ``start > stop``.
        """
        self._require_started()
        if not start <= stop <= self._end:
            raise IndexError(f"RingBuffer.read_recent [{start}, {stop}) reaches beyond the newest sample {self._end}")
        held = min(max(start, self.start_index), stop)
        data = np.zeros((self.n_channels, stop - start), dtype=self._data.dtype)
        valid = np.zeros(stop - start, dtype=bool)
        if held < stop:
            data[:, held - start:], valid[held - start:] = self.read(held, stop)
        return data, valid
