"""`step_hops`: the stream-mode hops of several beds scored with batched ``Detector.step`` calls.

Stream mode (``detector.mode: stream``, causal checkpoints only) carries each bed's model state from
hop to hop, so the work per hop is proportional to the hop's new samples. One call of
:func:`step_hops` takes at most one hop per bed (hops of one bed depend on each other: the caller
scores a bed's later hop in a later call) and decides, per hop, between:

- a *step*: the hop is warm (``data`` = its new samples) and the bed's state ends exactly where they
  start (``state_end == hop.step_start``): the model steps the state over them;
- a *rebuild*: the hop is ``cold`` (after a start, a gap, a reconnection, unusable input or a skipped
  hop; ``data`` = the 60 s input window mode would score at the same end, left-padded with zeros
  before the bed's origin): the model starts from ``init_state`` and steps over all of it, exactly the
  computation of window mode, so the rebuilt state and the probabilities are window mode's.

A warm hop whose bed has no state, or a state that ends elsewhere, cannot happen in the daemon (the bed
makes the hop after a skipped or dropped one cold); should it happen, the hop is rebuilt from its own
samples (reason ``discontinuous``) and a warning is logged.

Hops with the same number of samples are batched: the beds' states are stacked
(``StreamState.stack``), stepped once and split back (``StreamState.split``); rebuilds (all 60 s)
likewise from ``init_state(B)``. A bed that is not due simply is not in the batch: beds join and leave
freely. The result does not depend on the batch (up to floating-point rounding): every state is per bed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ictal.detector import FS_HZ
from ictal.streaming.logfmt import kv
from ictal.streaming.pipeline import StreamHop

log = logging.getLogger("ictal.scoring")


class StreamScorer(Protocol):
    """What steps stream states: ``detector.inference.Detector`` of a causal checkpoint."""

    stream_multiple_samples: int

    def init_state(self, batch: int) -> Any:
        """A fresh state for ``batch`` streams."""
        ...

    def step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """(B, 19, n) normalised input and state -> ((B, n) probabilities, new state)."""
        ...


@dataclass(frozen=True)
class HopTask:
    """One bed's hop and its carried state, read under the bed's lock.

    Attributes
    ----------
    hop : StreamHop
    state : StreamState or None
        The bed's state (``BedSession.stream_state``); None when it has none.
    state_end : int or None
        Absolute index (256 Hz) one past the last sample the state consumed.
    """

    hop: StreamHop
    state: Any | None
    state_end: int | None

    @property
    def rebuild_reason(self) -> str | None:
        """Why the state is rebuilt at this hop, or None when it is stepped."""
        if self.hop.cold:
            return self.hop.cold_reason or "start"
        if self.state is None or self.state_end != self.hop.step_start:
            return "discontinuous"
        return None


@dataclass(frozen=True)
class HopOutput:
    """What scoring one hop gave.

    Attributes
    ----------
    probs : ndarray of float32, shape (n,)
        Probabilities of the samples ``[hop.end_index - n, hop.end_index)``, ``n = hop.data.shape[1]``
        (the new samples of a warm hop, 15360 for a cold one).
    state : StreamState
        The bed's state after the hop (ends at ``hop.end_index``).
    rebuilt : str or None
        The rebuild's reason (``HopTask.rebuild_reason``), None for a step.
    """

    probs: np.ndarray
    state: Any
    rebuilt: str | None


def step_hops(scorer: StreamScorer, tasks: list[HopTask]) -> tuple[list[HopOutput], int]:
    """Score one hop of each of several beds with batched ``step`` calls.

    Parameters
    ----------
    scorer : StreamScorer
        A causal ``Detector`` (``init_state``, ``step``).
    tasks : list of HopTask
        At most one per bed, any order.

    Returns
    -------
    outputs : list of HopOutput
        One per task, in the order of ``tasks``.
    n_calls : int
        ``step`` calls made (one per distinct step length, one for the rebuilds).

    Raises
    ------
    ValueError
        As ``Detector.step`` (a bidirectional checkpoint, a sample count that is not a multiple of
        ``stream_multiple_samples``), or if ``step`` returns probabilities of another shape.
    """
    groups: dict[tuple[bool, int], list[int]] = defaultdict(list)
    for i, task in enumerate(tasks):
        reason = task.rebuild_reason
        if reason == "discontinuous" and not task.hop.cold:
            log.warning(kv("stream_state_discontinuous", stream_s=task.hop.end_index / FS_HZ,
                           state_end=task.state_end, hop_start=task.hop.step_start,
                           detail="warm hop without a matching state: rebuilt from its own samples"))
        groups[(reason is not None, task.hop.data.shape[1])].append(i)
    outputs: list[HopOutput | None] = [None] * len(tasks)
    for (rebuild, n), members in groups.items():
        x = np.stack([tasks[i].hop.data for i in members]).astype(np.float32, copy=False)
        if rebuild:
            state = scorer.init_state(len(members))
        else:
            states = [tasks[i].state for i in members]
            state = states[0] if len(states) == 1 else type(states[0]).stack(states)
        probs, new_state = scorer.step(x, state)
        probs = np.asarray(probs, dtype=np.float32)
        if probs.shape != (len(members), n):
            raise ValueError(f"step returned probabilities of shape {probs.shape} for input {x.shape} "
                             f"(expected ({len(members)}, {n}))")
        split = [new_state] if len(members) == 1 else new_state.split()
        for j, i in enumerate(members):
            outputs[i] = HopOutput(probs=probs[j], state=split[j], rebuilt=tasks[i].rebuild_reason)
    return [out for out in outputs if out is not None], len(groups)
