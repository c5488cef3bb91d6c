"""The detector's parts of ``ictal bench gpu``: environment, fused-vs-reference parity, model speed.

``ictal bench gpu`` (entry point :mod:`ictal.training.bench_gpu`, which adds the parts that need EEG files,
the daemon and training) checks on one CUDA machine what no CPU test can: that the fused kernels
(mamba-ssm, flash-linear-attention) compute what the reference PyTorch stacks compute, forward and
backward, in float32 and bf16, and how fast the detector runs. This module holds the parts that need
nothing above ``detector``, the time-bounded runner of all parts and the report writers.

Parts (letters of issue 20)
---------------------------
- ``env`` (a): device, driver, torch / triton / mamba-ssm / causal-conv1d / fla versions, whether each
  fused package imports and runs (:func:`ictal.detector.backends.probe_fused_kernels`), what
  ``resolve_backend(stack, "fused")`` says, and whether the bench's own fused stacks (below) build
  and run one forward pass.
- ``parity`` (b): for each stack and shape, random inputs drawn fresh (the seed is recorded), the
  reference stack run in float64 on the inputs upcast to float64 is the truth. Each backend
  (reference; fused on CUDA) runs in float32 and under bf16 autocast on the same weights, forward
  and backward (loss ``sum(out * g)``, ``g`` standard normal): relative error
  ``||out - ref|| / ||ref||`` of the output and of the gradients (input and every parameter,
  concatenated). Tolerances: :data:`TOLERANCES`.
- ``speed`` (d): presets ``tiny`` and ``full`` (random weights), both stacks, both backends, each
  direction the model has (``direction`` of :class:`~ictal.detector.config.ModelConfig` when that field
  exists; else bidirectional only, said in the result), bf16 autocast and float32, batch 1, 8, 32,
  128, 256 windows of 60 s: CUDA-event time of one forward pass (``torch.inference_mode``), median of
  ``repeats`` after ``warmup`` passes; windows/s = batch / median; peak memory =
  ``torch.cuda.max_memory_allocated`` since the batch size started. An out-of-memory batch is recorded
  as ``"oom"`` and the larger ones are skipped.

The fused stacks
----------------
The bench builds a model (or stack) on the reference backend, then replaces every reference mixer by
the upstream module of the same hyper-parameters (:func:`ictal.detector.stacks.fused.fused_mamba2`,
:func:`~ictal.detector.stacks.fused.fused_gated_deltanet`) and loads the same weights into it (the
state-dict keys are shared). Where causal-conv1d is absent (it is a CUDA extension; the GPU machine
has no compiler time for it), ``mamba_ssm.Mamba2`` runs with ``use_mem_eff_path=False``: its
convolution in PyTorch, the SSD scan and gated norm in Triton. Each result names the path it ran
(``fused_path``).

Time bounds and the JSON
------------------------
Each part runs in its own spawned process under a timeout (:func:`run_part`); it appends its results
to a JSON-lines file as it goes, so a part that times out or crashes keeps what it measured. The
document (``bench_gpu.json``; schema :data:`SCHEMA`)::

    {"schema": "ictal-bench-gpu/1", "created_utc": str, "machine": {...}, "cuda": bool,
     "device": str, "backends_run": ["reference"] or ["reference", "fused"], "note": str,
     "tolerances": {...}, "options": {...},
     "parts": {"env"|"parity"|"checkpoint"|"speed"|"beds"|"train":
               {"status": "ok"|"skipped"|"timeout"|"error"|"crashed", "seconds": float,
                "timeout_s": float, "reason"|"error"|"exitcode": ..., <the part's keys>}}}

Without CUDA, ``backends_run`` is ``["reference"]``, parts a-c run on the reference backend only and
d-f are ``skipped`` with reason ``"no CUDA"`` (unless the hidden ``--allow-cpu`` runs them small).
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = "ictal-bench-gpu/1"
PART_ORDER: tuple[str, ...] = ("env", "parity", "checkpoint", "speed", "beds", "train")
PART_LETTERS: dict[str, str] = dict(zip(PART_ORDER, "abcdef", strict=True))
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"
STACK_NAMES: tuple[str, ...] = ("bimamba2", "gated_deltanet")

TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {"forward": 5e-3, "backward": 1e-2},
    "bf16": {"forward": 5e-2, "backward": 1e-1},
}
"""Largest relative error ``||out - ref|| / ||ref||`` against the float64 reference that passes.

float32: the fused Triton kernels multiply in TF32 (10-bit mantissa, relative rounding 2**-11 = 5e-4
per product), accumulated over chunks of 64 steps and a few layers: 5e-3 forward, twice that for the
gradients (two more passes through the same kernels). The reference backend in float32 lands near
1e-6. bf16 autocast: 8-bit mantissa (rounding 2**-9 = 2e-3) on every matmul input, compounded over
the layers: 5e-2 forward, 1e-1 backward."""

SPEED_BATCHES: tuple[int, ...] = (1, 8, 32, 128, 256)


# ---------------------------------------------------------------------------------------------- runner


def _child(target: Callable[[dict, Callable[[str, Any], None]], None], options: dict, path: str) -> None:
    """Spawned process: run one part, appending ``{key: value}`` lines and a final status line."""
    with open(path, "a", encoding="utf-8") as out:

        def record(key: str, value: Any) -> None:
            out.write(json.dumps({key: value}, default=str) + "\n")
            out.flush()

        try:
            target(options, record)
        except BaseException as exc:  # the part failed: recorded for the report, then the child exits 1
            record("__status__", "error")
            record("error", f"{type(exc).__name__}: {exc}")
            record("traceback", traceback.format_exc().splitlines()[-12:])
            raise SystemExit(1) from exc
        record("__status__", "ok")


def _read_lines(path: Path) -> dict:
    """Merge the JSON lines a part wrote; a last line cut short by a kill is dropped and said."""
    merged: dict = {}
    if not path.is_file():
        return merged
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            merged["truncated_line"] = line[:200]
            continue
        for key, value in item.items():
            if key in merged and isinstance(merged[key], list) and isinstance(value, list) and key.endswith("s"):
                merged[key] = merged[key] + value
            else:
                merged[key] = value
    return merged


def run_part(name: str, target: Callable, options: dict, timeout_s: float, work: Path) -> dict:
    """Run ``target(options, record)`` in a spawned process, killed after ``timeout_s`` seconds.

    Parameters
    ----------
    name : str
        Part name (a key of the JSON's ``parts``).
    target : callable
        A module-level function ``(options, record) -> None``; ``record(key, value)`` stores one
        JSON value (a list value under a key ending in ``s`` is appended to what that key holds).
    options : dict
        JSON-like options passed to ``target``.
    timeout_s : float
        Wall-clock limit in seconds; the process is terminated (then killed) when it is reached.
    work : Path
        Folder for the part's JSON-lines file.

    Returns
    -------
    result : dict
        What the part recorded, plus ``status`` (``ok``, ``error``, ``timeout`` or ``crashed``: the
        process died without a status, e.g. killed for memory, with its ``exitcode``), ``seconds``
        and ``timeout_s``.
    """
    path = work / f"{name}.jsonl"
    path.unlink(missing_ok=True)
    process = multiprocessing.get_context("spawn").Process(
        target=_child, args=(target, options, str(path)), name=f"bench-gpu-{name}"
    )
    start = time.monotonic()
    process.start()
    process.join(timeout_s)
    timed_out = process.is_alive()
    if timed_out:
        process.terminate()
        process.join(5.0)
        if process.is_alive():
            process.kill()
            process.join()
    result = _read_lines(path)
    status = result.pop("__status__", None)
    if timed_out:
        status = "timeout"
    elif status is None:
        status = "crashed"
        result["exitcode"] = process.exitcode
    result.update({"status": status, "seconds": round(time.monotonic() - start, 2), "timeout_s": timeout_s})
    return result


# --------------------------------------------------------------------------------------------- helpers


def cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return bool(torch.cuda.is_available())


def machine() -> dict:
    """The machine: CPU, cores, load average, Python, platform, and the GPU where there is one."""
    import torch

    from ictal.detector.machine import cpu_model

    info = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
            "python": platform.python_version(), "platform": f"{platform.system()} {platform.release()}",
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "capability": f"{props.major}.{props.minor}",
                       "memory_gib": round(props.total_memory / 2**30, 1),
                       "multiprocessors": props.multi_processor_count, "cuda_runtime": torch.version.cuda}
    return info


def package_version(distribution: str, module: str) -> dict:
    """Installed version of ``distribution`` and whether ``module`` imports (with the error if not)."""
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if importlib.util.find_spec(module) is None:
        return {"version": version, "imports": False, "detail": "not installed"}
    try:
        importlib.import_module(module)
    except Exception as exc:  # a CUDA extension fails to import in many ways; each is reported
        return {"version": version, "imports": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"version": version, "imports": True, "detail": "imports"}


def fused_available(stack: str) -> tuple[bool, str]:
    """Whether the bench can build the fused mixer of ``stack`` here, and why not.

    Needs CUDA and the upstream package (``mamba_ssm`` for bimamba2, ``fla`` for gated_deltanet)
    importing; causal-conv1d is optional for the bench (see the module docstring).
    """
    if not cuda_available():
        return False, "no CUDA"
    module = "mamba_ssm" if stack == "bimamba2" else "fla"
    status = package_version("mamba-ssm" if stack == "bimamba2" else "flash-linear-attention", module)
    if not status["imports"]:
        return False, f"{module}: {status['detail']}"
    return True, "available"


def fused_path(stack: str) -> str:
    """Which kernels the bench's fused mixer of ``stack`` runs."""
    if stack == "gated_deltanet":
        return "fla.layers.GatedDeltaNet (Triton chunked gated delta rule, Triton short convolutions)"
    if importlib.util.find_spec("causal_conv1d") is not None:
        return "mamba_ssm.Mamba2 mem-efficient path (causal-conv1d CUDA + Triton SSD)"
    return "mamba_ssm.Mamba2 use_mem_eff_path=False (no causal-conv1d: conv in PyTorch, Triton SSD and norm)"


def make_fused_mixer(stack: str, config) -> Any:
    """The upstream mixer of ``stack`` built from a :class:`~ictal.detector.config.StackConfig`.

    Raises ImportError when the package is missing. See :func:`fused_path` for the kernels it runs.
    """
    from ictal.detector.stacks.fused import fused_gated_deltanet, fused_mamba2

    if stack == "gated_deltanet":
        return fused_gated_deltanet(config)
    mixer = fused_mamba2(config)
    if importlib.util.find_spec("causal_conv1d") is None:
        mixer.use_mem_eff_path = False  # the mem-efficient path asserts causal-conv1d is installed
    return mixer


def swap_to_fused(stack_module, stack: str, config) -> int:
    """Replace every reference mixer inside ``stack_module`` by the fused one, keeping its weights.

    Parameters
    ----------
    stack_module : nn.Module
        A stack built with ``backend="reference"`` (e.g. ``model.node_stream.stack``).
    stack : {"bimamba2", "gated_deltanet"}
    config : StackConfig
        The config the stack was built from.

    Returns
    -------
    n : int
        Mixers replaced. The module's ``backend`` attribute becomes ``"fused"``.

    Raises
    ------
    RuntimeError
        If no reference mixer is found (nothing would be compared).
    """
    from ictal.detector.stacks.gated_deltanet import GatedDeltaNetMixer
    from ictal.detector.stacks.mamba2 import Mamba2Mixer

    reference_type = Mamba2Mixer if stack == "bimamba2" else GatedDeltaNetMixer
    targets = [(name, module) for name, module in stack_module.named_modules() if isinstance(module, reference_type)]
    if not targets:
        raise RuntimeError(f"no {reference_type.__name__} inside the {stack} stack: nothing to swap to fused")
    for name, module in targets:
        parent = stack_module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else stack_module
        fused = make_fused_mixer(stack, config)
        fused.load_state_dict(module.state_dict(), strict=True)
        fused.to(device=next(module.parameters()).device)
        setattr(parent, name.rsplit(".", 1)[-1], fused)
    if hasattr(stack_module, "backend"):
        stack_module.backend = "fused"
    return len(targets)


def swap_model_to_fused(model, config) -> int:
    """Swap both streams of a detector model (built with ``backend="reference"``) to fused mixers."""
    n = swap_to_fused(model.node_stream.stack, config.stack, config.node_stack)
    n += swap_to_fused(model.edge_stream.stack, config.stack, config.edge_stack)
    return n


def load_preset(preset: str, stack: str, **changes):
    """The :class:`~ictal.detector.config.ModelConfig` of ``configs/model/<preset>_<stack>.yaml`` with ``changes``."""
    import yaml

    from ictal.detector.config import ModelConfig

    path = CONFIGS / f"{preset}_{stack}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return ModelConfig.model_validate({**data, **changes})


def relative_error(out, ref) -> float:
    """``||out - ref|| / ||ref||`` in float64 (Frobenius norms); ``inf`` for a non-finite ``out``."""
    import torch

    out64, ref64 = out.detach().double(), ref.detach().double()
    if not torch.isfinite(out64).all():
        return float("inf")
    denominator = torch.linalg.vector_norm(ref64).item()
    return torch.linalg.vector_norm(out64 - ref64).item() / max(denominator, 1e-300)


# ------------------------------------------------------------------------------------------- part (a)


def part_env(options: dict, record: Callable[[str, Any], None]) -> None:
    """(a) Device, versions, and which fused backends import and run."""
    import torch

    from ictal.detector.backends import probe_fused_kernels
    from ictal.detector.config import StackConfig
    from ictal.detector.stacks import build_stack, resolve_backend

    record("machine", machine())
    record("versions", {
        "torch": {"version": torch.__version__, "imports": True, "detail": f"CUDA {torch.version.cuda}"},
        "triton": package_version("triton", "triton"),
        "mamba_ssm": package_version("mamba-ssm", "mamba_ssm"),
        "causal_conv1d": package_version("causal-conv1d", "causal_conv1d"),
        "fla": package_version("flash-linear-attention", "fla"),
        "fla_core": package_version("fla-core", "fla"),
    })
    record("probe_fused_kernels", [vars(s) for s in probe_fused_kernels()])
    project, bench = {}, {}
    config = StackConfig(n_layers=1, d_model=32, d_state=16, n_heads=2, expand=2, chunk_size=64)
    for stack in STACK_NAMES:
        try:
            project[stack] = {"resolve_backend_fused": resolve_backend(stack, "fused")}
        except RuntimeError as exc:
            project[stack] = {"resolve_backend_fused": "refused", "detail": str(exc)}
        ok, why = fused_available(stack)
        if not ok:
            bench[stack] = {"runs": False, "detail": why}
            continue
        try:
            module = build_stack(stack, config, "reference").cuda()
            swap_to_fused(module, stack, config)
            y = module(torch.randn(2, 96, 32, device="cuda"))
            torch.cuda.synchronize()
            bench[stack] = {"runs": bool(torch.isfinite(y).all()), "detail": fused_path(stack)}
        except Exception as exc:  # recorded: the parity and speed parts then run the reference only
            bench[stack] = {"runs": False, "detail": f"{type(exc).__name__}: {exc}"}
    record("project_fused_backend", project)
    record("bench_fused_backend", bench)


# ------------------------------------------------------------------------------------------- part (b)


def parity_cases(quick: bool) -> list[dict]:
    """Shapes of the parity part: the presets' node and edge streams at batch 1, and odd lengths.

    Returns
    -------
    cases : list of dict
        ``{"label", "preset", "stream", "n", "length"}``; the stack config is the preset's
        ``node_stack`` or ``edge_stack``. Node stream: N = 19 electrodes, L = n_times / 16 = 960;
        edge stream: N = 171 pairs, L = 960 / edge_pool.
    """
    if quick:
        return [
            {"label": "tiny node, 2 seq, L 192", "preset": "tiny", "stream": "node", "n": 2, "length": 192},
            {"label": "tiny edge, odd L 37", "preset": "tiny", "stream": "edge", "n": 3, "length": 37},
        ]
    cases = []
    for preset in ("tiny", "full"):
        config = load_preset(preset, "bimamba2")
        steps = config.n_times // config.downsample
        cases.append({"label": f"{preset} node (19 x {steps})", "preset": preset, "stream": "node", "n": 19,
                      "length": steps})
        cases.append({"label": f"{preset} edge (171 x {steps // config.edge_pool})", "preset": preset,
                      "stream": "edge", "n": 171, "length": steps // config.edge_pool})
    for n, length in ((3, 257), (2, 1001), (5, 37)):
        cases.append({"label": f"full node, odd L {length}", "preset": "full", "stream": "node", "n": n,
                      "length": length})
    return cases


def _grads(module, x) -> Any:
    import torch

    named = sorted((k, p.grad) for k, p in module.named_parameters() if p.grad is not None)
    return torch.cat([x.grad.reshape(-1).double()] + [g.reshape(-1).double() for _, g in named])


def part_parity(options: dict, record: Callable[[str, Any], None]) -> None:
    """(b) Fused and reference stacks against the float64 reference: forward and backward, fp32 and bf16."""
    import torch

    from ictal.detector.stacks import build_stack

    device = "cuda" if cuda_available() else "cpu"
    seed = int(options.get("seed") or torch.seed() % 2**31)
    record("seed", seed)
    record("device", device)
    record("tolerances", TOLERANCES)
    torch.manual_seed(seed)
    for case in parity_cases(bool(options.get("quick"))):
        for stack in STACK_NAMES:
            model_config = load_preset(case["preset"], stack)
            config = model_config.node_stack if case["stream"] == "node" else model_config.edge_stack
            reference = build_stack(stack, config, "reference").to(device).train()
            x = torch.randn(case["n"], case["length"], config.d_model, device=device)
            g = torch.randn_like(x)
            truth_module = copy.deepcopy(reference).double()
            x64 = x.double().requires_grad_()
            out64 = truth_module(x64)
            (out64 * g.double()).sum().backward()
            grads64 = _grads(truth_module, x64)
            backends = [("reference", reference)]
            ok, why = fused_available(stack)
            if ok:
                fused = copy.deepcopy(reference)
                try:
                    swap_to_fused(fused, stack, config)
                    backends.append(("fused", fused))
                except Exception as exc:  # recorded as a result row; the reference still runs
                    record("rows", [{**case, "stack": stack, "backend": "fused", "error": f"{type(exc).__name__}: {exc}"}])
            for backend, module in backends:
                for dtype in ("float32", "bf16"):
                    row = {**case, "stack": stack, "backend": backend, "dtype": dtype, "d_model": config.d_model}
                    if backend == "fused":
                        row["fused_path"] = fused_path(stack)
                    try:
                        module.zero_grad(set_to_none=True)
                        xi = x.clone().requires_grad_()
                        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
                            out = module(xi)
                        (out.float() * g).sum().backward()
                        row["forward_rel_err"] = relative_error(out, out64)
                        row["backward_rel_err"] = relative_error(_grads(module, xi), grads64)
                        tol = TOLERANCES[dtype]
                        row["pass"] = bool(row["forward_rel_err"] <= tol["forward"]
                                           and row["backward_rel_err"] <= tol["backward"])
                    except Exception as exc:  # a kernel that fails on this shape/dtype is a finding
                        row["error"] = f"{type(exc).__name__}: {exc}"
                        row["pass"] = False
                    record("rows", [row])


# ------------------------------------------------------------------------------------------- part (d)


def _directions() -> tuple[list[str], str]:
    from ictal.detector.config import ModelConfig

    if "direction" in ModelConfig.model_fields:
        return ["bidirectional", "causal"], "ModelConfig.direction exists: bidirectional and causal timed"
    return ["bidirectional"], "ModelConfig has no field 'direction': causal mode not timed (not in this build)"


def time_forward(model, x, autocast: bool, warmup: int, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` forward passes after ``warmup`` (CUDA events on CUDA, else wall time)."""
    import torch

    cuda = x.device.type == "cuda"
    times = []
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        for i in range(warmup + repeats):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end)
            else:
                t0 = time.perf_counter()
                model(x)
                elapsed = 1e3 * (time.perf_counter() - t0)
            if i >= warmup:
                times.append(elapsed)
    return times


def part_speed(options: dict, record: Callable[[str, Any], None]) -> None:
    """(d) Windows/s, latency and peak memory per preset, stack, backend, direction, precision, batch."""
    import resource

    import torch

    from ictal.detector.model import build_model, count_parameters

    cuda = cuda_available()
    device = torch.device("cuda" if cuda else "cpu")
    directions, note = _directions()
    record("directions_note", note)
    record("timer", "CUDA events" if cuda else "time.perf_counter (no CUDA)")
    presets = options.get("presets") or ["tiny", "full"]
    batches = options.get("batches") or list(SPEED_BATCHES)
    warmup, repeats = int(options.get("warmup", 2)), int(options.get("repeats", 5))
    n_times = options.get("n_times")
    for preset in presets:
        for stack in STACK_NAMES:
            backends = ["reference"] + (["fused"] if fused_available(stack)[0] else [])
            for backend in reversed(backends):  # fused first: the figures that matter most
                for direction in directions:
                    changes = {"backend": "reference"}
                    if direction != "bidirectional":
                        changes["direction"] = direction
                    if n_times:
                        changes["n_times"] = int(n_times)
                    config = load_preset(preset, stack, **changes)
                    torch.manual_seed(0)
                    try:
                        model = build_model(config)
                        if backend == "fused":
                            swap_model_to_fused(model, config)
                        model.to(device).eval()
                    except Exception as exc:  # this model cannot be built here: a row says so, the rest run
                        record("rows", [{"preset": preset, "stack": stack, "backend": backend, "direction": direction,
                                         "precision": "", "batch": 0, "error": f"{type(exc).__name__}: {exc}"}])
                        continue
                    for precision in ("bf16", "float32"):
                        for batch in batches:
                            row = {"preset": preset, "stack": stack, "backend": backend, "direction": direction,
                                   "precision": precision, "batch": batch, "n_times": config.n_times,
                                   "params": count_parameters(model)}
                            try:
                                if cuda:
                                    torch.cuda.empty_cache()
                                    torch.cuda.reset_peak_memory_stats()
                                x = torch.randn(batch, config.n_chans, config.n_times, device=device)
                                ms = time_forward(model, x, precision == "bf16", warmup, repeats)
                                median = statistics.median(ms)
                                row.update({"latency_ms": median, "latency_min_ms": min(ms),
                                            "windows_per_s": batch / (median / 1e3)})
                                row["peak_mib"] = (torch.cuda.max_memory_allocated() / 2**20 if cuda else
                                                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
                                del x
                            except torch.cuda.OutOfMemoryError as exc:
                                row["oom"] = str(exc).splitlines()[0]
                                record("rows", [row])
                                break  # larger batches would not fit either
                            except Exception as exc:  # a kernel failing on this model is this row's finding
                                row["error"] = f"{type(exc).__name__}: {exc}"
                                record("rows", [row])
                                break
                            record("rows", [row])
                    del model


# -------------------------------------------------------------------------------------------- reports


def markdown(document: dict) -> str:
    """The markdown report of a ``bench_gpu.json`` document: one table per part that has rows."""
    lines = [f"# ictal bench gpu ({document['created_utc']})", ""]
    m = document["machine"]
    gpu = m.get("gpu")
    lines.append(f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, load average "
                 f"{' '.join(f'{v:.1f}' for v in m['load_average'])}; Python {m['python']}, torch {m['torch']}; "
                 + (f"GPU {gpu['name']} ({gpu['memory_gib']} GiB, CUDA {gpu['cuda_runtime']})" if gpu else "no CUDA"))
    lines += ["", f"Backends run: {', '.join(document['backends_run'])}. {document['note']}", "",
              "| part | status | seconds | detail |", "|---|---|---|---|"]
    for name, part in document["parts"].items():
        detail = part.get("reason") or part.get("error") or ""
        if part["status"] == "crashed":
            detail = f"exit code {part.get('exitcode')}"
        lines.append(f"| ({PART_LETTERS[name]}) {name} | {part['status']} | {part.get('seconds', 0):.1f} | {detail} |")
    env = document["parts"].get("env", {})
    if env.get("versions"):
        lines += ["", "## (a) versions and fused backends", "", "| package | version | imports | detail |",
                  "|---|---|---|---|"]
        for package, v in env["versions"].items():
            lines.append(f"| {package} | {v['version']} | {v['imports']} | {v['detail']} |")
        for stack, v in env.get("bench_fused_backend", {}).items():
            lines.append(f"| fused {stack} (bench) | | {v['runs']} | {v['detail']} |")
    parity = document["parts"].get("parity", {})
    if parity.get("rows"):
        tol = ", ".join(f"{k}: fwd {v['forward']:g} / bwd {v['backward']:g}" for k, v in TOLERANCES.items())
        lines += ["", f"## (b) parity against the float64 reference (seed {parity.get('seed')}; tolerances {tol})",
                  "", "| shape | stack | backend | dtype | forward rel err | backward rel err | pass |",
                  "|---|---|---|---|---|---|---|"]
        for r in parity["rows"]:
            if "error" in r:
                lines.append(f"| {r['label']} | {r['stack']} | {r['backend']} | {r.get('dtype', '')} | "
                             f"{r['error']} | | False |")
            else:
                lines.append(f"| {r['label']} | {r['stack']} | {r['backend']} | {r['dtype']} | "
                             f"{r['forward_rel_err']:.2e} | {r['backward_rel_err']:.2e} | {r['pass']} |")
    checkpoint = document["parts"].get("checkpoint", {})
    if checkpoint.get("runs"):
        lines += ["", f"## (c) demo checkpoint on real windows ({checkpoint.get('n_windows')} windows; "
                  "differences to reference float32)", "",
                  "| backend | dtype | device | mean p | max abs diff | mean abs diff |", "|---|---|---|---|---|---|"]
        for r in checkpoint["runs"]:
            lines.append(f"| {r['backend']} | {r['dtype']} | {r['device']} | {r.get('mean_probability', float('nan')):.4f} | "
                         f"{r.get('max_abs_diff', float('nan')):.2e} | {r.get('mean_abs_diff', float('nan')):.2e} |")
    speed = document["parts"].get("speed", {})
    if speed.get("rows"):
        lines += ["", f"## (d) model speed ({speed.get('timer')}; {speed.get('directions_note')})", "",
                  "| preset | stack | backend | direction | precision | batch | latency ms | windows/s | peak MiB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in speed["rows"]:
            figures = (f"{r['latency_ms']:.2f} | {r['windows_per_s']:.1f} | {r['peak_mib']:.0f}" if "latency_ms" in r
                       else "OOM | | " if "oom" in r else f"{r.get('error', '')} | | ")
            lines.append(f"| {r['preset']} | {r['stack']} | {r['backend']} | {r['direction']} | {r['precision']} | "
                         f"{r['batch']} | {figures} |")
    beds = document["parts"].get("beds", {})
    if beds.get("rows"):
        lines += ["", f"## (e) daemon scoring loop, hop {beds.get('hop_s')} s ({beds.get('model')})", "",
                  "| beds | seconds | windows due | scored | skipped | real time | p50 ms | p99 ms | model ms/window |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in beds["rows"]:
            lines.append(f"| {r['beds']} | {r['seconds']:.0f} | {r['due']:.0f} | {r['scored']} | {r['skipped']} | "
                         f"{r['real_time']} | {r.get('p50_ms', float('nan')):.0f} | {r.get('p99_ms', float('nan')):.0f} | "
                         f"{r['model_ms_per_window']:.1f} |")
    train = document["parts"].get("train", {})
    if "windows_per_s" in train:
        lines += ["", "## (f) training steps", "",
                  f"{train['steps']} steps of {train['preset']} {train['stack']} ({train['backend']}, "
                  f"{train['precision']}, batch {train['batch_size']}): **{train['windows_per_s']:.1f} windows/s** "
                  f"({train['seconds_per_step']:.3f} s/step median; peak {train.get('peak_mib', float('nan')):.0f} MiB)"]
    return "\n".join(lines) + "\n"


def assemble(parts: dict, options: dict) -> dict:
    """The JSON document from the parts' results (see the module docstring)."""
    cuda = cuda_available()
    fused_ran = any(v.get("runs") for v in parts.get("env", {}).get("bench_fused_backend", {}).values())
    if cuda:
        note = "CUDA present: fused backends run where they import (see env.bench_fused_backend)."
    elif options.get("allow_cpu"):
        note = ("No CUDA: parts a-c ran with the reference backend only; d-f ran small on the CPU "
                "(--allow-cpu), which exercises their code and measures nothing of a GPU.")
    else:
        note = "No CUDA: parts a-c ran with the reference backend only; d-f need CUDA (skipped)."
    return {"schema": SCHEMA, "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "cuda": cuda,
            "device": machine().get("gpu", {}).get("name", "cpu") if cuda else "cpu",
            "backends_run": ["reference", "fused"] if fused_ran else ["reference"], "note": note,
            "tolerances": TOLERANCES, "options": options, "parts": parts}
