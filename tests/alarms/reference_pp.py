"""A per-sample reference of the post-processor rules (slow, obviously correct), for the tests."""

from __future__ import annotations

import numpy as np


def reference_events(p, rate_hz, th, t0_s=0.0):
    """Return [(onset_s, offset_s, peak, mean, raised_s, reason)] by walking sample by sample."""
    n_min = max(1, round(th.min_duration_s * rate_hz))
    n_gap = max(1, round(th.merge_gap_s * rate_hz))
    n_max = max(max(1, round(th.max_duration_s * rate_hz)), n_min + 1)
    n_refr = max(0, round(th.refractory_s * rate_hz))
    p = np.asarray(p, dtype=np.float64)
    out = []
    active = False
    cand = None
    dip = None
    onset = raised = 0
    refr_end = 0

    def close(offset, emit, reason):
        seg = p[onset:offset]
        out.append((t0_s + onset / rate_hz, t0_s + offset / rate_hz, float(seg.max()), float(seg.mean()),
                    t0_s + raised / rate_hz, reason))
        return offset + n_refr

    for i, x in enumerate(p):
        if active:
            if x < th.tau_off:
                start = i if dip is None else dip
                if i - start + 1 >= n_gap and i <= onset + n_max:
                    refr_end = close(start, i, "below_tau_off")
                    active, dip = False, None
                    continue
            if i == onset + n_max:
                refr_end = close(dip if dip is not None else i, i, "max_duration")
                active, dip = False, None
            else:
                dip = (i if dip is None else dip) if x < th.tau_off else None
                continue
        if i >= refr_end and x >= th.tau_on:
            if cand is None:
                cand = i
            if i - cand + 1 >= n_min:
                active, onset, raised, cand, dip = True, cand, i, None, None
        else:
            cand = None
    if active:
        close(dip if dip is not None else len(p), len(p), "end_of_data")
    return out
