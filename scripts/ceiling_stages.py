"""Measure where the probability ceiling comes from: per-stage magnitudes on real windows.

Usage: PYTHONPATH=$PWD python scripts/ceiling_stages.py CHECKPOINT [CACHE_DIR [PATTERN ...]]

PATTERN: shell patterns of recording ids to keep (default: all).

Scores every cached recording of ``CACHE_DIR`` (default cache/demo) with windows ending at every 4 s hop
(left-padded with zeros before 60 s of history, as the daemon's warm-up windows), keeps the served
span [end - 4 s, end) and prints, over seizure / background samples: the per-electrode L2 norm of the
fusion's input (before its LayerNorm) and output, the read-out output, the logit and the probability,
each as 50th / 99.9th percentile / max. Prints the bound sqrt(d - 1) * max|gamma| + max|beta| of the
LayerNorm'd vector when the fusion has one.
"""

from __future__ import annotations

import fnmatch
import math
import sys

import numpy as np
import torch

from ictal.detector.checkpoint import load_checkpoint
from ictal.detector.normalise import normalise_window_robust
from ictal.training.cache import Cache

HOP = 1024
WIN = 15360


def main() -> None:
    ckpt = load_checkpoint(sys.argv[1], backend="reference")
    cache_dir = sys.argv[2] if len(sys.argv) > 2 else "cache/demo"
    cache = Cache(cache_dir, ckpt.frontend_config)
    model = ckpt.model.eval()
    grabbed: dict[str, torch.Tensor] = {}
    fusion = model.fusion
    norm = getattr(fusion, "norm", None)
    if isinstance(norm, torch.nn.LayerNorm):
        d = norm.normalized_shape[0]
        bound = math.sqrt(d - 1) * float(norm.weight.abs().max()) + float(norm.bias.abs().max())
        print(f"fusion LayerNorm d={d}: |gamma| max {float(norm.weight.abs().max()):.3f}, "
              f"|beta| max {float(norm.bias.abs().max()):.3f}; per-feature bound sqrt(d-1)|gamma|+|beta| = {bound:.2f}")
        norm.register_forward_hook(lambda m, i, o: grabbed.update(pre=i[0].detach(), post=o.detach()))
    else:
        fusion.register_forward_hook(lambda m, i, o: grabbed.update(post=o.detach()))
    model.readout.register_forward_hook(lambda m, i, o: grabbed.update(readout=o.detach()))
    stats: dict[str, dict[int, list[np.ndarray]]] = {}

    def add(name: str, cls: int, values: np.ndarray) -> None:
        stats.setdefault(name, {0: [], 1: []})[cls].append(values.ravel())

    n_windows = 0
    patterns = sys.argv[3:]
    entries = [e for e in cache.entries if not patterns or any(fnmatch.fnmatchcase(e.recording_id, p) for p in patterns)]
    for entry in entries:
        sig = np.asarray(cache.signal(entry), dtype=np.float32)
        lab = np.asarray(cache.labels(entry))
        n = sig.shape[1]
        ends = list(range(10 * 256 // HOP * HOP + HOP, n + 1, HOP))  # min history 10 s, as the daemon
        for end in ends:
            start = max(0, end - WIN)
            z = normalise_window_robust(sig[:, start:end], ckpt.frontend_config.clip_sigma)
            if z.shape[1] < WIN:
                z = np.concatenate([np.zeros((19, WIN - z.shape[1]), np.float32), z], axis=1)
            served = lab[end - HOP:end]
            with torch.inference_mode():
                logits = model(torch.from_numpy(z)[None])[0, -HOP:].numpy()
            n_windows += 1
            # pooled steps of the served span (x16 downsampling)
            steps = slice(-HOP // 16, None)
            for cls in (0, 1):
                mask = served == cls
                if not mask.any():
                    continue
                pooled_mask = mask.reshape(-1, 16).any(1)
                add("logit", cls, logits[mask])
                add("prob", cls, 1 / (1 + np.exp(-logits[mask])))
                if "pre" in grabbed:
                    pre = grabbed["pre"][0, steps].norm(dim=-1).numpy()  # (L, N)
                    add("fusion input |z| per electrode", cls, pre[pooled_mask])
                post = grabbed["post"][0, steps].norm(dim=-1).numpy()
                add("fusion output |f| per electrode", cls, post[pooled_mask])
                ro = grabbed["readout"][0, :, steps].abs().amax(0).numpy()
                add("read-out max |r_t|", cls, ro[pooled_mask])
    print(f"{n_windows} windows of {len(entries)} recordings ({cache_dir}); served 4 s spans")
    print(f"{'stage':34s} {'class':6s} {'n':>8s} {'p50':>8s} {'p99.9':>8s} {'max':>8s}")
    for name, per in stats.items():
        for cls in (1, 0):
            if not per[cls]:
                continue
            v = np.concatenate(per[cls])
            print(f"{name:34s} {'seiz' if cls else 'bckg':6s} {v.size:8d} {np.percentile(v, 50):8.3f} "
                  f"{np.percentile(v, 99.9):8.3f} {v.max():8.3f}")


if __name__ == "__main__":
    main()
