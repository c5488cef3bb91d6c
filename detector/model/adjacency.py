"""The dynamic adjacency: top-k edges per node, symmetric, self-loops on isolated nodes."""

from __future__ import annotations

import torch
from torch import nn

from ictal.detector.model.edge_stream import pair_index


class DynamicAdjacency(nn.Module):
    r"""Sparse symmetric adjacency per step from the pair weights of the edge stream.

    With :math:`W_t` the symmetric weight matrix of step :math:`t` (zero diagonal),

    .. math::
        M_{ij} = [j \in \mathrm{top}_k(W_{i,:})] \lor [i \in \mathrm{top}_k(W_{j,:})], \qquad
        A_t = W_t \odot M + \mathrm{diag}\big([\textstyle\sum_j (W_t \odot M)_{ij} = 0]\big)

    i.e. every node keeps its :math:`k` strongest edges, the union is kept so that :math:`A_t` is
    symmetric, and a node left with no edge of positive weight gets a self-loop of weight 1 (so the
    degree is never zero). Gradients flow to the kept weights.

    Parameters
    ----------
    n_nodes : int
        Graph nodes N: the rows of the input montage (19 referential electrodes or 18 double-banana
        derivations, ``detector.montage``). The adjacency is learned from the signals, so it needs no
        positions and is defined for derivations as for electrodes.
    top_k : int
        Edges kept per node, :math:`1 \le k < N`.

    Shapes:
        - **input:** :math:`(B, L, P)` non-negative weights, :math:`P = N(N-1)/2` in
          :func:`pair_index` order
        - **output:** :math:`(B, L, N, N)`
    """

    def __init__(self, n_nodes: int, top_k: int) -> None:
        super().__init__()
        if not 1 <= top_k < n_nodes:
            raise ValueError(f"top_k must lie in [1, {n_nodes - 1}] for {n_nodes} nodes (found {top_k})")
        self.n_nodes = n_nodes
        self.top_k = top_k
        rows, cols = pair_index(n_nodes)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def dense(self, weights: torch.Tensor) -> torch.Tensor:
        """Scatter pair weights (B, L, P) into symmetric matrices (B, L, N, N) with a zero diagonal."""
        n = self.n_nodes
        if weights.shape[-1] != self.rows.numel():
            raise ValueError(
                f"expected {self.rows.numel()} pair weights for {n} nodes (found {weights.shape[-1]})"
            )
        flat = weights.new_zeros(*weights.shape[:-1], n * n)
        flat = flat.index_add(-1, self.rows * n + self.cols, weights)
        flat = flat.index_add(-1, self.cols * n + self.rows, weights)
        return flat.view(*weights.shape[:-1], n, n)

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        """Map pair weights (B, L, P) to the sparse adjacency (B, L, N, N)."""
        full = self.dense(weights)
        eye = torch.eye(self.n_nodes, dtype=torch.bool, device=full.device)
        ranked = full.detach().masked_fill(eye, float("-inf"))
        keep = torch.zeros_like(full, dtype=torch.bool)
        keep.scatter_(-1, ranked.topk(self.top_k, dim=-1).indices, True)
        keep = keep | keep.transpose(-1, -2)
        adjacency = full * keep
        isolated = adjacency.detach().sum(-1) <= 0
        return adjacency + torch.diag_embed(isolated.to(adjacency.dtype))
