"""`ictal bench gpu` (issue 20): its CPU run, the time-bounded part runner, the fused swap, the carry folder."""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from ictal.detector import bench_gpu as core
from ictal.detector.config import StackConfig
from ictal.detector.stacks import build_stack
from ictal.detector.stacks.mamba2 import Mamba2Mixer

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import prepare_gpu_run  # noqa: E402  (a script, not a package module)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "ictal", "bench", "gpu", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env=env)


# ------------------------------------------------------------------------------ the command on the CPU


def test_cpu_run_prints_reference_only_json_and_writes_both_reports(shared_data: Path, tmp_path: Path) -> None:
    proc = _run(["--json", "--quick", "--out", str(tmp_path), "--data", str(shared_data)], timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads(proc.stdout)
    assert document["schema"] == "ictal-bench-gpu/1"
    assert document["cuda"] is False and document["device"] == "cpu"
    assert document["backends_run"] == ["reference"]
    assert "reference backend only" in document["note"]
    assert document["tolerances"] == core.TOLERANCES
    parts = document["parts"]
    assert list(parts) == list(core.PART_ORDER)
    for name in ("env", "parity", "checkpoint"):
        assert parts[name]["status"] == "ok", (name, parts[name])
    for name in ("speed", "beds", "train"):
        assert parts[name] == {"status": "skipped", "reason": "no CUDA"}
    env = parts["env"]
    assert env["versions"]["torch"]["version"] == torch.__version__
    assert env["bench_fused_backend"] == {s: {"runs": False, "detail": "no CUDA"} for s in core.STACK_NAMES}
    assert all(v["resolve_backend_fused"] == "refused" for v in env["project_fused_backend"].values())
    rows = parts["parity"]["rows"]
    assert {r["backend"] for r in rows} == {"reference"}
    assert {(r["stack"], r["dtype"]) for r in rows} == {(s, d) for s in core.STACK_NAMES for d in ("float32", "bf16")}
    assert all(r["pass"] for r in rows), rows
    float32 = [r for r in rows if r["dtype"] == "float32"]
    assert max(r["forward_rel_err"] for r in float32) < 1e-5  # the reference in float32 is near float64
    assert all(0 < r["backward_rel_err"] < core.TOLERANCES[r["dtype"]]["backward"] for r in rows)
    checkpoint = parts["checkpoint"]
    assert checkpoint["n_windows"] == 1 and checkpoint["windows"][0].startswith("labelled/hms_1628180742.edf@")
    assert checkpoint["fused"] == "not run: no CUDA"
    (baseline,) = checkpoint["runs"]
    assert baseline["backend"] == "reference" and baseline["dtype"] == "float32"
    assert 0.0 < baseline["mean_probability"] < 1.0
    assert json.loads((tmp_path / "bench_gpu.json").read_text()) == document
    report = (tmp_path / "bench_gpu.md").read_text()
    assert "| (e) beds | skipped | 0.0 | no CUDA |" in report
    assert "## (b) parity against the float64 reference" in report


def test_unknown_part_is_refused_with_the_names_expected(tmp_path: Path) -> None:
    proc = _run(["--parts", "z", "--out", str(tmp_path)], timeout=60)
    assert proc.returncode != 0
    assert "unknown part 'z' (expected a-f or one of ['env', 'parity'" in proc.stderr


# ------------------------------------------------------------------------------------- the part runner


def _sleeps(options: dict, record) -> None:
    record("before_sleep", 1)
    time.sleep(600)


def _raises(options: dict, record) -> None:
    record("rows", [{"i": 0}])
    raise ValueError("kernel refused shape (3, 37)")


def _dies(options: dict, record) -> None:
    record("rows", [{"i": 0}])
    record("rows", [{"i": 1}])
    os._exit(3)


def test_run_part_kills_a_hung_part_and_keeps_what_it_recorded(tmp_path: Path) -> None:
    start = time.monotonic()
    # 15 s: the spawned part imports this module (and torch) before it records; a loaded 2-core
    # machine took more than 4 s for that (CI, 2026-12-04)
    result = core.run_part("speed", _sleeps, {}, timeout_s=15.0, work=tmp_path)
    assert time.monotonic() - start < 60
    assert result["status"] == "timeout" and result["timeout_s"] == 15.0
    assert result["before_sleep"] == 1


def test_run_part_reports_an_error_and_a_crash(tmp_path: Path) -> None:
    error = core.run_part("parity", _raises, {}, timeout_s=60.0, work=tmp_path)
    assert error["status"] == "error"
    assert error["error"] == "ValueError: kernel refused shape (3, 37)"
    assert error["rows"] == [{"i": 0}]
    crash = core.run_part("beds", _dies, {}, timeout_s=60.0, work=tmp_path)
    assert crash["status"] == "crashed" and crash["exitcode"] == 3
    assert crash["rows"] == [{"i": 0}, {"i": 1}]  # list values under a key ending in "s" accumulate


# --------------------------------------------------------------------------------------- the fused swap


def test_swap_to_fused_replaces_every_mixer_and_keeps_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    config = StackConfig(n_layers=2, d_model=16, d_state=8, n_heads=2, expand=2, chunk_size=16)
    made = []

    def stand_in(stack, cfg):  # a freshly initialised mixer: equal outputs prove the weights were loaded
        mixer = Mamba2Mixer(cfg.d_model, cfg.d_state, cfg.n_heads, cfg.expand, cfg.d_conv, cfg.chunk_size)
        made.append(mixer)
        return mixer

    monkeypatch.setattr(core, "make_fused_mixer", stand_in)
    torch.manual_seed(0)
    reference = build_stack("bimamba2", config, "reference").eval()
    swapped = copy.deepcopy(reference)
    assert core.swap_to_fused(swapped, "bimamba2", config) == 4  # 2 layers x (forward, backward)
    assert swapped.backend == "fused"
    assert all(any(m is mixer for m in swapped.modules()) for mixer in made)
    x = torch.randn(2, 40, 16)
    with torch.no_grad():
        assert torch.equal(swapped(x), reference(x))


def test_swap_to_fused_refuses_a_stack_without_reference_mixers() -> None:
    config = StackConfig(n_layers=1, d_model=16, d_state=8, n_heads=2, expand=2, chunk_size=16)
    with pytest.raises(RuntimeError, match="no GatedDeltaNetMixer inside the gated_deltanet stack"):
        core.swap_to_fused(build_stack("bimamba2", config, "reference"), "gated_deltanet", config)


@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is None or importlib.util.find_spec("fla") is None,
                    reason="needs the upstream packages (mamba-ssm, flash-linear-attention) to build their modules")
@pytest.mark.parametrize("stack", core.STACK_NAMES)
def test_upstream_mixers_take_the_reference_weights(stack: str) -> None:
    config = StackConfig(n_layers=1, d_model=32, d_state=16, n_heads=2, expand=2, chunk_size=64)
    module = build_stack(stack, config, "reference")
    assert core.swap_to_fused(module, stack, config) == 2  # strict load_state_dict inside


def test_speed_part_times_every_stack_and_precision_on_a_tiny_model() -> None:
    recorded: dict = {}

    def record(key, value):
        recorded[key] = recorded.get(key, []) + value if key == "rows" else value

    core.part_speed({"presets": ["tiny"], "batches": [1], "warmup": 0, "repeats": 1, "n_times": 256}, record)
    rows = recorded["rows"]
    assert {(r["stack"], r["precision"], r["batch"]) for r in rows} == {
        (s, p, b) for s in core.STACK_NAMES for p in ("bf16", "float32") for b in (1,)}
    assert all(r["backend"] == "reference" and r["n_times"] == 256 and r["windows_per_s"] > 0 for r in rows)
    from ictal.detector.config import ModelConfig

    has_direction = "direction" in ModelConfig.model_fields
    assert {r["direction"] for r in rows} == ({"bidirectional", "causal"} if has_direction else {"bidirectional"})
    if not has_direction:
        assert recorded["directions_note"].startswith("ModelConfig has no field 'direction'")


@pytest.mark.slow
def test_allow_cpu_runs_the_cuda_parts_small(shared_data: Path, tmp_path: Path) -> None:
    proc = _run(["--json", "--parts", "d", "e", "f", "--allow-cpu", "--out", str(tmp_path),
                 "--data", str(shared_data)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parts = json.loads(proc.stdout)["parts"]
    assert [parts[n]["status"] for n in ("speed", "beds", "train")] == ["ok", "ok", "ok"], parts
    (beds,) = parts["beds"]["rows"]
    assert beds["beds"] == 2 and beds["scored"] > 0 and "p50_ms" in beds
    assert parts["train"]["steps"] == 2 and parts["train"]["windows_per_s"] > 0


# ------------------------------------------------------------------------------------ the carry folder


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_patched_mamba_wheel_guards_the_cuda_imports_and_records_true_hashes(tmp_path: Path) -> None:
    upstream = (b'__version__ = "2.3.2.post1"\n\nfrom mamba_ssm.ops.selective_scan_interface import selective_scan_fn\n'
                b"from mamba_ssm.modules.mamba2 import Mamba2\n")
    wheel = tmp_path / "mamba_ssm-2.3.2.post1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mamba_ssm/__init__.py", upstream)
        z.writestr("mamba_ssm/modules/mamba2.py", b"class Mamba2: pass\n")
        z.writestr("mamba_ssm-2.3.2.post1.dist-info/RECORD", b"stale\n")
    out = tmp_path / "out"
    out.mkdir()
    patched = prepare_gpu_run.patch_mamba_wheel(wheel, out)
    assert patched.name == "mamba_ssm-2.3.2.post1-1-py3-none-any.whl"
    with zipfile.ZipFile(patched) as z:
        init = z.read("mamba_ssm/__init__.py").decode()
        record = z.read("mamba_ssm-2.3.2.post1.dist-info/RECORD").decode().splitlines()
        contents = {n: z.read(n) for n in z.namelist()}
    assert '__version__ = "2.3.2.post1"' in init
    assert "try:\n    from mamba_ssm.ops.selective_scan_interface" in init
    assert "\nfrom mamba_ssm.modules.mamba2 import Mamba2\n" in init  # Mamba2 must import or fail loudly
    for line in record:
        path, digest, size = line.split(",")
        if path.endswith("RECORD"):
            assert digest == size == ""
        else:
            assert digest == _hash(contents[path]) and int(size) == len(contents[path])
    compile(init, "__init__.py", "exec")


def test_patch_refuses_an_upstream_init_it_does_not_know(tmp_path: Path) -> None:
    wheel = tmp_path / "mamba_ssm-9.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mamba_ssm/__init__.py", b"from mamba_ssm.v9 import Mamba9\n")
        z.writestr("mamba_ssm-9.0.dist-info/RECORD", b"")
    with pytest.raises(ValueError, match="does not import Mamba2 as expected"):
        prepare_gpu_run.patch_mamba_wheel(wheel, tmp_path)


def test_device_command_installs_the_carried_wheels_and_runs_the_bench() -> None:
    command = prepare_gpu_run.device_command(".gpu-run", 360)
    assert command.startswith("python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "
                              "--target /tmp/site .gpu-run/wheels/*.whl && ")
    assert "export PYTHONPATH=$PWD:/tmp/site" in command
    assert "python3 -m ictal bench gpu --data .gpu-run/data --cache .gpu-run/cache --out $OUT --budget-s 360 " in command
    assert "--timeout speed=150" in command and command.endswith(" --json")
    assert len(command) <= 2000  # the device tool's limit on one command


def test_carry_folder_holds_the_real_windows_and_cache_the_bench_reads(shared_data: Path, tmp_path: Path) -> None:
    dest = tmp_path / "carry"
    assert prepare_gpu_run.main(["--no-wheels", "--dest", str(dest), "--data", str(shared_data)]) == 0
    assert (dest / "data" / "README.md").is_file()
    manifest = (dest / "data" / "labelled" / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 1 + sum(f.startswith("labelled/") for f in prepare_gpu_run.DATA_FILES)
    assert json.loads((dest / "cache" / "manifest.json").read_text())
    from ictal.detector.config import FrontendConfig
    from ictal.training.bench_gpu import WINDOW_FILES, real_windows

    assert set(WINDOW_FILES) <= set(prepare_gpu_run.DATA_FILES)
    windows, sources = real_windows(dest / "data", FrontendConfig(), 3, 15360)
    assert [s.split("@")[0] for s in sources] == list(WINDOW_FILES)
    assert all(w.shape == (19, 15360) and w.dtype.name == "float32" for w in windows)
