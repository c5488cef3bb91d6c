"""Build a bidirectional or causal stack from its config, choosing and logging the backend."""

from __future__ import annotations

import functools
import logging

from torch import nn

from ictal.detector.config import Backend, Stack, StackConfig
from ictal.detector.stacks.bidirectional import BidirectionalStack
from ictal.detector.stacks.causal import CausalStack
from ictal.detector.stacks.fused import fused_gated_deltanet, fused_mamba2, missing_fused_requirements

log = logging.getLogger(__name__)

STACKS: tuple[str, ...] = ("bimamba2", "gated_deltanet")
BACKENDS: tuple[str, ...] = ("auto", "fused", "reference")


def resolve_backend(stack: Stack, backend: Backend) -> str:
    """The backend a stack will use: ``reference`` or ``fused``.

    ``auto`` picks ``fused`` when CUDA and the kernel packages are available, else ``reference``, and
    logs the choice with its reason at INFO level.

    Raises
    ------
    RuntimeError
        If ``backend="fused"`` and a package or the CUDA device is missing (named in the message).
    ValueError
        If ``stack`` or ``backend`` is not one of the known names.
    """
    if stack not in STACKS:
        raise ValueError(f"stack must be one of {STACKS} (found {stack!r})")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} (found {backend!r})")
    if backend == "reference":
        return "reference"
    missing = missing_fused_requirements(stack)
    if backend == "fused":
        if missing:
            raise RuntimeError(
                f"backend='fused' for stack {stack!r} needs the `gpu` extra and a CUDA device; missing: "
                f"{', '.join(missing)}. Use backend='reference' or 'auto' to run the pure-PyTorch code."
            )
        return "fused"
    if missing:
        log.info(
            "stack %s: backend auto -> reference (fused kernels unavailable: %s)", stack, ", ".join(missing)
        )
        return "reference"
    log.info("stack %s: backend auto -> fused (CUDA and kernel packages available)", stack)
    return "fused"


def _reference_mixer(stack: Stack, config: StackConfig) -> nn.Module:
    if stack == "bimamba2":
        from ictal.detector.stacks.mamba2 import Mamba2Mixer

        return Mamba2Mixer(
            config.d_model, config.d_state, config.n_heads, config.expand, config.d_conv, config.chunk_size
        )
    from ictal.detector.stacks.gated_deltanet import GatedDeltaNetMixer

    return GatedDeltaNetMixer(
        config.d_model, config.d_state, config.n_heads, config.expand, config.d_conv, config.chunk_size
    )


def _fused_mixer(stack: Stack, config: StackConfig) -> nn.Module:
    return fused_mamba2(config) if stack == "bimamba2" else fused_gated_deltanet(config)


def build_stack(
    stack: Stack, config: StackConfig, backend: Backend = "auto", direction: str = "bidirectional"
) -> nn.Module:
    """A bidirectional or causal sequence-model stack.

    Parameters
    ----------
    stack : {"bimamba2", "gated_deltanet"}
        The mixer: Mamba2 (SSD) or Gated DeltaNet, run forward and on the reversed sequence.
    config : StackConfig
        Layers, width and mixer hyper-parameters.
    backend : {"auto", "fused", "reference"}
        ``reference``: the pure-PyTorch chunked scans; ``fused``: mamba-ssm / fla kernels (CUDA);
        ``auto``: fused when available, else reference (the choice is logged; a kernel package that is
        installed but fails to import also falls back to reference, with a warning).
    direction : {"bidirectional", "causal"}
        ``bidirectional``: a forward and a backward mixer per block; ``causal``: a forward mixer only,
        with a streaming ``step`` (:class:`~ictal.detector.stacks.causal.CausalStack`).

    Returns
    -------
    module : BidirectionalStack or CausalStack
        Maps (N, L, D) to (N, L, D) with ``D = config.d_model``; the output at step t depends on the
        whole sequence (bidirectional) or on steps <= t (causal). Both backends have identical
        state-dict keys and shapes.

    Raises
    ------
    ValueError
        If ``direction`` is not one of the two names.

    Notes
    -----
    Shapes:
        - input: (N, L, D)
        - output: (N, L, D)

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs. arXiv:2405.21060.
    Yang, S., Kautz, J. and Hatamizadeh, A. (2024). Gated Delta Networks. arXiv:2412.06464.
    """
    if direction not in ("bidirectional", "causal"):
        raise ValueError(f"direction must be 'bidirectional' or 'causal' (found {direction!r})")
    kind = BidirectionalStack if direction == "bidirectional" else CausalStack
    chosen = resolve_backend(stack, backend)
    if chosen == "fused":
        try:
            return kind(
                config.d_model,
                config.n_layers,
                functools.partial(_fused_mixer, stack, config),
                stack=stack,
                backend="fused",
            )
        except (ImportError, OSError) as exc:  # a kernel package that is present but does not import
            if backend == "fused":
                raise RuntimeError(
                    f"backend='fused' for stack {stack!r}: the kernel package does not import "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            log.warning(
                "stack %s: backend auto -> reference (fused kernels fail to import: %s: %s)",
                stack,
                type(exc).__name__,
                exc,
            )
    return kind(
        config.d_model,
        config.n_layers,
        functools.partial(_reference_mixer, stack, config),
        stack=stack,
        backend="reference",
    )
