"""Fused-kernel mixers (mamba-ssm, flash-linear-attention), imported lazily, with their state-dict keys."""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from detector.config import Stack, StackConfig

MAMBA2_PARAMETERS: dict[str, str] = {
    "in_proj.weight": "(2*E + 2*S + H, D)",
    "conv1d.weight": "(E + 2*S, 1, d_conv)",
    "conv1d.bias": "(E + 2*S,)",
    "dt_bias": "(H,)",
    "A_log": "(H,)",
    "D": "(H,)",
    "norm.weight": "(E,)",
    "out_proj.weight": "(D, E)",
}
"""State-dict keys (and shapes) of ``mamba_ssm.modules.mamba2.Mamba2`` with ``bias=False``,
``conv_bias=True``, ``rmsnorm=True``, ``D_has_hdim=False``, ``ngroups=1``, ``d_ssm=None``; E = expand * D."""

GATED_DELTANET_PARAMETERS: dict[str, str] = {
    "q_proj.weight": "(H*K, D)",
    "k_proj.weight": "(H*K, D)",
    "v_proj.weight": "(H*V, D)",
    "a_proj.weight": "(H, D)",
    "b_proj.weight": "(H, D)",
    "A_log": "(H,)",
    "dt_bias": "(H,)",
    "q_conv1d.weight": "(H*K, 1, d_conv)",
    "k_conv1d.weight": "(H*K, 1, d_conv)",
    "v_conv1d.weight": "(H*V, 1, d_conv)",
    "g_proj.weight": "(H*V, D)",
    "o_norm.weight": "(V,)",
    "o_proj.weight": "(D, H*V)",
}
"""State-dict keys (and shapes) of ``fla.layers.gated_deltanet.GatedDeltaNet`` with ``use_gate=True``,
``use_short_conv=True``, ``conv_bias=False``, ``num_v_heads=None``; K = head_dim, V = expand_v * K."""

FUSED_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "bimamba2": ("mamba_ssm", "causal_conv1d", "triton"),
    "gated_deltanet": ("fla", "triton"),
}
"""Packages the fused backend of each stack imports (the ``gpu`` extra)."""


def missing_fused_requirements(stack: Stack) -> list[str]:
    """What the fused backend of ``stack`` lacks here: absent packages and, last, a CUDA device.

    Returns
    -------
    missing : list of str
        Empty when the fused backend can be built; otherwise e.g. ``["mamba_ssm (not installed)",
        "a CUDA device (torch.cuda.is_available() is False)"]``.
    """
    missing = [f"{name} (not installed)" for name in FUSED_REQUIREMENTS[stack] if importlib.util.find_spec(name) is None]
    if not torch.cuda.is_available():
        missing.append("a CUDA device (torch.cuda.is_available() is False)")
    return missing


def fused_mamba2(config: StackConfig) -> nn.Module:
    """``mamba_ssm.Mamba2`` with the hyper-parameters of :class:`~detector.stacks.mamba2.Mamba2Mixer`.

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
