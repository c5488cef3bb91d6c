"""Prepare the folder a GPU machine needs to run ``ictal bench gpu``, and print the one command to run there.

Run it here (the development machine, with network), from the repository whose working tree travels::

    PYTHONPATH=$PWD .venv/bin/python scripts/prepare_gpu_run.py            # writes ./.gpu-run

It writes ``<dest>`` (default ``.gpu-run`` at the repository root, added to git's info/exclude so that
it travels only when carried) holding:

- ``wheels/``: what the GPU machine lacks (it has torch, triton, numpy, scipy, torch-geometric,
  safetensors, pyyaml, prometheus-client, einops, transformers, huggingface-hub; no registry):

  * ``flash-linear-attention`` and ``fla-core``: pure Python + Triton wheels, used as published.
  * ``mamba-ssm``: published only as an sdist whose build compiles CUDA extensions. Built here as a
    ``py3-none-any`` wheel with ``MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE pip wheel
    --no-deps --no-build-isolation`` (the build imports torch, hence no isolation; FORCE_BUILD stops
    setup.py from fetching a prebuilt CUDA wheel from GitHub). Such a wheel has no
    ``selective_scan_cuda``, and ``mamba_ssm/__init__.py`` imports it unconditionally (through
    ``selective_scan_interface``), so ``from mamba_ssm import Mamba2`` would fail. The script
    rewrites that ``__init__.py`` so that each of its imports that fails leaves its name unset (the
    Mamba1 selective scan, Mamba3's TileLang kernels), and repacks the wheel with build tag ``1``
    and a fresh RECORD. Mamba2's own path is Triton (SSD scan, gated RMS norm); without
    causal-conv1d (a CUDA extension, not carried) it must run with ``use_mem_eff_path=False``,
    which the bench does (:func:`ictal.detector.bench_gpu.make_fused_mixer`).
  * the project's own dependencies missing there: pydantic (+ pydantic-core for CPython 3.12,
    annotated-types, typing-inspection, typing-extensions), edfio, pyzmq; the versions installed in
    this venv (the combination the tests pass with). pylsl and timescoring are not imported by the
    bench and are not carried.
- ``data/``: a handful of real EDF files of ``../shared/data`` in its layout (the windows of part c,
  the beds' recording of part e, seizure and background recordings for part f), with the
  manifest and the data README (attribution).
- ``cache/``: the training cache of those recordings (``training.cache.build_cache``) for part f.

Nothing is installed into any environment. Re-running replaces ``<dest>``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MAMBA_SSM_VERSION = "2.3.2.post1"
FLA_VERSION = "0.6.0"
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
MISSING_ON_DEVICE = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions",
                     "edfio", "pyzmq")
"""Project dependencies absent from the GPU machine's image (its package list, KINDS.md) that the bench
imports. pylsl (whose wheel does not bundle liblsl) and timescoring are not on its path: not carried."""
DATA_FILES = (
    "labelled/hms_1628180742.edf", "labelled/hms_1000913311.edf",
    "labelled/iiic_01.edf", "labelled/iiic_02.edf", "labelled/iiic_03.edf", "labelled/iiic_22.edf",
    "labelled/iiic_04.edf", "labelled/iiic_05.edf", "labelled/grond_lpd_01.edf", "labelled/grond_gpd_01.edf",
    "background/eegmat/Subject00_1.edf", "background/eegmat/Subject00_2.edf",
)
"""Real recordings carried: every file of part c (``training.bench_gpu.WINDOW_FILES``) and e
(``BEDS_FILE``), and for part f four seizure recordings, hard negatives and resting EEG."""
CARRY_LIMIT_MIB = 48.0
"""The working tree and every carried path travel together within 64 MiB; this leaves 16 for the tree."""

MAMBA_INIT = '''__version__ = "{version}"

# Rewritten by ictal's scripts/prepare_gpu_run.py for a wheel built with MAMBA_SKIP_CUDA_BUILD=TRUE:
# the upstream file imports selective_scan_cuda (a CUDA extension not built) through the first line
# below, which made every import of the package fail. Each import that fails now leaves its names
# unset; Mamba2 (Triton) imports without the extensions.
try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn, mamba_inner_fn
except ImportError:
    pass
try:
    from mamba_ssm.modules.mamba_simple import Mamba
except ImportError:
    pass
from mamba_ssm.modules.mamba2 import Mamba2
try:
    from mamba_ssm.modules.mamba3 import Mamba3
except ImportError:
    pass
try:
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
except ImportError:
    pass
'''


def _pip(*args: str, env: dict | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def patch_mamba_wheel(wheel: Path, out_dir: Path) -> Path:
    """Repack a MAMBA_SKIP_CUDA_BUILD wheel of mamba-ssm with an ``__init__`` that imports without CUDA extensions.

    Parameters
    ----------
    wheel : Path
        ``mamba_ssm-<version>-py3-none-any.whl`` built by ``pip wheel``.
    out_dir : Path
        Where the patched wheel goes.

    Returns
    -------
    patched : Path
        ``mamba_ssm-<version>-1-py3-none-any.whl`` (build tag 1), RECORD rewritten.

    Raises
    ------
    ValueError
        If the wheel holds no ``mamba_ssm/__init__.py`` or no ``*.dist-info/RECORD``, or its
        ``__init__.py`` does not import ``Mamba2`` (an upstream layout this patch does not know).
    """
    name, version, *_ = wheel.name.split("-")
    with zipfile.ZipFile(wheel) as source:
        files = {info.filename: source.read(info.filename) for info in source.infolist() if not info.is_dir()}
    records = [f for f in files if f.endswith(".dist-info/RECORD")]
    if "mamba_ssm/__init__.py" not in files or len(records) != 1:
        raise ValueError(f"{wheel}: expected mamba_ssm/__init__.py and one RECORD (found {sorted(files)[:8]} ...)")
    if b"from mamba_ssm.modules.mamba2 import Mamba2" not in files["mamba_ssm/__init__.py"]:
        raise ValueError(f"{wheel}: mamba_ssm/__init__.py does not import Mamba2 as expected; check the upstream file")
    files["mamba_ssm/__init__.py"] = MAMBA_INIT.format(version=version).encode()
    lines = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items() if path != records[0]]
    files[records[0]] = ("\n".join(lines + [f"{records[0]},,"]) + "\n").encode()
    patched = out_dir / f"{name}-{version}-1-py3-none-any.whl"
    with zipfile.ZipFile(patched, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for path, data in files.items():
            target.writestr(path, data)
    return patched


def fetch_wheels(wheels: Path) -> list[Path]:
    """Download and build every wheel of ``wheels/`` (see the module docstring)."""
    wheels.mkdir(parents=True)
    pinned = [f"{name}=={importlib.metadata.version(name)}" for name in MISSING_ON_DEVICE]
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    _pip("download", "--no-deps", "--only-binary=:all:", "--python-version", DEVICE_PYTHON, "--implementation", "cp",
         *platform_args, "-d", str(wheels), *pinned,
         f"flash-linear-attention=={FLA_VERSION}", f"fla-core=={FLA_VERSION}")
    with tempfile.TemporaryDirectory(prefix="mamba-wheel-") as tmp:
        env = {**os.environ, "MAMBA_SKIP_CUDA_BUILD": "TRUE", "MAMBA_FORCE_BUILD": "TRUE"}
        _pip("wheel", "--no-deps", "--no-build-isolation", "-w", tmp, f"mamba-ssm=={MAMBA_SSM_VERSION}", env=env)
        built = list(Path(tmp).glob("mamba_ssm-*.whl"))
        if len(built) != 1 or not built[0].name.endswith("py3-none-any.whl"):
            raise RuntimeError(f"pip wheel of mamba-ssm gave {built} (expected one py3-none-any wheel)")
        patch_mamba_wheel(built[0], wheels)
    return sorted(wheels.glob("*.whl"))


def copy_data(source: Path, data: Path) -> list[Path]:
    """Copy :data:`DATA_FILES`, the manifest rows of the copied files and the data README.

    Raises
    ------
    FileNotFoundError
        If ``source`` lacks one of the files.
    """
    missing = [rel for rel in DATA_FILES if not (source / rel).is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: missing {missing} (expected the layout of ../shared/data)")
    copied = []
    for rel in DATA_FILES:
        target = data / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
        copied.append(target)
    with open(source / "labelled" / "manifest.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row["file"] in DATA_FILES]
        fields = reader.fieldnames
    with open(data / "labelled" / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    shutil.copyfile(source / "README.md", data / "README.md")
    return copied


def build_training_cache(data: Path, cache: Path) -> int:
    """The training cache of the copied recordings (what part f trains on); returns the recordings cached."""
    sys.path.insert(0, str(REPO_ROOT))
    from ictal.detector.config import FrontendConfig
    from ictal.training.cache import build_cache
    from ictal.training.config import DataConfig
    from ictal.training.datasets import discover

    index = discover(DataConfig(format="rated_windows", root=data))
    summary = build_cache(index.recordings, cache, FrontendConfig(), workers=1, progress=False, log=lambda text: None)
    return len(summary.entries)


def exclude_from_git(dest: Path) -> None:
    """Add ``/<dest name>/`` to git's info/exclude of this checkout (so it travels only when carried)."""
    try:
        path = subprocess.run(["git", "rev-parse", "--git-path", "info/exclude"], cwd=REPO_ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"not a git checkout ({exc}); add {dest.name}/ to your ignore rules yourself", file=sys.stderr)
        return
    exclude = (REPO_ROOT / path).resolve()
    entry = f"/{dest.relative_to(REPO_ROOT).as_posix()}/"
    text = exclude.read_text(encoding="utf-8") if exclude.is_file() else ""
    if entry not in text.splitlines():
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + entry + "\n", encoding="utf-8")


DEVICE_TIMEOUTS_S = {"env": 90, "parity": 90, "checkpoint": 60, "speed": 150, "beds": 100, "train": 90}
"""Per-part limits of the device command: within 360 s of parts, the most for the speed table."""


def device_command(dest: str, budget_s: int) -> str:
    """The one command to run on the GPU machine (from the repository root, ``dest`` carried)."""
    limits = " ".join(f"--timeout {name}={s}" for name, s in DEVICE_TIMEOUTS_S.items())
    return (f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "
            f"{dest}/wheels/*.whl && export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 && "
            f"python3 -m ictal bench gpu --data {dest}/data --cache {dest}/cache --out $OUT "
            f"--budget-s {budget_s} --speed-warmup 1 --speed-repeats 3 {limits} --json")


def main(argv: list[str] | None = None) -> int:
    """Build ``--dest`` and print its size and the device command; returns 0."""
    default_data = os.environ.get("ICTAL_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=REPO_ROOT / ".gpu-run",
                        help="Folder to write, inside the repository (default: .gpu-run).")
    parser.add_argument("--data", type=Path, default=Path(default_data), help="The shared data folder.")
    parser.add_argument("--no-wheels", action="store_true", help="Skip the wheels (data and cache only).")
    parser.add_argument("--budget-s", type=int, default=360,
                        help="--budget-s of the device command (default 360: 6 of the 15 device minutes).")
    args = parser.parse_args(argv)
    dest = args.dest.resolve()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if dest.is_relative_to(REPO_ROOT):
        exclude_from_git(dest)
    if not args.no_wheels:
        for wheel in fetch_wheels(dest / "wheels"):
            print(f"wheel {wheel.name} ({wheel.stat().st_size / 2**20:.1f} MiB)")
    copied = copy_data(args.data, dest / "data")
    n_cached = build_training_cache(dest / "data", dest / "cache")
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 2**20
    print(f"{dest}: {len(copied)} EDF files, cache of {n_cached} recordings, {size:.1f} MiB in all")
    if size > CARRY_LIMIT_MIB:
        print(f"{dest} is {size:.1f} MiB: over {CARRY_LIMIT_MIB:g} MiB, the tree and it may not travel (64 MiB)",
              file=sys.stderr)
        return 1
    name = dest.relative_to(REPO_ROOT).as_posix() if dest.is_relative_to(REPO_ROOT) else str(dest)
    print("\nOn the GPU machine (device tool: carry [\"" + name + "\"], timeout_s 450), from the repository root:\n")
    print(device_command(name, args.budget_s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
