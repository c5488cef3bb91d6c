"""Byte-level editing of EDF headers, to build hostile files from copies of real recordings.

EDF header (Kemp et al. 1992): a 256-byte fixed part, then ``ns`` blocks of per-signal fields, each
field written for all signals before the next field. Every field is space-padded ASCII.
"""

from __future__ import annotations

MAIN_FIELDS: tuple[tuple[str, int], ...] = (
    ("version", 8),
    ("patient", 80),
    ("recording", 80),
    ("startdate", 8),
    ("starttime", 8),
    ("bytes_in_header", 8),
    ("reserved", 44),
    ("num_data_records", 8),
    ("data_record_duration", 8),
    ("num_signals", 4),
)
SIGNAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("label", 16),
    ("transducer", 80),
    ("physical_dimension", 8),
    ("physical_min", 8),
    ("physical_max", 8),
    ("digital_min", 8),
    ("digital_max", 8),
    ("prefiltering", 80),
    ("samples_per_record", 8),
    ("signal_reserved", 32),
)
MAIN_FIELD_NAMES = tuple(name for name, _ in MAIN_FIELDS)
SIGNAL_FIELD_NAMES = tuple(name for name, _ in SIGNAL_FIELDS)


def num_signals(raw: bytes) -> int:
    """The ``ns`` field of an intact header (signals, annotation signals included)."""
    return int(raw[252:256].decode("ascii").strip())


def field_span(raw: bytes, name: str, signal: int | None = None) -> tuple[int, int]:
    """Byte offset and length of one header field.

    Parameters
    ----------
    raw : bytes
        The intact file (``ns`` is read from it).
    name : str
        One of :data:`MAIN_FIELD_NAMES` or :data:`SIGNAL_FIELD_NAMES`.
    signal : int, optional
        Signal index, required for a per-signal field.
    """
    offset = 0
    for field, length in MAIN_FIELDS:
        if field == name:
            return offset, length
        offset += length
    ns = num_signals(raw)
    for field, length in SIGNAL_FIELDS:
        if field == name:
            if signal is None or not 0 <= signal < ns:
                raise ValueError(f"field {name} needs a signal index in [0, {ns}) (found {signal!r})")
            return offset + signal * length, length
        offset += ns * length
    raise ValueError(f"unknown EDF header field {name!r} (expected one of {MAIN_FIELD_NAMES + SIGNAL_FIELD_NAMES})")


def read_field(raw: bytes, name: str, signal: int | None = None) -> bytes:
    """The raw bytes of one field (padding included)."""
    offset, length = field_span(raw, name, signal)
    return raw[offset : offset + length]


def set_field(raw: bytes, name: str, value: bytes | str, signal: int | None = None,
              layout: bytes | None = None) -> bytes:
    """A copy of ``raw`` with one field replaced by ``value`` (cut or space-padded to the field length).

    ``layout``, default ``raw``: the intact file whose ``ns`` places the per-signal fields (pass the
    original when ``raw`` may already have a corrupted ``ns``).
    """
    if isinstance(value, str):
        value = value.encode("latin-1")
    offset, length = field_span(raw if layout is None else layout, name, signal)
    out = bytearray(raw)
    out[offset : offset + length] = value[:length].ljust(length, b" ")
    return bytes(out)


def header_bytes(raw: bytes) -> int:
    """Size of the header in bytes: 256 x (ns + 1)."""
    return 256 * (num_signals(raw) + 1)


def signal_index(raw: bytes, label: str) -> int:
    """Index of the signal whose label (stripped) is ``label``."""
    ns = num_signals(raw)
    labels = [read_field(raw, "label", k).decode("latin-1").strip() for k in range(ns)]
    if label not in labels:
        raise ValueError(f"label {label!r} not in the header (found {labels})")
    return labels.index(label)
