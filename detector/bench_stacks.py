"""Forward latency of one bidirectional stack block on this machine (figures for ``ictal bench model``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from detector.config import Stack, StackConfig
from detector.stacks import build_stack


@dataclass(frozen=True)
class StackTiming:
    """Median forward time of one bidirectional block.

    Attributes
    ----------
    stack : str
        ``bimamba2`` or ``gated_deltanet``.
    shape : tuple of int
        Input shape (N, L, D).
    backend : str
        Backend that ran.
    median_ms : float
        Median wall time of one forward pass, in milliseconds.
    """

    stack: str
    shape: tuple[int, int, int]
    backend: str
    median_ms: float


def time_stack_block(
    stack: Stack,
    n_sequences: int,
    length: int,
    config: StackConfig,
    backend: str = "reference",
    repeats: int = 5,
    device: str = "cpu",
) -> StackTiming:
    """Time the forward pass (no gradients) of ONE bidirectional block of ``stack``.

    Parameters
    ----------
    stack : {"bimamba2", "gated_deltanet"}
        The stack.
    n_sequences, length : int
        Input shape (N, L, config.d_model), standard normal.
    config : StackConfig
        Hyper-parameters; ``n_layers`` is overridden to 1.
    backend : str
        Passed to :func:`~detector.stacks.build_stack`.
    repeats : int
        Timed repetitions after one warm-up run.
    device : str
        Torch device.

    Returns
    -------
    timing : StackTiming
    """
    module = build_stack(stack, config.model_copy(update={"n_layers": 1}), backend).to(device).eval()
    x = torch.randn(n_sequences, length, config.d_model, device=device)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            module(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - start)
    times.sort()
    return StackTiming(
        stack, (n_sequences, length, config.d_model), module.backend, 1e3 * times[len(times) // 2]
    )


if __name__ == "__main__":
    torch.set_num_threads(2)
    cases = [(19, StackConfig(d_model=32)), (171, StackConfig(n_layers=1, d_model=8))]
    print(
        f"{'stack':<16}{'shape':<18}{'backend':<11}{'ms / forward':>13}  ({torch.get_num_threads()} threads)"
    )
    for name in ("bimamba2", "gated_deltanet"):
        for n, cfg in cases:
            t = time_stack_block(name, n, 960, cfg)
            print(f"{t.stack:<16}{str(t.shape):<18}{t.backend:<11}{t.median_ms:>13.1f}")
