"""detector.threads: one intra-op thread in stream mode on a CPU unless the config says otherwise."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(2)
    from ictal.streaming.config import DaemonConfig
    from ictal.streaming.daemon import apply_model_threads
    detector = {"mode": sys.argv[1], "device": "cpu"}
    if sys.argv[2] != "none":
        detector["threads"] = int(sys.argv[2])
    print(apply_model_threads(DaemonConfig.model_validate({"kind": "daemon", "detector": detector})))
""")


@pytest.mark.parametrize(("mode", "threads", "expected"), [
    ("stream", "none", 1), ("window", "none", 2), ("stream", "2", 2), ("window", "1", 1),
])
def test_model_threads_follow_the_mode_and_the_setting(mode, threads, expected):
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode, threads], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert int(out.strip().splitlines()[-1]) == expected
