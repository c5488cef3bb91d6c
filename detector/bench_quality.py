"""Rail (clipping) detection: its validation on real EEG and its cost per 60 s window.

``python -m ictal.detector.bench_quality [--scan] [--cost] [--data DIR] [--baseline FILE]`` prints tables
with units and the machine; asserts nothing (both tables when neither flag is given).

Scan (``--scan``)
-----------------
Every EDF under ``DIR`` (default ``../shared/data``: the labelled ICU segments, healthy EEGMAT, the
CHB-MIT bipolar clips and the quirks), every EEG signal in uV or mV (EKG/ECG, Effort and ``A2-A1``
left out), at its own rate in float32 as a source delivers it. Each signal is cut into 4 s pieces (the
daemon's hop; :func:`ictal.detector.quality.rail_stats` runs once per hop) and judged, as
``streaming.pipeline`` does, on every window of 8 to 60 s of pieces ending on a piece boundary
(:func:`ictal.detector.quality.rail_summary`; clipped when the rail fraction exceeds ``saturation_fraction``).
Variants of the same samples:

- ``real``: as recorded. Every channel-window found clipped is a false detection, except in
  ``neonatal_bipolar_8ch.edf``, which really is clipped by its amplifier at +/-1000 uV (listed apart).
- ``digitised 0.5 uV``: rounded to a 0.5 uV step (the coarsest EDF step of the field): quantisation
  must not look like a rail.
- ``clip +/-L uV``: ``np.clip(x, -L, L)`` for L = 50, 100, 150, 500. Channel-windows are counted by
  the share of their samples at or beyond L before clipping: above 1 % (should be found), in (0, 1 %]
  (either is right) and 0 (a detection is false).

Cost (``--cost``)
-----------------
CPU time (``time.process_time``) of :func:`rail_stats` on the 15 pieces of 4 s of a 60 s window of
19 channels plus one :func:`rail_summary` of them, on real EEG (iiic_01 tiled to 60 s) and on the
same EEG clipped at +/-100 uV, at 200 and 500 Hz, float32; the median of ``--repeats`` runs. With
``--baseline FILE`` (another ``detector/quality.py``, e.g. ``git show HEAD~1:detector/quality.py``)
the same figures for it, for a before/after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from ictal.detector import quality
from ictal.detector.machine import cpu_model

PIECE_S = 4.0
"""Seconds per raw piece: the daemon's hop (``configs/daemon.yaml``), one ``rail_stats`` call each."""

MIN_WINDOW_S = 8.0
"""Shortest window judged: below the daemon's ``min_history_s`` (10 s), so its padded windows are covered."""

WINDOW_S = 60.0
"""The detector's window."""

REALLY_CLIPPED = "neonatal_bipolar_8ch.edf"
"""The one recording of ../shared/data whose amplifier clipped (rails at +/-1000 uV)."""

LEFT_OUT = ("EKG", "ECG", "EFFORT", "A2-A1")


def eeg_signals(path: Path) -> tuple[np.ndarray, float]:
    """The EEG signals of an EDF in uV, float32, shape (n_signals, n_samples), and their rate (Hz).

    Raises
    ------
    ValueError
        If the file has no EEG signal in uV or mV.
    """
    import edfio

    edf = edfio.read_edf(path)
    picked = [s for s in edf.signals
              if s.physical_dimension.strip().lower() in ("uv", "mv")
              and not any(k in s.label.upper() for k in LEFT_OUT)]
    if not picked:
        raise ValueError(f"{path}: no EEG signal in uV or mV (found: {[s.label for s in edf.signals]})")
    fs = picked[0].sampling_frequency
    picked = [s for s in picked if s.sampling_frequency == fs]
    scale = [1000.0 if s.physical_dimension.strip().lower() == "mv" else 1.0 for s in picked]
    return np.stack([s.data * k for s, k in zip(picked, scale, strict=True)]).astype(np.float32), float(fs)


def judge(x: np.ndarray, fs: float, module: ModuleType = quality) -> list[np.ndarray]:
    """Clipped or not, per channel, for every window of 8-60 s of 4 s pieces ending on a piece boundary.

    Parameters
    ----------
    x : ndarray of float32, shape (n_channels, n_samples)
        Raw uV.
    fs : float
        Rate in Hz.

    Returns
    -------
    verdicts : list of (ndarray of bool, ndarray of float64, ndarray of float64, int, int)
        Per window: whether each channel is clipped, its rail fraction, the span of its raw samples
        (uV; max - min), and the window's first and last sample (each array of shape (n_channels,)).
    """
    piece = int(PIECE_S * fs)
    stats = [module.rail_stats(x[:, i:i + piece]) for i in range(0, x.shape[1], piece)]
    per_window = int(WINDOW_S / PIECE_S)
    first = int(np.ceil(MIN_WINDOW_S / PIECE_S))
    out = []
    for k in range(min(first, len(stats)), len(stats) + 1):
        lo = max(0, k - per_window)
        summary = module.rail_summary(stats[lo:k])
        out.append((summary.fraction > quality.DEFAULT_THRESHOLDS.saturation_fraction, summary.fraction,
                    summary.high - summary.low, lo * piece, min(k * piece, x.shape[1])))
    return out


def scan(data: Path) -> None:
    """Print the validation table (see the module docstring)."""
    files = sorted(data.rglob("*.edf"))
    levels = (50.0, 100.0, 150.0, 500.0)
    # variant -> [channel-windows, detections, (n, det) clipped > 1 %, (n, det) in (0, 1 %], (n, det) 0]
    rows: dict[str, list[int]] = {}
    largest: dict[str, float] = {}  # variant -> largest rail fraction of an unclipped channel-window
    missed: dict[str, list[int]] = {}  # variant -> missed > 1 % ones: [constant, span < rail_min_range_uv]
    really = [0, 0, 0, 0]  # channel-windows, found, of them with > 1 % at the rails, found of those
    n_files = 0
    for path in files:
        try:
            x, fs = eeg_signals(path)
        except ValueError:
            continue
        n_files += 1
        variants = [("real", x, None), ("digitised 0.5 uV", np.round(x / 0.5).astype(np.float32) * 0.5, None)]
        variants += [(f"clip +/-{lv:.0f} uV", np.clip(x, -lv, lv), lv) for lv in levels]
        for name, y, level in variants:
            row = rows.setdefault(name, [0] * 8)
            for found, fraction, span, a, b in judge(y, fs):
                if path.name == REALLY_CLIPPED and name != "real":
                    continue  # its amplifier clipped at +/-1000 uV already: counted apart, as recorded
                if path.name == REALLY_CLIPPED:
                    share = (np.abs(x[:, a:b]) >= 999.99).mean(axis=1)
                    really[0] += found.size
                    really[1] += int(found.sum())
                    really[2] += int((share > 0.01).sum())
                    really[3] += int((found & (share > 0.01)).sum())
                    continue
                row[0] += found.size
                row[1] += int(found.sum())
                share = np.zeros(found.size) if level is None else (np.abs(x[:, a:b]) >= level).mean(axis=1)
                for j, m in enumerate((share > 0.01, (share > 0) & (share <= 0.01), share == 0)):
                    row[2 + 2 * j] += int(m.sum())
                    row[3 + 2 * j] += int((found & m).sum())
                largest[name] = max(largest.get(name, 0.0), float(fraction[share == 0].max(initial=0.0)))
                miss = (share > 0.01) & ~found
                counts = missed.setdefault(name, [0, 0, 0])
                counts[0] += int((miss & (span == 0)).sum())
                counts[1] += int((miss & (span > 0) & (span < quality.DEFAULT_THRESHOLDS.rail_min_range_uv)).sum())
                counts[2] += int((miss & (span >= quality.DEFAULT_THRESHOLDS.rail_min_range_uv)).sum())
    print(f"rail detection on {n_files} real EDFs under {data} (windows of {MIN_WINDOW_S:.0f}-{WINDOW_S:.0f} s "
          f"of {PIECE_S:.0f} s pieces)")
    print(f"{'variant':<18} {'ch-windows':>10} {'found':>7} | {'>1% clipped: n':>15} {'found':>7} | "
          f"{'(0,1%]: n':>10} {'found':>7} | {'unclipped: n':>12} {'false':>6}")
    for name, r in rows.items():
        print(f"{name:<18} {r[0]:>10} {r[1]:>7} | {r[2]:>15} {r[3]:>7} | {r[4]:>10} {r[5]:>7} | {r[6]:>12} {r[7]:>6}")
    print(f"largest rail fraction of an unclipped channel-window (threshold "
          f"{100 * quality.DEFAULT_THRESHOLDS.saturation_fraction:.1f} %): "
          + ", ".join(f"{name} {100 * v:.3f} %" for name, v in largest.items()))
    print(f"> 1 % clipped but not found: pinned on the rail all window (constant: the flat check's), pinned "
          f"with < {quality.DEFAULT_THRESHOLDS.rail_min_range_uv:.0f} uV excursions, other: "
          + ", ".join(f"{name} {c[0]}/{c[1]}/{c[2]}" for name, c in missed.items() if name.startswith("clip")))
    print(f"{REALLY_CLIPPED} (amplifier rails at +/-1000 uV): {really[0]} channel-windows, {really[1]} found; "
          f"{really[2]} with > 1 % of samples at the rails, {really[3]} of them found")


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_quality", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"--baseline {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cost(data: Path, repeats: int, baseline: Path | None) -> None:
    """Print the cost table (see the module docstring)."""
    from scipy.signal import resample_poly

    x200, _ = eeg_signals(data / "labelled" / "iiic_01.edf")
    x200 = x200[:19]
    x200 = np.tile(x200, (1, int(np.ceil(60 * 200 / x200.shape[1]))))[:, : 60 * 200]
    x500 = resample_poly(x200, 5, 2, axis=1).astype(np.float32)
    modules = [("this", quality)] + ([("baseline", _load(baseline))] if baseline else [])
    print(f"rail_stats x 15 pieces of 4 s + rail_summary, per 60 s window of 19 channels "
          f"(median of {repeats}); {cpu_model()}, Python {platform.python_version()}, numpy {np.__version__}")
    for label, module in modules:
        for fs, x in ((200, x200), (500, x500)):
            for case, y in (("real", x), ("clipped +/-100 uV", np.clip(x, -100.0, 100.0))):
                piece = int(PIECE_S * fs)
                times = []
                for _ in range(repeats):
                    t0 = time.process_time()
                    module.rail_summary([module.rail_stats(y[:, i:i + piece]) for i in range(0, y.shape[1], piece)])
                    times.append(time.process_time() - t0)
                print(f"  {label:<9} {fs} Hz {case:<18} {statistics.median(times) * 1e3:7.3f} ms CPU per window")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ictal bench quality`` (and ``python -m ictal.detector.bench_quality``)."""
    parser.add_argument("--scan", action="store_true", help="Validate on every real EDF under --data.")
    parser.add_argument("--cost", action="store_true", help="CPU time per 60 s window.")
    default_data = os.environ.get("ICTAL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data),
                        help="Folder of real EDFs (default $ICTAL_SHARED_DATA, else ../shared/data).")
    parser.add_argument("--repeats", type=int, default=200, help="Timed runs for --cost (default 200).")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="Another detector/quality.py to time beside this one (--cost).")


def run(args: argparse.Namespace) -> int:
    """Run the scan and/or the cost table (both when neither is asked for)."""
    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data}: no such folder (the real EEG of ../shared/data is needed)")
    if not (args.scan or args.cost):
        args.scan = args.cost = True
    if args.scan:
        scan(args.data)
    if args.cost:
        cost(args.data, args.repeats, args.baseline)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m ictal.detector.bench_quality``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
