"""The one place the model asks `detector.stacks` for a bidirectional sequence model."""

from __future__ import annotations

from torch import nn

from ictal.detector.config import StackConfig


def make_stack(stack: str, config: StackConfig, backend: str, direction: str = "bidirectional") -> nn.Module:
    """Build a bidirectional or causal sequence model, (N, L, D) -> (N, L, D), with ``D = config.d_model``.

    Parameters
    ----------
    stack : {"bimamba2", "gated_deltanet"}
        Sequence model.
    config : StackConfig
        Depth and widths of the stack.
    backend : {"auto", "fused", "reference"}
        Kernel choice, passed on to :func:`ictal.detector.stacks.build_stack`.
    direction : {"bidirectional", "causal"}
        Passed on to :func:`ictal.detector.stacks.build_stack`.

    Returns
    -------
    module : nn.Module
        The stack.
    """
    from ictal.detector.stacks import build_stack  # imported late: the stacks pull in optional kernels

    return build_stack(stack, config, backend, direction)
