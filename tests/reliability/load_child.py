"""Child process: load hostile files under an address-space limit and a per-file time limit.

Run as ``python tests/reliability/load_child.py LOADER MEM_MB TIMEOUT_S PATH...``; prints one JSON
object per path on stdout::

    {"path": ..., "outcome": "ok" | "error" | "memory" | "timeout", "type": exception class name,
     "mro": [exception classes], "message": str, "shape": [..] (ok), "finite": bool (ok),
     "warnings": [python warning messages], "peak_rss_mb": float}

LOADER is ``edf`` (``streaming.edf.load_canonical``), ``read_edf``, ``annotation``
(``training.scoring.annotations.read_annotation``) or ``config`` (``ictal.config.load_config``).
The limit is set with ``resource.setrlimit(RLIMIT_AS)`` after the imports, at the address space
then in use plus MEM_MB, so it bounds what the loads themselves may allocate; ``MemoryError`` is
reported as ``"memory"``. ``rss_before_mb`` is the peak RSS before the first load.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


class _Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so no ``except Exception`` in the code under test hides it."""


def _on_alarm(signum, frame):  # noqa: ARG001
    raise _Timeout()


def _loader(name: str):
    import numpy as np

    if name == "edf":
        from ictal.streaming.edf import load_canonical

        def load(path):
            rec = load_canonical(path)
            return {"shape": list(rec.data.shape), "finite": bool(np.isfinite(rec.data).all()), "fs": rec.fs,
                    "max_abs_uv": float(np.nanmax(np.abs(rec.data))) if rec.data.size else 0.0}
        return load
    if name == "read_edf":
        from ictal.streaming.edf import read_edf

        def load(path):
            rec = read_edf(path)
            return {"shape": [len(rec.signals), max((len(s) for s in rec.signals), default=0)],
                    "finite": bool(all(np.isfinite(s).all() for s in rec.signals)),
                    "n_annotations": len(rec.annotations)}
        return load
    if name == "annotation":
        from ictal.training.scoring.annotations import read_annotation

        def load(path):
            ann = read_annotation(path)
            return {"shape": [len(ann.events)], "finite": True, "duration_s": ann.duration_s}
        return load
    if name == "config":
        from ictal.config import load_config

        def load(path):
            cfg = load_config(path)
            return {"shape": [], "finite": True, "kind": type(cfg).__name__}
        return load
    raise SystemExit(f"unknown loader {name!r}; expected edf, read_edf, annotation or config")


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmSize missing from /proc/self/status")


def main(argv: list[str]) -> int:
    loader_name, mem_mb, timeout_s, *paths = argv
    load = _loader(loader_name)
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limit = _vm_size_bytes() + int(mem_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _on_alarm)
    for path in paths:
        result: dict = {"path": path}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            signal.setitimer(signal.ITIMER_REAL, float(timeout_s))
            try:
                result.update(load(path))
                result["outcome"] = "ok"
            except _Timeout:
                result.update(outcome="timeout", type="timeout", mro=[], message=f"over {timeout_s} s")
            except MemoryError as exc:
                result.update(outcome="memory", type="MemoryError", mro=[], message=str(exc))
            except Exception as exc:  # reported to the parent test, which judges the type and message
                result.update(outcome="error", type=type(exc).__name__,
                              mro=[c.__name__ for c in type(exc).__mro__], message=str(exc))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        result["warnings"] = [str(w.message) for w in caught]
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["rss_before_mb"] = rss_before_mb
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
