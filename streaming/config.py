"""Configuration of sources, beds, the window scheduler and the daemon (the `kind: daemon` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ictal.alarms.config import AlarmsConfig
from ictal.detector import FS_HZ
from ictal.detector.config import FrontendConfig, StrictModel
from ictal.streaming.view.config import ViewConfig


class LslSourceConfig(StrictModel):
    """An LSL inlet resolved by name, type and/or source id (``streaming.sources.lsl``).

    A bed selected by ``name`` is bound at its first connection to that stream's ``source_id`` and
    hostname: another stream with the same name is refused afterwards (no silent patient swap).
    """

    type: Literal["lsl"] = "lsl"
    name: str | None = Field(None, description="LSL stream name to resolve (e.g. the amplifier's).")
    stream_type: str = Field("EEG", description="LSL stream type to resolve.")
    source_id: str | None = Field(None, description="LSL source_id; the most specific way to pick a device.")
    resolve_timeout_s: float = Field(
        5.0, gt=0,
        description="How long the source waits for its stream before saying it is not found (at start "
        "and after each loss; it keeps looking in the background, never gives up), and the longest wait "
        "of each step of opening an inlet. 5 s: discovery takes ~0.5 s with unicast (KnownPeers), "
        "milliseconds with multicast.",
    )
    reconnect_s: float = Field(2.0, gt=0, description="Pause before opening again a stream that could not be "
                               "opened or was refused (montage, unit, rate).")
    gap_tolerance_s: float = Field(
        0.1, gt=0,
        description="Timestamp jump (beyond one sample period) above which samples are declared lost: "
        "0.1 s is above the chunk timestamp jitter of USB/Wi-Fi amplifiers, below any gap that matters.",
    )

    @field_validator("name", "stream_type", "source_id")
    @classmethod
    def _plain_selector(cls, value: str | None) -> str | None:
        if value is not None and (not value or "'" in value):
            raise ValueError(
                "an LSL selector must be non-empty and contain no quote: it is quoted in the resolve predicate"
            )
        return value

    @model_validator(mode="after")
    def _needs_selector(self) -> LslSourceConfig:
        if self.name is None and self.source_id is None:
            raise ValueError("an lsl source needs `name` or `source_id` (a bare type could pick another bed)")
        return self

    def could_select_same_stream(self, other: LslSourceConfig) -> bool:
        """Whether this selector and ``other`` could resolve the same LSL stream.

        Same ``stream_type`` and either the same ``source_id``, or the same ``name`` where at least
        one of the two gives no ``source_id`` to tell the streams apart.
        """
        if self.stream_type != other.stream_type:
            return False
        if self.source_id is not None and other.source_id is not None:
            return self.source_id == other.source_id
        return self.name is not None and self.name == other.name


class EdfSourceConfig(StrictModel):
    """Replay of an EDF/EDF+ file, paced in real time or faster."""

    type: Literal["edf"] = "edf"
    path: Path = Field(description="EDF or EDF+ file.")
    speed: float = Field(1.0, ge=0, description="Pacing factor: 1 = real time, 0 = as fast as possible.")
    loop: bool = Field(False, description="Start again at the end of the file.")
    chunk_s: float = Field(0.25, gt=0, description="Seconds of signal per emitted chunk.")


SourceConfig = Annotated[LslSourceConfig | EdfSourceConfig, Field(discriminator="type")]


class BedConfig(StrictModel):
    """One bed: an id and the source of its EEG."""

    bed_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Used in topics, metrics and events (the alarm event schema's pattern: letters, digits, "
        "'_' and '-').",
    )
    source: SourceConfig


class SchedulerConfig(StrictModel):
    """When windows are scored."""

    hop_s: float = Field(
        4.0, gt=0, le=60,
        description="Seconds between scored windows, a whole number of samples at 256 Hz (1/256 s steps; "
        "hop + the checkpoint's lookahead_s <= 60 s). 4 s keeps onset latency well under the 10 s "
        "minimum event duration; a 2-core CPU serves about 24 beds with the tiny preset at this hop (ictal bench daemon).",
    )
    ring_s: float = Field(120.0, ge=60, description="Seconds of signal kept per bed (>= one window).")
    min_history_s: float = Field(
        10.0, ge=1, le=60,
        description="Before the first full 60 s window exists, score (every hop, from this much history "
        "on) a window left-padded to 60 s: the history is normalised alone and the padding is zeros after "
        "normalisation (streaming.bed); training draws such windows too. Applies after connecting and "
        "after every gap of 6 s or more. 10 s: a bed is scored within about 10 s of connecting (60 left "
        "it blind for a minute), and 10 s is the usual shortest seizure. The first probability is at "
        "min_history_s - hop_s - lookahead_s.",
    )


    @field_validator("hop_s")
    @classmethod
    def _hop_whole_samples(cls, hop_s: float) -> float:
        samples = hop_s * FS_HZ
        if abs(samples - round(samples)) > 1e-6 or round(samples) < 1:
            raise ValueError(
                f"hop_s must be a whole number of samples at {FS_HZ} Hz, at least one: a multiple of "
                f"1/{FS_HZ} s (found {hop_s} s = {samples:g} samples; nearest: {max(1, round(samples)) / FS_HZ:g} s)"
            )
        return hop_s


class DetectorRuntimeConfig(StrictModel):
    """Which checkpoint runs, where."""

    checkpoint: Path = Field(Path("checkpoints/demo"), description="Checkpoint directory (safetensors + JSON).")
    device: str = Field("auto", description="auto: cuda when available, else cpu; or a torch device string.")
    backend: Literal["auto", "fused", "reference"] = Field("auto", description="Stack backend override.")
    max_batch: int = Field(32, ge=1, description="Most windows scored in one forward pass.")
    queue_windows: int = Field(
        2, ge=1, le=16,
        description="Windows of one bed waiting for scoring; beyond it the oldest is skipped (the daemon "
        "scores the newest window and says it fell behind). 2 absorbs one slow batch without lag.",
    )
    warmup: bool = Field(True, description="Run one forward pass before READY=1 (first-call allocations).")
    mode: Literal["window", "stream"] = Field(
        "window",
        description="window: every hop, score the newest 60 s window from an empty model state (any "
        "checkpoint). stream: each bed keeps its model state from hop to hop and only the hop's new samples "
        "are scored (work proportional to the new signal); causal checkpoints only, with "
        "scheduler.hop_s and scheduler.min_history_s multiples of the checkpoint's step "
        "(Detector.stream_multiple_samples), checked when the checkpoint loads. window is the default "
        "because it serves every checkpoint.",
    )
    threads: int | None = Field(
        None, ge=1,
        description="PyTorch intra-op threads of the model (torch.set_num_threads, process-wide). null: 1 in "
        "stream mode on a CPU (a stream step is many small operations: measured on this project's 2-core "
        "machine, 2 threads spent 2.6-3.6x the CPU time of 1 for the same hops, and the front-end threads "
        "need the other core), else PyTorch's default (one per core; whole windows use them well).",
    )


class DaemonConfig(StrictModel):
    """The daemon's file (`configs/daemon.yaml`)."""

    kind: Literal["daemon"] = "daemon"
    beds: list[BedConfig] = Field(default_factory=list, description="Beds served by this process.")
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)
    detector: DetectorRuntimeConfig = Field(default_factory=DetectorRuntimeConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    view: ViewConfig = Field(
        default_factory=ViewConfig,
        description="The EEG and probability page (ictal view), served by ictal serve when view.enabled.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    shutdown_timeout_s: float = Field(
        5.0, gt=0, le=60,
        description="On SIGTERM, how long the batch in flight may take to finish before it is abandoned; "
        "below the unit's TimeoutStopSec (30 s), so the daemon exits 0 on its own.",
    )
    no_data_s: float = Field(
        5.0, gt=0, description="Seconds without samples from a connected source before a no_data "
        "signal-quality event (and its alarm closed).",
    )

    @model_validator(mode="after")
    def _unique_beds(self) -> DaemonConfig:
        ids = [bed.bed_id for bed in self.beds]
        duplicates = sorted({b for b in ids if ids.count(b) > 1})
        if duplicates:
            raise ValueError(f"bed_id must be unique (repeated: {', '.join(duplicates)})")
        return self

    @model_validator(mode="after")
    def _distinct_streams(self) -> DaemonConfig:  # after _unique_beds: a repeated bed_id is named first
        lsl = [(bed.bed_id, bed.source) for bed in self.beds if isinstance(bed.source, LslSourceConfig)]
        clashes = []
        for i, (bed_a, a) in enumerate(lsl):
            for bed_b, b in lsl[i + 1:]:
                if a.could_select_same_stream(b):
                    what = (f"source_id {a.source_id!r}" if a.source_id is not None and b.source_id is not None
                            else f"name {a.name!r}, not told apart by a source_id on each")
                    clashes.append(f"beds {bed_a!r} and {bed_b!r} (type {a.stream_type!r}, {what})")
        if clashes:
            raise ValueError(
                "two beds could select the same LSL stream (one patient's EEG on two beds): "
                + "; ".join(clashes) + ". Give each bed its device's source_id or a distinct name"
            )
        return self
