"""`ictal demo`: a recording replayed over LSL into the daemon, its alarms and metrics shown, then a summary.

What runs (three processes, as in production):

1. ``python -m ictal replay FILE --speed S --name ictal-demo-<pid>``: the recording as a real LSL
   ``EEG`` stream (19 channels, uV, the file's rate), paced at ``S`` times real time;
2. ``python -m ictal serve --config <temporary config>``: the daemon, with the default config
   (``configs/daemon.yaml``) except: one bed reading that stream, the chosen checkpoint, every socket
   on a free loopback port, the journal in a temporary directory (the demo leaves nothing behind);
   its log lines go to ``daemon.log`` in that directory (the path is printed);
3. this process: a ZeroMQ subscriber that prints every event as a subscriber sees it (heartbeats
   counted, not printed), and at the end a scrape of the Prometheus endpoint for the summary.

It ends by itself once the replay has ended and the daemon has scored what it received: the daemon
is stopped with SIGTERM (it exits 0) and a summary is printed (alarms raised, windows scored and
skipped, latency figures).

Alarm latency is the one definition of ``alarms.schema``: the wall time the onset event was published
minus the wall time of the onset sample (``AlarmEvent.latency_s``), shown for each onset received and
as the daemon's ``ictal_alarm_latency_seconds`` histogram. The onset sample's wall time comes from
the LSL clock mapping, never later than the daemon received the sample: the replay runs at ``--speed``
times real time, so the latency is wall-clock time at that pace (its stream-time part runs ``speed``
times faster than at the bedside).

Built-in input (without ``--edf``): ``labelled/iiic_01.edf`` of the shared real-EEG folder
(``$ICTAL_SHARED_DATA``, default ``../shared/data`` beside the repository): a 50 s ICU segment (IIIC,
Jing et al. 2023, ODC-By 1.0) whose central 10 s (20-30 s) experts rated seizure by plurality; the rest
is unrated. It is a **training** recording of the demo checkpoint (its split: ``configs/train/demo.yaml``):
the checkpoint detects neither of the two held-out seizure recordings (iiic_03, iiic_22; model card), so
no held-out input can show an alarm, and of its three training seizures it alarms on iiic_01 inside
the rated window. The demo says so when it starts and in its summary (:func:`input_provenance`, from
the checkpoint's ``metadata.json`` provenance): its alarm is in-sample, not evidence of detection.

Speed: 4x real time by default, so the 50 s recording takes about 13 s; the first window is scored
once ``min_history_s`` of signal exist (10 s by default: 2.5 s into the replay), then one every
``hop_s`` (4 s of signal = 1 s).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from ictal.alarms.schema import AlarmEvent

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = Path("labelled") / "iiic_01.edf"
"""The built-in demo input, relative to the shared data folder."""

DEFAULT_SPEED = 4.0


def shared_data_dir() -> Path:
    """``$ICTAL_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("ICTAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def recording_id_of(recording: Path, data_root: Path | None = None) -> str | None:
    """The dataset recording id of a file of the shared data folder (``labelled/iiic_01.edf`` ->
    ``labelled__iiic_01``, :func:`ictal.training.datasets.base.recording_id_for`), or None outside it."""
    from ictal.training.datasets.base import recording_id_for

    root = Path(data_root if data_root is not None else shared_data_dir()).resolve()
    path = Path(recording).resolve()
    return recording_id_for(path, root) if path.is_relative_to(root) else None


def input_provenance(recording: Path, checkpoint: Path) -> str:
    """One line saying whether the replayed recording is a training recording of the checkpoint.

    Read from the checkpoint's ``metadata.json`` ``provenance`` through
    :func:`ictal.training.provenance.overlap` (listed or hashed ids alike): an alarm on a training
    recording is in-sample and is said to be so; a held-out one is named; a file outside the shared
    data folder, or a checkpoint without provenance, is said to be unknown.

    Parameters
    ----------
    recording : path
        The EDF file the demo replays.
    checkpoint : path
        The checkpoint directory the daemon serves.

    Returns
    -------
    line : str
        Starts with ``"input: "``.
    """
    from ictal.detector.checkpoint import CheckpointError, read_metadata
    from ictal.training.provenance import overlap

    try:
        meta = read_metadata(checkpoint)
    except CheckpointError as exc:
        return f"input: training data of the checkpoint unknown ({exc})"
    ckpt = meta.get("checkpoint_id", "?")
    prov = meta.get("provenance")
    if not prov:
        return f"input: unknown whether {recording.name} is a training recording (checkpoint {ckpt} has no provenance)"
    rec_id = recording_id_of(recording)
    found = overlap(prov, [rec_id] if rec_id is not None else [])
    if found.train:
        return (f"input: {rec_id} is a TRAINING recording of checkpoint {ckpt}: an alarm on it is in-sample, "
                "not evidence of detection (held-out figures: the checkpoint's model card)")
    if found.evaluation:
        return f"input: {rec_id} is held out from checkpoint {ckpt}'s training (never trained on)"
    n_train = len(prov.get("train_recording_hashes", prov.get("train_recordings", [])))
    return (f"input: {recording.name} is not among the {n_train} training "
            f"recordings of checkpoint {ckpt} (it is not in its data set at all)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DemoError(RuntimeError):
    """The demo cannot run; the message says why and what to do."""


def resolve_input(edf: Path | None) -> Path:
    """The recording to replay: ``edf``, or the built-in input.

    Raises
    ------
    DemoError
        If the file (or the built-in input) does not exist.
    """
    if edf is not None:
        if not Path(edf).is_file():
            raise DemoError(f"--edf {edf}: no such file")
        return Path(edf)
    default = shared_data_dir() / DEFAULT_INPUT
    if not default.is_file():
        raise DemoError(
            f"no --edf given and the built-in input {default} is absent (it is part of the shared real-EEG "
            "folder; set ICTAL_SHARED_DATA to where it lives). Pass --edf FILE: any EDF/EDF+ with the 19 "
            "referential 10-20 channels."
        )
    return default


def resolve_checkpoint(checkpoint: Path) -> Path:
    """The checkpoint directory (relative paths: the working directory, then the repository).

    Raises
    ------
    DemoError
        If it does not exist; the message gives the commands that make one.
    """
    for candidate in (checkpoint, REPO_ROOT / checkpoint):
        if (candidate / "metadata.json").is_file():
            return candidate.resolve()
    raise DemoError(
        f"checkpoint {checkpoint} not found (looked in {Path.cwd()} and {REPO_ROOT}). Make one with:\n"
        "    ictal train --config configs/train/cpu_small.yaml\n"
        "    cp -r runs/cpu_small/checkpoints/best checkpoints/demo\n"
        "or see the plumbing with a randomly initialised model (its alarms mean nothing):\n"
        "    ictal demo --untrained"
    )


def untrained_checkpoint(model_config: Path, out: Path, frontend=None) -> Path:
    """Save a randomly initialised model of ``model_config`` (a ``kind: model`` YAML) to ``out``, with
    ``frontend`` (a :class:`ictal.detector.config.FrontendConfig`; default its defaults) as its front-end:
    the demo passes its daemon config's, which ``ictal serve`` requires the checkpoint to match."""
    import torch

    from ictal.config import load_config
    from ictal.detector.checkpoint import save_checkpoint
    from ictal.detector.config import FrontendConfig
    from ictal.detector.model import build_model

    config = load_config(model_config, kind="model")
    torch.manual_seed(0)
    save_checkpoint(out, build_model(config), config, frontend if frontend is not None else FrontendConfig(),
                    extra={"training": {"note": "randomly initialised by ictal demo --untrained"}})
    return out


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def histogram_quantile(values: dict[tuple[str, tuple], float], name: str, q: float) -> float | None:
    """Upper bound (s) of the bucket holding quantile ``q`` of histogram ``name`` (all labels summed)."""
    buckets: dict[float, float] = {}
    for (metric, labels), value in values.items():
        if metric == f"{name}_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    if not buckets or max(buckets.values()) == 0:
        return None
    total = buckets[float("inf")]
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le
    return None


def _total(values: dict[tuple[str, tuple], float], name: str) -> float:
    return sum(v for (metric, _), v in values.items() if metric == name)


def check_long_enough(recording: Path, min_history_s: float, hop_s: float) -> float:
    """Refuse a recording too short for the daemon to score, before anything is started.

    Parameters
    ----------
    recording : Path
        The EDF to replay.
    min_history_s, hop_s : float
        The daemon's ``scheduler.min_history_s`` and ``scheduler.hop_s`` (seconds).

    Returns
    -------
    duration_s : float
        The recording's duration in seconds.

    Raises
    ------
    DemoError
        If the recording is shorter than ``min_history_s + hop_s``: the daemon scores a bed's first
        window once ``min_history_s`` of signal have arrived, on the hop's grid, and a replay that ends
        as that window falls due leaves it unscored; nothing would be scored (the message says so and
        what to do).
    """
    from ictal.streaming.edf import open_canonical

    stream = open_canonical(recording)
    try:
        duration = float(stream.duration_s)
    finally:
        stream.close()
    needed = min_history_s + hop_s
    if duration < needed:
        raise DemoError(
            f"{recording} is {duration:.1f} s long, too short to score: the daemon scores a bed once "
            f"scheduler.min_history_s = {min_history_s:g} s of signal have arrived, then every hop of "
            f"{hop_s:g} s, so nothing would be scored. Give a recording of at least {needed:g} s (the "
            "default input is 50 s), or lower scheduler.min_history_s in --config."
        )
    return duration


def run_demo(edf: Path | None, speed: float, checkpoint: Path, config_path: Path, untrained: bool,
             untrained_config: Path, out: Callable[[str], None] = print, keep: bool = False) -> int:
    """Run the demo (see the module docstring); returns the exit code (0 done, 2 cannot run, 1 failed).

    The working folder (daemon config, log, journal) is removed at the end unless ``keep``."""
    from ictal.config import load_config

    if speed <= 0:
        raise DemoError(f"--speed must be > 0 (found {speed}); the demo paces the replay")
    recording = resolve_input(edf)
    daemon = load_config(config_path, kind="daemon")
    check_long_enough(recording, daemon.scheduler.min_history_s, daemon.scheduler.hop_s)
    work = Path(tempfile.mkdtemp(prefix="ictal-demo-"))
    try:
        return _run_in(work, recording, speed, checkpoint, config_path, untrained, untrained_config, out)
    finally:
        if keep:
            out(f"working folder kept (--keep): {work}")
        else:
            try:
                shutil.rmtree(work)
            except OSError as exc:
                out(f"could not remove the demo's working folder {work}: {exc}")


def _run_in(work: Path, recording: Path, speed: float, checkpoint: Path, config_path: Path, untrained: bool,
            untrained_config: Path, out: Callable[[str], None]) -> int:
    import zmq

    from ictal.config import load_config

    if untrained:
        checkpoint = untrained_checkpoint(untrained_config, work / "checkpoint",
                                          frontend=load_config(config_path, kind="daemon").frontend)
        out(f"model: randomly initialised {untrained_config.name} (untrained: its alarms mean nothing)")
    else:
        checkpoint = resolve_checkpoint(checkpoint)
    # only what the file sets (exclude_unset): a dump of every default would write alarms.thresholds out,
    # which the thresholds precedence rule (alarms.thresholds) refuses beside a checkpoint's tuned ones
    config = {"kind": "daemon", **load_config(config_path, kind="daemon").model_dump(mode="json", exclude_unset=True)}
    stream = f"ictal-demo-{os.getpid()}"
    pub, catchup, metrics_port = _free_port(), _free_port(), _free_port()
    config["beds"] = [{"bed_id": "demo-bed", "source": {"type": "lsl", "name": stream}}]
    config.setdefault("detector", {})["checkpoint"] = str(checkpoint)
    alarms = config.setdefault("alarms", {})
    alarms.setdefault("journal", {})["path"] = str(work / "journal.sqlite3")
    # heartbeats every second: they carry the bed's monitored state, which the demo prints as it changes
    alarms.setdefault("publisher", {}).update({"pub_endpoint": f"tcp://127.0.0.1:{pub}",
                                               "catchup_endpoint": f"tcp://127.0.0.1:{catchup}",
                                               "heartbeat_s": 1.0})
    alarms.setdefault("metrics", {})["port"] = metrics_port
    demo_config = work / "daemon.yaml"
    demo_config.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = work / "daemon.log"
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    out(f"recording: {recording} at {speed:g}x real time")
    out(f"checkpoint: {checkpoint}")
    provenance = None if untrained else input_provenance(recording, checkpoint)
    if provenance:
        out(provenance)
    out(f"daemon config: {demo_config}  (from {config_path}; log lines in {log_path})")

    notify_path = work / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(0.5)
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), PYTHONUNBUFFERED="1")
    env.pop("WATCHDOG_USEC", None)
    with open(log_path, "w") as log_file:
        serve = subprocess.Popen([sys.executable, "-m", "ictal", "serve", "--config", str(demo_config)],
                                 stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=work)
    replay: subprocess.Popen | None = None
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVTIMEO, 200)
    sub.connect(f"tcp://127.0.0.1:{pub}")
    events: list[dict] = []
    stop = threading.Event()
    bed_state: list[str | None] = [None]

    def listen() -> None:
        while not stop.is_set():
            try:
                _, payload = sub.recv_multipart()
            except zmq.Again:
                continue
            event = json.loads(payload)
            events.append(event)
            if event["kind"] != "heartbeat":
                out("  " + describe(event))
                continue
            line = describe_bed_state(event, "demo-bed", bed_state[0])
            if line is not None:
                bed_state[0] = (event.get("beds") or {}).get("demo-bed", {}).get("state")
                out("  " + line)

    listener = threading.Thread(target=listen, daemon=True)
    try:
        out("starting the daemon (loading and warming up the model) ...")
        if not _wait_ready(notify, serve, timeout_s=300.0):
            out(f"the daemon did not become ready (exit code {serve.poll()}); its log, {log_path}:")
            out(log_path.read_text()[-3000:])
            return 1
        listener.start()
        out(f"daemon ready. alarms: tcp://127.0.0.1:{pub} (catch-up tcp://127.0.0.1:{catchup}); "
            f"metrics: {metrics_url}")
        out(f"  follow it from another shell: ictal alarms watch --endpoint tcp://127.0.0.1:{pub} "
            f"--catchup-endpoint tcp://127.0.0.1:{catchup}")
        replay = subprocess.Popen([sys.executable, "-m", "ictal", "replay", str(recording), "--speed", f"{speed:g}",
                                   "--name", stream, "--wait-consumer-s", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out(f"replaying over LSL as stream {stream!r}; events as a subscriber sees them:")
        replay_out, _ = replay.communicate()
        if replay.returncode != 0:
            out(f"ictal replay failed (exit code {replay.returncode}): {replay_out.strip()[-2000:]}")
            return 1
        _wait_settled(metrics_url, events, timeout_s=60.0)
        values = _scrape(metrics_url)
        serve.terminate()
        code = serve.wait(timeout=60)
        time.sleep(0.3)
        stop.set()
        listener.join(timeout=2)
        out(summary(recording, speed, events, values, code, marked_seizures(recording), provenance))
        return 0 if code == 0 else 1
    finally:
        stop.set()
        for proc in (replay, serve):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        sub.close(linger=0)
        context.term()
        notify.close()


def _wait_ready(notify: socket.socket, serve: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            return False
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in message.split("\n"):
            return True
    return False


def _wait_settled(metrics_url: str, events: list[dict], timeout_s: float) -> None:
    """After the replay ended: wait until the daemon saw the stream go and stopped scoring (queue empty,
    window count unchanged for 2 s)."""
    deadline = time.monotonic() + timeout_s
    last = (-1.0, 0.0)
    while time.monotonic() < deadline:
        gone = any(e.get("reason") in ("stream_lost", "no_data") for e in list(events))
        values = _scrape(metrics_url)
        scored = _total(values, "ictal_windows_scored_total")
        if gone and _total(values, "ictal_scoring_queue_windows") == 0:
            if scored != last[0]:
                last = (scored, time.monotonic())
            elif time.monotonic() - last[1] >= 2.0:
                return
        time.sleep(0.5)


def _clock(when: object) -> str:
    """``HH:MM:SS.mmm`` UTC of an event's ISO wall time, ``?`` when absent."""
    if not when:
        return "?"
    return AlarmEvent.model_validate({"kind": "daemon", "wall_time": when}).wall_time.strftime("%H:%M:%S.%f")[:-3]


def alarm_latency_s(event: dict) -> float | None:
    """``AlarmEvent.latency_s`` of an event as received (publish wall time - onset wall time), or None."""
    if event.get("kind") != "onset":
        return None
    return AlarmEvent.model_validate(event).latency_s


def describe_bed_state(heartbeat: dict, bed_id: str, previous: str | None) -> str | None:
    """A line when a heartbeat reports a new monitored state for ``bed_id`` (None when unchanged or absent).

    The states are :class:`ictal.alarms.schema.BedStatus`'s: ``connecting`` (warm-up: no window of the
    connection scored yet, no alarm possible), ``monitored`` (alarms can be raised), ``not_monitored``
    (with the reason: no alarm can be raised)."""
    status = (heartbeat.get("beds") or {}).get(bed_id)
    if not status or status.get("state") == previous:
        return None
    meaning = {"connecting": "warming up, no alarm possible yet", "monitored": "alarms can be raised",
               "not_monitored": "NOT MONITORED, no alarm can be raised"}.get(status["state"], "")
    reason = f": {status['reason']}" if status.get("reason") else ""
    return f"bed {bed_id} is {status['state']} ({meaning}{reason}) since {_clock(status.get('since'))} UTC"


def marked_seizures(recording: Path) -> list[tuple[float, float]]:
    """Seizure spans marked in the recording's EDF+ annotations, merged where they touch (seconds).

    Texts are read as everywhere in ictal (:func:`ictal.training.datasets.labels.label_for_text`:
    TUSZ seizure types, ``seiz``, SzCORE ``sz*``). Empty when the file marks none (or is plain EDF).
    """
    from ictal.streaming.edf import read_annotations
    from ictal.training.datasets.labels import label_for_text

    spans = sorted((onset, onset + (duration or 0.0)) for onset, duration, text in read_annotations(recording)
                   if label_for_text(text) == "seiz")
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1e-6:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def deciding_window_end_s(event: dict) -> float | None:
    """The end of the scored window that decided an onset (``window_end_s``) when it lies after the
    sample that completed the minimum duration (``stream_time_s``): with a lookahead or the hop grid the
    alarm waits for it. None when it does not (or the event has none)."""
    end = event.get("window_end_s")
    return float(end) if end is not None and float(end) > float(event["stream_time_s"]) else None


def bedside_time_to_alarm(event: dict, speed: float, marked_onset_s: float | None) -> dict[str, float] | None:
    """The time to alarm a nurse at the bedside would see, from a replayed onset event.

    A replay at ``speed`` times real time shortens the signal part of the measured wall-clock latency
    (``AlarmEvent.latency_s``: publish wall time - onset wall time) ``speed``-fold. At the bedside the
    signal arrives in real time, so the alarm comes ``window_end_s - onset_s`` seconds of signal after
    the onset (the seconds the detector needed: probability above tau_on, the minimum duration, then
    the end of the window that decided it: the hop grid and the ``lookahead_s`` of the output
    position; ``stream_time_s`` for an event without ``window_end_s``) plus the daemon's processing delay, measured here as the wall latency minus the
    signal part at replay pace.

    Parameters
    ----------
    event : dict
        An onset event as received (``onset_s``, ``stream_time_s``, ``window_end_s`` when present,
        ``wall_time``, ``onset_wall_time``).
    speed : float
        Replay pace, x real time.
    marked_onset_s : float or None
        The seizure onset marked in the recording (seconds), when there is one.

    Returns
    -------
    dict or None
        ``signal_s`` (stream seconds from the detected onset to the end of the deciding window),
        ``processing_s`` (seconds),
        ``from_detected_onset_s`` (their sum) and, with a marked onset, ``from_marked_onset_s`` (seconds
        from the marked onset to the alarm at real-time pace). None without the wall times.
    """
    latency = alarm_latency_s(event)
    if latency is None:
        return None
    # The decision waits for the window whose probabilities completed the minimum duration: its end
    # (window_end_s, the lookahead and the hop grid included) is the newest signal the alarm needed.
    decided_s = deciding_window_end_s(event) or float(event["stream_time_s"])
    signal_s = decided_s - float(event["onset_s"])
    processing_s = max(0.0, latency - signal_s / speed)
    result = {"signal_s": signal_s, "processing_s": processing_s, "from_detected_onset_s": signal_s + processing_s}
    if marked_onset_s is not None:
        result["from_marked_onset_s"] = decided_s - marked_onset_s + processing_s
    return result


def describe(event: dict) -> str:
    """One line for an event, as the demo prints it."""
    kind = event["kind"]
    seq = event.get("journal_seq")
    where = f"[{seq}] " if seq is not None else ""
    if kind == "onset":
        latency = alarm_latency_s(event)
        return (f"{where}ALARM ONSET bed {event['bed_id']}: seizure from {event['onset_s']:.1f} s "
                f"({_clock(event.get('onset_wall_time'))} UTC), minimum duration done at "
                f"{event['stream_time_s']:.1f} s"
                + (f", decided by the window ending at {end:.1f} s" if (end := deciding_window_end_s(event)) else "")
                + f", published {_clock(event.get('wall_time'))} UTC: time to alarm "
                + (f"{latency:.2f} s" if latency is not None else "unknown")
                + f" (peak p={event['probability']['peak']:.2f})")
    if kind == "offset":
        return (f"{where}alarm offset bed {event['bed_id']}: {event['onset_s']:.1f}-{event['offset_s']:.1f} s "
                f"({event['reason']})")
    if kind == "signal_quality":
        return f"{where}signal quality bed {event['bed_id']} at {event['stream_time_s'] or 0:.1f} s: {event['reason']}" + (
            f" ({event['detail']})" if event.get("detail") else "")
    return f"{where}{kind}: {event.get('reason')} {event.get('detail') or ''}".rstrip()


def _mean_text(values: dict[tuple[str, tuple], float], name: str, unit_of: str) -> str:
    """``mean X s over N <unit_of>`` from a histogram's _sum/_count, or ``none observed`` (never nan)."""
    count = _total(values, f"{name}_count")
    if not count:
        return f"none observed (no {unit_of})"
    return f"mean {_total(values, f'{name}_sum') / count:.3f} s over {count:.0f} {unit_of}"


def summary(recording: Path, speed: float, events: list[dict], values: dict[tuple[str, tuple], float],
            exit_code: int | None, marked: list[tuple[float, float]] | None = None,
            provenance: str | None = None) -> str:
    """The closing summary: the bed's states, alarms with the bedside time to alarm, windows, latency
    figures, the daemon's exit code, and (``provenance``, :func:`input_provenance`) whether the input is
    a training recording of the checkpoint. No figure is printed as ``nan``: an absent one says so."""
    marked = marked or []
    onsets = [e for e in events if e["kind"] == "onset"]
    quality = [e for e in events if e["kind"] == "signal_quality"]
    heartbeats = [e for e in events if e["kind"] == "heartbeat"]
    scored = _total(values, "ictal_windows_scored_total")
    skipped = _total(values, "ictal_windows_skipped_total")
    received = _total(values, "ictal_samples_received_total")
    p50 = histogram_quantile(values, "ictal_scoring_latency_seconds", 0.5)
    p99 = histogram_quantile(values, "ictal_scoring_latency_seconds", 0.99)
    states: list[str] = []
    for beat in heartbeats:
        state = (beat.get("beds") or {}).get("demo-bed", {}).get("state")
        if state and (not states or states[-1] != state):
            states.append(state)
    marked_text = (", ".join(f"{a:.1f}-{b:.1f} s" for a, b in marked) if marked
                   else "none (the file marks no seizure: every alarm on it is unconfirmed)")
    marked_onset = marked[0][0] if marked else None

    def onset_text(e: dict) -> str:
        latency = alarm_latency_s(e)
        wall = "unknown (no onset wall time)" if latency is None else f"{latency:.2f} s"
        done, end = float(e["stream_time_s"]), deciding_window_end_s(e)
        decided = (f"minimum duration done at {done:.1f} s, decided by the window ending at {end:.1f} s"
                   if end is not None else f"decided at {done:.1f} s")
        line = (f"\n    onset at {e['onset_s']:.1f} s of the recording, {decided} "
                f"(published {_clock(e.get('wall_time'))} UTC); wall-clock latency at {speed:g}x: {wall}")
        bedside = bedside_time_to_alarm(e, speed, marked_onset)
        if bedside is None:
            return line + "; bedside time to alarm: unknown (no wall times)"
        line += (f"\n      at the bedside (real-time signal): {bedside['from_detected_onset_s']:.1f} s after the "
                 f"detected onset ({bedside['signal_s']:.1f} s of signal + {bedside['processing_s']:.2f} s processing)")
        if "from_marked_onset_s" in bedside:
            lag = bedside["from_marked_onset_s"]
            line += (f", {lag:.1f} s after the marked seizure onset at {marked_onset:.1f} s" if lag >= 0 else
                     f", {-lag:.1f} s BEFORE the marked seizure onset at {marked_onset:.1f} s (an alarm on "
                     "time the file does not mark as seizure)")
        return line

    lines = [
        "",
        "summary",
        f"  recording: {recording.name}, replayed at {speed:g}x; {received:.0f} samples per channel received",
        f"  seizure marked in the recording: {marked_text}",
        *([f"  {provenance}"] if provenance else []),
        "  bed states seen: " + (" -> ".join(states) if states else "none reported (no heartbeat with bed states)"),
        f"  windows scored: {scored:.0f}; skipped (scoring behind): {skipped:.0f}",
        f"  alarms raised: {len(onsets)}" + "".join(onset_text(e) for e in onsets),
        "  time to alarm at the bedside = seconds of signal from the onset to the end of the deciding window (tau_on, minimum "
        "duration, hop grid, lookahead) + the daemon's processing time; the wall-clock latency of a replay (AlarmEvent.latency_s) "
        f"runs the signal part {speed:g}x faster" if speed != 1 else
        "  time to alarm = publish wall time - onset wall time (AlarmEvent.latency_s)",
        "  ictal_alarm_latency_seconds: " + _mean_text(values, "ictal_alarm_latency_seconds", "alarms"),
        f"  signal-quality events: {len(quality)}; heartbeats heard: {len(heartbeats)}",
        "  inference per batch: " + _mean_text(values, "ictal_inference_latency_seconds", "batches"),
        "  window complete -> probabilities at the post-processor: "
        + _mean_text(values, "ictal_scoring_latency_seconds", "windows")
        + (f", p50 <= {p50:g} s, p99 <= {p99:g} s (histogram bucket bounds)" if p50 is not None else ""),
        f"  daemon exit code after SIGTERM: {exit_code}",
    ]
    return "\n".join(lines)
