"""The shipped demonstration checkpoint: its model card's figures are what `ictal evaluate` prints,
and `ictal demo` on its built-in input shows alarms arriving at the subscriber.

Both run the real checkpoint in ``checkpoints/demo`` on the real EEG of ../shared/data (skipped when
that folder is absent). A retrained checkpoint must come with a model card that it reproduces.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

CARD = Path("checkpoints/demo/MODEL_CARD.md")


def _card_blocks(repo_root: Path) -> tuple[list[str], list[str]]:
    """The `ictal evaluate` command of the card and the summary it says the command printed."""
    text = (repo_root / CARD).read_text(encoding="utf-8")
    section = text[text.index("## Measured figures on held-out real data"):]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    command = next(b for b in blocks if b.lstrip().startswith("ictal evaluate"))
    printed = next(b for b in blocks if "NEDC OVERLAP" in b)
    return shlex.split(command.replace("\\\n", " ")), [line for line in printed.splitlines() if line.strip()]


KERNEL_TOLERANCE = {"AUROC": 0.15, "95% bootstrap": 0.15, "calibration:": 2e-3}
"""How far each sample-level figure may move with the CPU's float kernels (the model card's section
"Reproducibility across CPUs": the probabilities of 99% of the held-out samples lie within
0.0272-0.0283, so rounding reorders them; AUROC measured 0.549-0.638 on three kernel paths). The
rated-span AUCs (2 seizure spans, one of them in that band) are not reproducible at all: only their
classes and counts are checked. The event-level lines (detections, false alarms, exact intervals,
flagged spans, unscored recordings) must be equal."""


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", line)]


@pytest.mark.timeout(1500)  # about 1 min on a quiet 2-core machine; far longer when it is shared
def test_model_card_figures_are_what_ictal_evaluate_prints(repo_root, shared_data, tmp_path):
    argv, printed = _card_blocks(repo_root)
    assert argv[:2] == ["ictal", "evaluate"] and "--checkpoint" in argv
    argv[argv.index("--out") + 1] = str(tmp_path / "eval")
    argv = [str(shared_data) if a == "../shared/data" else a for a in argv]
    result = subprocess.run([sys.executable, "-m", "ictal", *argv[1:]], cwd=repo_root, capture_output=True,
                            text=True, timeout=1400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line == printed[0] or re.match(r"\d+ recordings, ", line))
    got = lines[first:first + len(printed)]
    assert len(got) == len(printed), result.stdout[-3000:]
    for want, have in zip(printed, got, strict=True):
        tolerance = next((t for prefix, t in KERNEL_TOLERANCE.items() if want.startswith(prefix)), None)
        if want.startswith("sensitivity at FA/24h"):
            # The sweep's operating points move with the ranking (card: "Reproducibility across CPUs"):
            # the FA/24h grid is checked; each sensitivity is a share of the 2 held-out seizures.
            grid = re.compile(r"([\d.]+): ([\d.]+)%")
            assert [fa for fa, _ in grid.findall(have)] == [fa for fa, _ in grid.findall(want)], (want, have)
            assert all(float(x) in (0.0, 50.0, 100.0) for _, x in grid.findall(have)), have
        elif want.startswith("rated-span AUC"):
            assert re.sub(r"\d\.\d\d", "x", have) == re.sub(r"\d\.\d\d", "x", want), (want, have)
        elif tolerance is not None:
            assert have.startswith(want.split()[0])
            for a, b in zip(_numbers(want), _numbers(have), strict=True):
                assert abs(a - b) <= tolerance, (want, have, tolerance)
        else:
            assert have == want, f"model card says {want!r}, ictal evaluate printed {have!r}"


@pytest.mark.timeout(900)
def test_demo_on_its_builtin_input_shows_alarms_at_the_subscriber(repo_root, shared_data, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ictal", "demo", "--speed", "8"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "ICTAL_SHARED_DATA": str(shared_data)})
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    summary = out[out.index("\nsummary"):]
    raised = int(re.search(r"alarms raised: (\d+)", summary).group(1))
    assert raised >= 1, summary
    # The alarm reached the ZeroMQ subscriber: it is printed as it arrived, before the summary.
    assert "ALARM ONSET bed " in out[:out.index("\nsummary")], out[-3000:]
    assert "daemon exit code after SIGTERM: 0" in summary


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
