"""The project's one EDF/EDF+ reader (edfio): header, signals and annotations, and the canonical montage.

Both the daemon's replay source and training read recordings through this module, so a file gives
the same samples in production and in training.

Header quirks handled
---------------------
- ``EDF+C_Online`` in the reserved field without an annotation signal
  (``../shared/data/quirks/neonatal_burst_malformed_header.edf``): the EDF+ specification (Kemp &
  Olivan 2003) requires an ``EDF Annotations`` signal in every EDF+ file, and strict readers
  (pyedflib) reject the file. edfio reads the header fields as written and only treats signals
  labelled ``EDF Annotations`` as annotation signals, so such a file reads as a continuous recording
  with no annotations; no special code is needed, and ``tests/streaming/test_edf.py`` pins that
  behaviour. ``EdfRecording.reserved`` keeps the field as written.
- Physical dimensions padded with spaces (``"      uV"`` in the neonatal bipolar file) are stripped.
- EDF+D (discontinuous) files whose data records are not contiguous are refused with a clear error:
  gluing their records would hide the gaps (see ``streaming.ringbuffer`` for how gaps are kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import edfio
import numpy as np

from detector.config import FrontendConfig
from detector.montage import MontageMapping, map_montage
from detector.units import scale_to_uv


@dataclass(frozen=True)
class EdfRecording:
    """The content of one EDF/EDF+ file, as written (no montage, no unit conversion).

    Attributes
    ----------
    path : Path
        The file.
    labels : list of str
        Signal labels (annotation signals excluded), in file order; n_signals of them.
    physical_dimensions : list of str
        Physical dimension of each signal, surrounding spaces stripped (``"uV"``, ``"mV"``, ...).
    sampling_rates_hz : list of float
        Sampling rate of each signal in Hz (signals of one file may differ, e.g. EKG vs EEG).
    signals : list of ndarray of float64, each of shape (n_samples_i,)
        Physical values of each signal in its own physical dimension.
    annotations : list of (onset_s, duration_s, text)
        EDF+ annotations: onset in seconds from the file start, duration in seconds (0.0 when the
        file gives none), text. Empty for plain EDF.
    duration_s : float
        Recording duration in seconds (number of data records x record duration).
    reserved : str
        The header's reserved field as written (``""``, ``"EDF+C"``, ``"EDF+D"``, or a quirk such as
        ``"EDF+C_Online"``).
    """

    path: Path
    labels: list[str]
    physical_dimensions: list[str]
    sampling_rates_hz: list[float]
    signals: list[np.ndarray] = field(repr=False)
    annotations: list[tuple[float, float, str]]
    duration_s: float
    reserved: str = ""


@dataclass(frozen=True)
class CanonicalRecording:
    """A recording mapped to the canonical 19-channel montage, in microvolts, at its native rate.

    Attributes
    ----------
    data : ndarray of float32, shape (19, n_samples)
        Channels in ``detector.CANONICAL_CHANNELS`` order, in uV, at ``fs`` Hz.
    fs : float
        Sampling rate in Hz (shared by the 19 EEG channels).
    annotations : list of (onset_s, duration_s, text)
        The file's EDF+ annotations (see :class:`EdfRecording`).
    montage : MontageMapping
        How the file's labels became the canonical channels (repairs and ignored labels included).
    path : Path
        The file.
    """

    data: np.ndarray = field(repr=False)
    fs: float
    annotations: list[tuple[float, float, str]]
    montage: MontageMapping
    path: Path

    @property
    def duration_s(self) -> float:
        """Duration of the canonical data in seconds."""
        return self.data.shape[1] / self.fs


def read_edf(path: str | Path) -> EdfRecording:
    """Read an EDF or EDF+ file with edfio.

    Parameters
    ----------
    path : str or Path
        An EDF (1992) or EDF+ (2003) file.

    Returns
    -------
    recording : EdfRecording
        Labels, physical dimensions, per-signal rates, physical signals, annotations, duration.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If edfio cannot parse the file (the message names the file and edfio's reason), or if the
        file is an EDF+D whose data records are not contiguous.

    Notes
    -----
    EDF: Kemp et al. 1992; EDF+: Kemp & Olivan 2003. See the module docstring for the header
    quirks this reader accepts.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EDF file {path} does not exist")
    try:
        edf = edfio.read_edf(path)
    except ValueError as exc:  # edfio reports malformed headers as ValueError
        raise ValueError(f"cannot read {path} as EDF/EDF+: {exc}") from exc
    reserved = edf.reserved.strip()
    if reserved.startswith("EDF+D") and not edf.is_continuous:
        raise ValueError(
            f"{path} is a discontinuous EDF+D recording (reserved field {reserved!r}); expected a "
            f"continuous EDF or EDF+C: its data records cannot be replayed as one stream"
        )
    signals = list(edf.signals)
    annotations = [
        (float(a.onset), float(a.duration) if a.duration is not None else 0.0, str(a.text))
        for a in edf.annotations
    ]
    return EdfRecording(
        path=path,
        labels=[s.label.strip() for s in signals],
        physical_dimensions=[s.physical_dimension.strip() for s in signals],
        sampling_rates_hz=[float(s.sampling_frequency) for s in signals],
        signals=[s.data for s in signals],
        annotations=annotations,
        duration_s=float(edf.duration),
        reserved=reserved,
    )


def load_canonical(path: str | Path, frontend_config: FrontendConfig | None = None) -> CanonicalRecording:
    """Read an EDF/EDF+ file and map it to the canonical 19 channels in microvolts.

    Parameters
    ----------
    path : str or Path
        An EDF or EDF+ file with the 19 referential 10-20 channels (any labelling that
        ``detector.montage.map_montage`` accepts). Non-EEG signals (EKG, ECG, ``A2-A1``, Effort) are
        ignored, whatever their rate or unit.
    frontend_config : FrontendConfig, optional
        Supplies ``repair_missing`` (midline channels that may be interpolated). Default:
        ``FrontendConfig()`` (no repair).

    Returns
    -------
    recording : CanonicalRecording
        ``data`` of shape (19, n_samples), float32, uV, at the EEG channels' common rate.

    Raises
    ------
    detector.montage.MontageError
        If channels are missing (every missing channel is named) or the file is bipolar.
    ValueError
        If the EEG channels used have differing sampling rates or lengths, or a physical dimension
        that is not a voltage (the message names the channels and values), or the file cannot be
        read.
    """
    config = frontend_config or FrontendConfig()
    rec = read_edf(path)
    montage = map_montage(rec.labels, source=str(rec.path), repair_missing=config.repair_missing)
    used = sorted({i for i in montage.indices if i >= 0})
    rates = {rec.labels[i]: rec.sampling_rates_hz[i] for i in used}
    if len(set(rates.values())) != 1:
        listed = ", ".join(f"{label}: {fs:g} Hz" for label, fs in rates.items())
        raise ValueError(
            f"{rec.path}: the EEG channels have differing sampling rates ({listed}); expected one "
            f"rate for all 19 canonical channels"
        )
    fs = next(iter(rates.values()))
    lengths = {rec.labels[i]: rec.signals[i].shape[0] for i in used}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{rec.path}: the EEG channels have differing lengths in samples ({lengths})")
    n_samples = next(iter(lengths.values()))
    stacked = np.zeros((len(rec.labels), n_samples), dtype=np.float32)
    for i in used:
        try:
            factor = scale_to_uv(rec.physical_dimensions[i])
        except ValueError as exc:
            raise ValueError(f"{rec.path}: channel {rec.labels[i]!r}: {exc}") from None
        stacked[i] = rec.signals[i] * factor
    data = montage.apply(stacked)
    return CanonicalRecording(data=data, fs=fs, annotations=rec.annotations, montage=montage, path=rec.path)
