"""An LSL amplifier in a process of its own, for the reliability tests (:class:`daemon_harness.EegOutlet`).

Why a process: liblsl can crash the process that destroys an outlet while a consumer is connected
(sccn/liblsl#218, #220: a segfault in the sample factory's teardown). The fault tests make amplifiers
die and come back under a connected daemon, so the outlets live in child processes: an amplifier that
dies is killed (SIGKILL: no liblsl destructor runs anywhere, as when a cable is pulled or an acquisition
PC crashes), and whatever liblsl does at teardown can never take the test process down with it.

A child is spawned on standby (imports done, no outlet), is told ``go`` with the labels, timestamp
offset and mutation to stream with, creates its outlet, answers ``streaming`` and pushes the looped EEG
in real time; ``set`` messages change the offset or the mutation while it streams. Sample ``i`` of the
amplifier is acquired at ``t0_wall + i / fs`` (``time.monotonic``, one clock for every process of the
machine) and stamped ``t0_lsl + i / fs + offset`` on the LSL clock, whichever child sends it: the
samples acquired while no child streams are lost, as from an amplifier that was away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AmplifierSpec:
    """What every child of one amplifier streams: ``data`` (19, n) uV in canonical order, looped."""

    name: str
    source_id: str
    data: np.ndarray
    fs: float
    announced_fs: float
    chunk: int
    t0_wall: float
    t0_lsl: float


@dataclass(frozen=True)
class ArtefactMutation:
    """T5 flat throughout; from sample ``start`` O1 x50 clipped at +-2500 uV and, 4 s later, a 2 s burst
    of NaN (even channels) and +Inf (odd channels) on every channel. Picklable, so a child can apply it.

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    t5, o1 : int
        Rows of T5 and O1 in the canonical order.
    start : int or None
        First sample of the clipping (``None``: only the flat T5).
    """

    fs: float
    t5: int
    o1: int
    start: int | None = None

    def __call__(self, block: np.ndarray, first: int) -> np.ndarray:
        block[self.t5] = 0.0
        if self.start is None:
            return block
        idx = np.arange(first, first + block.shape[1])
        clipped = idx >= self.start
        block[self.o1, clipped] = np.clip(block[self.o1, clipped] * 50.0, -2500.0, 2500.0)
        burst = (idx >= self.start + 4 * self.fs) & (idx < self.start + 6 * self.fs)
        block[:, burst] = np.where(np.arange(block.shape[0])[:, None] % 2 == 0, np.nan, np.inf)
        return block


def run_amplifier(conn, spec: AmplifierSpec) -> None:
    """Body of one child: standby until ``go``, then stream until the parent kills it."""
    import pylsl

    from ictal.detector import CANONICAL_CHANNELS
    from ictal.streaming.lsl_outlet import canonical_stream_info

    conn.send(("ready",))
    message = conn.recv()
    if message[0] != "go":
        return
    _, labels, offset_s, mutate = message
    info = canonical_stream_info(spec.name, spec.announced_fs, spec.source_id, labels=tuple(labels))
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
    rows = [CANONICAL_CHANNELS.index(label) if label in CANONICAL_CHANNELS else None for label in labels]
    index = int((time.monotonic() - spec.t0_wall) * spec.fs) // spec.chunk * spec.chunk
    conn.send(("streaming", index))
    n = spec.chunk
    while True:
        while conn.poll():
            message = conn.recv()
            if message[0] == "set":
                if message[1] == "offset":
                    offset_s = message[2]
                elif message[1] == "mutate":
                    mutate = message[2]
        due = int((time.monotonic() - spec.t0_wall) * spec.fs)
        if due - index < n:
            time.sleep(n / spec.fs / 4)
            continue
        idx = np.arange(index, index + n) % spec.data.shape[1]
        block = spec.data[:, idx].astype(np.float32)
        if mutate is not None:
            block = mutate(block, index)
        last_ts = spec.t0_lsl + (index + n - 1) / spec.fs + offset_s
        sent = np.stack([block[row] if row is not None else np.zeros(n, np.float32) for row in rows], axis=1)
        outlet.push_chunk(np.ascontiguousarray(sent), last_ts)
        index += n
