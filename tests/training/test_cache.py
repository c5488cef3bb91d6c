"""The preprocessing cache: daemon front-end once per recording, labels, resumable builds, identity."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ictal.detector.config import FrontendConfig
from ictal.detector.frontend import process_recording
from ictal.streaming.edf import load_canonical
from ictal.training.cache import Cache, CacheMismatchError, build_cache, frontend_hash
from ictal.training.config import DataConfig
from ictal.training.datasets import discover
from tests.training.tusz_fixture import USABLE, build_tusz_tree


@pytest.fixture(scope="module")
def tusz(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tusz")
    bad = build_tusz_tree(shared_data, root)
    index = discover(DataConfig(format="tusz", root=root))
    cache_dir = root / "cache"
    summary = build_cache(index.recordings, cache_dir, FrontendConfig(), skipped=index.skipped, progress=False,
                          log=lambda text: None)
    return root, bad, index, cache_dir, summary


def test_cache_holds_the_front_end_output_and_per_sample_labels(tusz):
    root, _bad, _index, cache_dir, _summary = tusz
    cache = Cache(cache_dir, FrontendConfig())
    entry = next(e for e in cache.entries if e.patient == "aaaaaaaa")
    signal, labels = cache.signal(entry), cache.labels(entry)
    assert isinstance(signal, np.memmap) and signal.dtype == np.float32 and signal.shape == (19, entry.n_samples)
    assert labels.dtype == np.int8 and labels.shape == (entry.n_samples,)
    assert abs(entry.n_samples - 90 * 256) <= 2 and entry.fs_hz == 256.0
    # The daemon's path: load_canonical then the streaming front-end, byte for byte.
    canonical = load_canonical(entry.path, FrontendConfig())
    expected = process_recording(canonical.data, canonical.fs, FrontendConfig())
    np.testing.assert_allclose(signal, expected, rtol=0, atol=1e-4)
    # Labels from the csv_bi terms: seizure 20-70 s, background around it.
    assert (labels[: 20 * 256] == 0).all() and (labels[20 * 256: 70 * 256] == 1).all()
    assert (labels[70 * 256:] == 0).all()
    assert entry.seizure_s == pytest.approx(50.0) and entry.n_seizures == 1
    assert entry.frontend_hash == frontend_hash(FrontendConfig())


def test_manifest_lists_recordings_and_every_skipped_file_with_its_reason(tusz):
    _root, bad, _index, cache_dir, summary = tusz
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    assert {r["patient"] for r in manifest["recordings"]} == {patient for _, patient, *_ in USABLE}
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {str(p) for p in bad.values()}
    # The reason names the reader's error and what it found (the corrupt header field).
    kind, _, detail = reasons[str(bad["edf"])].partition(": ")
    assert kind.endswith("Error") and detail.strip()
    assert bad["edf"].stem not in {e.recording_id.split("__")[-1] for e in summary.entries}
    assert "04_tcp_le_a" in reasons[str(bad["montage"])]
    text = summary.format()
    assert "skipped: 4 file(s)" in text and str(bad["edf"]) in text
    assert summary.hours("train") == pytest.approx((90 + 50 + 62) / 3600, abs=1e-3)
    assert sum(e.n_seizures for e in summary.entries) == 4


def test_rebuild_reuses_done_recordings_and_redoes_changed_or_unfinished_ones(tusz, tmp_path):
    root, _bad, index, cache_dir, _summary = tusz
    again = build_cache(index.recordings, cache_dir, FrontendConfig(), progress=False, log=lambda text: None)
    assert again.built == 0 and again.reused == len(USABLE)
    # An interrupted build: one recording's done-marker is missing; another's EDF changed since.
    first, second = index.recordings[0], index.recordings[1]
    (cache_dir / "recordings" / f"{first.recording_id}.json").unlink()
    stat = second.path.stat()
    os.utime(second.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    resumed = build_cache(index.recordings, cache_dir, FrontendConfig(), progress=False, log=lambda text: None)
    assert resumed.built == 2 and resumed.reused == len(USABLE) - 2
    assert not list((cache_dir / "recordings").glob("*.tmp-*"))


def test_cache_built_with_another_front_end_config_is_refused(tusz):
    _root, _bad, index, cache_dir, _summary = tusz
    other = FrontendConfig(notch_hz=50.0)
    with pytest.raises(CacheMismatchError, match="notch_hz: cache 60.0, this run 50.0"):
        build_cache(index.recordings, cache_dir, other, progress=False, log=lambda text: None)
    with pytest.raises(CacheMismatchError, match="another front-end config"):
        Cache(cache_dir, other)


def test_parallel_workers_write_the_same_arrays(tusz, tmp_path):
    _root, _bad, index, cache_dir, _summary = tusz
    subset = [r for r in index.recordings if r.patient in {"aaaaaaab", "aaaaaaad"}]
    parallel = build_cache(subset, tmp_path / "par", FrontendConfig(), workers=2, progress=False,
                           log=lambda text: None)
    assert parallel.built == 2
    serial, par = Cache(cache_dir, FrontendConfig()), Cache(tmp_path / "par", FrontendConfig())
    for entry in par.entries:
        twin = next(e for e in serial.entries if e.recording_id == entry.recording_id)
        assert np.array_equal(par.signal(entry), serial.signal(twin))
        assert np.array_equal(par.labels(entry), serial.labels(twin))


def test_opening_a_cache_that_was_never_built_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the cache first"):
        Cache(tmp_path, FrontendConfig())


def test_rated_window_recordings_cache_three_label_states(shared_data, tmp_path):
    from ictal.training.datasets.rated_windows import discover_rated_windows

    index = discover_rated_windows(shared_data)
    chosen = [r for r in index.recordings if r.patient in {"iiic_01", "iiic_09", "eegmat_Subject00"}]
    for rec in chosen:
        rec.split = "train"
    summary = build_cache(chosen, tmp_path / "cache", FrontendConfig(), progress=False, log=lambda text: None)
    cache = Cache(tmp_path / "cache", FrontendConfig())
    labels = {e.patient + ":" + e.recording_id[-1]: np.asarray(cache.labels(e)) for e in cache.entries}
    seizure = labels["iiic_01:1"]
    assert (seizure[20 * 256:30 * 256] == 1).all()
    assert (seizure[:20 * 256] == -1).all() and (seizure[30 * 256:] == -1).all()  # unrated, not background
    gpd = labels["iiic_09:9"]
    assert (gpd[20 * 256:30 * 256] == 0).all() and (np.delete(gpd, np.s_[20 * 256:30 * 256]) == -1).all()
    assert (labels["eegmat_Subject00:1"] == 0).all() and (labels["eegmat_Subject00:2"] == 0).all()
    entry = next(e for e in summary.entries if e.patient == "iiic_01")
    assert entry.labelled_s == pytest.approx(10.0) and entry.seizure_s == pytest.approx(10.0)
