"""The node stream: one bidirectional sequence model shared by all electrodes."""

from __future__ import annotations

import torch
from torch import nn

from ictal.detector.config import StackConfig
from ictal.detector.model import _stack


class NodeStream(nn.Module):
    r"""Run one shared bidirectional (or causal) sequence model over the feature sequence of every electrode.

    .. math::
        u_{b,n,:} = \mathrm{LayerNorm}\big(\mathrm{Stack}(W h_{b,n,:})\big)

    The :math:`B \cdot N` sequences are one batch of the stack, so every electrode uses the same
    weights (the electrode identity is in the features, from :class:`ElectrodeProjection`).

    Parameters
    ----------
    d_in : int
        Electrode feature width D.
    stack : {"bimamba2", "gated_deltanet"}
        Sequence model.
    config : StackConfig
        Its depth and width :math:`D_n` = ``config.d_model``.
    backend : {"auto", "fused", "reference"}
        Kernel choice of the stack.
    direction : {"bidirectional", "causal"}
        ``causal``: a forward-only stack, streamable with :meth:`step`.

    Shapes:
        - **input:** :math:`(B, N, L, D)`
        - **output:** :math:`(B, N, L, D_n)`

    References
    ----------
    Dao, Gu (2024). Transformers are SSMs (Mamba-2). arXiv:2405.21060.
    Yang, Kautz, Hatamizadeh (2025). Gated delta networks. arXiv:2412.06464.
    """

    def __init__(
        self, d_in: int, stack: str, config: StackConfig, backend: str, direction: str = "bidirectional"
    ) -> None:
        super().__init__()
        self.d_model = config.d_model
        self.input = nn.Linear(d_in, config.d_model)
        self.stack = _stack.make_stack(stack, config, backend, direction)
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Map ``h`` of shape (B, N, L, D) to (B, N, L, D_n)."""
        batch, n_nodes, length, _ = h.shape
        u = self.input(h).reshape(batch * n_nodes, length, self.d_model)
        u = self.norm(self.stack(u))
        return u.reshape(batch, n_nodes, length, self.d_model)

    def init_state(self, batch: int, n_nodes: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Zero state of the causal stack for ``batch * n_nodes`` sequences (batch-major)."""
        return self.stack.init_state(batch * n_nodes, device)

    def step(
        self, h: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Continue a causal node stream: (B, N, L, D) new steps -> (B, N, L, D_n) and the new state."""
        batch, n_nodes, length, _ = h.shape
        u = self.input(h).reshape(batch * n_nodes, length, self.d_model)
        u, state = self.stack.step(u, state)
        return self.norm(u).reshape(batch, n_nodes, length, self.d_model), state
