"""The edge stream: per-pair similarity sequences through one shared sequence model to edge weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ictal.detector.config import StackConfig
from ictal.detector.model import _stack


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

    **Causal** (``direction="causal"``): a block's mean is known only when the block is complete, so
    the weight computed from block :math:`\tau` is applied to the steps of block :math:`\tau + 1`
    (one block of delay, 1 s with the defaults), and the steps of the first block of a sequence use
    the weight computed from the similarities of its first step alone (the stack runs over
    :math:`[s_{:,0}, \bar s_0, \bar s_1, \dots]`, its output :math:`k` giving the weights of block
    :math:`k`). Every weight then depends on steps at or before its own. :meth:`step` continues a
    sequence from a state (the stack's state, the partial sum of the current block, its phase and the
    weight in force), for any number of new steps.

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
        Steps per block :math:`p`; must divide L (bidirectional only).
    direction : {"bidirectional", "causal"}
        See above.

    Shapes:
        - **input:** :math:`(B, N, L, D)`
        - **output:** :math:`(B, L, P)` with :math:`P = N(N-1)/2` in :func:`pair_index` order

    References
    ----------
    Tang et al. (2022). Self-supervised graph neural networks for improved electroencephalographic
    seizure analysis. ICLR. arXiv:2104.08336 (correlation-based EEG graphs).
    """

    def __init__(
        self, d_electrode: int, n_heads: int, stack: str, config: StackConfig, backend: str, pool: int = 1,
        direction: str = "bidirectional",
    ) -> None:
        super().__init__()
        self.causal = direction == "causal"
        if pool < 1:
            raise ValueError(f"pool must be at least 1 (found {pool})")
        self.pool = pool
        if d_electrode % n_heads:
            raise ValueError(f"d_electrode ({d_electrode}) must be a multiple of n_heads (found {n_heads})")
        self.n_heads = n_heads
        self.d_model = config.d_model
        self.lift = nn.Linear(n_heads, config.d_model)
        self.stack = _stack.make_stack(stack, config, backend, direction)
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
        if self.causal:
            return self._causal(h, None)[0]
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

    def _weights(self, e: torch.Tensor, batch: int, n_pairs: int) -> torch.Tensor:
        """Stack outputs (B P, n, D_e) -> weights (B, P, n)."""
        return F.softplus(self.readout(self.norm(e))).reshape(batch, n_pairs, e.shape[1])

    def init_state(self, batch: int, n_nodes: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero state of a causal edge stream for ``batch`` recordings.

        Keys: ``stack.*`` (the stack's state, B P sequences), ``partial`` (B, P, H) the sum of the
        similarities of the current, incomplete block, ``weight`` (B, P) the weight in force,
        ``phase`` (B,) steps into the current block and ``started`` (B,) 0 before the first step.
        """
        n_pairs = n_nodes * (n_nodes - 1) // 2
        state = {f"stack.{k}": v for k, v in self.stack.init_state(batch * n_pairs, device).items()}
        state["partial"] = torch.zeros(batch, n_pairs, self.n_heads, device=device)
        state["weight"] = torch.zeros(batch, n_pairs, device=device)
        state["phase"] = torch.zeros(batch, dtype=torch.long, device=device)
        state["started"] = torch.zeros(batch, dtype=torch.long, device=device)
        return state

    def step(
        self, h: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Continue a causal edge stream: electrode features (B, N, L, D) of the next L steps -> weights
        (B, L, P) and the new state.

        Raises
        ------
        ValueError
            If the stream is not causal, or the items of the batch are at different phases of a block.
        """
        if not self.causal:
            raise ValueError("step needs a causal edge stream (ModelConfig.direction='causal')")
        return self._causal(h, state)

    def _causal(
        self, h: torch.Tensor, state: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Causal weights; ``state`` None: a fresh sequence run with the stack's ``forward`` (no state kept)."""
        s = self.similarity(h)  # (B, P, L, H)
        batch, n_pairs, length, n_heads = s.shape
        p = self.pool
        if state is None:
            phase, partial = 0, s.new_zeros(batch, n_pairs, n_heads)
        else:
            phases = state["phase"]
            phase = int(phases[0])
            if bool((phases != phase).any()):
                raise ValueError(
                    f"edge stream: the batch holds states at different phases of a {p}-step block "
                    f"({sorted(set(phases.tolist()))}); step them separately or keep hops whole blocks"
                )
            partial = state["partial"]
        total = phase + length
        n_blocks = total // p
        # the steps of this call, after the `phase` steps already summed in `partial`
        padded = torch.cat([s.new_zeros(batch, n_pairs, phase, n_heads), s], dim=2)
        padded[:, :, 0] = padded[:, :, 0] + partial
        means = padded[:, :, : n_blocks * p].reshape(batch, n_pairs, n_blocks, p, n_heads).mean(3)
        new_partial = padded[:, :, n_blocks * p :].sum(2)
        blocks = self.lift(means).reshape(batch * n_pairs, n_blocks, self.d_model)
        if state is None:  # fresh: one stack pass over [first step, block 0, block 1, ...]
            first = self.lift(s[:, :, 0]).reshape(batch * n_pairs, 1, self.d_model)
            w_seq = self._weights(self.stack(torch.cat([first, blocks], dim=1)), batch, n_pairs)
            new_state = None
        else:
            stack_state = {k[6:]: v for k, v in state.items() if k.startswith("stack.")}
            weight = state["weight"]
            fresh = state["started"] == 0
            if bool(fresh.any()):  # items at their first step: run the stack over that step's similarities
                first = self.lift(s[:, :, 0]).reshape(batch * n_pairs, 1, self.d_model)
                out, first_state = self.stack.step(first, stack_state)
                rows = fresh.repeat_interleave(n_pairs)
                stack_state = {
                    k: torch.where(rows.view(-1, *[1] * (v.dim() - 1)), first_state[k], v)
                    for k, v in stack_state.items()
                }
                weight = torch.where(fresh[:, None], self._weights(out, batch, n_pairs)[..., 0], weight)
            if n_blocks:
                out, stack_state = self.stack.step(blocks, stack_state)
                w_seq = torch.cat([weight[..., None], self._weights(out, batch, n_pairs)], dim=2)
            else:
                w_seq = weight[..., None]
            new_state = {f"stack.{k}": v for k, v in stack_state.items()}
            new_state["partial"] = new_partial
            new_state["weight"] = w_seq[..., -1]
            new_state["phase"] = torch.full_like(state["phase"], total % p)
            new_state["started"] = torch.ones_like(state["started"])
        block_of_step = torch.div(torch.arange(phase, total, device=s.device), p, rounding_mode="floor")
        return w_seq[:, :, block_of_step].transpose(1, 2), new_state
