"""liblsl's own log lines stay out of ictal's output unless the site configures liblsl."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pylsl")

# An outlet goes away under a connected inlet: liblsl's data receiver logs
# "ERR| Stream transmission broke off" at its default level (what every normal end of a replay did).
# The outlet is in a process of its own, killed (liblsl may crash the process that destroys an outlet
# under a connected inlet, sccn/liblsl#218); only the inlet's process, ictal's side, is looked at.
AMPLIFIER = textwrap.dedent("""
    import sys, time
    import pylsl
    out = pylsl.StreamOutlet(pylsl.StreamInfo("logtest", "EEG", 2, 100, "float32", sys.argv[1]))
    while True:
        out.push_sample([0.0, 1.0])
        time.sleep(0.01)
""")
SCENARIO = textwrap.dedent("""
    import subprocess, sys, time, uuid
    import ictal.streaming.lsl_outlet  # configures liblsl on import, as every ictal LSL module does
    import pylsl
    source = "ictal-logtest-" + uuid.uuid4().hex
    amplifier = subprocess.Popen([sys.executable, "-c", sys.argv[1], source], stderr=subprocess.DEVNULL)
    inlet = pylsl.StreamInlet(pylsl.resolve_byprop("source_id", source, timeout=10)[0])
    inlet.open_stream(timeout=10)
    time.sleep(0.2)
    assert inlet.pull_chunk(timeout=1)[0], "no sample from the amplifier"
    amplifier.kill()
    amplifier.wait()
    time.sleep(1.5)
    print("done")
""")


def _run(tmp_path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LSLAPICFG"}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", SCENARIO, AMPLIFIER], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=True)


def test_a_lost_outlet_writes_no_liblsl_error_line_without_a_site_config(tmp_path):
    result = _run(tmp_path, {"HOME": str(tmp_path)})
    assert "done" in result.stdout
    assert "ERR|" not in result.stderr and "Stream transmission broke off" not in result.stderr


def test_a_site_lsl_api_cfg_keeps_governing_liblsl_log(tmp_path):
    config = tmp_path / "site.cfg"
    config.write_text("[log]\nlevel = 0\n")
    result = _run(tmp_path, {"HOME": str(tmp_path), "LSLAPICFG": str(config)})
    assert "Stream transmission broke off" in result.stderr  # the site's level 0 shows liblsl's errors
