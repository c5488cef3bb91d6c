"""One dilated residual block of the TCN encoder."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ictal.detector.model.channel_norm import ChannelNorm


class DilatedResidualBlock(nn.Module):
    r"""Dilated residual 1-D convolution block, centred in time or causal.

    .. math::
        y = x + \mathrm{Dropout}\Big(W_{1\times1} * \mathrm{GELU}\big(\mathrm{Norm}(W_{k,d} * x)\big)\Big)

    where :math:`W_{k,d} *` is a convolution of kernel size :math:`k` and dilation :math:`d`, zero
    padded by :math:`(k-1)d/2` steps on each side so that the length is kept. A step :math:`t` sees
    steps :math:`t - (k-1)d/2 \dots t + (k-1)d/2`: the block is **not causal**; at the edges of the
    window the missing neighbours are zeros. With ``causal=True`` the padding is :math:`(k-1)d` steps on
    the left only, so step t sees steps :math:`t - (k-1)d \dots t`, and :meth:`step` continues a
    sequence from the last :math:`(k-1)d` inputs of the previous call (its state).

    Parameters
    ----------
    channels : int
        Width C of the block (input = output).
    kernel_size : int
        Odd kernel size k.
    dilation : int
        Dilation d, in steps at the block's rate.
    dropout : float
        Dropout on the residual branch.
    causal : bool
        Left padding only (streamable) instead of centred.

    Shapes:
        - **input:** :math:`(B, C, L)`
        - **output:** :math:`(B, C, L)`

    References
    ----------
    Bai, Kolter, Koltun (2018). An empirical evaluation of generic convolutional and recurrent networks
    for sequence modeling. arXiv:1803.01271.
    """

    def __init__(
        self, channels: int, kernel_size: int, dilation: int, dropout: float = 0.0, causal: bool = False
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (found {kernel_size})")
        self.causal = causal
        self.context = (kernel_size - 1) * dilation
        self.pad = self.context // 2
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.norm = ChannelNorm(channels)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` of shape (B, C, L)."""
        padded = F.pad(x, (self.context, 0) if self.causal else (self.pad, self.pad))
        return self._residual(x, padded)

    def _residual(self, x: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
        h = self.pointwise(F.gelu(self.norm(self.conv(padded))))
        return x + self.dropout(h)

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Continue a causal block: ``x`` (B, C, L) new steps, ``cache`` (B, C, (k-1)d) the inputs before.

        Returns the block's output for the L steps and the new cache (zeros at the start of a sequence
        reproduce :meth:`forward`).
        """
        full = torch.cat([cache, x], dim=-1)
        return self._residual(x, full), full[..., full.shape[-1] - self.context :]
