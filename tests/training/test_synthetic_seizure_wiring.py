"""Synthetic seizures wired into training windows, and the held-out split of a train config.

Real EEG from ../shared/data (skipped when absent): two EEGMAT recordings (background throughout) and
one IIIC rated window (unknown outside 20-30 s) in a small rated-window layout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ictal.detector.config import FrontendConfig
from ictal.training.augment import synthetic_seizure_window
from ictal.training.cache import Cache, build_cache
from ictal.training.config import AugmentConfig, DataConfig
from ictal.training.datasets import discover, hold_out
from ictal.training.datasets.base import Recording
from ictal.training.sampler import WindowDataset, WindowSampler

FS = 256.0
WINDOW = 60 * 256
PLAIN = dict(amplitude_scale=(1.0, 1.0), channel_dropout_p=0.0, noise_std_uv=0.0, time_shift_s=0.0)


def _layout(shared_data, root):
    (root / "background" / "eegmat").mkdir(parents=True)
    (root / "labelled").mkdir()
    for name in ("Subject00_1.edf", "Subject01_2.edf"):
        (root / "background" / "eegmat" / name).symlink_to(shared_data / "background" / "eegmat" / name)
    (root / "labelled" / "iiic_21.edf").symlink_to(shared_data / "labelled" / "iiic_21.edf")
    lines = (shared_data / "labelled" / "manifest.csv").read_text().splitlines()
    (root / "labelled" / "manifest.csv").write_text(
        "\n".join([lines[0]] + [line for line in lines if line.startswith("labelled/iiic_21.edf")]) + "\n")


@pytest.fixture(scope="module")
def cache(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_wiring")
    _layout(shared_data, root)
    index = discover(DataConfig(format="rated_windows", root=root, dev_fraction=0.0))
    build_cache(index.recordings, root / "cache", FrontendConfig(), progress=False, log=lambda text: None)
    return Cache(root / "cache", FrontendConfig())


def _entries(cache, prefix):
    return [e for e in cache.split("train") if e.recording_id.startswith(prefix)]


def _dataset(sampler, augment, seed=0, length=8):
    return WindowDataset(sampler, FrontendConfig(), augment, length, seed)


def test_only_all_background_recordings_are_eligible(cache):
    sampler = WindowSampler(cache, cache.split("train"), WINDOW, 0.0)
    eligible = {e.recording_id: flag for e, flag in zip(sampler.entries, sampler.all_background, strict=True)}
    assert eligible == {"background__eegmat__Subject00_1": True, "background__eegmat__Subject01_2": True,
                        "labelled__iiic_21": False}


def test_labels_follow_the_injection(cache):
    sampler = WindowSampler(cache, _entries(cache, "background"), WINDOW, 0.0)
    lead = 30 * 256
    rec = next(i for i, e in enumerate(sampler.entries) if e.n_samples > WINDOW + lead)
    context, context_labels = sampler.read(rec, lead, lead)
    assert (context_labels == 0).all()
    config = AugmentConfig(**PLAIN, synthetic_seizure_p=1.0)
    kinds = set()
    for seed in range(24):
        window, labels = synthetic_seizure_window(context, context_labels, lead, FS, config,
                                                  np.random.default_rng(seed))
        assert window.shape == (19, WINDOW) and labels.shape == (WINDOW,) and labels.dtype == np.int8
        assert set(np.unique(labels)) <= {0, 1}
        ictal = np.flatnonzero(labels == 1)
        original = context[:, lead:]
        if ictal.size == 0:  # began and ended in the lead: only post-ictal attenuation can remain
            kinds.add("before")
            continue
        first, last = int(ictal[0]), int(ictal[-1])
        assert ictal.size == last - first + 1  # one contiguous seizure
        # Nothing changes before the onset; the discharge is there while the labels say seizure.
        assert np.array_equal(window[:, :first], original[:, :first])
        added = window[:, first:last + 1] - original[:, first:last + 1]
        assert np.sqrt((added ** 2).mean()) > 0.05 * original.std()  # may be only the low-voltage onset
        kinds.add("starts_before" if first == 0 else "starts_inside")
        kinds.add("runs_past_end" if last == WINDOW - 1 else "ends_inside")
        if first > 0:
            assert WINDOW - first >= config.synthetic_seizure_min_inside_s * FS
    assert {"starts_before", "starts_inside", "runs_past_end", "ends_inside"} <= kinds


def test_zero_probability_leaves_windows_bit_identical(cache):
    sampler = WindowSampler(cache, cache.split("train"), WINDOW, 0.3)
    base = _dataset(sampler, AugmentConfig())
    off = _dataset(sampler, AugmentConfig(synthetic_seizure_p=0.0, synthetic_seizure_duration_s=(20.0, 30.0),
                                          synthetic_seizure_max_lead_s=5.0))
    on = _dataset(sampler, AugmentConfig(synthetic_seizure_p=1.0))
    changed = 0
    for i in range(len(base)):
        (x0, y0), (x1, y1), (x2, _y2) = base[i], off[i], on[i]
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
        changed += int(not torch.equal(x0, x2))
    assert changed > 0


def test_windows_of_partly_rated_recordings_are_never_injected(cache):
    sampler = WindowSampler(cache, _entries(cache, "labelled"), WINDOW, 0.0)
    off, on = _dataset(sampler, AugmentConfig(**PLAIN)), _dataset(sampler, AugmentConfig(**PLAIN, synthetic_seizure_p=1.0))
    for i in range(8):
        (x0, y0), (x1, y1) = off[i], on[i]
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and not (y1 == 1).any()


def test_injection_is_deterministic_per_seed_and_sets_seizure_labels(cache):
    sampler = WindowSampler(cache, _entries(cache, "background"), WINDOW, 0.0)
    config = AugmentConfig(synthetic_seizure_p=1.0)
    a, b, other = _dataset(sampler, config, 3), _dataset(sampler, config, 3), _dataset(sampler, config, 4)
    with_seizure = 0
    for i in range(len(a)):
        (xa, ya), (xb, yb) = a[i], b[i]
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        with_seizure += int((ya == 1).any())
        assert not torch.equal(xa, other[i][0])
    assert with_seizure >= len(a) // 2  # p = 1 on background-only recordings


def _rec(rid, patient):
    return Recording(recording_id=rid, path=None, patient=patient, split=None, annotations=[])


def test_hold_out_puts_matching_recordings_in_eval():
    recs = [_rec("background__eegmat__Subject08_1", "eegmat_Subject08"),
            _rec("background__eegmat__Subject08_2", "eegmat_Subject08"),
            _rec("background__eegmat__Subject00_1", "eegmat_Subject00"),
            _rec("labelled__iiic_03", "iiic_03"), _rec("labelled__iiic_30", "iiic_30")]
    held = hold_out(recs, ["background__eegmat__Subject08_*", "labelled__iiic_03"])
    assert [r.recording_id for r in held] == ["background__eegmat__Subject08_1", "background__eegmat__Subject08_2",
                                              "labelled__iiic_03"]
    assert [r.split for r in recs] == ["eval", "eval", None, "eval", None]
    with pytest.raises(ValueError, match="match no recording"):
        hold_out(recs, ["labelled__iiic_99"])
    with pytest.raises(ValueError, match="only some recordings"):
        hold_out([_rec("background__eegmat__Subject08_1", "eegmat_Subject08"),
                  _rec("background__eegmat__Subject08_2", "eegmat_Subject08")], ["*Subject08_1"])


def test_discover_keeps_held_out_recordings_out_of_train_and_dev(shared_data, tmp_path):
    _layout(shared_data, tmp_path)
    index = discover(DataConfig(format="rated_windows", root=tmp_path, dev_fraction=0.5,
                                eval_recordings=["background__eegmat__Subject01_*", "labelled__iiic_21"]))
    splits = {r.recording_id: r.split for r in index.recordings}
    assert splits["background__eegmat__Subject01_2"] == "eval" and splits["labelled__iiic_21"] == "eval"
    assert splits["background__eegmat__Subject00_1"] in ("train", "dev")
