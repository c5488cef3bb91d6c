"""Fused-kernel mixers (mamba-ssm, flash-linear-attention), imported lazily, with their state-dict keys."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from ictal.detector.config import Stack, StackConfig

MAMBA2_PARAMETER_KEYS: tuple[str, ...] = (
    "in_proj.weight",
    "conv1d.weight",
    "conv1d.bias",
    "dt_bias",
    "A_log",
    "D",
    "norm.weight",
    "out_proj.weight",
)
"""State-dict keys of ``mamba_ssm.modules.mamba2.Mamba2`` with ``bias=False``, ``conv_bias=True``,
``rmsnorm=True``, ``D_has_hdim=False``, ``d_ssm=None`` (mamba-ssm 2.x sources)."""

GATED_DELTANET_PARAMETER_KEYS: tuple[str, ...] = (
    "q_proj.weight",
    "k_proj.weight",
    "v_proj.weight",
    "a_proj.weight",
    "b_proj.weight",
    "A_log",
    "dt_bias",
    "q_conv1d.weight",
    "k_conv1d.weight",
    "v_conv1d.weight",
    "g_proj.weight",
    "o_norm.weight",
    "o_proj.weight",
)
"""State-dict keys of ``fla.layers.gated_deltanet.GatedDeltaNet`` with ``use_gate=True``,
``use_short_conv=True``, ``conv_bias=False``, ``num_v_heads=None`` (flash-linear-attention sources)."""


def fused_parameter_shapes(stack: Stack, config: StackConfig) -> dict[str, tuple[int, ...]]:
    """Shape of every parameter of the upstream mixer built from ``config``, as its ``__init__`` makes it.

    With D = d_model, H = n_heads, d_conv; Mamba2: E = expand * D, S = d_state; Gated DeltaNet:
    K = d_state (``head_dim``), V = expand * K (``head_v_dim``).

    Returns
    -------
    shapes : dict of str to tuple of int
        Keyed like :data:`MAMBA2_PARAMETER_KEYS` or :data:`GATED_DELTANET_PARAMETER_KEYS`.
    """
    d, h, w = config.d_model, config.n_heads, config.d_conv
    if stack == "bimamba2":
        e, s = config.expand * d, config.d_state
        shapes = [(2 * e + 2 * s + h, d), (e + 2 * s, 1, w), (e + 2 * s,), (h,), (h,), (h,), (e,), (d, e)]
        return dict(zip(MAMBA2_PARAMETER_KEYS, shapes, strict=True))
    k = config.d_state
    v = config.expand * k
    shapes = [
        (h * k, d),
        (h * k, d),
        (h * v, d),
        (h, d),
        (h, d),
        (h,),
        (h,),
        (h * k, 1, w),
        (h * k, 1, w),
        (h * v, 1, w),
        (h * v, d),
        (v,),
        (d, h * v),
    ]
    return dict(zip(GATED_DELTANET_PARAMETER_KEYS, shapes, strict=True))


FUSED_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "bimamba2": ("mamba_ssm", "triton"),
    "gated_deltanet": ("fla", "triton"),
}
"""Packages the fused backend of each stack imports (the ``gpu`` extra). ``causal_conv1d`` is optional:
without it mamba-ssm's Mamba2 runs its Triton path (``use_mem_eff_path=False``)."""


def missing_fused_requirements(stack: Stack) -> list[str]:
    """What the fused backend of ``stack`` lacks here: absent packages and, last, a CUDA device.

    Returns
    -------
    missing : list of str
        Empty when the fused backend can be built; otherwise e.g. ``["mamba_ssm (not installed)",
        "a CUDA device (torch.cuda.is_available() is False)"]``.
    """
    missing = [
        f"{name} (not installed)"
        for name in FUSED_REQUIREMENTS[stack]
        if importlib.util.find_spec(name) is None
    ]
    if not torch.cuda.is_available():
        missing.append("a CUDA device (torch.cuda.is_available() is False)")
    return missing


def fused_mamba2(config: StackConfig) -> nn.Module:
    """``mamba_ssm.Mamba2`` with the hyper-parameters of :class:`~ictal.detector.stacks.mamba2.Mamba2Mixer`.

    Shapes: (N, L, D) -> (N, L, D). Raises ImportError when mamba-ssm is not installed.

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs. arXiv:2405.21060.
    """
    from mamba_ssm import Mamba2

    return Mamba2(
        d_model=config.d_model,
        d_state=config.d_state,
        d_conv=config.d_conv,
        expand=config.expand,
        headdim=config.expand * config.d_model // config.n_heads,
        ngroups=1,
        bias=False,
        conv_bias=True,
        rmsnorm=True,
        norm_before_gate=False,
        chunk_size=config.chunk_size,
        # the memory-efficient path needs the causal-conv1d CUDA extension; the Triton path does not
        use_mem_eff_path=importlib.util.find_spec("causal_conv1d") is not None,
    )


def fused_gated_deltanet(config: StackConfig) -> nn.Module:
    """``fla.layers.GatedDeltaNet`` with the hyper-parameters of the reference Gated DeltaNet mixer.

    Shapes: (N, L, D) -> tuple whose first item is (N, L, D). Raises ImportError when fla is missing.

    References
    ----------
    Yang, S., Kautz, J. and Hatamizadeh, A. (2024). Gated Delta Networks: improving Mamba2 with delta
    rule. arXiv:2412.06464.
    """
    from fla.layers import GatedDeltaNet

    return GatedDeltaNet(
        hidden_size=config.d_model,
        expand_v=config.expand,
        head_dim=config.d_state,
        num_heads=config.n_heads,
        mode="chunk",
        use_gate=True,
        use_short_conv=True,
        conv_size=config.d_conv,
        conv_bias=False,
        norm_eps=1e-5,
    )
