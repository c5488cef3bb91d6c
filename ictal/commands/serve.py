"""`ictal serve`: run the bedside daemon: score every configured bed and publish alarms."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="Run the bedside daemon: score every configured bed and publish alarms.",
        description="Run the bedside daemon (see streaming.daemon): every bed of the config file is read from its "
        "source, scored by the checkpoint's model in batches, and its alarm events are journaled and published "
        "over ZeroMQ; Prometheus metrics are served. Under systemd (Type=notify) it sends READY=1 after the model "
        "warm-up, STATUS= lines and WATCHDOG=1 keep-alives while scoring makes progress. SIGTERM/SIGINT drain and "
        "exit 0; SIGHUP reloads thresholds and the bed list. Relative paths in the file resolve in the working "
        "directory.",
    )
    parser.add_argument("--config", type=Path, default=Path("configs/daemon.yaml"),
                        help="Daemon config file (kind: daemon; default configs/daemon.yaml).")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=None,
                        help="Override the config's log_level.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; exit codes: 0 clean stop, 1 failure while running, 2 refused to start."""
    from ictal.alarms.journal import JournalError
    from ictal.alarms.publisher import PublisherError
    from ictal.alarms.thresholds import ThresholdsError
    from ictal.config import ConfigError, load_config
    from ictal.streaming.daemon import Daemon, DaemonError
    from ictal.streaming.logfmt import configure_logging, kv
    from ictal.streaming.notify import SystemdNotifier

    try:
        config = load_config(args.config, kind="daemon")
    except ConfigError as exc:
        print(f"ictal serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or config.log_level)
    log = logging.getLogger("ictal.serve")
    notifier = SystemdNotifier()
    log.info(kv("loading", config=args.config.resolve(), checkpoint=config.detector.checkpoint,
                device=config.detector.device, beds=len(config.beds)))
    notifier.status(f"loading checkpoint {config.detector.checkpoint}")
    try:
        daemon = Daemon.from_config(config, config_path=args.config, notifier=notifier)
    except (DaemonError, ThresholdsError) as exc:  # ThresholdsError: file, mismatch (both ids), precedence
        log.error(kv("start_refused", detail=str(exc)))
        notifier.status(f"refused to start: {exc}")
        print(f"ictal serve: {exc}", file=sys.stderr)
        return 2
    view = None
    try:
        if config.view.enabled:
            from ictal.streaming.view.live import start_live_view

            view = start_live_view(daemon, config.view)  # before start(): it wraps the beds' sources
        code = daemon.run()  # signal handlers first, then start(), then serve
    except (JournalError, PublisherError, OSError) as exc:
        log.error(kv("start_failed", detail=str(exc)))
        notifier.status(f"failed to start: {exc}")
        print(f"ictal serve: {exc}", file=sys.stderr)
        return 1
    finally:
        if view is not None:
            view.close()
    left = daemon.threads_left_running()
    if left:  # finalising the interpreter under a thread in PyTorch/liblsl aborts (streaming.daemon, step 4)
        log.warning(kv("exit_without_finalising", code=code, threads=",".join(left),
                       detail="threads still in native code after the shutdown (journal and publisher are "
                       "closed); the process ends without interpreter finalisation"))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
