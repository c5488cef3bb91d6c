"""Structured log lines (logfmt: ``key=value`` pairs) on stderr, for journald and humans alike.

Every line reads ``ts=<UTC ISO 8601> level=<level> logger=<name> <message>``. Messages of the daemon
are themselves ``event=<name> key=value ...`` (built with :func:`kv`); other libraries' messages are
quoted as ``msg="..."``.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone


def _value(value: object) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def kv(event: str, **fields: object) -> str:
    """``event=<event> key=value ...`` with values quoted where needed (floats to 6 significant digits).

    ``kv("bed_connected", bed="bed-01", fs_hz=200.0, detail="LSL stream x")`` gives
    ``event=bed_connected bed=bed-01 fs_hz=200 detail="LSL stream x"``.
    """
    return " ".join([f"event={_value(event)}", *(f"{k}={_value(v)}" for k, v in fields.items())])


class LogfmtFormatter(logging.Formatter):
    """Formats records as one logfmt line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        message = record.getMessage()
        if not message.startswith("event="):
            message = f"msg={_value(message)}"
        line = f"ts={ts.replace('+00:00', 'Z')} level={record.levelname.lower()} logger={record.name} {message}"
        if record.exc_info:
            line += " exc=" + _value(self.formatException(record.exc_info))
        return line


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr as logfmt lines at ``level`` (replaces root handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
