"""The preprocessing cache: each recording runs once through the detector front-end.

Layout of a cache folder::

    cache.json                      front-end config and its hash (the cache's identity)
    manifest.json                   one entry per cached recording + skipped files with reasons
    recordings/<id>.signal.npy      float32 (19, n): front-end output in uV at 256 Hz (memory-mapped)
    recordings/<id>.labels.npy      int8 (n,): 1 seizure, 0 background, -1 unknown
    recordings/<id>.json            the recording's entry; written last, it marks the recording done

The signal is what ``detector.frontend.Frontend.process`` returns for the whole recording (fed in
chunks of ``cache_chunk_s``, which the stateful front-end makes identical to one call): the daemon's
code path. Normalisation (``Frontend.prepare_window``) is applied per window at training time, as
the daemon applies it per scored window.

Building is incremental and resumable: a recording whose entry exists (same source file size and
modification time, same labels) is not processed again; every file is written under a temporary
name and renamed into place, so an interrupted build leaves no half-written recording. A cache built
with another front-end config is refused.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ictal.detector.config import FrontendConfig
from ictal.training.datasets.base import SEIZURE, UNKNOWN, Recording, Skipped
from ictal.training.datasets.labels import build_labels, label_runs, spans_from_annotations

CACHE_FORMAT_VERSION = 1
"""Version of the cache layout; a cache of another version is refused."""

DATA_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, LookupError, UnicodeDecodeError)
"""Exceptions that mean "this file is unusable" (corrupt EDF, missing channel, bad annotation): the
recording is skipped with the message as its reason. Anything else is a bug and propagates."""


class CacheMismatchError(ValueError):
    """The cache was built with another front-end config (or layout version) than this run's."""


NORMALISATION_FIELDS: tuple[str, ...] = ("normalisation", "clip_sigma", "running_tau_s")
"""Front-end settings that act after the cached signal (``Frontend.prepare_window``, per window at
training time): two configs that differ only in them share a cache."""


def frontend_hash(config: FrontendConfig) -> str:
    """Hash identifying a front-end config (16 hex digits of SHA-256 over its canonical JSON)."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def signal_settings(config: FrontendConfig | dict[str, Any]) -> dict[str, Any]:
    """The front-end settings that shape the cached signal: all but :data:`NORMALISATION_FIELDS`."""
    dumped = config if isinstance(config, dict) else config.model_dump(mode="json")
    return {k: v for k, v in dumped.items() if k not in NORMALISATION_FIELDS}


@dataclass
class CacheEntry:
    """One cached recording, as listed in the manifest.

    Attributes
    ----------
    recording_id, patient, split, source : str
        From the recording descriptor (split as of the latest build).
    path : str
        The source EDF file.
    n_samples : int
        Samples at ``fs_hz`` in the signal and label arrays.
    fs_hz : float
        Sampling rate of the cached arrays (the detector rate, 256 Hz).
    duration_s : float
        ``n_samples / fs_hz``.
    seizure_s, labelled_s : float
        Seconds labelled seizure, and labelled at all (seizure or background).
    n_seizures : int
        Seizure events (runs of seizure samples).
    frontend_hash : str
        Hash of the front-end config the signal was computed with.
    source_size, source_mtime_ns : int
        Size and modification time of the EDF when it was cached (a changed file is cached again).
    labels_key : str
        Hash of the label definition (annotations, default label, mapping); a change relabels.
    repairs : list of str
        Montage repairs the front-end made (e.g. an interpolated Cz).
    """

    recording_id: str
    path: str
    patient: str
    split: str
    source: str
    n_samples: int
    fs_hz: float
    duration_s: float
    seizure_s: float
    labelled_s: float
    n_seizures: int
    frontend_hash: str
    source_size: int
    source_mtime_ns: int
    labels_key: str
    repairs: list[str] = field(default_factory=list)


@dataclass
class CacheSummary:
    """What a build did: counts per split, seizures, skipped files with reasons."""

    cache_dir: Path
    entries: list[CacheEntry]
    skipped: list[Skipped]
    built: int
    reused: int
    elapsed_s: float

    def hours(self, split: str | None = None) -> float:
        """Hours of EEG cached (in one split, or all)."""
        return sum(e.duration_s for e in self.entries if split in (None, e.split)) / 3600

    def format(self) -> str:
        """A human-readable table of the build (hours, seizures, skipped files and reasons)."""
        lines = [f"cache {self.cache_dir}: {len(self.entries)} recordings "
                 f"({self.built} processed now, {self.reused} reused) in {self.elapsed_s:.1f} s"]
        lines.append(f"  {'split':<6} {'recs':>5} {'patients':>8} {'hours':>9} {'labelled h':>10} "
                     f"{'seizures':>8} {'seizure h':>9}")
        for split in ("train", "dev", "eval"):
            sel = [e for e in self.entries if e.split == split]
            if not sel:
                continue
            lines.append(
                f"  {split:<6} {len(sel):>5} {len({e.patient for e in sel}):>8} "
                f"{sum(e.duration_s for e in sel) / 3600:>9.3f} {sum(e.labelled_s for e in sel) / 3600:>10.3f} "
                f"{sum(e.n_seizures for e in sel):>8} {sum(e.seizure_s for e in sel) / 3600:>9.3f}"
            )
        lines.append(f"  skipped: {len(self.skipped)} file(s)")
        for item in self.skipped:
            lines.append(f"    {item.path}: {item.reason}")
        return "\n".join(lines)


def labels_key(rec: Recording) -> str:
    """Hash of everything that defines a recording's labels (annotations, default, mapping, source)."""
    spans = None if rec.annotations is None else [(s.onset_s, s.offset_s, s.label) for s in rec.annotations]
    text = json.dumps([spans, rec.default_label, sorted(rec.edf_annotation_labels.items()), rec.source])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tmp_name(path: Path) -> Path:
    # host and pid: several nodes may build into one shared cache folder at once
    return path.with_name(f"{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = _tmp_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _atomic_write_npy(path: Path, array: np.ndarray) -> None:
    tmp = _tmp_name(path)
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=array.dtype, shape=array.shape)
    out[...] = array
    out.flush()
    del out
    os.replace(tmp, path)


def run_frontend(data: np.ndarray, fs_in: float, config: FrontendConfig, chunk_s: float) -> np.ndarray:
    """Run a whole recording through the detector front-end, as the daemon would.

    Parameters
    ----------
    data : ndarray of float32, shape (19, n_in)
        Canonical-montage EEG in uV at ``fs_in`` Hz.
    fs_in : float
        Sampling rate of ``data`` in Hz.
    config : FrontendConfig
        The front-end config.
    chunk_s : float
        Seconds handed to ``Frontend.process`` per call (the front-end is stateful, so this changes
        memory use, not the output).

    Returns
    -------
    signal : ndarray of float32, shape (19, n)
        Resampled, band-passed and notched EEG in uV at ``config.fs_hz``.
    """
    from ictal.detector.frontend import Frontend

    frontend = Frontend(config, fs_in)
    step = max(1, int(round(chunk_s * fs_in)))
    parts = [frontend.process(data[:, start:start + step]) for start in range(0, data.shape[1], step)]
    if not parts:
        return np.zeros((data.shape[0], 0), dtype=np.float32)
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def cache_recording(rec: Recording, cache_dir: Path, config: FrontendConfig, chunk_s: float) -> CacheEntry:
    """Process one recording into the cache (front-end + labels) and return its entry.

    Parameters
    ----------
    rec : Recording
        The recording; its annotations, or its EDF+ annotations when ``rec.annotations`` is None,
        give the labels.
    cache_dir : Path
        The cache folder (``recordings/`` is written).
    config : FrontendConfig
        Front-end config (its hash goes in the entry).
    chunk_s : float
        Seconds per ``Frontend.process`` call.

    Returns
    -------
    entry : CacheEntry

    Raises
    ------
    OSError, ValueError, LookupError
        If the EDF or its annotations are unusable (the caller skips the recording with the message).
    """
    from ictal.streaming.edf import load_canonical

    stat = rec.path.stat()
    canonical = load_canonical(rec.path, config)
    data = np.asarray(canonical.data, dtype=np.float32)
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"no EEG samples (found an array of shape {data.shape})")
    signal = run_frontend(data, float(canonical.fs), config, chunk_s)
    fs = float(config.fs_hz)
    if rec.annotations is None:
        spans = spans_from_annotations(canonical.annotations, rec.edf_annotation_labels)
    else:
        spans = rec.annotations
    labels = build_labels(spans, signal.shape[1], fs, rec.default_label)
    _, _, values = label_runs(labels)
    folder = cache_dir / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write_npy(folder / f"{rec.recording_id}.signal.npy", signal)
    _atomic_write_npy(folder / f"{rec.recording_id}.labels.npy", labels)
    montage = getattr(canonical, "montage", None)
    entry = CacheEntry(
        recording_id=rec.recording_id, path=str(rec.path), patient=rec.patient, split=str(rec.split),
        source=rec.source, n_samples=int(signal.shape[1]), fs_hz=fs, duration_s=signal.shape[1] / fs,
        seizure_s=float(np.count_nonzero(labels == SEIZURE)) / fs,
        labelled_s=float(np.count_nonzero(labels != UNKNOWN)) / fs,
        n_seizures=int(np.count_nonzero(values == SEIZURE)), frontend_hash=frontend_hash(config),
        source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns, labels_key=labels_key(rec),
        repairs=[str(r) for r in getattr(montage, "repairs", []) or []],
    )
    _atomic_write_text(folder / f"{rec.recording_id}.json", json.dumps(asdict(entry), indent=1))
    return entry


def _cache_worker(rec: Recording, cache_dir: Path, config: FrontendConfig, chunk_s: float):
    """Process-pool wrapper: a data error comes back as its reason instead of an exception."""
    try:
        return cache_recording(rec, cache_dir, config, chunk_s)
    except DATA_ERRORS as exc:
        return Skipped(rec.path, f"{type(exc).__name__}: {exc}")


def _check_identity(cache_dir: Path, config: FrontendConfig) -> str | None:
    """Refuse a cache whose signals another front-end would give; returns the hash it was built with.

    A cache built with the same signal settings (:func:`signal_settings`) and another normalisation is
    accepted: normalisation is applied per window at training time, never cached.
    """
    identity = cache_dir / "cache.json"
    wanted = frontend_hash(config)
    if not identity.is_file():
        return None
    found = json.loads(identity.read_text(encoding="utf-8"))
    if found.get("format_version") != CACHE_FORMAT_VERSION:
        raise CacheMismatchError(
            f"cache {cache_dir} has layout version {found.get('format_version')!r}; this code reads "
            f"version {CACHE_FORMAT_VERSION}: build a new cache in another cache_dir"
        )
    # a cache from before frontend.montage existed was built referential: compare it as such
    theirs = {"montage": "referential", **found.get("frontend_config", {})}
    if found.get("frontend_hash") != wanted and (not theirs or signal_settings(theirs) != signal_settings(config)):
        ours = config.model_dump(mode="json")
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        detail = "; ".join(f"{k}: cache {theirs.get(k)!r}, this run {ours.get(k)!r}" for k in differ)
        raise CacheMismatchError(
            f"cache {cache_dir} was built with another front-end config (hash "
            f"{found.get('frontend_hash')}, this run {wanted}; {detail}). Its signals would differ from "
            f"what the daemon feeds the model: use another data.cache_dir or delete this one"
        )
    return found.get("frontend_hash")


def _reusable(entry_path: Path, rec: Recording, fhashes: set[str]) -> CacheEntry | None:
    if not entry_path.is_file():
        return None
    try:
        entry = CacheEntry(**json.loads(entry_path.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return None
    stat = rec.path.stat()
    folder = entry_path.parent
    if (entry.frontend_hash not in fhashes or entry.source_size != stat.st_size
            or entry.source_mtime_ns != stat.st_mtime_ns or entry.labels_key != labels_key(rec)
            or not (folder / f"{rec.recording_id}.signal.npy").is_file()
            or not (folder / f"{rec.recording_id}.labels.npy").is_file()):
        return None
    if entry.patient != rec.patient or entry.split != rec.split:
        entry.patient, entry.split = rec.patient, str(rec.split)
        _atomic_write_text(entry_path, json.dumps(asdict(entry), indent=1))
    return entry


def build_cache(
    recordings: list[Recording],
    cache_dir: Path,
    config: FrontendConfig,
    workers: int = 1,
    chunk_s: float = 600.0,
    skipped: list[Skipped] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    progress_every_s: float | None = 30.0,
) -> CacheSummary:
    """Build or complete a preprocessing cache.

    Parameters
    ----------
    recordings : list of Recording
        Recordings with their splits (from :func:`ictal.training.datasets.discover`).
    cache_dir : Path
        Cache folder; created when absent.
    config : FrontendConfig
        Front-end config; must match the one the cache was started with.
    workers : int
        Processes working in parallel (1: this process).
    chunk_s : float
        Seconds per ``Frontend.process`` call.
    skipped : list of Skipped, optional
        Files discovery already left out; they are reported with the build's own skips.
    progress : bool or None
        A tqdm bar (True), plain progress lines (False), or None: a bar only when stderr is a terminal
        (:func:`ictal.training.progress.show_bar`).
    log : callable, optional
        Receives the summary text; None prints it to stderr.
    progress_every_s : float or None
        Without a bar, a plain line (``cache: rec n/N (p%), r rec/s, elapsed, ETA``) at least this
        often while recordings are processed (:class:`ictal.training.progress.Progress`); None: none.

    Returns
    -------
    summary : CacheSummary

    Raises
    ------
    CacheMismatchError
        If ``cache_dir`` holds a cache built with another front-end config.
    ValueError
        If two recordings share an id.
    """
    from ictal.training.progress import Progress

    start = time.perf_counter()
    cache_dir = Path(cache_dir)
    built_with = _check_identity(cache_dir, config)
    ids = [r.recording_id for r in recordings]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"recording ids must be unique in a cache (found duplicates: {dup})")
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "recordings").mkdir(exist_ok=True)
    fhash = frontend_hash(config)
    identity = {"format_version": CACHE_FORMAT_VERSION, "frontend_hash": fhash,
                "frontend_config": config.model_dump(mode="json"), "fs_hz": config.fs_hz}
    if not (cache_dir / "cache.json").is_file():
        _atomic_write_text(cache_dir / "cache.json", json.dumps(identity, indent=1))
    else:  # the identity it was started with (the same signal settings; maybe another normalisation)
        identity = json.loads((cache_dir / "cache.json").read_text(encoding="utf-8"))

    entries: dict[str, CacheEntry] = {}
    all_skipped = list(skipped or [])
    pending: list[Recording] = []
    for rec in recordings:
        entry = _reusable(cache_dir / "recordings" / f"{rec.recording_id}.json", rec, {fhash, built_with} - {None})
        if entry is None:
            pending.append(rec)
        else:
            entries[rec.recording_id] = entry
    reused = len(entries)
    bar = Progress(len(pending), "cache", "rec", bar=progress, every_s=progress_every_s, enabled=bool(pending))
    results: list[CacheEntry | Skipped] = []
    if workers <= 1 or len(pending) <= 1:
        for rec in pending:
            results.append(_cache_worker(rec, cache_dir, config, chunk_s))
            bar.update(1)
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_cache_worker, rec, cache_dir, config, chunk_s) for rec in pending]
            for future in concurrent.futures.as_completed(futures):
                results.append(future.result())
                bar.update(1)
    bar.close()
    for result in results:
        if isinstance(result, Skipped):
            all_skipped.append(result)
        else:
            entries[result.recording_id] = result
    ordered = [entries[r.recording_id] for r in recordings if r.recording_id in entries]
    manifest = {
        **identity,
        "recordings": [asdict(e) for e in ordered],
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in all_skipped],
    }
    _atomic_write_text(cache_dir / "manifest.json", json.dumps(manifest, indent=1))
    summary = CacheSummary(cache_dir, ordered, all_skipped, len(pending) - sum(
        isinstance(r, Skipped) for r in results), reused, time.perf_counter() - start)
    (log or (lambda text: print(text, file=sys.stderr)))(summary.format())
    return summary


class Cache:
    """Read access to a built cache (memory-mapped arrays, opened lazily, per process).

    Parameters
    ----------
    cache_dir : Path
        A folder written by :func:`build_cache`.
    config : FrontendConfig
        The front-end config of this run; must match the cache's.

    Raises
    ------
    CacheMismatchError
        If the cache was built with another front-end config.
    FileNotFoundError
        If ``cache_dir`` has no manifest (build it first).
    """

    def __init__(self, cache_dir: Path, config: FrontendConfig):
        self.cache_dir = Path(cache_dir)
        manifest_path = self.cache_dir / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: no cache manifest (build the cache first)")
        _check_identity(self.cache_dir, config)
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.entries: list[CacheEntry] = [CacheEntry(**e) for e in manifest["recordings"]]
        self.skipped: list[dict[str, Any]] = manifest.get("skipped", [])
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def split(self, name: str) -> list[CacheEntry]:
        """Entries of one split ("train", "dev" or "eval")."""
        return [e for e in self.entries if e.split == name]

    def _open(self, entry: CacheEntry, kind: str) -> np.ndarray:
        key = (entry.recording_id, kind)
        if key not in self._maps:
            path = self.cache_dir / "recordings" / f"{entry.recording_id}.{kind}.npy"
            self._maps[key] = np.load(path, mmap_mode="r")
        return self._maps[key]

    def signal(self, entry: CacheEntry) -> np.ndarray:
        """Memory-mapped front-end output, float32 of shape (19, n_samples), uV at 256 Hz."""
        return self._open(entry, "signal")

    def labels(self, entry: CacheEntry) -> np.ndarray:
        """Memory-mapped per-sample labels, int8 of shape (n_samples,): 1, 0 or -1 (unknown)."""
        return self._open(entry, "labels")
