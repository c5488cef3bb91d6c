"""Gated fusion of the node-stream and graph features."""

from __future__ import annotations

import torch
from torch import nn


class GatedFusion(nn.Module):
    r"""Per-feature gate between the temporal (node stream) and spatial (graph) view of each electrode.

    .. math::
        a = W_u u, \qquad g = \sigma\big(W_g [a \,\|\, x] + b_g\big), \qquad
        f = \mathrm{LayerNorm}\big(g \odot a + (1 - g) \odot x\big)

    Parameters
    ----------
    d_node : int
        Node-stream width :math:`D_n`.
    d_graph : int
        Graph-network width :math:`D_g` (also the output width).

    Shapes:
        - **input:** node features :math:`(B, N, L, D_n)`, graph features :math:`(B, L, N, D_g)`
        - **output:** :math:`(B, L, N, D_g)`

    References
    ----------
    Arevalo et al. (2017). Gated multimodal units for information fusion. arXiv:1702.01992.
    """

    def __init__(self, d_node: int, d_graph: int) -> None:
        super().__init__()
        self.node = nn.Linear(d_node, d_graph)
        self.gate = nn.Linear(2 * d_graph, d_graph)
        self.norm = nn.LayerNorm(d_graph)

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Fuse ``u`` (B, N, L, D_n) and ``x`` (B, L, N, D_g) into (B, L, N, D_g)."""
        a = self.node(u.permute(0, 2, 1, 3)).to(x.dtype)
        g = torch.sigmoid(self.gate(torch.cat([a, x], dim=-1))).to(x.dtype)
        return self.norm(g * a + (1 - g) * x)
