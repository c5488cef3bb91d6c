"""`ictal view`: the EEG page (traces, probability trend, spectral array, alarms) in a browser.

Two modes, one page (``streaming.view``):

- ``ictal view FILE.edf --checkpoint DIR``: scores the file through the daemon path
  (``streaming.bed.run_recording``), then serves the page for it until SIGINT/SIGTERM.
- ``ictal view --config configs/daemon.yaml``: runs the daemon of that file (as ``ictal serve``:
  journal, alarm sockets, metrics) with the page attached (``streaming.view.live``), live.

Once the page listens, one line ``view: URL`` is printed on stdout (port 0 picks a free port; tools and
tests read it). Bind, TLS and token: the config's ``view:`` section when it has one, else
``streaming.view.config.ViewConfig`` defaults, overridden by ``--host``/``--port``/``--minutes``/
``--allow-patient-id``. Exit status 0 on SIGINT/SIGTERM, 1 when the port cannot be bound or the daemon
fails, 2 for invalid input (the message says what and where).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `view` subcommand."""
    parser = subparsers.add_parser(
        "view",
        help="Show EEG, probability trend, spectral array and alarms in a browser (a file, or the live daemon).",
        description="Serve the bedside EEG page: for FILE.edf (scored through the daemon path with --checkpoint), "
        "or live from the daemon of --config. Loopback by default; prints 'view: URL' once listening.",
    )
    parser.add_argument("file", nargs="?", type=Path, help="EDF/EDF+ file to score and show (offline mode)")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint directory (offline mode)")
    parser.add_argument("--config", type=Path, help="daemon config file (live mode: runs the daemon with the page)")
    parser.add_argument("--thresholds", type=Path, help="thresholds file (offline; default: the checkpoint's)")
    parser.add_argument("--hop-s", type=float, default=None, help="seconds between scored windows (offline; "
                        "default: the daemon's)")
    parser.add_argument("--min-history-s", type=float, default=None, help="offline; default: the daemon's")
    parser.add_argument("--device", default="auto", help="torch device (offline; auto: cuda if available)")
    parser.add_argument("--backend", choices=("auto", "fused", "reference"), default="auto", help="stack backend")
    parser.add_argument("--host", default=None, help="bind address (default: the config's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the config's, else 9110; 0: any)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="minutes kept per bed (default: live 10, offline the whole file)")
    parser.add_argument("--allow-patient-id", action="store_true",
                        help="show the recording's file name (it may identify the patient)")
    parser.set_defaults(func=run)


def _view_config(args: argparse.Namespace, section: object | None):
    from ictal.streaming.view.config import ViewConfig

    data = section.model_dump() if section is not None else {}
    for key, value in (("host", args.host), ("port", args.port), ("minutes", args.minutes)):
        if value is not None:
            data[key] = value
    if args.allow_patient_id:
        data["allow_patient_id"] = True
    return ViewConfig.model_validate(data)


def _serve_until_signal(server) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"view: {server.url}", flush=True)
    while not stop.wait(0.5):
        pass
    server.close()
    return 0


def run(args: argparse.Namespace) -> int:
    """Serve the page; returns the exit status."""
    from pydantic import ValidationError

    if (args.file is None) == (args.config is None):
        print("ictal view: give either FILE.edf --checkpoint DIR (offline) or --config DAEMON.yaml (live)",
              file=sys.stderr)
        return 2
    try:
        if args.file is not None:
            return _offline(args)
        return _live(args)
    except ValidationError as exc:
        print(f"ictal view: invalid view settings: {exc}", file=sys.stderr)
        return 2


def _offline(args: argparse.Namespace) -> int:
    from ictal.alarms.thresholds import ThresholdsFileError
    from ictal.detector.inference import Detector
    from ictal.detector.montage import MontageError
    from ictal.streaming.config import SchedulerConfig
    from ictal.streaming.view.offline import view_file
    from ictal.streaming.view.server import ViewServer
    from ictal.training.evaluate import resolve_thresholds

    if args.checkpoint is None:
        print("ictal view: FILE.edf needs --checkpoint DIR (the model that scores it)", file=sys.stderr)
        return 2
    view_config = _view_config(args, None)
    scheduler = SchedulerConfig()
    hop_s = scheduler.hop_s if args.hop_s is None else args.hop_s
    min_history_s = scheduler.min_history_s if args.min_history_s is None else args.min_history_s
    try:
        thresholds, source = resolve_thresholds(args.thresholds, args.checkpoint)
        detector = Detector.from_checkpoint(args.checkpoint, device=args.device, backend=args.backend)
        print(f"scoring {'the file' if not view_config.allow_patient_id else args.file} through the daemon path "
              f"(hop {hop_s:g} s, tau_on {thresholds.tau_on:g} from {source})", file=sys.stderr, flush=True)
        view = view_file(args.file, detector, detector.frontend_config, thresholds, hop_s,
                         min_history_s=min_history_s, minutes=args.minutes,
                         recording=args.file.name if view_config.allow_patient_id else None)
    except (ThresholdsFileError, MontageError, FileNotFoundError, ValueError) as exc:
        print(f"ictal view: {exc}", file=sys.stderr)
        return 2
    print(f"scored {view.result.duration_s:.1f} s: {len(view.alarms)} alarm(s)", file=sys.stderr, flush=True)
    try:
        server = ViewServer(view.hub, view_config).start()
    except OSError as exc:
        print(f"ictal view: {exc}", file=sys.stderr)
        return 1
    return _serve_until_signal(server)


def _live(args: argparse.Namespace) -> int:
    from ictal.alarms.journal import JournalError
    from ictal.alarms.publisher import PublisherError
    from ictal.alarms.thresholds import ThresholdsError
    from ictal.config import ConfigError, load_config
    from ictal.streaming.daemon import Daemon, DaemonError
    from ictal.streaming.logfmt import configure_logging
    from ictal.streaming.view.live import start_live_view

    try:
        config = load_config(args.config, kind="daemon")
    except ConfigError as exc:
        print(f"ictal view: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    view_config = _view_config(args, getattr(config, "view", None))
    try:
        daemon = Daemon.from_config(config, config_path=args.config)
    except (DaemonError, ThresholdsError) as exc:
        print(f"ictal view: {exc}", file=sys.stderr)
        return 2
    try:
        view = start_live_view(daemon, view_config)
    except OSError as exc:
        print(f"ictal view: {exc}", file=sys.stderr)
        return 1
    print(f"view: {view.url}", flush=True)
    try:
        code = daemon.run()  # signal handlers, start, serve until SIGTERM/SIGINT, shutdown
    except (JournalError, PublisherError, OSError) as exc:
        print(f"ictal view: {exc}", file=sys.stderr)
        code = 1
    finally:
        view.close()
    if daemon.threads_left_running():  # as ictal serve: finalising under a native thread aborts
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
