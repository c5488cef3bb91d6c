"""The machine a benchmark ran on, for the tables the `ictal bench` commands print."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's model name (``model name`` of /proc/cpuinfo on Linux, else what ``platform`` knows).

    Returns
    -------
    name : str
        E.g. ``"AMD EPYC 7B13"``; ``platform.processor()`` or ``platform.machine()`` where
        /proc/cpuinfo is absent or names no model.
    """
    fallback = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return fallback
    return fallback
