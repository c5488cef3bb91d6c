"""The graph network: two SSGConv layers over all dynamic graphs of a batch at once."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import SSGConv


def batched_edges(adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One big sparse graph from a batch of dense adjacencies.

    Parameters
    ----------
    adjacency : Tensor of shape (G, N, N)
        G graphs of N nodes.

    Returns
    -------
    edge_index : LongTensor of shape (2, E)
        Node ``n`` of graph ``g`` is node ``g * N + n`` of the big graph; only non-zero entries.
    edge_weight : Tensor of shape (E,)
        The entries of ``adjacency`` (gradients flow to them).

    Notes
    -----
    Written here rather than with ``torch_geometric.utils.dense_to_sparse``, which offsets its index
    tensor in place after using it to gather the weights and so breaks the backward pass (PyG 2.8).
    """
    graph, row, col = adjacency.nonzero(as_tuple=True)
    edge_weight = adjacency[graph, row, col]
    n_nodes = adjacency.shape[-1]
    return torch.stack([graph * n_nodes + row, graph * n_nodes + col]), edge_weight


class GraphNetwork(nn.Module):
    r"""Two residual SSGConv layers over the dynamic graph of every step.

    Node features are the node-stream output concatenated with the Laplacian positional encoding,

    .. math::
        x^{(0)} = W_{in} [u \,\|\, \mathrm{PE}], \qquad
        x^{(l+1)} = x^{(l)} + \mathrm{GELU}\Big(\frac{1}{K}\sum_{k=1}^{K}
            \big((1-\alpha) \hat{A}^k x^{(l)} + \alpha x^{(l)}\big) \Theta_l\Big)

    with :math:`\hat{A} = \tilde{D}^{-1/2}(A + I_{\text{missing}})\tilde{D}^{-1/2}` (the GCN
    normalisation of SSGConv). The :math:`G = B \cdot L` graphs of the batch are one block-diagonal
    sparse graph of :math:`G \cdot N` nodes (``edge_index``/``edge_weight``), so both layers run once
    per batch. The layers run in fp32 with autocast off (sparse scatter in bf16 loses the weights).

    Parameters
    ----------
    d_node : int
        Node-stream width :math:`D_n`.
    pe_dim : int
        Positional-encoding width k.
    hidden : int
        Width :math:`D_g` of the layers.
    alpha : float
        Teleport probability :math:`\alpha` of SSGConv.
    k_hops : int
        Propagation steps K of SSGConv.
    dropout : float
        Dropout after each layer.

    Shapes:
        - **input:** node features :math:`(B, N, L, D_n)`, positional encoding :math:`(B, L, N, k)`,
          adjacency :math:`(B, L, N, N)`
        - **output:** :math:`(B, L, N, D_g)`

    References
    ----------
    Zhu, Koniusz (2021). Simple spectral graph convolution. ICLR.
    Fey, Lenssen (2019). Fast graph representation learning with PyTorch Geometric. arXiv:1903.02428.
    """

    def __init__(
        self, d_node: int, pe_dim: int, hidden: int, alpha: float, k_hops: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.input = nn.Linear(d_node + pe_dim, hidden)
        self.convs = nn.ModuleList(SSGConv(hidden, hidden, alpha=alpha, K=k_hops) for _ in range(2))
        self.dropout = nn.Dropout(dropout)

    def forward(self, u: torch.Tensor, pe: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """Apply the layers; see the class docstring for shapes."""
        batch, n_nodes, length, _ = u.shape
        with torch.autocast(u.device.type, enabled=False):
            features = torch.cat([u.float().permute(0, 2, 1, 3), pe.float()], dim=-1)
            x = self.input(features).reshape(batch * length * n_nodes, self.hidden)
            edge_index, edge_weight = batched_edges(adjacency.float().reshape(-1, n_nodes, n_nodes))
            for conv in self.convs:
                x = x + self.dropout(F.gelu(conv(x, edge_index, edge_weight)))
        return x.reshape(batch, length, n_nodes, self.hidden)
