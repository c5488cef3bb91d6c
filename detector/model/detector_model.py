"""The time-then-graph seizure detector: (B, 19, 15360) EEG to (B, 15360) logits."""

from __future__ import annotations

import torch
from torch import nn

from detector.config import ModelConfig
from detector.model.adjacency import DynamicAdjacency
from detector.model.decoder import Decoder
from detector.model.edge_stream import EdgeStream
from detector.model.electrode_projection import ElectrodeProjection
from detector.model.fusion import GatedFusion
from detector.model.graph_network import GraphNetwork
from detector.model.laplacian_pe import LaplacianPE
from detector.model.node_stream import NodeStream
from detector.model.readout import ElectrodeReadout
from detector.model.tcn import TCNEncoder


class TimeThenGraphDetector(nn.Module):
    r"""Per-sample seizure logits from a window of normalised EEG, time first, then graph.

    1. :class:`TCNEncoder`: (B, C_in, T) -> (B, C, L), L = T / 16.
    2. :class:`ElectrodeProjection`: -> per-electrode features :math:`h` (B, N, L, D).
    3. :class:`NodeStream`: one bidirectional stack over the B N electrode sequences -> :math:`u`.
    4. :class:`EdgeStream`: pair similarities (pooled over ``edge_pool`` steps) -> one stack over the
       B P pair sequences -> weights
       :math:`w \ge 0` (B, L, P).
    5. :class:`DynamicAdjacency`: top-k, symmetric, self-loops on isolated nodes -> :math:`A` (B, L, N, N).
    6. :class:`LaplacianPE`: k smallest eigenvectors, one batched eigh, detached -> PE (B, L, N, k).
    7. :class:`GraphNetwork`: 2 x SSGConv over all B L graphs -> :math:`x` (B, L, N, D_g).
    8. :class:`GatedFusion` of :math:`u` and :math:`x`, :class:`ElectrodeReadout` over electrodes,
       :class:`Decoder` x16 -> logits (B, T).

    .. math::
        \mathrm{logit} = \mathrm{Dec}\Big(\mathrm{Pool}\big(\mathrm{Fuse}(u,
            \mathrm{GNN}(u, \mathrm{PE}(A), A))\big)\Big), \quad
        A = \mathrm{TopK}(\mathrm{Edge}(h)), \quad u = \mathrm{Node}(h), \quad
        h = \mathrm{Proj}(\mathrm{TCN}(x))

    The model sees the whole window in both directions (centred convolutions, bidirectional stacks).
    The daemon keeps only the newest hop of every window, at the right edge, where the future is
    zero padding and the backward scans start from an empty state: those outputs use past context
    only, unlike the middle of a training window. Train and evaluate with that in mind (the stitched
    per-sample output is what ``ictal evaluate`` scores).

    Parameters
    ----------
    n_chans : int
        EEG channels = graph nodes N (19).
    n_times : int
        Samples per window T, a multiple of 16 (15360 = 60 s at 256 Hz).
    sfreq : float
        Sampling rate in Hz (256); recorded, the layers are built for it.
    config : ModelConfig
        Widths, depths, stack and backend.

    Shapes:
        - **input:** :math:`(B, N, T)` float, normalised EEG
        - **output:** :math:`(B, T)` logits

    Raises
    ------
    ValueError
        In ``forward``, if the input is not (B, n_chans, n_times).

    References
    ----------
    Gao, Ribeiro (2022). On the equivalence between temporal and static equivariant graph
    representations (time-then-graph). ICML. arXiv:2103.07016.
    Tang et al. (2022). Self-supervised graph neural networks for improved electroencephalographic
    seizure analysis. ICLR. arXiv:2104.08336.
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float, config: ModelConfig) -> None:
        super().__init__()
        if n_times % 16:
            raise ValueError(f"n_times must be a multiple of 16 (found {n_times})")
        self.n_chans = n_chans
        self.n_times = n_times
        self.sfreq = sfreq
        self.config = config
        self.encoder = TCNEncoder(
            n_chans, config.tcn_widths, config.tcn_kernel, config.tcn_dilations, config.dropout
        )
        self.projection = ElectrodeProjection(self.encoder.out_channels, n_chans, config.d_electrode)
        self.node_stream = NodeStream(config.d_electrode, config.stack, config.node_stack, config.backend)
        self.edge_stream = EdgeStream(
            config.d_electrode, config.similarity_heads, config.stack, config.edge_stack, config.backend,
            config.edge_pool,
        )
        self.adjacency = DynamicAdjacency(n_chans, config.top_k)
        self.lpe = LaplacianPE(config.lpe_k)
        self.graph = GraphNetwork(
            config.node_stack.d_model, config.lpe_k, config.gnn_hidden, config.gnn_alpha, config.gnn_k,
            config.dropout,
        )
        self.fusion = GatedFusion(config.node_stack.d_model, config.gnn_hidden)
        self.readout = ElectrodeReadout(config.gnn_hidden)
        self.decoder = Decoder(2 * config.gnn_hidden, config.decoder_widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised EEG (B, n_chans, n_times) to logits (B, n_times)."""
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"expected input of shape (B, {self.n_chans}, {self.n_times}) (found {tuple(x.shape)})"
            )
        h = self.projection(self.encoder(x))
        u = self.node_stream(h)
        adjacency = self.adjacency(self.edge_stream(h))
        pe = self.lpe(adjacency)
        graph = self.graph(u, pe, adjacency)
        return self.decoder(self.readout(self.fusion(u, graph)))
