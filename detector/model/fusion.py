"""Gated fusion of the node-stream and graph features."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

FusionNorm = Literal["none", "layernorm"]


class GatedFusion(nn.Module):
    r"""Per-feature gate between the temporal (node stream) and spatial (graph) view of each electrode.

    .. math::
        a = W_u u, \qquad g = \sigma\big(W_g [a \,\|\, x] + b_g\big), \qquad
        f = g \odot a + (1 - g) \odot x \quad (\texttt{norm="none"})

    With ``norm="layernorm"`` (checkpoints written before the fix of issue 22) the output is
    :math:`\mathrm{LayerNorm}(f)`. That bounds every fused vector whatever the input: a LayerNorm'd
    vector of width :math:`D` has norm :math:`\sqrt{D}` and entries of magnitude at most
    :math:`\sqrt{D - 1}` before its affine map (3.87 for :math:`D = 16`), so the read-out, which only
    pools, and the decoder, which only rescales, saw features of one fixed size on every window, and the
    logits of the shipped model stopped near 3.3 (p 0.964) on seizures, hard negatives and healthy EEG
    alike (measured per stage: ``scripts/ceiling_stages.py``). ``norm="none"`` hands the read-out the
    un-normalised gated mixture, whose magnitude grows with the evidence in :math:`u` and :math:`x`.

    Parameters
    ----------
    d_node : int
        Node-stream width :math:`D_n`.
    d_graph : int
        Graph-network width :math:`D_g` (also the output width).
    norm : {"none", "layernorm"}
        Output normalisation (see above); ``ModelConfig.fusion_norm``.

    Shapes:
        - **input:** node features :math:`(B, N, L, D_n)`, graph features :math:`(B, L, N, D_g)`
        - **output:** :math:`(B, L, N, D_g)`

    Raises
    ------
    ValueError
        If ``norm`` is not one of the two names.

    References
    ----------
    Arevalo et al. (2017). Gated multimodal units for information fusion. arXiv:1702.01992.
    Ba, Kiros, Hinton (2016). Layer normalization. arXiv:1607.06450.
    """

    def __init__(self, d_node: int, d_graph: int, norm: FusionNorm = "none") -> None:
        super().__init__()
        if norm not in ("none", "layernorm"):
            raise ValueError(f"fusion norm must be 'none' or 'layernorm' (found {norm!r})")
        self.node = nn.Linear(d_node, d_graph)
        self.gate = nn.Linear(2 * d_graph, d_graph)
        self.norm = nn.LayerNorm(d_graph) if norm == "layernorm" else nn.Identity()

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Fuse ``u`` (B, N, L, D_n) and ``x`` (B, L, N, D_g) into (B, L, N, D_g)."""
        a = self.node(u.permute(0, 2, 1, 3)).to(x.dtype)
        g = torch.sigmoid(self.gate(torch.cat([a, x], dim=-1))).to(x.dtype)
        return self.norm(g * a + (1 - g) * x)
