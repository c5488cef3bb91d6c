"""Forward latency of one bidirectional stack block on this machine (figures for ``ictal bench model``)."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass

import torch

from ictal.detector.config import Stack, StackConfig
from ictal.detector.stacks import build_stack


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
    cpu_ms : float
        Median CPU time of the process (all threads) for one forward pass, in milliseconds; less
        sensitive than the wall time to other processes sharing the cores.
    """

    stack: str
    shape: tuple[int, int, int]
    backend: str
    median_ms: float
    cpu_ms: float


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
        Passed to :func:`~ictal.detector.stacks.build_stack`.
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
    wall, cpu = [], []
    with torch.inference_mode():
        for i in range(repeats + 1):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            module(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i:
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
    shape = (n_sequences, length, config.d_model)
    return StackTiming(
        stack, shape, module.backend, 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)
    )


def main(threads: int = 2, length: int = 960, chunk_size: int = 64) -> None:
    """Print the block timings of both stacks for the node-stream and edge-stream shapes of ``tiny``."""
    torch.set_num_threads(threads)
    cases = [
        (19, StackConfig(d_model=32, chunk_size=chunk_size)),
        (171, StackConfig(n_layers=1, d_model=8, chunk_size=chunk_size)),
    ]
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}, chunk_size {cases[0][1].chunk_size}"
    )
    print(f"{'stack':<16}{'shape (N, L, D)':<18}{'backend':<11}{'wall ms':>9}{'cpu ms':>9}")
    for name in ("bimamba2", "gated_deltanet"):
        for n, cfg in cases:
            t = time_stack_block(name, n, length, cfg)
            print(f"{t.stack:<16}{str(t.shape):<18}{t.backend:<11}{t.median_ms:>9.1f}{t.cpu_ms:>9.1f}")


if __name__ == "__main__":
    main()
