"""Configuration of training runs (the `kind: train` files in configs/train/)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ictal.alarms.config import AlarmThresholds
from ictal.detector.config import FrontendConfig, ModelConfig, StrictModel
from ictal.detector.montage import montage_channels


class DataConfig(StrictModel):
    """Where recordings come from, how they are split and how the preprocessing cache is built."""

    format: Literal["tusz", "edf_folder", "rated_windows", "chbmit"] = Field(
        description="Dataset layout: tusz = TUH Seizure Corpus v2 tree (edf/{train,dev,eval}/...); "
        "edf_folder = any folder of EDF+ files with seizure annotations or BIDS *_events.tsv; "
        "rated_windows = the expert-rated collections of ../shared/data (labelled/manifest.csv); "
        "chbmit = CHB-MIT: PhysioNet chbNN/*.edf + chbNN-summary.txt, or folders of clips with EDF+ "
        "seiz/bckg annotations (unannotated time unrated); bipolar: use frontend.montage double_banana."
    )
    root: Path = Field(description="Dataset root directory (a relative path is taken from the working directory).")
    cache_dir: Path = Field(Path("cache"), description="Preprocessing cache (memory-mapped arrays).")
    split_seed: int = Field(0, description="Seed of the patient-level split when the layout has none.")
    dev_fraction: float = Field(
        0.2, ge=0, lt=1, description="Share of patients held out for dev when the layout gives no split "
        "(drawn separately among patients with and without seizures, so dev sees both)."
    )
    cache_workers: int = Field(
        1, ge=1, description="Processes that build the cache in parallel (1 = in this process)."
    )
    cache_chunk_s: float = Field(
        600.0, gt=0, description="Seconds of EEG handed to Frontend.process per call while caching; the "
        "front-end is stateful, so chunking changes memory use, not the result."
    )
    unannotated: Literal["background", "unknown"] = Field(
        "background", description="edf_folder only: label of time no annotation covers. SzCORE/BIDS "
        "events files list seizures only, so the rest is background; choose unknown for partly "
        "reviewed files."
    )
    eval_recordings: list[str] = Field(
        default_factory=list, description="Shell patterns (fnmatch, case-sensitive) on recording ids "
        "(the path below root with / replaced by __, e.g. labelled__iiic_03 or "
        "background__eegmat__Subject08_*): matching recordings are held out in split eval, never "
        "trained on nor used for dev. Each pattern must match a recording, and a patient's recordings "
        "must all match or none (a patient-level split)."
    )
    patient_pattern: str = Field(
        r"^(?:sub-)?([^_]+)", description="edf_folder only: regular expression whose first group, applied "
        "to the file name stem, is the patient id (default: BIDS sub-<label> or the text before the "
        "first underscore, e.g. Subject00_1 -> Subject00)."
    )


class AugmentConfig(StrictModel):
    """Augmentations of training windows (never of dev windows)."""

    amplitude_scale: tuple[float, float] = Field(
        (0.8, 1.25), description="Range of a random per-window gain (log-uniform); (1, 1) disables it. "
        "Amplifier gains and electrode impedances vary by about this much between sites."
    )
    channel_dropout_p: float = Field(
        0.05, ge=0, lt=1, description="Probability that each channel is zeroed after normalisation "
        "(a lead off); the model must not rely on one electrode."
    )
    noise_std_uv: float = Field(
        1.0, ge=0, description="Standard deviation in uV of white Gaussian noise added before "
        "normalisation (about the amplifier noise floor); 0 disables it."
    )
    time_shift_s: float = Field(
        5.0, ge=0, description="Maximum shift in seconds of the window start around its sampled "
        "position, so events do not sit at the same place in the window; 0 disables it."
    )
    hemisphere_flip_p: float = Field(
        0.0, ge=0, le=1, description="Probability that a window's left and right electrodes are swapped "
        "(Fp1<->Fp2, F3<->F4, ..., T5<->T6, O1<->O2; midline Fz/Cz/Pz kept): a left focal seizure becomes "
        "a right one, so the few real seizures also teach the other side. Labels are unchanged. "
        "0 disables it (no random number drawn, windows bit-identical to a run without it)."
    )
    synthetic_seizure_p: float = Field(
        0.0, ge=0, le=1, description="Probability that a background window drawn from a recording whose "
        "labels are all known background (e.g. EEGMAT) gets a simulated evolving seizure injected "
        "(training.seizure_synthesis) and its labels set from the injection; 0 disables it (windows "
        "are then bit-identical to a run without this option). Training only; never in evaluation."
    )
    synthetic_seizure_max_lead_s: float = Field(
        30.0, ge=0, description="The injected seizure's onset is uniform from this many seconds before "
        "the window start (as far as the recording reaches back) to synthetic_seizure_min_inside_s "
        "before its end, so seizures also start before or end after the window."
    )
    synthetic_seizure_min_inside_s: float = Field(
        5.0, ge=0, description="Latest onset, in seconds before the window end (a seizure that starts "
        "inside the window lasts at least this long in it)."
    )
    synthetic_seizure_duration_s: tuple[float, float] = Field(
        (15.0, 90.0), description="Range of the injected seizure's duration in seconds (uniform)."
    )
    synthetic_seizure_amplitude_ratio: tuple[float, float] = Field(
        (1.5, 5.0), description="Range of the discharge's plateau amplitude as a multiple of the "
        "channel's background standard deviation (uniform)."
    )


class OptimConfig(StrictModel):
    """Optimiser, schedule, loss and sampling."""

    lr: float = Field(1e-3, gt=0, description="Peak learning rate of AdamW (after warm-up).")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW decoupled weight decay of matrices and kernels.")
    warmup_steps: int = Field(100, ge=0, description="Optimizer steps of linear warm-up from 0 to lr.")
    min_lr_ratio: float = Field(
        0.01, ge=0, le=1, description="Learning rate at the end of the cosine decay, as a share of lr."
    )
    epochs: int = Field(10, ge=1, description="Epochs; a checkpoint is written after each.")
    steps_per_epoch: int = Field(500, ge=1, description="Optimizer steps per epoch (windows are sampled).")
    batch_size: int = Field(8, ge=1, description="Windows per micro-batch per process.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    grad_clip: float = Field(1.0, gt=0, description="Maximum global L2 norm of the gradient.")
    loss: Literal["focal", "bce"] = Field(
        "focal", description="focal (Lin et al. 2017) or weighted binary cross-entropy on per-sample labels."
    )
    focal_alpha: float = Field(0.25, gt=0, lt=1, description="Focal loss weight of the seizure class.")
    focal_gamma: float = Field(2.0, ge=0, description="Focal loss focusing exponent (0 = weighted BCE).")
    pos_weight: float = Field(1.0, gt=0, description="Weighted BCE: weight of seizure samples.")
    seizure_fraction: float = Field(0.5, ge=0, le=1, description="Share of sampled windows with seizure.")
    anchor_weighting: Literal["samples", "recording"] = Field(
        "samples", description="How a window's anchor is drawn within its class: `samples`, uniformly "
        "among every sample of the class (long recordings weigh in proportion to their length); "
        "`recording`, first a recording uniformly among those holding the class, then a sample in it "
        "(each recording weighs the same: ten 10 s rated hard-negative windows then count as much as "
        "ten 3 min healthy recordings)."
    )
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per training process.")
    bf16: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU, which trains in float32).")


class ServingConfig(StrictModel):
    """Where the daemon reads the model, so training takes its loss there (``detector.output_position``).

    A window ending at sample t is served (its probabilities used) on [t - lookahead - hop,
    t - lookahead). With ``loss_positions: served`` the loss is taken on that span of every training
    window (plus ``whole_window_loss_weight`` times the loss over the whole window), the window is
    placed so that its anchor sample lies in that span, and windows near a recording's start, or with
    probability ``warmup_fraction`` anywhere, are left-padded warm-up windows with ``min_history_s`` to
    60 s of history, as the daemon scores them after connecting (``streaming.bed``).
    """

    loss_positions: Literal["served", "window"] = Field(
        "served", description="served: the loss on the samples the daemon reads (the output-position "
        "contract): for a bidirectional model the span [end - lookahead - hop, end - lookahead) of each "
        "window; for a causal model (stream mode serves every sample, each final when its hop is in) "
        "every sample from min_history_s - hop_s after the window's first sample on (a stream's first "
        "probability). "
        "window: the loss on all 15360 samples of a window, anchor anywhere in it (the seeds' and "
        "ictal's first recipe; kept as the baseline of the lookahead study)."
    )
    lookahead_s: float = Field(
        2.0, ge=0, le=30, description="Seconds of signal after the newest served probability (written "
        "into the checkpoint as lookahead_s; every alarm waits this long for its future context). 2 s: "
        "the choice of the lookahead study of README.md by the rule fixed before its results (a larger "
        "lookahead only if it detects at least 2 more of the 12 injected held-out seizures at no more "
        "false alarms; 2 s detected 9/12 against 6/12 at 0 s, within noise)."
    )
    hop_s: float = Field(
        4.0, gt=0, le=30, description="Width of the served span (s): the daemon's scheduler.hop_s."
    )
    min_history_s: float = Field(
        10.0, ge=1, le=60, description="Least history of a warm-up window (s): the daemon's "
        "scheduler.min_history_s."
    )
    warmup_fraction: float = Field(
        0.2, ge=0, le=1, description="Share of training windows cropped to a left-padded warm-up window "
        "(history uniform in [min_history_s, 60) s) wherever they lie, beyond the windows that are padded "
        "because they lie near a recording's start; a bed is in warm-up for its first minute after every "
        "connect and long gap. served only."
    )
    whole_window_loss_weight: float = Field(
        0.0, ge=0, description="Weight of an auxiliary loss over the whole window added to the served-span "
        "loss (served only). 0: the model is trained only where it is read; the lookahead study found no "
        "need for more (README.md)."
    )

    @model_validator(mode="after")
    def _check_positions(self) -> ServingConfig:
        from ictal.detector.output_position import check_positions, seconds_to_samples

        hop = seconds_to_samples(self.hop_s, "serving.hop_s")
        lookahead = seconds_to_samples(self.lookahead_s, "serving.lookahead_s")
        check_positions(hop, lookahead)
        return self


class EvalConfig(StrictModel):
    """Dev evaluation after each epoch, which picks the best checkpoint."""

    enabled: bool = Field(True, description="Evaluate on the dev split after each epoch.")
    max_dev_hours: float | None = Field(
        None, gt=0, description="Evaluate on at most this many hours of dev EEG (first recordings in "
        "manifest order); None = all of it."
    )
    batch_size: int = Field(8, ge=1, description="Windows per forward pass during dev evaluation.")


class LogConfig(StrictModel):
    """Where and how often metrics are written."""

    every_steps: int = Field(10, ge=1, description="Write a training metrics row every this many steps.")
    tensorboard: bool = Field(
        True, description="Also write TensorBoard events (out_dir/tensorboard). TensorBoard is the extra "
        "`pip install ictal[tensorboard]`: when it is not installed, one warning line says so at the start "
        "and training goes on (metrics.jsonl and metrics.csv are always written)."
    )
    progress_bar: bool | None = Field(
        None, description="tqdm progress bars (cache building; training with loss and ETA) on rank 0. "
        "null (default): only when stderr is a terminal, so a run logged to a file, journald or CI draws no "
        "bar (it writes plain lines instead, see progress_every_s); true/false force it."
    )
    progress_every_s: float | None = Field(
        30.0, gt=0, description="Without a bar, a plain progress line (step/total, loss, rate, elapsed, "
        "ETA) at least this often (30 s: a long run in a log is never silent for long, and a 37-minute "
        "run writes some 75 lines, not thousands); null: none."
    )


class TrainConfig(StrictModel):
    """A training run."""

    kind: Literal["train"] = "train"
    model: ModelConfig = Field(default_factory=ModelConfig)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)
    data: DataConfig
    optim: OptimConfig = Field(default_factory=OptimConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    thresholds: AlarmThresholds = Field(default_factory=AlarmThresholds)
    target_fa_per_24h: float = Field(1.0, gt=0, description="FA/24h at which dev sensitivity picks the best.")
    out_dir: Path = Field(Path("runs/train"), description="Checkpoints and logs.")
    seed: int = Field(0, description="Seed of weights, sampling, augmentation and dropout (deterministic runs).")
    device: str = Field("auto", description="auto (cuda:LOCAL_RANK when CUDA is available, else cpu), cpu, cuda.")

    @model_validator(mode="after")
    def _check_window(self) -> TrainConfig:
        if self.model.n_times % self.model.downsample != 0:
            raise ValueError(
                f"model.n_times must be divisible by {self.model.downsample} (found {self.model.n_times})"
            )
        span = round((self.serving.hop_s + self.serving.lookahead_s) * self.frontend.fs_hz)
        if self.serving.loss_positions == "served" and span > self.model.n_times:
            raise ValueError(
                f"serving.hop_s + serving.lookahead_s ({self.serving.hop_s} + {self.serving.lookahead_s} s = "
                f"{span} samples) must fit in the model's window (model.n_times {self.model.n_times})"
            )
        if self.model.sfreq != self.frontend.fs_hz:
            raise ValueError(
                f"model.sfreq must equal frontend.fs_hz (found {self.model.sfreq} and {self.frontend.fs_hz})"
            )
        rows = len(montage_channels(self.frontend.montage))
        if self.model.n_chans != rows:
            raise ValueError(
                f"model.n_chans must equal the rows of frontend.montage {self.frontend.montage!r} ({rows}; found "
                f"{self.model.n_chans}): the graph's nodes are the montage's electrodes or derivations"
            )
        if self.model.direction == "causal":
            self._check_causal()
        return self

    def _check_causal(self) -> None:
        """A causal checkpoint is served sample by sample (stream mode): refuse what contradicts it."""
        if self.serving.lookahead_s > 0:
            raise ValueError(
                f"serving.lookahead_s must be 0 for model.direction: causal (found {self.serving.lookahead_s} s): "
                "in stream mode every hop's probabilities are final as soon as the hop is in, so a causal "
                "checkpoint has no future context to wait for (set serving.lookahead_s: 0)"
            )
        if self.frontend.normalisation != "running":
            raise ValueError(
                f"frontend.normalisation must be 'running' for model.direction: causal (found "
                f"{self.frontend.normalisation!r}): window_robust scales every sample with the median and IQR "
                "of the whole window, samples after it included, so the model input would not be causal, "
                "the same sample would differ from window to window, and stream mode (which carries the "
                "model state across hops of one per-sample normalised stream) could not serve the checkpoint"
            )
        if self.serving.min_history_s * self.frontend.fs_hz >= self.model.n_times:
            raise ValueError(
                f"serving.min_history_s ({self.serving.min_history_s} s) must be shorter than the window "
                f"(model.n_times {self.model.n_times} samples): a causal model is trained on the samples "
                "a stream serves after its warm-up"
            )
