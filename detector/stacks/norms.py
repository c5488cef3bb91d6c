"""Gated RMS normalisation, the output norm of both sequence mixers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNormGated(nn.Module):
    """RMS normalisation multiplied by a SiLU gate, with a learned scale.

    Parameters
    ----------
    dim : int
        Size ``E`` of the normalised (last) dimension.
    eps : float
        Added to the mean square before the square root.
    norm_before_gate : bool
        False (Mamba2): ``y = rms(x * silu(z)) * w``. True (Gated DeltaNet): ``y = rms(x) * w * silu(z)``.

    Notes
    -----
    Shapes:
        - input ``x``: (..., E); gate ``z``: (..., E)
        - output: (..., E)

    With :math:`\\mathrm{rms}(a) = a / \\sqrt{\\mathrm{mean}(a^2) + \\epsilon}` over the last
    dimension. Computed in float32 and cast back to the dtype of ``x``. The only parameter is
    ``weight`` (shape (E,)), as in mamba-ssm's ``RMSNormGated`` and fla's ``FusedRMSNormGated``.

    References
    ----------
    Dao, T. and Gu, A. (2024). Transformers are SSMs: generalized models and efficient algorithms
    through structured state space duality. arXiv:2405.21060.
    """

    def __init__(self, dim: int, eps: float = 1e-5, norm_before_gate: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32, gate = x.float(), F.silu(z.float())
        if not self.norm_before_gate:
            x32 = x32 * gate
        y = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight.float()
        if self.norm_before_gate:
            y = y * gate
        return y.to(dtype)
