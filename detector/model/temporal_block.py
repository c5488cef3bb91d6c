"""One dilated residual block of the TCN encoder."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from detector.model.channel_norm import ChannelNorm


class DilatedResidualBlock(nn.Module):
    r"""Dilated residual 1-D convolution block, centred in time.

    .. math::
        y = x + \mathrm{Dropout}\Big(W_{1\times1} * \mathrm{GELU}\big(\mathrm{Norm}(W_{k,d} * x)\big)\Big)

    where :math:`W_{k,d} *` is a convolution of kernel size :math:`k` and dilation :math:`d`, zero
    padded by :math:`(k-1)d/2` steps on each side so that the length is kept. A step :math:`t` sees
    steps :math:`t - (k-1)d/2 \dots t + (k-1)d/2`: the block is **not causal**; at the edges of the
    window the missing neighbours are zeros.

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

    Shapes:
        - **input:** :math:`(B, C, L)`
        - **output:** :math:`(B, C, L)`

    References
    ----------
    Bai, Kolter, Koltun (2018). An empirical evaluation of generic convolutional and recurrent networks
    for sequence modeling. arXiv:1803.01271.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (found {kernel_size})")
        self.pad = (kernel_size - 1) * dilation // 2
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.norm = ChannelNorm(channels)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` of shape (B, C, L)."""
        h = self.conv(F.pad(x, (self.pad, self.pad)))
        h = self.pointwise(F.gelu(self.norm(h)))
        return x + self.dropout(h)
