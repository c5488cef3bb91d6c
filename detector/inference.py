"""Batched inference: load a checkpoint once, score windows of several beds, return probabilities."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from ictal.detector.calibration import TemperatureCalibration, read_calibration
from ictal.detector.checkpoint import CheckpointError, LoadedCheckpoint, load_checkpoint
from ictal.detector.config import Backend
from ictal.detector.streaming_state import StreamState

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other value is passed to ``torch.device``.

    Raises
    ------
    ValueError
        If a CUDA device is requested and none is available.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} requested but no CUDA device is available (use 'cpu' or 'auto')"
        )
    return resolved


class Detector:
    r"""A loaded detector that turns normalised windows into per-sample seizure probabilities.

    Build it with :meth:`from_checkpoint`. On CUDA the forward pass runs under bf16 autocast (the
    Laplacian eigendecomposition and the graph layers stay fp32); on the CPU in fp32. Gradients are
    never recorded (``torch.inference_mode``).

    Attributes
    ----------
    model_id : str
        The checkpoint id (hash of the weights), written into alarm events and metrics.
    stack : str
        ``bimamba2`` or ``gated_deltanet``.
    backend : str
        The stack backend that was built: ``fused`` or ``reference``.
    device : torch.device
        Where the model runs.
    dtype : torch.dtype
        Compute dtype of the autocast region (bf16 on CUDA, fp32 on CPU).
    max_batch : int
        Windows per forward pass.
    n_chans, n_times : int
        Expected window shape.
    frontend_config : FrontendConfig
        Front-end the model was trained with (the daemon refuses another).
    thresholds : alarms.config.AlarmThresholds or None
        Tuned alarm thresholds stored in the checkpoint (validated at load), None when it has none.
    calibration : detector.calibration.TemperatureCalibration
        The post-hoc calibration stored in the checkpoint (identity, ``T = 1``, when none): every
        probability this detector returns is :math:`\sigma(z / T)` of the model's logit :math:`z`.
    lookahead_s : float
        The output position the model was trained for (``detector.output_position``): every caller
        that stitches its probabilities (daemon, evaluation, tuning) reads it from here.
    direction : str
        ``bidirectional`` or ``causal`` (``ModelConfig.direction``); only a causal detector streams
        (:meth:`init_state`, :meth:`step`).
    stream_multiple_samples : int
        Samples of one edge-pooling block (256 = 1 s for the presets): a stream-mode hop must be a
        multiple of it, so that the states of all beds stay in phase and batch together.
    checkpoint : LoadedCheckpoint
        Everything that was loaded.
    """

    def __init__(self, loaded: LoadedCheckpoint, device: torch.device, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1 (found {max_batch})")
        self.checkpoint = loaded
        self.model = loaded.model.to(device).eval()
        self.model_id = loaded.checkpoint_id
        self.stack = loaded.model_config.stack
        self.backend = _built_backend(self.model, loaded.model_config.backend)
        self.device = device
        self.dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.max_batch = max_batch
        self.n_chans = loaded.model_config.n_chans
        self.n_times = loaded.model_config.n_times
        self.frontend_config = loaded.frontend_config
        self.thresholds = _alarm_thresholds(loaded)
        self.calibration = _calibration(loaded)
        self._temperature = float(self.calibration.temperature)
        self.lookahead_s = float(loaded.lookahead_s)
        self.direction = loaded.model_config.direction
        self.stream_multiple_samples = 16 * loaded.model_config.edge_pool
        if not loaded.lookahead_declared:
            log.warning(
                "checkpoint %s declares no lookahead_s (written before the output-position contract; "
                "trained on whole windows): served at lookahead_s 0, the position it was never trained "
                "for; retrain it", loaded.checkpoint_id)

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        device: str | torch.device = "auto",
        backend: Backend = "auto",
        max_batch: int = 32,
    ) -> Detector:
        """Load a checkpoint directory once.

        Parameters
        ----------
        path : path
            Checkpoint directory (``model.safetensors`` + ``metadata.json``).
        device : str or torch.device
            ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        backend : {"auto", "fused", "reference"}
            Stack backend; ``auto`` uses the fused kernels on CUDA when installed.
        max_batch : int
            Most windows per forward pass; larger requests are split.

        Returns
        -------
        detector : Detector

        Raises
        ------
        detector.checkpoint.CheckpointError
            If the checkpoint is missing, corrupt or inconsistent (a ``ValueError``).
        ValueError
            If CUDA is requested but absent.
        """
        resolved = resolve_device(device)
        loaded = load_checkpoint(path, backend=backend, device=resolved)
        detector = cls(loaded, resolved, max_batch)
        log.info(
            "detector %s loaded: stack %s, backend %s, device %s, dtype %s, max_batch %d",
            detector.model_id, detector.stack, detector.backend, resolved, detector.dtype, max_batch,
        )
        return detector

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def predict(self, windows: np.ndarray | torch.Tensor) -> np.ndarray:
        """Seizure probability of every sample of every window.

        Parameters
        ----------
        windows : ndarray or Tensor of float32, shape (B, n_chans, n_times)
            Normalised windows (``Frontend.prepare_window``), e.g. of several beds; B may be 0.

        Returns
        -------
        probabilities : ndarray of float32, shape (B, n_times)
            In [0, 1]. Windows are scored in chunks of ``max_batch``; the result does not depend on
            how the batch is split (up to floating-point rounding).

        Raises
        ------
        ValueError
            If the shape is not (B, n_chans, n_times) or a sample is not finite.
        """
        x = torch.as_tensor(windows)
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            raise ValueError(
                f"windows must have shape (B, {self.n_chans}, {self.n_times}) (found {tuple(x.shape)})"
            )
        x = x.to(torch.float32)
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"windows contain {bad} non-finite samples (expected finite normalised EEG)")
        out = np.empty((x.shape[0], self.n_times), dtype=np.float32)
        with torch.inference_mode(), self._autocast():
            for start in range(0, x.shape[0], self.max_batch):
                chunk = x[start : start + self.max_batch].to(self.device, non_blocking=True)
                logits = self.model(chunk)
                out[start : start + chunk.shape[0]] = self._probabilities(logits).cpu().numpy()
        return out

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        r"""The one place logits become probabilities: :math:`\sigma(z / T)` in float32 (T = 1 uncalibrated)."""
        z = logits.float()
        if self._temperature != 1.0:
            z = z / self._temperature
        return torch.sigmoid(z)

    def init_state(self, batch: int = 1) -> StreamState:
        """The state B recordings start from in stream mode (a causal detector only).

        Parameters
        ----------
        batch : int
            Recordings (beds) B >= 1.

        Returns
        -------
        state : StreamState
            On this detector's device; see :meth:`step`.

        Raises
        ------
        ValueError
            If the detector is bidirectional or ``batch < 1``.
        """
        if self.direction != "causal":
            raise ValueError(
                f"checkpoint {self.model_id} is {self.direction}: stream mode needs a causal checkpoint "
                "(model.direction: causal); score it in window mode"
            )
        if batch < 1:
            raise ValueError(f"batch must be at least 1 (found {batch})")
        with torch.inference_mode():
            tensors = self.model.init_state(batch, self.device)
        return StreamState(tensors, batch, self.model.phase_samples)

    def step(self, x: np.ndarray | torch.Tensor, state: StreamState) -> tuple[np.ndarray, StreamState]:
        """Seizure probabilities of the next samples of B recordings, continuing from ``state``.

        Parameters
        ----------
        x : ndarray or Tensor of float32, shape (B, n_chans, n)
            The next ``n`` normalised samples of each recording (``n`` a multiple of 16, the TCN's
            stride, and > 0); B must equal ``state.batch``.
        state : StreamState
            From :meth:`init_state` or the previous ``step``; not modified.

        Returns
        -------
        probabilities : ndarray of float32, shape (B, n)
            In [0, 1]. Equal (max abs difference <= 1e-4 in float32) to the probabilities at these
            samples of one causal forward pass over each whole recording so far, whatever the split
            into steps. The probability of sample t depends on input samples before the end of its
            16-sample step only (at most 15 samples, 59 ms, of the future, all within ``x``).
        state : StreamState
            The state after these samples.

        Raises
        ------
        ValueError
            If the detector is bidirectional, the shape is wrong, a sample is not finite, or the
            recordings are at different phases of an edge-pooling block.

        References
        ----------
        The state hand-over of the scans: Dao and Gu (2024), arXiv:2405.21060 (SSD chunk states);
        Yang et al. (2024), arXiv:2412.06464 (gated delta rule).
        """
        if self.direction != "causal":
            raise ValueError(
                f"checkpoint {self.model_id} is {self.direction}: stream mode needs a causal checkpoint"
            )
        x = torch.as_tensor(x)
        if x.ndim != 3 or x.shape[0] != state.batch or x.shape[1] != self.n_chans or x.shape[2] % 16 or not x.shape[2]:
            raise ValueError(
                f"x must have shape ({state.batch}, {self.n_chans}, 16 m) with m >= 1 (found {tuple(x.shape)})"
            )
        x = x.to(torch.float32)
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"x contains {bad} non-finite samples (expected finite normalised EEG)")
        phases = state.phase
        if (phases != phases[0]).any():
            raise ValueError(
                f"recordings at different phases of a {state.phase_samples}-sample block: step them separately"
            )
        with torch.inference_mode(), self._autocast():
            logits, tensors = self.model.step(x.to(self.device, non_blocking=True), state.tensors)
            probs = self._probabilities(logits).cpu().numpy()
        return probs, StreamState(tensors, state.batch, state.phase_samples)

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Run the model on zero windows once per batch size (allocations, kernel selection).

        Parameters
        ----------
        batch_sizes : tuple of int
            Batch sizes to run (each at most ``max_batch`` is useful).
        """
        for size in batch_sizes:
            self.predict(np.zeros((size, self.n_chans, self.n_times), dtype=np.float32))


def _alarm_thresholds(loaded: LoadedCheckpoint):
    """The checkpoint's tuned thresholds as ``AlarmThresholds`` (None without any).

    Raises
    ------
    CheckpointError
        If they do not validate as ``AlarmThresholds`` (named with the checkpoint id).
    """
    if loaded.thresholds is None:
        return None
    # alarms sits right of detector in the house plan; imported here only to type the stored thresholds
    from pydantic import ValidationError

    from ictal.alarms.config import AlarmThresholds

    try:
        return AlarmThresholds.model_validate(dict(loaded.thresholds))
    except ValidationError as exc:
        raise CheckpointError(
            f"checkpoint {loaded.checkpoint_id}: thresholds {loaded.thresholds} are not valid alarm thresholds: {exc}"
        ) from exc


def _calibration(loaded: LoadedCheckpoint) -> TemperatureCalibration:
    """The checkpoint's calibration, checked to belong to its weights.

    Raises
    ------
    CheckpointError
        If the entry is malformed or was fitted for other weights (its ``checkpoint_id`` differs).
    """
    entry = loaded.metadata.get("calibration")
    try:
        cal = read_calibration(entry, f"checkpoint {loaded.checkpoint_id}")
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    fitted_for = None if cal.entry is None else cal.entry.get("checkpoint_id")
    if fitted_for is not None and fitted_for != loaded.checkpoint_id:
        raise CheckpointError(
            f"checkpoint {loaded.checkpoint_id}: its calibration (temperature {cal.temperature:g}) was fitted for "
            f"checkpoint {fitted_for}, not these weights: refit it (ictal tune --calibrate) or remove the entry"
        )
    return cal


def _built_backend(model: torch.nn.Module, requested: str) -> str:
    """The backend the stacks were built with (their ``backend`` attribute), else the requested one."""
    found = {getattr(m, "backend", None) for m in model.modules()} - {None}
    found = {b for b in found if isinstance(b, str)}
    if len(found) == 1:
        return found.pop()
    return requested if not found else "+".join(sorted(found))
