"""Configuration of the signal front-end and of the model (pydantic models, validated from YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """Base of every config model of the project (detector, alarms, streaming, training).

    Unknown keys are errors, fields are validated on assignment, and non-finite numbers (``.inf``,
    ``.nan`` in YAML) are refused: an infinite refractory period or heartbeat would silently disable
    alarms or liveness detection.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


Montage = Literal["referential", "double_banana"]
"""Model input montages (names of ``detector.montage.MONTAGES``)."""


class FrontendConfig(StrictModel):
    """The signal front-end shared by the daemon and training.

    A checkpoint records the front-end config it was trained with; the daemon refuses to run a
    checkpoint through a different one.
    """

    fs_hz: Literal[256] = Field(256, description="Detector sampling rate; the model is built for 256 Hz.")
    bandpass_hz: tuple[float, float] = Field(
        (0.5, 120.0),
        description="Butterworth band-pass edges in Hz: 0.5 Hz removes electrode drift, 120 Hz keeps "
        "fast ictal activity below the 128 Hz Nyquist limit.",
    )
    bandpass_order: int = Field(4, ge=1, le=8, description="Butterworth order (per edge), as SOS sections.")
    notch_hz: float | None = Field(
        60.0,
        description="Mains notch frequency: 60 Hz in the Americas, 50 Hz in Europe/Asia; null disables "
        "it (only where the amplifier already removes mains).",
    )
    notch_q: float = Field(30.0, gt=0, description="Quality factor of the notch (bandwidth = f0 / Q).")
    normalisation: Literal["window_robust", "running", "fixed_gain"] = Field(
        "window_robust",
        description="window_robust: per-channel median/IQR over the scored 60 s window (identical in "
        "streaming and training by construction); running: exponentially-weighted running statistics; "
        "fixed_gain: one fixed scale (50 uV) for every sample, absolute amplitude kept "
        "(detector.normalise).",
    )
    clip_sigma: float = Field(20.0, gt=0, description="Normalised samples are clipped to +/- this value.")
    running_tau_s: float = Field(
        300.0,
        gt=0,
        description="Time constant in seconds of the running (exponentially-weighted) mean and variance "
        "of normalisation='running': 5 minutes follows slow changes of state and montage impedance "
        "without adapting away a seizure (tens of seconds to minutes).",
    )
    montage: Montage = Field(
        "referential",
        description="Model input montage (detector.montage): referential = the 19 referential 10-20 "
        "electrodes, the default, as every checkpoint before the option was trained; double_banana = the "
        "18 derivations of the longitudinal bipolar montage (ACNS Guideline 3), derived exactly from "
        "referential input or read natively from bipolar recordings such as CHB-MIT. The model's "
        "n_chans must equal the montage's row count (19 or 18).",
    )
    repair_missing: list[Literal["Fz", "Cz", "Pz"]] = Field(
        default_factory=list,
        description="Midline channels that may be interpolated from their neighbours when missing. "
        "Empty by default: a missing channel is an error unless the site allows a repair.",
    )

    @model_validator(mode="after")
    def _check_band(self) -> FrontendConfig:
        low, high = self.bandpass_hz
        if not 0 < low < high < self.fs_hz / 2:
            raise ValueError(
                f"bandpass_hz must satisfy 0 < low < high < {self.fs_hz / 2} Hz (found {low}, {high})"
            )
        if self.notch_hz is not None and not 0 < self.notch_hz < self.fs_hz / 2:
            raise ValueError(f"notch_hz must lie in (0, {self.fs_hz / 2}) Hz (found {self.notch_hz})")
        return self


Stack = Literal["bimamba2", "gated_deltanet"]
Backend = Literal["auto", "fused", "reference"]


class StackConfig(StrictModel):
    """One bidirectional sequence-model stack (node or edge stream).

    Mamba2 mixers get ``mamba_ssm.Mamba2(d_model, d_state, d_conv, expand, headdim=expand * d_model //
    n_heads, ngroups=1, chunk_size)``; Gated DeltaNet mixers get ``fla.layers.GatedDeltaNet(hidden_size=
    d_model, num_heads=n_heads, head_dim=d_state, expand_v=expand, conv_size=d_conv)``.
    """

    n_layers: int = Field(2, ge=1, description="Number of bidirectional blocks.")
    d_model: int = Field(32, ge=4, description="Width of the stream.")
    d_state: int = Field(16, ge=1, description="SSM state size (Mamba2) / key dim per head (DeltaNet).")
    n_heads: int = Field(2, ge=1, description="Heads of the sequence mixer.")
    expand: int = Field(
        2, ge=1, description="Inner expansion factor: Mamba2 inner width / d_model; DeltaNet value / key head dim."
    )
    chunk_size: int = Field(64, ge=8, description="Chunk length of the chunked scans (samples at /16 rate).")
    d_conv: int = Field(
        4, ge=2, le=4, description="Kernel of the short causal convolutions (4, as upstream; the fused "
        "causal-conv1d kernels support 2 to 4)."
    )

    @model_validator(mode="after")
    def _check_heads(self) -> StackConfig:
        if (self.expand * self.d_model) % self.n_heads:
            raise ValueError(
                f"expand * d_model = {self.expand * self.d_model} must be divisible by n_heads "
                f"(found n_heads={self.n_heads})"
            )
        return self


class ModelConfig(StrictModel):
    """Time-then-graph detector: TCN encoder, node and edge streams, dynamic graph, decoder.

    The defaults are the ``tiny`` preset with the ``bimamba2`` stack (``configs/model/tiny_bimamba2.yaml``).
    The encoder has one stage per entry of ``tcn_widths`` (four: each halves the rate, x16 in all);
    every stage holds one dilated residual block per entry of ``tcn_dilations``.
    """

    kind: Literal["model"] = "model"
    name: str = Field("tiny", description="Preset name recorded in checkpoints.")
    stack: Stack = Field("bimamba2", description="Sequence model of both streams.")
    backend: Backend = Field(
        "auto", description="auto: fused kernels on CUDA when installed, else the reference PyTorch code."
    )
    direction: Literal["bidirectional", "causal"] = Field(
        "bidirectional",
        description="bidirectional: centred convolutions and forward + backward stacks over the window (the "
        "seeds' design, the default for offline work); causal: every part looks at the past only, so the "
        "model streams hop by hop with its state (Detector.init_state / step, detector.mode: stream).",
    )
    n_chans: int = Field(
        19, description="Input channels = graph nodes: 19 for the referential montage (electrodes), 18 for "
        "the double_banana montage (derivations); must match FrontendConfig.montage."
    )
    n_times: int = Field(
        15360, ge=16, description="Samples per window (60 s at 256 Hz); any multiple of 16 works."
    )
    sfreq: float = Field(256.0, description="Sampling rate in Hz.")
    tcn_widths: list[int] = Field(
        default_factory=lambda: [32, 48, 64, 64],
        min_length=4,
        max_length=4,
        description="TCN stage widths; four stages, each downsampling x2 (x16 in all).",
    )
    tcn_kernel: int = Field(7, ge=3, description="TCN kernel size (odd).")
    tcn_dilations: list[int] = Field(
        default_factory=lambda: [1, 4, 16, 64],
        min_length=1,
        description="Dilations of the residual blocks of every stage, in steps at the stage's rate "
        "(stage s runs at sfreq / 2**(s+1)); 128 at the last stage spans 48 s of a 60 s window.",
    )
    downsample: Literal[16] = Field(16, description="Total temporal downsampling of the encoder.")
    d_electrode: int = Field(16, ge=4, description="Per-electrode feature width after projection.")
    node_stack: StackConfig = Field(
        default_factory=lambda: StackConfig(
            n_layers=1, d_model=16, d_state=16, n_heads=1, expand=2, chunk_size=64
        )
    )
    edge_stack: StackConfig = Field(
        default_factory=lambda: StackConfig(
            n_layers=1, d_model=8, d_state=8, n_heads=1, expand=2, chunk_size=32
        )
    )
    edge_pool: int = Field(
        16,
        ge=1,
        description="The edge stream averages pair similarities over this many steps, runs its stack at "
        "that coarser rate (171 sequences cost 9x the node stream) and repeats the weights back to every "
        "step; a divisor of n_times / 16. 16 = one adjacency update per second; 1 = every step.",
    )
    similarity_heads: int = Field(
        4, ge=1, description="Cosine similarities per electrode pair (one per slice of d_electrode)."
    )
    top_k: int = Field(3, ge=1, le=18, description="Strongest edges kept per node in the dynamic adjacency.")
    lpe_k: int = Field(8, ge=1, le=18, description="Laplacian eigenvectors of the positional encoding.")
    gnn_hidden: int = Field(16, ge=4, description="Width of the graph network and of the fused features.")
    gnn_alpha: float = Field(0.05, ge=0, le=1, description="SSGConv teleport probability.")
    gnn_k: int = Field(2, ge=1, description="SSGConv propagation steps.")
    fusion_norm: Literal["none", "layernorm"] = Field(
        "none",
        description="Normalisation of the fused features the read-out sees. none (since issue 22): the "
        "gated mixture as is, so the logit can grow with the evidence; layernorm: the architecture of "
        "earlier checkpoints, whose LayerNorm bounded every fused vector and capped the logits near 3.3 "
        "(p 0.964). A checkpoint whose model_config lacks the key was written with layernorm and loads so "
        "(detector.checkpoint).",
    )
    decoder_widths: list[int] = Field(
        default_factory=lambda: [16, 16, 8, 8],
        min_length=4,
        max_length=4,
        description="Widths of the four x2 upsampling stages of the decoder (x16 back to n_times).",
    )
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelConfig:
        if self.n_times % self.downsample:
            raise ValueError(f"n_times must be a multiple of {self.downsample} (found {self.n_times})")
        if self.tcn_kernel % 2 == 0:
            raise ValueError(f"tcn_kernel must be odd (found {self.tcn_kernel})")
        if not self.top_k < self.n_chans:
            raise ValueError(f"top_k must be below n_chans = {self.n_chans} (found {self.top_k})")
        if not self.lpe_k <= self.n_chans:
            raise ValueError(f"lpe_k must be at most n_chans = {self.n_chans} (found {self.lpe_k})")
        if (self.n_times // self.downsample) % self.edge_pool:
            raise ValueError(
                f"edge_pool must divide n_times / {self.downsample} = {self.n_times // self.downsample} "
                f"(found {self.edge_pool})"
            )
        if self.d_electrode % self.similarity_heads:
            raise ValueError(
                f"d_electrode ({self.d_electrode}) must be a multiple of similarity_heads "
                f"(found {self.similarity_heads})"
            )
        return self
