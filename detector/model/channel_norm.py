"""Layer normalisation over the channels of a (B, C, L) signal, at every time step separately."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ChannelNorm(nn.Module):
    r"""Layer normalisation over channels, applied at each time step of a (B, C, L) signal.

    Unlike ``GroupNorm(1, C)`` it uses no statistics over time, so a step never depends on distant
    steps through the normalisation.

    .. math::
        y_{b,:,t} = \gamma \odot \frac{x_{b,:,t} - \mu_{b,t}}{\sqrt{\sigma^2_{b,t} + \epsilon}} + \beta

    Parameters
    ----------
    channels : int
        Number of channels C.
    eps : float
        Added to the variance.

    Shapes:
        - **input:** :math:`(B, C, L)`
        - **output:** :math:`(B, C, L)`

    References
    ----------
    Ba, Kiros, Hinton (2016). Layer normalization. arXiv:1607.06450.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape (B, C, L) over C."""
        return F.layer_norm(
            x.transpose(1, 2), self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps
        ).transpose(1, 2)
