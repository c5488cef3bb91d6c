"""The decoder: x16 upsampling back to the input rate and the per-sample detection head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class Decoder(nn.Module):
    r"""Upsample pooled features x16 to one logit per input sample.

    Four stages; each repeats every step twice (nearest-neighbour x2) and applies a centred
    convolution (kernel 5) with GELU; a 1x1 convolution is the detection head:

    .. math::
        y^{(s+1)} = \mathrm{GELU}\big(W_s * \mathrm{repeat}_2(y^{(s)})\big), \qquad
        \mathrm{logit}_t = w^\top y^{(4)}_{:,t} + b

    Parameters
    ----------
    in_channels : int
        Width of the pooled features.
    widths : sequence of 4 int
        Widths of the upsampling stages.

    Shapes:
        - **input:** :math:`(B, C_{in}, T / 16)`
        - **output:** :math:`(B, T)` logits (before the sigmoid)

    References
    ----------
    Ronneberger, Fischer, Brox (2015). U-Net. arXiv:1505.04597 (encoder-decoder for dense outputs).
    """

    def __init__(self, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths must have 4 stages for x16 upsampling (found {list(widths)})")
        convs = []
        previous = in_channels
        for width in widths:
            convs.append(nn.Conv1d(previous, width, 5, padding=2))
            previous = width
        self.convs = nn.ModuleList(convs)
        self.head = nn.Conv1d(previous, 1, 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Decode ``r`` (B, C_in, T / 16) to logits (B, T)."""
        for conv in self.convs:
            r = F.gelu(conv(r.repeat_interleave(2, dim=-1)))
        return self.head(r).squeeze(1)
