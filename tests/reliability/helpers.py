"""Helpers of the reliability tests: bounded loads in a child process, clear-error checks, free ports."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LOAD_CHILD = Path(__file__).with_name("load_child.py")

LOAD_MEM_MB = 1024
"""Address space a hostile load may add to the loader process (the limit is set after the imports): a
4 MB EEG file needs a few tens of MB; 1 GiB is bounded, a header that makes a reader allocate what it
declares (gigabytes) is not."""

LOAD_TIMEOUT_S = 20.0
"""Per-file time limit of a hostile load: every real file here loads in well under a second."""


def bounded_loads(loader: str, paths: list[Path], mem_mb: int = LOAD_MEM_MB,
                  timeout_s: float = LOAD_TIMEOUT_S) -> dict[str, dict]:
    """Load each path in one child process under ``mem_mb`` of address space and ``timeout_s`` per file.

    Returns
    -------
    results : dict of str to dict
        By ``str(path)``: the child's report (see ``load_child.py``).
    """
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(LOAD_CHILD), loader, str(mem_mb), str(timeout_s), *map(str, paths)],
        capture_output=True, text=True, timeout=timeout_s * len(paths) + 60, env=env, cwd=REPO_ROOT,
    )
    results = {}
    for line in proc.stdout.splitlines():
        item = json.loads(line)
        results[item["path"]] = item
    missing = [str(p) for p in paths if str(p) not in results]
    assert not missing, (
        f"the load child died (rc {proc.returncode}) before reporting {missing}; stderr:\n{proc.stderr[-3000:]}"
    )
    return results


def assert_clear_error(result: dict, path: Path, words: tuple[str, ...]) -> None:
    """The load failed with a ValueError naming the file and one of ``words`` (field or value), bounded.

    ``words`` are matched case-insensitively, in the message with the file's name taken out (so a file
    named after its defect does not satisfy the check); they are the field names or offending values a
    reader of the message needs to find what is wrong.
    """
    assert result["outcome"] != "memory", f"{path}: the load exceeded {LOAD_MEM_MB} MB: {result['message']}"
    assert result["outcome"] != "timeout", f"{path}: the load hung ({result['message']})"
    assert result["outcome"] == "error", f"{path}: loaded without error ({result}); expected a clear ValueError"
    assert "ValueError" in result["mro"], (
        f"{path}: raised {result['type']}: {result['message']!r}; expected a ValueError subclass"
    )
    assert str(path) in result["message"] or path.name in result["message"], (
        f"{path}: the message {result['message']!r} does not name the file"
    )
    message = result["message"].replace(str(path), "<file>").replace(path.name, "<file>").lower()
    assert any(word.lower() in message for word in words), (
        f"{path}: the message {result['message']!r} names none of {words}"
    )


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux; 32768-60999 by default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, chosen below the ephemeral range.

    A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, where every outgoing
    connection (a REQ socket of an earlier test, an HTTP scrape) also takes its local port: between
    this call and the caller's bind, such a connection can take it ("Address already in use", seen in
    CI). Ports below that range are never given to outgoing connections.
    """
    low, _ = _ephemeral_range()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 below the ephemeral range ({low}) after 200 tries")
