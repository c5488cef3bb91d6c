"""Test doubles for stream-mode unit tests: a causal scorer with the ``Detector`` stream API.

Used only for the scoring-loop plumbing (batching, rebuild triggers, output positions); the key
behaviours are also tested with a real causal checkpoint (``test_stream_mode_model.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BETA = float(np.exp(-1.0 / 256.0))
"""EMA factor of the fake model: a 1 s time constant, so 60 s of history forget any earlier state
(``BETA ** 15360`` ~ 1e-26) and window mode equals stream mode to float rounding."""


@dataclass
class FakeState:
    """Per-stream EMA value and samples seen (the API of ``detector.streaming_state.StreamState``)."""

    ema: np.ndarray  # (B,) float64
    samples_seen: np.ndarray  # (B,) int64

    @property
    def batch(self) -> int:
        return int(self.ema.size)

    @classmethod
    def stack(cls, states: list[FakeState]) -> FakeState:
        seen = np.concatenate([s.samples_seen for s in states])
        if len({int(v) % 16 for v in seen}) > 1:
            raise ValueError("states at different phases of the step multiple")
        return cls(np.concatenate([s.ema for s in states]), seen)

    def split(self) -> list[FakeState]:
        return [FakeState(self.ema[i:i + 1].copy(), self.samples_seen[i:i + 1].copy()) for i in range(self.batch)]


class FakeCausalScorer:
    """prob[t] = sigmoid(gain * EMA_t(channel mean of x)), EMA from 0: causal, state = the EMA value.

    ``predict`` runs it over a window from an empty state (window mode); ``step`` carries the state.
    Records the batch of every ``step`` call.
    """

    direction = "causal"
    stream_multiple_samples = 16
    max_batch = 8
    lookahead_s = 0.0

    def __init__(self, gain: float = 4.0) -> None:
        self.gain = gain
        self.step_batches: list[tuple[int, int]] = []  # (B, n) of each step call

    def init_state(self, batch: int) -> FakeState:
        return FakeState(np.zeros(batch), np.zeros(batch, dtype=np.int64))

    def _run(self, x: np.ndarray, ema0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.signal import lfilter

        u = x.astype(np.float64).mean(axis=1)  # (B, n)
        zi = (BETA * ema0)[:, None]  # lfilter's state for y[-1] = ema0
        y, _ = lfilter([1.0 - BETA], [1.0, -BETA], u, axis=1, zi=zi)
        return (1.0 / (1.0 + np.exp(-self.gain * y))).astype(np.float32), y[:, -1]

    def step(self, x: np.ndarray, state: FakeState) -> tuple[np.ndarray, FakeState]:
        if x.shape[2] % self.stream_multiple_samples:
            raise ValueError(f"n {x.shape[2]} not a multiple of {self.stream_multiple_samples}")
        if x.shape[0] != state.batch:
            raise ValueError(f"batch {x.shape[0]} != state batch {state.batch}")
        self.step_batches.append((x.shape[0], x.shape[2]))
        probs, ema = self._run(x, state.ema)
        return probs, FakeState(ema, state.samples_seen + x.shape[2])

    def predict(self, windows: np.ndarray) -> np.ndarray:
        probs, _ = self._run(windows, np.zeros(windows.shape[0]))
        return probs

