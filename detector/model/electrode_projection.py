"""Projection of the encoder features to per-node features (a node is an electrode or a derivation)."""

from __future__ import annotations

import torch
from torch import nn


class ElectrodeProjection(nn.Module):
    r"""Project encoder features to one feature vector per electrode and step.

    .. math::
        h_{b,n,t} = \mathrm{LayerNorm}\big(W_n z_{b,:,t} + b_n + e_n\big)

    with :math:`W_n \in \mathbb{R}^{D \times C}` the slice of one linear map for electrode :math:`n`
    and :math:`e_n` a learned electrode embedding (which electrode a feature belongs to).

    Parameters
    ----------
    in_channels : int
        Encoder channels C.
    n_electrodes : int
        Graph nodes N: the rows of the input montage (``detector.montage``), 19 referential electrodes
        or 18 double-banana derivations; a derivation gets its own projection and embedding like an
        electrode.
    d_electrode : int
        Feature width D per electrode.

    Shapes:
        - **input:** :math:`(B, C, L)`
        - **output:** :math:`(B, N, L, D)`
    """

    def __init__(self, in_channels: int, n_electrodes: int, d_electrode: int) -> None:
        super().__init__()
        self.n_electrodes = n_electrodes
        self.d_electrode = d_electrode
        self.linear = nn.Linear(in_channels, n_electrodes * d_electrode)
        self.embedding = nn.Parameter(torch.randn(n_electrodes, d_electrode) * 0.02)
        self.norm = nn.LayerNorm(d_electrode)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map ``z`` of shape (B, C, L) to (B, N, L, D)."""
        batch, _, length = z.shape
        h = self.linear(z.transpose(1, 2)).view(batch, length, self.n_electrodes, self.d_electrode)
        return self.norm(h.permute(0, 2, 1, 3) + self.embedding[:, None, :])
