"""Cross-validation over the training recordings, grouped by patient, to choose a model and recipe.

``ictal crossval`` (issue 21): the held-out split of the train config (``data.eval_recordings``) is never
touched. The remaining recordings are grouped by patient and dealt into ``k`` folds **before any model is
trained**; the assignment is written to ``folds.json`` first and a later run into the same folder must
find the same assignment (a changed fold set after results were seen would be selection on the folds).
Each candidate (a train config) is trained ``k`` times, each time with one fold added to the held-out
patterns, and evaluated on that fold through ``ictal evaluate``'s daemon path
(:func:`ictal.training.evaluate.evaluate`). The choice rule is fixed here, not after the results:
the candidate with the highest mean fold AUROC of the served per-sample probabilities (threshold-free;
ties by the pooled OVERLAP sensitivity). Event figures use the thresholds each fold's checkpoint carries
(none after training: the defaults of ``alarms.config.AlarmThresholds``), so they are for comparison
between candidates, not the tuned figures of a shipped model.

Fold assignment (:func:`assign_folds`): patients with a seizure are shuffled (``seed``) and dealt
round-robin, so each fold holds seizures when there are at least ``k`` such patients; the others are
shuffled and each goes to the fold with the fewest hours so far (ties: the lowest fold index). With
fewer seizure patients than folds, some folds hold none; their sensitivity is undefined and the report
says so (it is never printed as 0 or nan).

Outputs in ``out_dir``: ``folds.json`` (``{"k", "seed", "patients": {patient: fold}, "recordings":
{fold: [recording ids]}}``), ``<candidate>/fold_<i>/`` (the training run and its ``eval/report.json``),
``cv_report.json`` and ``cv_report.md``. A fold already trained and scored with the same config and step
count (its ``crossval_fold.json``) is reused, not trained again: candidates may run as separate processes
into one folder (same ``k`` and seed) and a last run naming all of them gathers the report.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ictal.training.config import TrainConfig

FOLD_DONE = "crossval_fold.json"
"""Written in a fold's run folder once it is trained and scored: its config and step count. A later run into
the same folder with the same candidate config and ``--max-steps`` reuses that fold instead of training it
again (so candidates can be run in separate processes and gathered by a final run with all of them)."""

CHOICE_RULE = ("highest mean fold AUROC of the served per-sample probabilities; ties by pooled OVERLAP "
               "sensitivity")
"""How the candidate is chosen: fixed before any result (the module docstring)."""


class CrossValidationError(ValueError):
    """Cross-validation cannot run as asked; the message says why."""


@dataclass(frozen=True)
class FoldPlan:
    """The patient-wise folds of the training recordings (written to ``folds.json`` before training)."""

    k: int
    seed: int
    patients: dict[str, int]
    recordings: dict[int, list[str]]
    seizure_patients: dict[int, list[str]]

    def to_dict(self) -> dict[str, Any]:
        """The ``folds.json`` layout."""
        return {"k": self.k, "seed": self.seed, "patients": dict(sorted(self.patients.items())),
                "recordings": {str(f): ids for f, ids in sorted(self.recordings.items())},
                "seizure_patients": {str(f): p for f, p in sorted(self.seizure_patients.items())}}


def assign_folds(entries: list[Any], k: int, seed: int = 0) -> FoldPlan:
    """Deal the patients of the training recordings into ``k`` folds (see the module docstring).

    Parameters
    ----------
    entries : list of CacheEntry
        Cached recordings (``recording_id``, ``patient``, ``split``, ``duration_s``, ``n_seizures``);
        those of split ``eval`` (the held-out split) are left out.
    k : int
        Number of folds, at least 2.
    seed : int
        Seed of the shuffles.

    Returns
    -------
    FoldPlan

    Raises
    ------
    CrossValidationError
        If ``k`` < 2 or there are fewer training patients than folds.
    """
    if k < 2:
        raise CrossValidationError(f"--folds must be at least 2 (found {k})")
    train = [e for e in entries if e.split != "eval"]
    by_patient: dict[str, list[Any]] = {}
    for e in train:
        by_patient.setdefault(e.patient, []).append(e)
    if len(by_patient) < k:
        raise CrossValidationError(f"{len(by_patient)} training patients cannot fill {k} folds (each fold needs "
                                   "at least one patient)")
    rng = random.Random(seed)
    seizure = sorted(p for p, es in by_patient.items() if any(e.n_seizures > 0 for e in es))
    other = sorted(p for p in by_patient if p not in set(seizure))
    rng.shuffle(seizure)
    rng.shuffle(other)
    patients: dict[str, int] = {}
    hours = [0.0] * k
    for i, p in enumerate(seizure):
        patients[p] = i % k
        hours[i % k] += sum(e.duration_s for e in by_patient[p]) / 3600
    for p in other:
        fold = min(range(k), key=lambda f: (hours[f], f))
        patients[p] = fold
        hours[fold] += sum(e.duration_s for e in by_patient[p]) / 3600
    recordings = {f: sorted(e.recording_id for p, f2 in patients.items() if f2 == f for e in by_patient[p])
                  for f in range(k)}
    seizure_patients = {f: sorted(p for p in seizure if patients[p] == f) for f in range(k)}
    return FoldPlan(k, seed, patients, recordings, seizure_patients)


def exact_pattern(recording_id: str) -> str:
    """A shell pattern (``fnmatch``) that matches exactly ``recording_id`` (``[``, ``]``, ``*``, ``?`` escaped)."""
    return re.sub(r"([\[\]*?])", r"[\1]", recording_id)


def fold_config(config: TrainConfig, plan: FoldPlan, fold: int, out_dir: Path) -> TrainConfig:
    """The train config of one fold: the fold's recordings join the held-out patterns; no dev split.

    Raises
    ------
    pydantic.ValidationError
        If the result does not validate (it is validated anew).
    """
    data = config.model_dump(mode="json")
    data["data"]["eval_recordings"] = list(config.data.eval_recordings) + [
        exact_pattern(r) for r in plan.recordings[fold]]
    data["data"]["dev_fraction"] = 0.0
    data["out_dir"] = str(out_dir)
    if "eval" in data and isinstance(data["eval"], dict) and "enabled" in data["eval"]:
        data["eval"]["enabled"] = False  # the fold is scored by ictal evaluate's daemon path afterwards
    return TrainConfig.model_validate(data)


@dataclass
class FoldResult:
    """The figures of one candidate on one fold (from the fold's ``report.json``)."""

    fold: int
    n_recordings: int
    hours: float
    auroc: float | None
    ece: float | None
    targets: int
    hits: int
    false_alarms: int
    report: str

    def to_dict(self) -> dict[str, Any]:
        """JSON layout (None stays null)."""
        return dict(self.__dict__)


@dataclass
class CandidateResult:
    """A candidate's folds and pooled figures."""

    name: str
    folds: list[FoldResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Mean +- std of AUROC and ECE over the folds that have them; pooled OVERLAP counts."""
        def mean_std(values: list[float]) -> dict[str, Any]:
            if not values:
                return {"mean": None, "std": None, "n_folds": 0}
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
            return {"mean": mean, "std": std, "n_folds": len(values)}

        targets = sum(f.targets for f in self.folds)
        hits = sum(f.hits for f in self.folds)
        hours = sum(f.hours for f in self.folds)
        fas = sum(f.false_alarms for f in self.folds)
        return {
            "auroc": mean_std([f.auroc for f in self.folds if f.auroc is not None]),
            "ece": mean_std([f.ece for f in self.folds if f.ece is not None]),
            "overlap": {"targets": targets, "hits": hits, "sensitivity": hits / targets if targets else None,
                        "false_alarms": fas, "hours": hours, "fa_per_24h": fas / hours * 24 if hours > 0 else None},
        }


def fold_figures(report: Mapping[str, Any], fold: int, report_path: Path) -> FoldResult:
    """The figures of one ``report.json`` (``ictal evaluate``) that cross-validation keeps."""
    seiz = (((report.get("scores") or {}).get("nedc") or {}).get("overlap") or {}).get("labels", {}).get("seiz", {})
    pooled = (report.get("calibration") or {}).get("pooled") or {}
    meta = report.get("meta") or {}
    return FoldResult(
        fold=fold, n_recordings=int(meta.get("n_scored") or 0), hours=float(meta.get("duration_s") or 0.0) / 3600,
        auroc=(report.get("sample_level") or {}).get("auroc"), ece=pooled.get("ece"),
        targets=int(round(seiz.get("targets") or 0)), hits=int(round(seiz.get("hits") or 0)),
        false_alarms=int(round(seiz.get("false_alarms") or 0)), report=str(report_path),
    )


def choose(results: list[CandidateResult]) -> str | None:
    """The candidate :data:`CHOICE_RULE` picks; None when no candidate has an AUROC."""
    scored = [(r.summary()["auroc"]["mean"], r.summary()["overlap"]["sensitivity"] or 0.0, r.name) for r in results]
    scored = [s for s in scored if s[0] is not None]
    if not scored:
        return None
    return max(scored, key=lambda s: (s[0], s[1]))[2]


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else format(scale * value, spec)


def format_markdown(plan: FoldPlan, results: list[CandidateResult], chosen: str | None) -> str:
    """The ``cv_report.md`` table: one row per candidate."""
    lines = [f"# Cross-validation: {plan.k} folds by patient (seed {plan.seed})", "",
             "Folds (seizure patients): " + "; ".join(
                 f"{f}: {len(plan.recordings[f])} recordings ({', '.join(plan.seizure_patients[f]) or 'none'})"
                 for f in range(plan.k)), "",
             "| candidate | AUROC mean +- std (folds) | ECE mean | OVERLAP sensitivity (hits/targets) | "
             "OVERLAP FA/24h (FA / h) |", "|---|---|---|---|---|"]
    for r in results:
        s = r.summary()
        a, e, o = s["auroc"], s["ece"], s["overlap"]
        lines.append(
            f"| {r.name}{' (chosen)' if r.name == chosen else ''} | {_fmt(a['mean'], '.3f')} +- "
            f"{_fmt(a['std'], '.3f')} ({a['n_folds']}) | {_fmt(e['mean'], '.3f')} | "
            f"{_fmt(o['sensitivity'], '.1f', 100)}% ({o['hits']}/{o['targets']}) | "
            f"{_fmt(o['fa_per_24h'], '.1f')} ({o['false_alarms']} / {o['hours']:.2f} h) |")
    lines += ["", f"Choice rule (fixed before training): {CHOICE_RULE}.",
              "Event figures use each fold checkpoint's thresholds (the defaults: no tuning inside a fold)."]
    return "\n".join(lines) + "\n"


def crossval(candidates: Mapping[str, TrainConfig], folds: int, out_dir: Path | str, *, seed: int = 0,
             max_steps: int | None = None, device: str = "auto",
             progress: Callable[[str], None] = print,
             train_fn: Callable[..., Any] | None = None, evaluate_fn: Callable[..., Any] | None = None,
             cache_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run the cross-validation (module docstring) and write its reports.

    Parameters
    ----------
    candidates : mapping of name to TrainConfig
        The configs compared; they must share data (root, format, held-out patterns) and front-end
        signal settings, so that the folds are the same recordings for every candidate.
    folds : int
        ``k``.
    out_dir : path
        Output folder.
    seed : int
        Seed of the fold assignment.
    max_steps : int, optional
        Optimizer steps of each fold's training (default: the config's schedule).
    device : str
        Device of the fold evaluations.
    progress : callable
        Receives one line per step of the work.
    train_fn, evaluate_fn, cache_fn : callable, optional
        Replace :func:`ictal.training.train.train`, :func:`ictal.training.evaluate.evaluate` and
        :func:`ictal.training.train.prepare_cache` (tests).

    Returns
    -------
    dict
        The ``cv_report.json`` content: ``folds``, ``candidates`` (per fold and summary), ``chosen``,
        ``choice_rule``.

    Raises
    ------
    CrossValidationError
        No candidate, candidates on different data, too few patients, or a ``folds.json`` in
        ``out_dir`` that differs from this run's assignment.
    """
    if not candidates:
        raise CrossValidationError("no candidate config to cross-validate")
    if train_fn is None or cache_fn is None:
        from ictal.training.train import prepare_cache, train

        train_fn = train_fn or train
        cache_fn = cache_fn or prepare_cache
    if evaluate_fn is None:
        from ictal.training.evaluate import evaluate as evaluate_fn
    first = next(iter(candidates.values()))
    for name, config in candidates.items():
        if (config.data.root, config.data.format, list(config.data.eval_recordings)) != (
                first.data.root, first.data.format, list(first.data.eval_recordings)):
            raise CrossValidationError(f"candidate {name!r} uses other data (root, format or eval_recordings) than "
                                       "the first: the folds would not be the same recordings")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = cache_fn(first)
    plan = assign_folds(list(summary.entries), folds, seed)
    folds_path = out / "folds.json"
    if folds_path.is_file():
        if json.loads(folds_path.read_text()) != plan.to_dict():
            raise CrossValidationError(f"{folds_path} holds another fold assignment than this run's (other data, "
                                       "k or seed): folds are fixed before results; use a new output folder")
    else:
        folds_path.write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
    progress(f"crossval: {len(plan.patients)} training patients in {folds} folds (seed {seed}); "
             f"folds written to {folds_path} before any training")
    results: list[CandidateResult] = []
    for name, config in candidates.items():
        result = CandidateResult(name)
        for fold in range(folds):
            run_dir = out / name / f"fold_{fold}"
            fold_cfg = fold_config(config, plan, fold, run_dir)
            eval_dir = run_dir / "eval"
            report_path = eval_dir / "report.json"
            done_path = run_dir / FOLD_DONE
            done = {"config": fold_cfg.model_dump(mode="json"), "max_steps": max_steps,
                    "recordings": plan.recordings[fold]}
            if report_path.is_file() and done_path.is_file() and json.loads(done_path.read_text()) == done:
                progress(f"crossval: {name} fold {fold + 1}/{folds}: already trained and scored with this config "
                         f"and step count ({done_path}); reused")
            else:
                progress(f"crossval: {name} fold {fold + 1}/{folds}: training on the other folds")
                trained = train_fn(fold_cfg, max_steps=max_steps)
                progress(f"crossval: {name} fold {fold + 1}/{folds}: evaluating {len(plan.recordings[fold])} "
                         "recordings")
                evaluate_fn(trained.last_checkpoint, config.data.root, eval_dir, data_format=config.data.format,
                            include=[exact_pattern(r) for r in plan.recordings[fold]], plots=False, device=device)
                done_path.write_text(json.dumps(done, indent=1) + "\n")
            result.folds.append(fold_figures(json.loads(report_path.read_text()), fold, report_path))
        results.append(result)
    chosen = choose(results)
    report = {"folds": plan.to_dict(), "choice_rule": CHOICE_RULE, "chosen": chosen,
              "candidates": {r.name: {"folds": [f.to_dict() for f in r.folds], "summary": r.summary()}
                             for r in results}}
    (out / "cv_report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "cv_report.md").write_text(format_markdown(plan, results, chosen))
    progress(f"crossval: chosen {chosen!r} ({CHOICE_RULE}); report {out / 'cv_report.md'}")
    return report
