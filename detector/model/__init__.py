"""The time-then-graph detector model, one layer per module.

``build_model(config)`` is the entry point; the layers are importable for tests and benchmarks.
"""

from __future__ import annotations

from torch import nn

from ictal.detector.config import ModelConfig
from ictal.detector.model.adjacency import DynamicAdjacency
from ictal.detector.model.channel_norm import ChannelNorm
from ictal.detector.model.decoder import Decoder
from ictal.detector.model.detector_model import TimeThenGraphDetector
from ictal.detector.model.edge_stream import EdgeStream, pair_index
from ictal.detector.model.electrode_projection import ElectrodeProjection
from ictal.detector.model.fusion import GatedFusion
from ictal.detector.model.graph_network import GraphNetwork, batched_edges
from ictal.detector.model.laplacian_pe import LaplacianPE
from ictal.detector.model.node_stream import NodeStream
from ictal.detector.model.readout import ElectrodeReadout
from ictal.detector.model.tcn import TCNEncoder
from ictal.detector.model.temporal_block import DilatedResidualBlock

__all__ = [
    "ChannelNorm",
    "Decoder",
    "DilatedResidualBlock",
    "DynamicAdjacency",
    "EdgeStream",
    "ElectrodeProjection",
    "ElectrodeReadout",
    "GatedFusion",
    "GraphNetwork",
    "LaplacianPE",
    "NodeStream",
    "TCNEncoder",
    "TimeThenGraphDetector",
    "batched_edges",
    "build_model",
    "count_parameters",
    "pair_index",
]


def build_model(config: ModelConfig) -> nn.Module:
    """Build the detector described by ``config``.

    Parameters
    ----------
    config : ModelConfig
        Preset (``configs/model/*.yaml``) or any validated model config.

    Returns
    -------
    model : TimeThenGraphDetector
        Maps (B, config.n_chans, config.n_times) normalised EEG to logits (B, config.n_times), in
        training mode (call ``.eval()`` for inference).

    Raises
    ------
    ValueError
        If ``config.backend`` is "fused" and the kernels are missing (raised by the stacks).
    """
    return TimeThenGraphDetector(config.n_chans, config.n_times, config.sfreq, config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
