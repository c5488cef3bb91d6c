"""EEG in, per-sample seizure probability out.

The detector owns the one signal front-end (montage, units, resampling, causal filters,
normalisation, signal quality) that the daemon and training share, the time-then-graph model with
its sequence-model stacks, checkpoints and batched inference. No threads, no sockets, no files
except checkpoints.
"""

CANONICAL_CHANNELS: tuple[str, ...] = (
    "Fp1", "F3", "C3", "P3", "F7", "T3", "T5", "O1", "Fz", "Cz",
    "Pz", "Fp2", "F4", "C4", "P4", "F8", "T4", "T6", "O2",
)
"""The 19 referential 10-20 channels, in the order every array of the detector uses."""

FS_HZ: int = 256
"""Detector sampling rate in Hz."""

WINDOW_S: int = 60
"""Length of one scored window in seconds."""

WINDOW_SAMPLES: int = FS_HZ * WINDOW_S
"""Samples in one window (15360)."""
