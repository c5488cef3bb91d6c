"""Learning-rate schedule: linear warm-up then cosine decay."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at an optimizer step.

    Parameters
    ----------
    step : int
        Optimizer steps taken so far (0 before the first).
    warmup_steps : int
        Steps of linear warm-up: the multiplier rises from ``1 / warmup_steps`` to 1.
    total_steps : int
        Steps of the whole run; the cosine reaches ``min_ratio`` there and stays.
    min_ratio : float
        Final multiplier, in [0, 1].

    Returns
    -------
    factor : float
        Multiplier of the peak learning rate, in [0, 1].

    Notes
    -----
    Cosine annealing after Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm
    Restarts", ICLR 2017 (without restarts), with the linear warm-up of Goyal et al. 2017.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
