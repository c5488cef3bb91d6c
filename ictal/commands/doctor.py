"""`ictal doctor`: what this machine can run (versions, CUDA, fused kernels, liblsl), the LSL streams it
sees, and the pre-flight of a daemon config (checkpoint, thresholds, journal, ports, EDF beds).

Output: one line per fact, ``<topic padded to 13> <fact>``. The LSL part lists every visible stream
(``lsl stream    name 'amp', type 'EEG', source_id 'sn-1', host 'icu-3', 19 channels, 256 Hz -> bed
bed-01``, or ``-> no configured bed``), then each LSL bed of the config with the stream(s) its
predicate selects (``lsl bed       bed-02 (type='EEG' and name='amp-2'): no stream visible``). The
pre-flight lines are those of ``ictal config check`` (``streaming.preflight``). Exit 1 when liblsl is
missing, the config does not load, an LSL bed selects several streams (its source would take none) or
the pre-flight finds a problem; a bed whose stream is not visible yet is said but is not a failure
(the daemon starts and connects when the stream appears).
"""

from __future__ import annotations

import argparse
import platform
import sys

from ictal.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `doctor` subcommand."""
    parser = subparsers.add_parser(
        "doctor", help="Report versions, CUDA, fused kernels, liblsl, visible LSL streams and the pre-flight of a "
        "daemon config.",
        description="Check this machine: Python/torch versions, CUDA device, fused kernels (mamba-ssm, "
        "flash-linear-attention), liblsl; list the visible LSL streams and which configured bed each would be "
        "selected by; run the pre-flight of the daemon config (checkpoint, thresholds, journal directory, "
        "ports with the process holding a busy one, EDF bed files).",
    )
    parser.add_argument("--config", default="configs/daemon.yaml",
                        help="Daemon config to pre-flight and whose beds to match to the LSL streams.")
    parser.add_argument("--lsl-wait", type=float, default=2.0, metavar="SECONDS",
                        help="How long to wait for LSL streams to answer (default 2 s; more on a slow network).")
    parser.set_defaults(func=run)


def _print(topic: str, fact: str) -> None:
    print(f"{topic:<13} {fact}")


def _lsl_report(config, wait_s: float) -> int:
    """Print the visible streams and the beds they match; return the number of problems."""
    from ictal.streaming.lsl_survey import survey

    found = survey(config, wait_s)
    hint = "" if found.streams else (": is the amplifier's LSL app running, and does discovery reach this host "
                                     "(multicast, or KnownPeers in lsl_api.cfg)? Try a longer --lsl-wait")
    _print("lsl streams", f"{len(found.streams)} visible (waited {wait_s:g} s){hint}")
    for stream in found.streams:
        beds = found.beds_of_stream.get(stream.uid)
        target = f"bed {', '.join(beds)}" if beds else "no configured bed"
        _print("lsl stream", f"{stream.describe()} -> {target}")
    problems = 0
    for bed_id, streams in found.streams_of_bed.items():
        where = f"{bed_id} ({found.predicates[bed_id]})"
        if not streams:
            _print("lsl bed", f"{where}: no stream visible (the bed waits for it once the daemon runs)")
        elif len(streams) == 1:
            _print("lsl bed", f"{where}: selects {streams[0].describe()}")
        else:
            listed = "; ".join(stream.describe() for stream in streams)
            _print("lsl bed", f"PROBLEM {where}: {len(streams)} streams match ({listed}); its source takes none. "
                              "Give the bed its device's source_id")
            problems += 1
    return problems


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 when something the daemon needs is missing or the pre-flight finds a problem."""
    import torch

    from ictal.detector.backends import probe_fused_kernels

    problems = 0
    _print("python", f"{platform.python_version()} ({sys.executable})")
    _print("torch", torch.__version__)
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        _print("cuda", f"{torch.version.cuda}, device 0: {name} ({torch.cuda.device_count()} device(s))")
    else:
        _print("cuda", "not available: the reference PyTorch backends run on the CPU")
    for status in probe_fused_kernels():
        _print(status.package, f"{status.version or '-'}: {status.detail}")
    lsl_ok = False
    try:
        import pylsl

        from ictal.streaming.lsl_config import configure_liblsl

        liblsl_log = configure_liblsl()
        version = pylsl.library_version()  # an int such as 118 for 1.18
        _print("liblsl", f"{version // 100}.{version % 100} (pylsl {pylsl.__version__}); its log: "
               + ("fatal errors only (no lsl_api.cfg here)" if liblsl_log == "quiet" else liblsl_log))
        lsl_ok = True
    except (ImportError, RuntimeError, OSError) as exc:  # liblsl is a shared library that may fail to load
        _print("liblsl", f"MISSING: {type(exc).__name__}: {exc}")
        problems += 1
    config = None
    try:
        config = load_config(args.config, kind="daemon")
    except ConfigError as exc:
        _print("config", f"PROBLEM not loaded, no pre-flight: {exc}")
        problems += 1
    if lsl_ok:
        problems += _lsl_report(config, args.lsl_wait)
    if config is None:
        return 1
    from ictal.commands.config import print_preflight

    _print("config", f"{args.config}: valid daemon config; pre-flight on this machine:")
    problems += print_preflight(config, file=sys.stdout)
    return 1 if problems else 0
