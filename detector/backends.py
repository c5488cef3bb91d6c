"""Which sequence-model backends can run here: the fused CUDA/Triton kernels or the reference code."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class KernelStatus:
    """Whether one fused-kernel package imports and runs.

    Attributes
    ----------
    package : str
        Import name (``mamba_ssm`` or ``fla``).
    version : str or None
        Installed version, None when it does not import.
    runs : bool
        True when a small forward pass ran on the current CUDA device.
    detail : str
        Why it does not import or run, or what ran.
    """

    package: str
    version: str | None
    runs: bool
    detail: str


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _run_mamba2() -> str:
    import torch
    from mamba_ssm import Mamba2

    fast_path = importlib.util.find_spec("causal_conv1d") is not None  # else the Triton path
    layer = Mamba2(d_model=64, d_state=16, headdim=32, expand=2, use_mem_eff_path=fast_path).cuda()
    y = layer(torch.randn(2, 128, 64, device="cuda"))
    torch.cuda.synchronize()
    return f"Mamba2 forward ran on {torch.cuda.get_device_name()} (output {tuple(y.shape)})"


def _run_gated_deltanet() -> str:
    import torch
    from fla.layers import GatedDeltaNet

    layer = GatedDeltaNet(hidden_size=64, num_heads=2, head_dim=32).cuda().to(torch.bfloat16)
    y = layer(torch.randn(2, 128, 64, device="cuda", dtype=torch.bfloat16))[0]
    torch.cuda.synchronize()
    return f"GatedDeltaNet forward ran on {torch.cuda.get_device_name()} (output {tuple(y.shape)})"


def probe_fused_kernels() -> list[KernelStatus]:
    """Try to import (and on CUDA, run) mamba-ssm and flash-linear-attention.

    Returns
    -------
    statuses : list of KernelStatus
        One entry per package, in the order mamba_ssm, fla. Never raises: every failure is reported
        in ``detail``.
    """
    statuses = []
    for package, runner in (("mamba_ssm", _run_mamba2), ("fla", _run_gated_deltanet)):
        try:
            module = importlib.import_module(package)
        except Exception as exc:  # an import of a CUDA extension fails in many ways; report each
            statuses.append(KernelStatus(package, None, False, f"does not import: {type(exc).__name__}: {exc}"))
            continue
        version = getattr(module, "__version__", "unknown")
        if not _cuda_available():
            statuses.append(KernelStatus(package, version, False, "imports, but no CUDA device to run on"))
            continue
        try:
            statuses.append(KernelStatus(package, version, True, runner()))
        except Exception as exc:  # reported, not swallowed: the daemon then uses the reference backend
            statuses.append(KernelStatus(package, version, False, f"fails to run: {type(exc).__name__}: {exc}"))
    return statuses
