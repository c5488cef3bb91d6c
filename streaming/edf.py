"""The project's one EDF/EDF+ reader (edfio): header, signals and annotations, and the canonical montage.

Both the daemon's replay source and training read recordings through this module, so a file gives
the same samples in production and in training.

Whole-file and block reads
--------------------------
:func:`read_edf` and :func:`load_canonical` return the whole file (float64 per signal, float32
canonical array: 3.4 GB and 1.6 GB for 24 h of 19 channels at 256 Hz); training reads its clips this
way. :func:`open_canonical` returns a :class:`CanonicalStream` that reads the canonical channels in
blocks of any length (:data:`BLOCK_S` by default) from the data records that hold them, with plain
file reads (no memory map, so the file's pages are not counted in the process's resident memory):
``ictal replay``, EDF beds of the daemon (``streaming.sources.edf_replay``) and ``ictal evaluate``
(``streaming.bed.run_recording``) read this way, in memory that does not grow with the file's length.
:func:`open_canonical` makes every check and raises every error of :func:`load_canonical` (same
message) before the first block is served; a block equals the same slice of ``load_canonical``'s
array element for element (same edfio calibration, unit factor, float32 rounding and montage).
:func:`read_annotations` gives :func:`read_edf`'s annotations from the ``EDF Annotations`` bytes alone.

Header validation
-----------------
Before edfio sees a file, :func:`read_edf` reads the header itself (the 256-byte fixed part and
256 bytes per signal, Kemp et al. 1992, section 2) and checks every field the samples depend on:
the numeric fields are ASCII numbers of the form the specification gives (integers where it asks for
integers), ``number of bytes in header record == 256 x (ns + 1)``, the sizes add up
(``header + number of data records x bytes per data record == file size``: a truncated last record,
a missing record or trailing bytes are errors, not a silent partial load), the record duration is
positive and at most a day, each signal has at least one sample per record and each ordinary signal a
sampling rate of at most 1 MHz (larger values are corrupt fields whose products overflow), and each
ordinary signal has a calibration that maps every 16-bit value to a finite number
(physical minimum != physical maximum, digital minimum < digital maximum within the 16-bit range: EDF+,
Kemp & Olivan 2003, section 2.1.3). Every violation raises :class:`EdfFormatError` naming the file,
the field (``"samples per data record of signal 3 of 21 ('EEG C3-REF')"``, signals numbered from 1),
the value found and the value expected. The header is all that is read before the sizes are checked, so memory stays bounded
whatever counts a header declares (the ``ns`` field has 4 digits: at most 2.5 MB of header).
edfio's remaining exceptions (e.g. an ``EDF Annotations`` signal that holds no valid TALs) are
translated into :class:`EdfFormatError` with the cause chained; a warning from edfio (which it uses
for repairs it makes silently, such as returning uncalibrated values) is an error too.

Fields the reader does not need are not checked (version, patient and recording identification,
start date and time, transducer, prefiltering, the per-signal reserved field). Text fields that are
used (label, physical dimension, reserved) are decoded as edfio decodes them (ASCII, any other byte
replaced by U+FFFD): a damaged EEG label then matches no canonical channel and
``detector.montage.map_montage`` names the channel as missing, and a damaged physical dimension is
refused by ``detector.units.scale_to_uv`` in :func:`load_canonical`.

Header quirks handled
---------------------
- ``EDF+C_Online`` in the reserved field without an annotation signal
  (``../shared/data/quirks/neonatal_burst_malformed_header.edf``): the EDF+ specification (Kemp &
  Olivan 2003) requires an ``EDF Annotations`` signal in every EDF+ file, and strict readers
  (pyedflib) reject the file. edfio reads the header fields as written and only treats signals
  labelled ``EDF Annotations`` as annotation signals, so such a file reads as a continuous recording
  with no annotations; no special code is needed, and ``tests/streaming/test_edf.py`` pins that
  behaviour. ``EdfRecording.reserved`` keeps the field as written.
- ``number of data records`` = -1, which the EDF specification allows while a file is being
  recorded: the number is taken from the file size, which must then hold whole records.
- Physical dimensions padded with spaces (``"      uV"`` in the neonatal bipolar file) are stripped.
- EDF+D (discontinuous) files whose data records are not contiguous are refused with a clear error:
  gluing their records would hide the gaps (see ``streaming.ringbuffer`` for how gaps are kept).
"""

from __future__ import annotations

import decimal
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import edfio
import numpy as np

from ictal.detector.config import FrontendConfig
from ictal.detector.montage import MontageMapping, map_montage
from ictal.detector.units import scale_to_uv


class EdfFormatError(ValueError):
    """An EDF/EDF+ file that breaks the specification where the samples depend on it.

    The message names the file, the header field (or the part of the file), the value found and the
    value expected. A ``ValueError`` so that callers catching the reader's former errors still do.
    """


FIXED_HEADER_BYTES = 256
"""Size of the fixed part of an EDF header (Kemp et al. 1992)."""
SIGNAL_HEADER_BYTES = 256
"""Header bytes per signal (Kemp et al. 1992)."""
BYTES_PER_SAMPLE = 2
"""EDF samples are 16-bit little-endian two's complement integers."""
DIGITAL_LIMITS = (-32768, 32767)
"""The range a 16-bit EDF sample (and so digital minimum and maximum) can take."""
MAX_RECORD_DURATION_S = 86400.0
"""Largest data record duration accepted: one day. The EDF specification sets no bound, but a record
longer than a day has no use in EEG (it recommends records of at most 61440 bytes); anything larger is
a corrupt field (``1e308``) whose products (recording duration, sampling rate) overflow."""
MAX_SAMPLING_RATE_HZ = 1e6
"""Largest per-signal sampling rate (samples per record / record duration) accepted: EEG and
intracranial amplifiers record at most tens of kHz; a larger rate comes from a corrupt duration."""

# (name in the EDF specification, width in bytes), in file order (Kemp et al. 1992, section 2.1).
_FIXED_FIELDS: tuple[tuple[str, int], ...] = (
    ("version of this data format", 8),
    ("local patient identification", 80),
    ("local recording identification", 80),
    ("startdate of recording", 8),
    ("starttime of recording", 8),
    ("number of bytes in header record", 8),
    ("reserved", 44),
    ("number of data records", 8),
    ("duration of a data record", 8),
    ("number of signals (ns)", 4),
)
_SIGNAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("label", 16),
    ("transducer type", 80),
    ("physical dimension", 8),
    ("physical minimum", 8),
    ("physical maximum", 8),
    ("digital minimum", 8),
    ("digital maximum", 8),
    ("prefiltering", 80),
    ("samples per data record", 8),
    ("reserved", 32),
)
_ANNOTATION_LABEL = "EDF Annotations"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class _Header:
    """What :func:`_validate_header` established about a file (all fields checked)."""

    n_records: int
    declared_records: int
    record_duration_s: float
    header_bytes: int = 0
    labels: tuple[str, ...] = ()
    samples_per_record: tuple[int, ...] = ()
    raw: bytes = field(default=b"", repr=False)

    @property
    def record_samples(self) -> int:
        """16-bit samples in one data record (all signals)."""
        return sum(self.samples_per_record)


def _text(raw: bytes) -> str:
    """A text field decoded as edfio decodes it (ASCII, other bytes replaced), padding stripped."""
    return raw.decode("ascii", errors="replace").strip()


def _field_value(path: Path, name: str, raw: bytes, pattern: re.Pattern[str], expected: str) -> str:
    """The stripped ASCII text of a numeric field that matches ``pattern``, or an EdfFormatError."""
    if any(b < 32 or b > 126 for b in raw):
        raise EdfFormatError(
            f"{path}: {name} holds non-printable or non-ASCII bytes ({raw!r}); expected {expected} "
            f"in printable ASCII (EDF header fields are ASCII, Kemp et al. 1992)"
        )
    text = raw.decode("ascii").strip(" ")
    if not pattern.fullmatch(text):
        raise EdfFormatError(f"{path}: {name} is {text!r}; expected {expected}")
    return text


def _integer(path: Path, name: str, raw: bytes) -> int:
    return int(_field_value(path, name, raw, _INTEGER, "an integer"))


def _finite_number(path: Path, name: str, raw: bytes) -> float:
    value = float(_field_value(path, name, raw, _NUMBER, "a finite decimal number"))
    if not np.isfinite(value):  # a 300-digit field cannot be written in 8 bytes, but "1e999" can
        raise EdfFormatError(f"{path}: {name} is {raw.decode('ascii').strip()!r}; expected a finite number")
    return value


def _split_fixed(raw: bytes) -> dict[str, bytes]:
    fields, offset = {}, 0
    for name, width in _FIXED_FIELDS:
        fields[name] = raw[offset : offset + width]
        offset += width
    return fields


def _split_signals(raw: bytes, ns: int) -> dict[str, list[bytes]]:
    fields, offset = {}, 0
    for name, width in _SIGNAL_FIELDS:
        fields[name] = [raw[offset + k * width : offset + (k + 1) * width] for k in range(ns)]
        offset += ns * width
    return fields


def _validate_calibration(path: Path, signal: str, fields: dict[str, list[bytes]], k: int) -> None:
    """Check that signal ``k``'s physical and digital ranges map every 16-bit value to a finite number."""
    pmin = _finite_number(path, f"physical minimum of {signal}", fields["physical minimum"][k])
    pmax = _finite_number(path, f"physical maximum of {signal}", fields["physical maximum"][k])
    dmin = _integer(path, f"digital minimum of {signal}", fields["digital minimum"][k])
    dmax = _integer(path, f"digital maximum of {signal}", fields["digital maximum"][k])
    if pmin == pmax:
        raise EdfFormatError(
            f"{path}: physical minimum and physical maximum of {signal} are both {pmin:g}; expected "
            f"two different values (EDF+ 2.1.3): the samples cannot be calibrated"
        )
    lo, hi = DIGITAL_LIMITS
    for name, value in (("digital minimum", dmin), ("digital maximum", dmax)):
        if not lo <= value <= hi:
            raise EdfFormatError(
                f"{path}: {name} of {signal} is {value}; expected a 16-bit value in [{lo}, {hi}]"
            )
    if dmin >= dmax:
        raise EdfFormatError(
            f"{path}: digital minimum ({dmin}) of {signal} is not below its digital maximum ({dmax}); "
            f"expected digital minimum < digital maximum (EDF+ 2.1.3)"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is what the check below finds
        gain = (np.float64(pmax) - np.float64(pmin)) / (dmax - dmin)  # edfio's calibration
        offset = np.float64(pmax) / gain - dmax
        extremes = (np.array([lo, hi], dtype=np.float64) + offset) * gain
    if not (np.isfinite(gain) and np.isfinite(offset) and np.isfinite(extremes).all()):
        raise EdfFormatError(
            f"{path}: physical range [{pmin:g}, {pmax:g}] over digital range [{dmin}, {dmax}] of {signal} "
            f"maps 16-bit samples beyond the float64 range; expected a calibration with finite values"
        )


def _validate_header(path: Path) -> _Header:
    """Read and check the header of ``path`` before edfio reads the file.

    Parameters
    ----------
    path : Path
        An existing file.

    Returns
    -------
    header : _Header
        Number of data records (from the file size when the header says -1), the number declared,
        and the record duration in seconds.

    Raises
    ------
    EdfFormatError
        For the first field that breaks a rule listed in the module docstring.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        fixed = handle.read(FIXED_HEADER_BYTES)
        if len(fixed) < FIXED_HEADER_BYTES:
            what = "an empty file (0 bytes)" if size == 0 else f"{size} bytes: a truncated header"
            raise EdfFormatError(
                f"{path}: {what}; expected an EDF header of at least {FIXED_HEADER_BYTES} bytes "
                f"(the fixed part) followed by {SIGNAL_HEADER_BYTES} bytes per signal"
            )
        main = _split_fixed(fixed)
        ns = _integer(path, "number of signals (ns)", main["number of signals (ns)"])
        if ns < 1:
            raise EdfFormatError(f"{path}: number of signals (ns) is {ns}; expected at least 1")
        header_bytes = FIXED_HEADER_BYTES + SIGNAL_HEADER_BYTES * ns
        if size < header_bytes:
            raise EdfFormatError(
                f"{path}: the file holds {size} bytes, fewer than the {header_bytes} bytes of the header "
                f"of its {ns} signals (number of signals (ns) = {ns}: 256 x (ns + 1) bytes): the header is "
                f"truncated or ns is wrong"
            )
        signal_raw = handle.read(header_bytes - FIXED_HEADER_BYTES)
    declared_header = _integer(path, "number of bytes in header record", main["number of bytes in header record"])
    if declared_header != header_bytes:
        raise EdfFormatError(
            f"{path}: number of bytes in header record is {declared_header}; expected {header_bytes} = "
            f"256 x (1 + {ns} signals)"
        )
    declared_records = _integer(path, "number of data records", main["number of data records"])
    if declared_records < -1 or declared_records == 0:
        raise EdfFormatError(
            f"{path}: number of data records is {declared_records}; expected a positive count (or -1, "
            f"unknown, while the file is being recorded)"
        )
    duration_s = _finite_number(path, "duration of a data record", main["duration of a data record"])
    fields = _split_signals(signal_raw, ns)
    labels = tuple(_text(raw) for raw in fields["label"])
    ordinary = [k for k in range(ns) if labels[k] != _ANNOTATION_LABEL]
    if not 0 < duration_s <= MAX_RECORD_DURATION_S and not (duration_s == 0 and not ordinary):
        raise EdfFormatError(
            f"{path}: duration of a data record is {duration_s:g} s; expected a duration in seconds in "
            f"(0, {MAX_RECORD_DURATION_S:g}] (0 only for a file of annotation signals alone)"
        )
    samples = []
    for k in range(ns):
        signal = f"signal {k + 1} of {ns} ({labels[k]!r})"
        n = _integer(path, f"samples per data record of {signal}", fields["samples per data record"][k])
        if n < 1:
            raise EdfFormatError(f"{path}: samples per data record of {signal} is {n}; expected at least 1")
        if k in ordinary and n / duration_s > MAX_SAMPLING_RATE_HZ:
            raise EdfFormatError(
                f"{path}: samples per data record of {signal} ({n}) over the duration of a data record "
                f"({duration_s:g} s) is a sampling rate of {n / duration_s:g} Hz; expected at most "
                f"{MAX_SAMPLING_RATE_HZ:g} Hz"
            )
        samples.append(n)
        if k in ordinary:
            _validate_calibration(path, signal, fields, k)
    record_bytes = BYTES_PER_SAMPLE * sum(samples)
    data_bytes = size - header_bytes
    whole, rest = divmod(data_bytes, record_bytes)
    n_records = whole if declared_records == -1 else declared_records
    if rest or whole != n_records or n_records == 0:
        held = f"{whole} complete data records" + (f" and a truncated last record ({rest} of its "
                                                   f"{record_bytes} bytes)" if rest else "")
        if declared_records == -1:
            expected = "a whole number of data records, at least 1 (number of data records is -1: unknown)"
        else:
            expected = (f"{header_bytes + declared_records * record_bytes} bytes = {header_bytes} header "
                        f"bytes + {declared_records} data records x {record_bytes} bytes")
        raise EdfFormatError(
            f"{path}: the file holds {size} bytes: {header_bytes} header bytes and {held}" +
            (" (no data records)" if data_bytes == 0 else "") + f"; expected {expected}"
        )
    return _Header(n_records=n_records, declared_records=declared_records, record_duration_s=duration_s,
                   header_bytes=header_bytes, labels=labels, samples_per_record=tuple(samples),
                   raw=fixed + signal_raw)


# What edfio raises on input it cannot parse (seen by tests/reliability): translated, cause chained.
_EDFIO_ERRORS = (ValueError, IndexError, OverflowError, ZeroDivisionError, UnboundLocalError,
                 decimal.InvalidOperation)


def _refuse_edfio_warnings(path: Path, caught: list[warnings.WarningMessage], header: _Header) -> None:
    """Raise on the warnings edfio gave while reading ``path`` (it warns where it repairs silently).

    The one expected warning (edfio updating ``number of data records`` = -1 from the file size,
    which :func:`_validate_header` has already checked) is dropped; deprecation warnings are passed
    on unchanged.
    """
    refused = []
    for item in caught:
        if issubclass(item.category, DeprecationWarning | PendingDeprecationWarning):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
        elif header.declared_records == -1 and "data records" in str(item.message):
            continue
        else:
            refused.append(str(item.message))
    if refused:
        raise EdfFormatError(
            f"{path}: edfio warned while reading a header that passed validation: {'; '.join(refused)}; "
            f"expected no repair by the reader"
        )


def _annotation_error(path: Path, exc: BaseException) -> EdfFormatError:
    """The error for an ``EDF Annotations`` signal edfio cannot parse (chain ``exc`` to it)."""
    return EdfFormatError(
        f"{path}: the {_ANNOTATION_LABEL!r} signal cannot be parsed as EDF+ annotations "
        f"(time-stamped annotation lists, Kemp & Olivan 2003 section 2.2): {type(exc).__name__}: {exc}"
    )


def _continuity_and_annotations(edf: edfio.Edf, path: Path) -> tuple[bool, list[tuple[float, float, str]]]:
    """Whether ``edf`` is continuous, and its annotations as (onset_s, duration_s, text).

    Raises
    ------
    EdfFormatError
        If the ``EDF Annotations`` signal cannot be parsed (edfio's exception chained).
    """
    try:
        continuous = edf.is_continuous
        annotations = [(float(a.onset), float(a.duration) if a.duration is not None else 0.0, str(a.text))
                       for a in edf.annotations]
    except _EDFIO_ERRORS as exc:
        raise _annotation_error(path, exc) from exc
    return continuous, annotations


def _refuse_discontinuous(path: Path, reserved: str, continuous: bool) -> None:
    """Raise EdfFormatError for an EDF+D recording whose data records are not contiguous."""
    if reserved.startswith("EDF+D") and not continuous:
        raise EdfFormatError(
            f"{path} is a discontinuous EDF+D recording (reserved field {reserved!r}); expected a "
            f"continuous EDF or EDF+C: its data records cannot be replayed as one stream"
        )


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
    EdfFormatError
        A ``ValueError``: if the header breaks a rule of the module docstring's "Header validation"
        (the message names the file, the field, the value found and the value expected), if edfio
        cannot parse the data records or the ``EDF Annotations`` signal (edfio's exception chained),
        if edfio warns (it warns where it repairs a file silently), or if the file is an EDF+D whose
        data records are not contiguous.

    Notes
    -----
    EDF: Kemp B., Varri A., Rosa A.C., Nielsen K.D., Gade J., "A simple format for exchange of
    digitized polygraphic recordings", Electroencephalogr. Clin. Neurophysiol. 82:391-393, 1992.
    EDF+: Kemp B., Olivan J., "European data format 'plus' (EDF+), an EDF alike standard format for
    the exchange of physiological data", Clin. Neurophysiol. 114:1755-1761, 2003. See the module
    docstring for what is validated and for the header quirks this reader accepts.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EDF file {path} does not exist")
    header = _validate_header(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            edf = edfio.read_edf(path)
            signals = list(edf.signals)
            data = [s.data for s in signals]
        except _EDFIO_ERRORS as exc:
            raise EdfFormatError(
                f"{path}: edfio cannot read the data records although the header passed validation: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        reserved = edf.reserved.strip()
        continuous, annotations = _continuity_and_annotations(edf, path)
    _refuse_edfio_warnings(path, caught, header)
    _refuse_discontinuous(path, reserved, continuous)
    return EdfRecording(
        path=path,
        labels=[s.label.strip() for s in signals],
        physical_dimensions=[s.physical_dimension.strip() for s in signals],
        sampling_rates_hz=[float(s.sampling_frequency) for s in signals],
        signals=data,
        annotations=annotations,
        duration_s=header.n_records * header.record_duration_s,
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
        Supplies ``repair_missing`` (midline channels that may be interpolated) and ``montage`` (the
        rows: 19 referential electrodes, or 18 double-banana derivations derived from referential
        channels or read from a bipolar file, ``detector.montage``). Default: ``FrontendConfig()``
        (referential, no repair).

    Returns
    -------
    recording : CanonicalRecording
        ``data`` of shape (n_rows, n_samples), float32, uV, at the EEG channels' common rate; n_rows
        is 19 (referential) or 18 (double_banana).

    Raises
    ------
    detector.montage.MontageError
        If channels are missing (every missing channel is named) or the file is bipolar.
    EdfFormatError
        As :func:`read_edf`; also if the EEG channels used have differing sampling rates or lengths,
        a physical dimension that is not a voltage, or a calibration that gives samples beyond the
        float32 range (the message names the file, the channels and the values).
    """
    config = frontend_config or FrontendConfig()
    rec = read_edf(path)
    montage = map_montage(rec.labels, source=str(rec.path), repair_missing=config.repair_missing,
                          montage=config.montage)
    used = sorted({i for i in montage.indices if i >= 0})
    rates = {rec.labels[i]: rec.sampling_rates_hz[i] for i in used}
    if len(set(rates.values())) != 1:
        listed = ", ".join(f"{label}: {fs:g} Hz" for label, fs in rates.items())
        raise EdfFormatError(
            f"{rec.path}: the EEG channels have differing sampling rates ({listed}); expected one "
            f"rate for all 19 canonical channels"
        )
    fs = next(iter(rates.values()))
    lengths = {rec.labels[i]: rec.signals[i].shape[0] for i in used}
    if len(set(lengths.values())) != 1:
        raise EdfFormatError(
            f"{rec.path}: the EEG channels have differing lengths in samples ({lengths}); expected one length"
        )
    n_samples = next(iter(lengths.values()))
    stacked = np.zeros((len(rec.labels), n_samples), dtype=np.float32)
    for i in used:
        try:
            factor = scale_to_uv(rec.physical_dimensions[i])
        except ValueError as exc:
            raise EdfFormatError(f"{rec.path}: channel {rec.labels[i]!r}: {exc}") from None
        peak = float(np.max(np.abs(rec.signals[i])))  # finite in float64 (read_edf checks), maybe not float32
        if not peak * factor < _FLOAT32_MAX:
            raise EdfFormatError(
                f"{rec.path}: channel {rec.labels[i]!r} reaches {peak:g} {rec.physical_dimensions[i]} "
                f"({peak * factor:g} uV) through its physical range; expected samples within the float32 "
                f"range (|x| < {_FLOAT32_MAX:g} uV): the physical minimum/maximum are corrupt"
            )
        stacked[i] = rec.signals[i] * factor
    data = montage.apply(stacked)
    return CanonicalRecording(data=data, fs=fs, annotations=rec.annotations, montage=montage, path=rec.path)


# ---------------------------------------------------------------------------------------------------
# Block reading: a file of any length in bounded memory
# ---------------------------------------------------------------------------------------------------

BLOCK_S = 30.0
"""Seconds of signal per block that the streaming readers (``EdfReplaySource``,
``streaming.bed.run_recording``) read at a time: 30 s of 21 signals at 256 Hz is 0.3 MB of 16-bit
samples and 0.6 MB as float32, so their memory does not grow with the file's length (a 24 h file holds
0.9 GB of 16-bit samples, 3.4 GB as float64)."""

_READ_BYTES = 4 * 2**20
"""Bytes of data records read at a time while the ``EDF Annotations`` bytes are gathered."""


@dataclass(frozen=True)
class _SignalLayout:
    """Where an ordinary signal lies in a data record, and its calibration (edfio's)."""

    label: str
    physical_dimension: str
    sampling_rate_hz: float
    first_sample: int
    samples_per_record: int
    gain: float
    offset: float

    def calibrate(self, digital: np.ndarray) -> np.ndarray:
        """Physical values (float64) of 16-bit samples, exactly as ``edfio.EdfSignal.data`` computes them."""
        return (digital + self.offset) * self.gain


@dataclass(frozen=True)
class _OpenedEdf:
    """A file whose header, layout and annotations were checked and read (no ordinary samples read)."""

    path: Path
    header: _Header
    signals: list[_SignalLayout]
    annotations: list[tuple[float, float, str]]
    reserved: str


def _read_records(handle, path: Path, header: _Header, first: int, count: int) -> np.ndarray:
    """Data records ``first`` to ``first + count`` (exclusive) as int16 of shape (count, record_samples)."""
    record_bytes = BYTES_PER_SAMPLE * header.record_samples
    handle.seek(header.header_bytes + first * record_bytes)
    raw = handle.read(count * record_bytes)
    if len(raw) != count * record_bytes:
        raise EdfFormatError(
            f"{path}: data records {first + 1} to {first + count} of {header.n_records} hold {len(raw)} "
            f"bytes; expected {count * record_bytes} (the file shrank after its header was checked)"
        )
    return np.frombuffer(raw, dtype="<i2").reshape(count, header.record_samples)


def _is_annotation_label(raw: bytes) -> bool:
    """Whether edfio treats a signal as an annotation signal (its label decoded and right-stripped)."""
    return raw.decode("ascii", errors="replace").rstrip() == _ANNOTATION_LABEL


def _fixed_field_offset(name: str) -> tuple[int, int]:
    offset = 0
    for field_name, width in _FIXED_FIELDS:
        if field_name == name:
            return offset, width
        offset += width
    raise KeyError(name)


def _annotation_only_edf(handle, path: Path, header: _Header) -> edfio.Edf | None:
    """The file's ``EDF Annotations`` signals alone, as an in-memory EDF+ read by edfio; None if it has none.

    The header keeps every field of the file but the three that depend on the signals kept
    (bytes in header, ns) and the signal headers of the others; each data record keeps the annotation
    signals' bytes. edfio then parses annotations, timekeeping and continuity exactly as it does for
    the whole file, while only these bytes (a few percent of an EEG file) are held in memory.
    """
    ns = len(header.labels)
    fields = _split_signals(header.raw[FIXED_HEADER_BYTES:], ns)
    kept = [k for k in range(ns) if _is_annotation_label(fields["label"][k])]
    if not kept:
        return None
    starts = np.concatenate([[0], np.cumsum(header.samples_per_record)[:-1]])
    columns = np.concatenate([np.arange(starts[k], starts[k] + header.samples_per_record[k]) for k in kept])
    fixed = bytearray(header.raw[:FIXED_HEADER_BYTES])
    for name, value in (("number of bytes in header record", FIXED_HEADER_BYTES * (1 + len(kept))),
                        ("number of signals (ns)", len(kept))):
        offset, width = _fixed_field_offset(name)
        fixed[offset:offset + width] = str(value).encode("ascii").ljust(width)
    signal_header = b"".join(b"".join(fields[name][k] for k in kept) for name, _ in _SIGNAL_FIELDS)
    head = bytes(fixed) + signal_header
    blob = bytearray(len(head) + BYTES_PER_SAMPLE * header.n_records * columns.size)
    blob[:len(head)] = head
    out = np.frombuffer(blob, dtype="<i2", offset=len(head)).reshape(header.n_records, columns.size)
    step = max(1, _READ_BYTES // (BYTES_PER_SAMPLE * header.record_samples))
    for first in range(0, header.n_records, step):
        count = min(step, header.n_records - first)
        out[first:first + count] = _read_records(handle, path, header, first, count)[:, columns]
    del out
    return edfio.read_edf(blob)


def _open_edf(path: str | Path) -> _OpenedEdf:
    """Check a file as :func:`read_edf` does and read everything but its ordinary samples.

    Raises exactly what :func:`read_edf` raises, in the same order (header, edfio's parse, annotations,
    edfio's warnings, EDF+D), without reading the ordinary signals' samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EDF file {path} does not exist")
    header = _validate_header(path)
    with warnings.catch_warnings(record=True) as caught, path.open("rb") as handle:
        warnings.simplefilter("always")
        try:
            edf = edfio.read_edf(path, lazy_load_data=True)  # a memory map: no sample is touched here
            signals = list(edf.signals)
            described = [(s.label.strip(), s.physical_dimension.strip(), float(s.sampling_frequency),
                          s.physical_min, s.physical_max, s.digital_min, s.digital_max) for s in signals]
            reserved = edf.reserved.strip()
        except _EDFIO_ERRORS as exc:
            raise EdfFormatError(
                f"{path}: edfio cannot read the data records although the header passed validation: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        del edf, signals
        try:
            annotation_edf = _annotation_only_edf(handle, path, header)
        except _EDFIO_ERRORS as exc:
            raise _annotation_error(path, exc) from exc
        if annotation_edf is None:
            continuous, annotations = True, []
        else:
            continuous, annotations = _continuity_and_annotations(annotation_edf, path)
    _refuse_edfio_warnings(path, caught, header)
    _refuse_discontinuous(path, reserved, continuous)
    raw_labels = _split_signals(header.raw[FIXED_HEADER_BYTES:], len(header.labels))["label"]
    starts = np.concatenate([[0], np.cumsum(header.samples_per_record)[:-1]])
    ordinary = [k for k, raw in enumerate(raw_labels) if not _is_annotation_label(raw)]
    if len(ordinary) != len(described):
        raise EdfFormatError(
            f"{path}: the header holds {len(ordinary)} ordinary signals but edfio read {len(described)}; "
            f"expected the same signals"
        )
    layouts = []
    for k, (label, dimension, fs, pmin, pmax, dmin, dmax) in zip(ordinary, described, strict=True):
        gain = (pmax - pmin) / (dmax - dmin)  # edfio's calibration (edfio.edf_signal._calculate_gain_and_offset)
        layouts.append(_SignalLayout(label=label, physical_dimension=dimension, sampling_rate_hz=fs,
                                     first_sample=int(starts[k]), samples_per_record=header.samples_per_record[k],
                                     gain=gain, offset=pmax / gain - dmax))
    return _OpenedEdf(path=path, header=header, signals=layouts, annotations=annotations, reserved=reserved)


def read_annotations(path: str | Path) -> list[tuple[float, float, str]]:
    """The EDF+ annotations of a file, read without its signals.

    Parameters
    ----------
    path : str or Path
        An EDF or EDF+ file.

    Returns
    -------
    annotations : list of (onset_s, duration_s, text)
        As ``read_edf(path).annotations`` (empty for plain EDF).

    Raises
    ------
    FileNotFoundError, EdfFormatError
        As :func:`read_edf`.

    Notes
    -----
    Memory is that of the ``EDF Annotations`` bytes (:func:`_annotation_only_edf`), not of the samples.
    """
    return _open_edf(path).annotations


class CanonicalStream:
    """An EDF/EDF+ file opened for reading in blocks, mapped to the canonical montage in microvolts.

    Made by :func:`open_canonical`, which applies every check and refusal of :func:`load_canonical`
    before any sample is served. ``read(start, stop)`` returns exactly
    ``load_canonical(path).data[:, start:stop]`` (same calibration, unit scaling and montage, element
    by element), reading only the data records that hold those samples, so memory is bounded by the
    block length, not the file's length.

    Attributes
    ----------
    path : Path
        The file.
    fs : float
        Sampling rate in Hz of the 19 EEG channels.
    n_samples : int
        Samples per channel in the file.
    annotations : list of (onset_s, duration_s, text)
        The file's EDF+ annotations (see :class:`EdfRecording`).
    montage : MontageMapping
        How the file's labels became the canonical channels.
    reserved : str
        The header's reserved field as written.
    """

    def __init__(self, opened: _OpenedEdf, montage: MontageMapping, used: list[int], factors: dict[int, float],
                 fs: float, samples_per_record: int) -> None:
        self.path = opened.path
        self.fs = fs
        self.n_samples = opened.header.n_records * samples_per_record
        self.annotations = opened.annotations
        self.montage = montage
        self.reserved = opened.reserved
        self._opened = opened
        self._used = used
        self._factors = factors
        self._samples_per_record = samples_per_record
        self._handle = opened.path.open("rb")

    def __repr__(self) -> str:
        return (f"CanonicalStream(path={self.path!r}, fs={self.fs:g}, n_samples={self.n_samples}, "
                f"closed={self.closed})")

    @property
    def duration_s(self) -> float:
        """Duration of the canonical data in seconds."""
        return self.n_samples / self.fs

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._handle.closed

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._handle.close()

    def __enter__(self) -> CanonicalStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _physical(self, start: int, stop: int, index: int) -> np.ndarray:
        """Physical values (float64, the file's unit) of ordinary signal ``index``, samples [start, stop)."""
        spr = self._samples_per_record
        first, last = start // spr, -(-stop // spr)
        records = _read_records(self._handle, self.path, self._opened.header, first, last - first)
        layout = self._opened.signals[index]
        digital = records[:, layout.first_sample:layout.first_sample + spr].reshape(-1)
        return layout.calibrate(digital[start - first * spr:stop - first * spr])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start`` to ``stop`` (exclusive) of the canonical channels.

        Parameters
        ----------
        start, stop : int
            Sample indices at ``fs``, ``0 <= start <= stop <= n_samples``.

        Returns
        -------
        data : ndarray of float32, shape (19, stop - start)
            Channels in ``detector.CANONICAL_CHANNELS`` order, in uV; equal to
            ``load_canonical(path).data[:, start:stop]``.

        Raises
        ------
        ValueError
            If the range is outside the file, or the stream is closed.
        EdfFormatError
            If the file lost bytes since it was opened.
        """
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"{self.path}: samples [{start}, {stop}) requested; expected a range within "
                             f"[0, {self.n_samples}]")
        if self.closed:
            raise ValueError(f"{self.path}: read from a closed CanonicalStream")
        spr = self._samples_per_record
        first, last = start // spr, -(-stop // spr)
        records = _read_records(self._handle, self.path, self._opened.header, first, last - first)
        stacked = np.zeros((len(self._opened.signals), stop - start), dtype=np.float32)
        lo = start - first * spr
        for i in self._used:
            layout = self._opened.signals[i]
            digital = records[:, layout.first_sample:layout.first_sample + spr].reshape(-1)[lo:lo + stop - start]
            stacked[i] = layout.calibrate(digital) * self._factors[i]
        return self.montage.apply(stacked)

    def blocks(self, block_samples: int | None = None, start: int = 0):
        """Consecutive blocks from ``start`` to the end of the file.

        Parameters
        ----------
        block_samples : int, optional
            Samples per block (the last block may be shorter); default ``round(BLOCK_S * fs)``.
        start : int, default 0
            First sample.

        Yields
        ------
        first_index : int
            Index of the block's first sample.
        data : ndarray of float32, shape (19, n)
            As :meth:`read`.
        """
        step = max(1, round(BLOCK_S * self.fs)) if block_samples is None else int(block_samples)
        if step < 1:
            raise ValueError(f"block_samples must be >= 1 (found {block_samples})")
        for first in range(start, self.n_samples, step):
            yield first, self.read(first, min(self.n_samples, first + step))


def _float32_safe(layout: _SignalLayout, factor: float) -> bool:
    """Whether every 16-bit value of a signal, calibrated and scaled to uV, lies within the float32 range."""
    with np.errstate(over="ignore", invalid="ignore"):
        extremes = np.abs(layout.calibrate(np.array(DIGITAL_LIMITS, dtype=np.int16))) * factor
    return bool(np.all(extremes < _FLOAT32_MAX))


def open_canonical(path: str | Path, frontend_config: FrontendConfig | None = None) -> CanonicalStream:
    """Open an EDF/EDF+ file for block reads of the canonical 19 channels in microvolts.

    Parameters
    ----------
    path : str or Path
        As :func:`load_canonical`.
    frontend_config : FrontendConfig, optional
        Supplies ``repair_missing``. Default: ``FrontendConfig()`` (no repair).

    Returns
    -------
    stream : CanonicalStream
        Open; close it (or use it as a context manager) when done.

    Raises
    ------
    FileNotFoundError, detector.montage.MontageError, EdfFormatError
        Every error :func:`load_canonical` raises for the file, with the same message, raised here
        before any sample is served.

    Notes
    -----
    The header, the ``EDF Annotations`` bytes and the channels' calibration are checked here as
    :func:`load_canonical` checks them. Its last check (no EEG sample beyond the float32 range in uV)
    depends on the samples: it needs no reading when the channel's calibration maps every 16-bit value
    within that range (every real file); otherwise that channel is scanned block by block here, so
    the same error is raised with the same peak value.
    """
    config = frontend_config or FrontendConfig()
    opened = _open_edf(path)
    labels = [s.label for s in opened.signals]
    montage = map_montage(labels, source=str(opened.path), repair_missing=config.repair_missing,
                          montage=config.montage)
    used = sorted({i for i in montage.indices if i >= 0})
    rates = {labels[i]: opened.signals[i].sampling_rate_hz for i in used}
    if len(set(rates.values())) != 1:
        listed = ", ".join(f"{label}: {fs:g} Hz" for label, fs in rates.items())
        raise EdfFormatError(
            f"{opened.path}: the EEG channels have differing sampling rates ({listed}); expected one "
            f"rate for all 19 canonical channels"
        )
    fs = next(iter(rates.values()))
    lengths = {labels[i]: opened.header.n_records * opened.signals[i].samples_per_record for i in used}
    if len(set(lengths.values())) != 1:
        raise EdfFormatError(
            f"{opened.path}: the EEG channels have differing lengths in samples ({lengths}); expected one length"
        )
    spr = opened.signals[used[0]].samples_per_record
    factors: dict[int, float] = {}
    stream = CanonicalStream(opened, montage, used, factors, fs, spr)
    try:
        for i in used:
            layout = opened.signals[i]
            try:
                factors[i] = factor = scale_to_uv(layout.physical_dimension)
            except ValueError as exc:
                raise EdfFormatError(f"{opened.path}: channel {layout.label!r}: {exc}") from None
            if _float32_safe(layout, factor):
                continue
            peak = 0.0
            step = max(1, round(BLOCK_S * fs))
            for first in range(0, stream.n_samples, step):
                block = stream._physical(first, min(stream.n_samples, first + step), i)
                peak = max(peak, float(np.max(np.abs(block))))
            if not peak * factor < _FLOAT32_MAX:
                raise EdfFormatError(
                    f"{opened.path}: channel {layout.label!r} reaches {peak:g} {layout.physical_dimension} "
                    f"({peak * factor:g} uV) through its physical range; expected samples within the float32 "
                    f"range (|x| < {_FLOAT32_MAX:g} uV): the physical minimum/maximum are corrupt"
                )
    except BaseException:
        stream.close()
        raise
    return stream
