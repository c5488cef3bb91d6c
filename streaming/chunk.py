"""`Chunk`: consecutive samples of the montage rows (19 electrodes or 18 derivations), stamped with their index."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ictal.detector.montage import MONTAGES, montage_channels

MONTAGE_ROWS: tuple[int, ...] = tuple(len(montage_channels(m)) for m in MONTAGES)
"""Row counts a chunk may have: 19 referential electrodes, 18 double-banana derivations."""


@dataclass(frozen=True)
class Chunk:
    """Consecutive samples of one bed's EEG, as a source delivers them.

    Gaps are carried by the sample index, never by glued data: the first chunk after a loss of
    ``k`` samples has ``first_index`` equal to the previous chunk's ``end_index + k`` and says so in
    ``gap_samples`` (the consumer can also detect it from the indices alone).

    Attributes
    ----------
    data : ndarray of float32, shape (n_rows, n_samples)
        The rows of the model's montage in microvolts at ``fs`` Hz: the 19 electrodes in
        ``detector.CANONICAL_CHANNELS`` order, or the 18 derivations of
        ``detector.montage.DOUBLE_BANANA_CHANNELS`` (``FrontendConfig.montage``).
        ``n_samples`` may be 0.
    first_index : int
        Absolute index of the first sample at ``fs`` (0 = the first sample the source delivered).
    clock_s : float
        Source clock time of the first sample in seconds (LSL: the outlet timestamp mapped to the
        local clock with ``time_correction``; EDF replay: see ``EdfReplaySource``).
    fs : float
        Sampling rate in Hz.
    gap_samples : int
        Samples known to be missing immediately before this chunk (0 when contiguous).

    Raises
    ------
    ValueError
        On construction, if ``data`` is not float32 of shape (19 or 18, n) or the index or rate is invalid.
    """

    data: np.ndarray = field(repr=False)
    first_index: int
    clock_s: float
    fs: float
    gap_samples: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray) or self.data.dtype != np.float32:
            found = getattr(self.data, "dtype", type(self.data).__name__)
            raise ValueError(f"Chunk.data must be a float32 ndarray (found {found})")
        if self.data.ndim != 2 or self.data.shape[0] not in MONTAGE_ROWS:
            raise ValueError(
                f"Chunk.data must have shape (n_rows, n_samples) with n_rows {MONTAGE_ROWS} (the rows of "
                f"{', '.join(MONTAGES)}: detector.montage) (found {self.data.shape})"
            )
        if self.first_index < 0:
            raise ValueError(f"Chunk.first_index must be >= 0 (found {self.first_index})")
        if not self.fs > 0:
            raise ValueError(f"Chunk.fs must be > 0 Hz (found {self.fs})")
        if self.gap_samples < 0:
            raise ValueError(f"Chunk.gap_samples must be >= 0 (found {self.gap_samples})")

    @property
    def n_samples(self) -> int:
        """Number of samples in the chunk."""
        return int(self.data.shape[1])

    @property
    def end_index(self) -> int:
        """Absolute index one past the last sample (``first_index + n_samples``)."""
        return self.first_index + self.n_samples
