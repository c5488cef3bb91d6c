"""The state a causal detector carries from one hop of a recording to the next (stream mode)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class StreamState:
    """The streaming state of B recordings (beds) of one causal detector.

    Made by :meth:`ictal.detector.inference.Detector.init_state` and returned by
    :meth:`~ictal.detector.inference.Detector.step`; opaque to callers except for the operations below. The
    tensors (convolution caches, the stacks' recurrent states, the edge pooling's partial block; see
    :meth:`ictal.detector.model.TimeThenGraphDetector.init_state`) all have a first dimension of B times a
    per-recording count, batch-major, so the states of several beds concatenate into one batch
    (:meth:`stack`) and split back (:meth:`split`) without copying more than the tensors.

    Attributes
    ----------
    tensors : dict of str to Tensor
        The state; never modified in place (``step`` returns new tensors).
    batch : int
        Recordings B.
    phase_samples : int
        Samples of one edge-pooling block: recordings stepped together must have seen the same number
        of samples modulo this (true when every hop is a multiple of it).
    """

    tensors: dict[str, torch.Tensor]
    batch: int
    phase_samples: int

    @property
    def samples_seen(self) -> np.ndarray:
        """Samples stepped since :meth:`~ictal.detector.inference.Detector.init_state`, per recording, shape (B,)."""
        return self.tensors["samples_seen"].cpu().numpy().copy()

    @property
    def phase(self) -> np.ndarray:
        """``samples_seen % phase_samples`` per recording, shape (B,)."""
        return self.samples_seen % self.phase_samples

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors (all recordings)."""
        return int(sum(t.numel() * t.element_size() for t in self.tensors.values()))

    @classmethod
    def stack(cls, states: Sequence[StreamState]) -> StreamState:
        """One state for the recordings of ``states``, in order (concatenated along the batch).

        Raises
        ------
        ValueError
            If ``states`` is empty, comes from detectors with different layouts, or the recordings are
            at different phases of an edge-pooling block (they must then be stepped separately).
        """
        if not states:
            raise ValueError("stack needs at least one state")
        if len(states) == 1:
            return states[0]
        first = states[0]
        keys = first.tensors.keys()
        for other in states[1:]:
            if other.tensors.keys() != keys or other.phase_samples != first.phase_samples:
                raise ValueError("stream states of different detectors cannot be stacked")
        phases = np.concatenate([s.phase for s in states])
        if (phases != phases[0]).any():
            raise ValueError(
                f"stream states at different phases of a {first.phase_samples}-sample block "
                f"({sorted(set(phases.tolist()))} samples in): step them separately, or use hops that are "
                f"multiples of {first.phase_samples} samples"
            )
        tensors = {k: torch.cat([s.tensors[k] for s in states], dim=0) for k in keys}
        return cls(tensors, sum(s.batch for s in states), first.phase_samples)

    def split(self) -> list[StreamState]:
        """One state per recording, in order (the inverse of :meth:`stack`)."""
        if self.batch == 1:
            return [self]
        pieces: list[dict[str, torch.Tensor]] = [{} for _ in range(self.batch)]
        for key, tensor in self.tensors.items():
            for i, piece in enumerate(tensor.chunk(self.batch, dim=0)):
                pieces[i][key] = piece
        return [StreamState(p, 1, self.phase_samples) for p in pieces]
