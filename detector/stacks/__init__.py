"""Bidirectional and causal sequence-model stacks (Mamba2, Gated DeltaNet) with fused and reference backends."""

from ictal.detector.stacks.bidirectional import BidirectionalBlock, BidirectionalStack
from ictal.detector.stacks.build import build_stack, resolve_backend
from ictal.detector.stacks.causal import CausalBlock, CausalStack
from ictal.detector.stacks.fused import (
    GATED_DELTANET_PARAMETER_KEYS,
    MAMBA2_PARAMETER_KEYS,
    fused_parameter_shapes,
    missing_fused_requirements,
)

__all__ = [
    "GATED_DELTANET_PARAMETER_KEYS",
    "MAMBA2_PARAMETER_KEYS",
    "BidirectionalBlock",
    "BidirectionalStack",
    "CausalBlock",
    "CausalStack",
    "build_stack",
    "fused_parameter_shapes",
    "missing_fused_requirements",
    "resolve_backend",
]
