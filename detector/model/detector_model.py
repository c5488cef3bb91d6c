"""The time-then-graph seizure detector: (B, 19, 15360) EEG to (B, 15360) logits."""

from __future__ import annotations

import torch
from torch import nn

from ictal.detector.config import ModelConfig
from ictal.detector.model.adjacency import DynamicAdjacency
from ictal.detector.model.decoder import Decoder
from ictal.detector.model.edge_stream import EdgeStream
from ictal.detector.model.electrode_projection import ElectrodeProjection
from ictal.detector.model.fusion import GatedFusion
from ictal.detector.model.graph_network import GraphNetwork
from ictal.detector.model.laplacian_pe import LaplacianPE
from ictal.detector.model.node_stream import NodeStream
from ictal.detector.model.readout import ElectrodeReadout
from ictal.detector.model.tcn import TCNEncoder


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
    8. :class:`GatedFusion` of :math:`u` and :math:`x` (un-normalised since issue 22:
       ``config.fusion_norm``), :class:`ElectrodeReadout` over electrodes, :class:`Decoder` x16 ->
       logits (B, T).

    .. math::
        \mathrm{logit} = \mathrm{Dec}\Big(\mathrm{Pool}\big(\mathrm{Fuse}(u,
            \mathrm{GNN}(u, \mathrm{PE}(A), A))\big)\Big), \quad
        A = \mathrm{TopK}(\mathrm{Edge}(h)), \quad u = \mathrm{Node}(h), \quad
        h = \mathrm{Proj}(\mathrm{TCN}(x))

    With ``config.direction = "bidirectional"`` (the default) the model sees the whole window in both
    directions (centred convolutions, bidirectional stacks). The daemon keeps only the newest hop of
    every window, at the right edge, where the future is zero padding and the backward scans start
    from an empty state: those outputs use past context only, unlike the middle of a training window.
    Train and evaluate with that in mind (the stitched per-sample output is what ``ictal evaluate``
    scores).

    With ``config.direction = "causal"`` every part looks at the past only: left-padded TCN and
    decoder, forward-only stacks, and an edge stream whose pooled weights apply one block later (see
    :class:`EdgeStream`); the adjacency, Laplacian PE, graph network, fusion and read-out act on each
    step alone. The logit of sample t then depends on input samples <= t only, and the model streams:
    :meth:`init_state` and :meth:`step` continue a recording hop by hop, carrying the convolution
    caches, the stacks' states and the edge pooling's partial block, with work proportional to the
    new samples. ``forward`` accepts any length that is a multiple of 16 and equals one ``step`` from
    :meth:`init_state` (to float32 rounding); so does any split of the input into consecutive pieces of
    multiples of 16 samples, stepped one after the other.

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
        In ``forward``, if the input is not (B, n_chans, n_times) (bidirectional) or
        (B, n_chans, 16 m) (causal).

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
        self.causal = config.direction == "causal"
        self.encoder = TCNEncoder(
            n_chans, config.tcn_widths, config.tcn_kernel, config.tcn_dilations, config.dropout, self.causal
        )
        self.projection = ElectrodeProjection(self.encoder.out_channels, n_chans, config.d_electrode)
        self.node_stream = NodeStream(
            config.d_electrode, config.stack, config.node_stack, config.backend, config.direction
        )
        self.edge_stream = EdgeStream(
            config.d_electrode, config.similarity_heads, config.stack, config.edge_stack, config.backend,
            config.edge_pool, config.direction,
        )
        self.adjacency = DynamicAdjacency(n_chans, config.top_k)
        self.lpe = LaplacianPE(config.lpe_k)
        self.graph = GraphNetwork(
            config.node_stack.d_model, config.lpe_k, config.gnn_hidden, config.gnn_alpha, config.gnn_k,
            config.dropout,
        )
        self.fusion = GatedFusion(config.node_stack.d_model, config.gnn_hidden, config.fusion_norm)
        self.readout = ElectrodeReadout(config.gnn_hidden)
        self.decoder = Decoder(2 * config.gnn_hidden, config.decoder_widths, self.causal)

    @property
    def step_multiple(self) -> int:
        """Samples per step must be a multiple of this (16, the TCN's stride)."""
        return 16

    @property
    def phase_samples(self) -> int:
        """Samples of one edge-pooling block (16 * edge_pool): states stepped together in one batch must
        have seen the same number of samples modulo this (hops of whole blocks keep them so)."""
        return 16 * self.config.edge_pool

    def _check_input(self, x: torch.Tensor) -> None:
        if self.causal:
            if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] % 16 or x.shape[2] == 0:
                raise ValueError(
                    f"expected input of shape (B, {self.n_chans}, 16 m) with m >= 1 (found {tuple(x.shape)})"
                )
        elif x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"expected input of shape (B, {self.n_chans}, {self.n_times}) (found {tuple(x.shape)})"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised EEG (B, n_chans, T) to logits (B, T); T = n_times, or any multiple of 16 (causal)."""
        self._check_input(x)
        h = self.projection(self.encoder(x))
        u = self.node_stream(h)
        adjacency = self.adjacency(self.edge_stream(h))
        pe = self.lpe(adjacency)
        graph = self.graph(u, pe, adjacency)
        return self.decoder(self.readout(self.fusion(u, graph)))

    def init_state(self, batch: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """The state a causal model starts a recording from (what ``forward`` starts from).

        Parameters
        ----------
        batch : int
            Recordings B.
        device : torch.device or str, optional
            Where the tensors live.

        Returns
        -------
        state : dict of str to Tensor
            Flat; every tensor's first dimension is B times a per-recording count (batch-major), so
            states concatenate and split along dimension 0. Keys ``encoder.*``, ``node.*``, ``edge.*``,
            ``decoder.*`` and ``samples_seen`` (B,).

        Raises
        ------
        ValueError
            If the model is bidirectional.
        """
        if not self.causal:
            raise ValueError("init_state needs a causal model (ModelConfig.direction='causal')")
        state = {"samples_seen": torch.zeros(batch, dtype=torch.long, device=device)}
        parts = (
            ("encoder", self.encoder.init_state(batch, device)),
            ("node", self.node_stream.init_state(batch, self.n_chans, device)),
            ("edge", self.edge_stream.init_state(batch, self.n_chans, device)),
            ("decoder", self.decoder.init_state(batch, device)),
        )
        for prefix, part in parts:
            state.update({f"{prefix}.{k}": v for k, v in part.items()})
        return state

    def step(
        self, x: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Continue B recordings by their next samples: (B, n_chans, 16 m) -> logits (B, 16 m), new state.

        The logits equal those of ``forward`` over each whole recording so far, at these samples (to
        float32 rounding).

        Raises
        ------
        ValueError
            If the model is bidirectional, the input shape is wrong, or the recordings of the batch
            are at different phases of an edge-pooling block (see :attr:`phase_samples`).
        """
        if not self.causal:
            raise ValueError("step needs a causal model (ModelConfig.direction='causal')")
        self._check_input(x)

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}

        z, encoder_state = self.encoder.step(x, part("encoder"))
        h = self.projection(z)
        u, node_state = self.node_stream.step(h, part("node"))
        weights, edge_state = self.edge_stream.step(h, part("edge"))
        adjacency = self.adjacency(weights)
        graph = self.graph(u, self.lpe(adjacency), adjacency)
        logits, decoder_state = self.decoder.step(self.readout(self.fusion(u, graph)), part("decoder"))
        new_state = {"samples_seen": state["samples_seen"] + x.shape[2]}
        for prefix, sub in (
            ("encoder", encoder_state), ("node", node_state), ("edge", edge_state), ("decoder", decoder_state)
        ):
            new_state.update({f"{prefix}.{k}": v for k, v in sub.items()})
        return logits, new_state
