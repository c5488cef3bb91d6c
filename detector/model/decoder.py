"""The decoder: x16 upsampling back to the input rate and the per-sample detection head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class Decoder(nn.Module):
    r"""Upsample pooled features x16 to one logit per input sample.

    Four stages; each repeats every step twice (nearest-neighbour x2) and applies a centred
    convolution (kernel 5; with ``causal=True`` padded by 4 on the left only, streamable by
    :meth:`step`) with GELU; a 1x1 convolution is the detection head:

    .. math::
        y^{(s+1)} = \mathrm{GELU}\big(W_s * \mathrm{repeat}_2(y^{(s)})\big), \qquad
        \mathrm{logit}_t = w^\top y^{(4)}_{:,t} + b

    Parameters
    ----------
    in_channels : int
        Width of the pooled features.
    widths : sequence of 4 int
        Widths of the upsampling stages.
    causal : bool
        Left padding only: the logit of sample t depends on pooled steps <= floor(t / 16).

    Shapes:
        - **input:** :math:`(B, C_{in}, T / 16)`
        - **output:** :math:`(B, T)` logits (before the sigmoid)

    References
    ----------
    Ronneberger, Fischer, Brox (2015). U-Net. arXiv:1505.04597 (encoder-decoder for dense outputs).
    """

    def __init__(self, in_channels: int, widths: Sequence[int], causal: bool = False) -> None:
        super().__init__()
        self.causal = causal
        if len(widths) != 4:
            raise ValueError(f"widths must have 4 stages for x16 upsampling (found {list(widths)})")
        convs = []
        previous = in_channels
        for width in widths:
            convs.append(nn.Conv1d(previous, width, 5, padding=0 if causal else 2))
            previous = width
        self.convs = nn.ModuleList(convs)
        self.head = nn.Conv1d(previous, 1, 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Decode ``r`` (B, C_in, T / 16) to logits (B, T)."""
        for conv in self.convs:
            up = r.repeat_interleave(2, dim=-1)
            r = F.gelu(conv(F.pad(up, (4, 0)) if self.causal else up))
        return self.head(r).squeeze(1)

    def init_state(self, batch: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero caches of a causal decoder: ``{s}`` (B, C_in of stage s, 4), the last upsampled inputs."""
        return {f"{s}": torch.zeros(batch, conv.in_channels, 4, device=device) for s, conv in enumerate(self.convs)}

    def step(
        self, r: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Decode the next pooled steps ``r`` (B, C_in, m) of a causal decoder to logits (B, 16 m).

        Raises
        ------
        ValueError
            If the decoder is not causal.
        """
        if not self.causal:
            raise ValueError("step needs a causal decoder (ModelConfig.direction='causal')")
        new_state = {}
        for s, conv in enumerate(self.convs):
            full = torch.cat([state[f"{s}"], r.repeat_interleave(2, dim=-1)], dim=-1)
            new_state[f"{s}"] = full[..., -4:]
            r = F.gelu(conv(full))
        return self.head(r).squeeze(1), new_state
