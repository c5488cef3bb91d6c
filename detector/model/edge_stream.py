"""The edge stream: per-pair similarity sequences through one shared sequence model to edge weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from detector.config import StackConfig
from detector.model import _stack


def pair_index(n_nodes: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the unordered electrode pairs, in row-major upper-triangle order.

    Parameters
    ----------
    n_nodes : int
        Electrodes N.
    device : torch.device or str, optional
        Device of the returned tensors.

    Returns
    -------
    rows, cols : LongTensor of shape (N (N - 1) / 2,)
        ``rows[p] < cols[p]``; 171 pairs for N = 19.
    """
    rows, cols = torch.triu_indices(n_nodes, n_nodes, offset=1, device=device)
    return rows, cols


class EdgeStream(nn.Module):
    r"""Edge weights over time from the similarity of electrode features.

    For every pair :math:`(i, j)`, :math:`i < j`, and step :math:`t`, the electrode features are cut
    into :math:`H` slices and compared by cosine similarity,

    .. math::
        s^{(h)}_{ij,t} = \frac{\langle h^{(h)}_{i,t}, h^{(h)}_{j,t}\rangle}
            {\lVert h^{(h)}_{i,t}\rVert \, \lVert h^{(h)}_{j,t}\rVert},

    the :math:`H` similarities are averaged over blocks of :math:`p` steps (``pool``), lifted to width
    :math:`D_e`, one bidirectional sequence model shared by all pairs runs over the :math:`L / p`
    blocks, and a linear read-out with softplus gives a positive weight, repeated to the :math:`p` steps
    of its block:

    .. math::
        \bar s_{ij,\tau} = \frac{1}{p}\sum_{t \in \tau} s_{ij,t}, \qquad
        w_{ij,t} = \mathrm{softplus}\big(v^\top \mathrm{Stack}(W \bar s_{ij,:})_{\tau(t)} + c\big) \ge 0 .

    The pooling is a cost choice: the stack runs over :math:`B \cdot P` = 171 B sequences, nine times
    the node stream's, and the coupling between electrodes changes more slowly than the signal.

    Parameters
    ----------
    d_electrode : int
        Electrode feature width D (a multiple of ``n_heads``).
    n_heads : int
        Similarity slices H.
    stack : {"bimamba2", "gated_deltanet"}
        Sequence model.
    config : StackConfig
        Its depth and width :math:`D_e` = ``config.d_model``.
    backend : {"auto", "fused", "reference"}
        Kernel choice of the stack.
    pool : int
        Steps per block :math:`p`; must divide L.

    Shapes:
        - **input:** :math:`(B, N, L, D)`
        - **output:** :math:`(B, L, P)` with :math:`P = N(N-1)/2` in :func:`pair_index` order

    References
    ----------
    Tang et al. (2022). Self-supervised graph neural networks for improved electroencephalographic
    seizure analysis. ICLR. arXiv:2104.08336 (correlation-based EEG graphs).
    """

    def __init__(
        self, d_electrode: int, n_heads: int, stack: str, config: StackConfig, backend: str, pool: int = 1
    ) -> None:
        super().__init__()
        if pool < 1:
            raise ValueError(f"pool must be at least 1 (found {pool})")
        self.pool = pool
        if d_electrode % n_heads:
            raise ValueError(f"d_electrode ({d_electrode}) must be a multiple of n_heads (found {n_heads})")
        self.n_heads = n_heads
        self.d_model = config.d_model
        self.lift = nn.Linear(n_heads, config.d_model)
        self.stack = _stack.make_stack(stack, config, backend)
        self.norm = nn.LayerNorm(config.d_model)
        self.readout = nn.Linear(config.d_model, 1)

    def similarity(self, h: torch.Tensor) -> torch.Tensor:
        """Cosine similarities of every pair, (B, N, L, D) -> (B, P, L, H)."""
        batch, n_nodes, length, d = h.shape
        sliced = h.permute(0, 2, 1, 3).reshape(batch, length, n_nodes, self.n_heads, d // self.n_heads)
        sliced = F.normalize(sliced.transpose(2, 3), dim=-1, eps=1e-6)  # (B, L, H, N, d/H)
        gram = sliced @ sliced.transpose(-1, -2)  # (B, L, H, N, N)
        rows, cols = pair_index(n_nodes, h.device)
        return gram[..., rows, cols].permute(0, 3, 1, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map electrode features (B, N, L, D) to non-negative edge weights (B, L, P)."""
        s = self.similarity(h)
        batch, n_pairs, length, n_heads = s.shape
        if length % self.pool:
            raise ValueError(f"sequence length {length} is not a multiple of pool = {self.pool}")
        blocks = length // self.pool
        s = s.reshape(batch, n_pairs, blocks, self.pool, n_heads).mean(3)
        e = self.lift(s).reshape(batch * n_pairs, blocks, self.d_model)
        e = self.norm(self.stack(e))
        w = F.softplus(self.readout(e)).reshape(batch, n_pairs, blocks)
        return w.repeat_interleave(self.pool, dim=2).transpose(1, 2)
