"""Benchmark: how long an LSL bed takes to find its amplifier again after it returns.

``python -m ictal.streaming.bench_lsl_reconnect [--cycles N] [--outage-s S] [--unicast]`` runs an outlet
in this process, connects an :class:`ictal.streaming.sources.lsl.LslSource` to it, then N times destroys the
outlet, creates it again (same ``source_id``) ``--outage-s`` later and measures the time from its
return to the first chunk read. ``--unicast`` writes an ``lsl_api.cfg`` that turns multicast off and
lists ``127.0.0.1`` in ``KnownPeers`` (discovery as on a network that blocks multicast: ~0.5 s per
resolve) and runs the measurement in a child process with ``LSLAPICFG`` pointing to it (liblsl reads
its configuration once, when loaded). Prints a table of figures and the machine; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

UNICAST_CONFIG = """[multicast]
ResolveScope = machine
MachineAddresses = {}
LinkAddresses = {}
SiteAddresses = {}
OrganizationAddresses = {}
GlobalAddresses = {}
[lab]
KnownPeers = {127.0.0.1}
"""
"""liblsl configuration without multicast: streams are found only by asking the known peers."""


def measure_reconnects(cycles: int = 3, outage_s: float = 1.0, deadline_s: float = 30.0) -> list[float]:
    """Seconds from each return of the outlet to the first chunk read by the source.

    Parameters
    ----------
    cycles : int
        Number of loss/return cycles.
    outage_s : float
        Seconds the outlet stays away each time.
    deadline_s : float
        Longest wait for the loss to be seen and for the stream to be found again.

    Returns
    -------
    seconds : list of float
        One per cycle.

    Raises
    ------
    TimeoutError
        If the loss is not detected or the stream not found again within ``deadline_s``.
    """
    import numpy as np
    import pylsl

    from ictal.streaming.config import LslSourceConfig
    from ictal.streaming.lsl_outlet import canonical_stream_info
    from ictal.streaming.sources.lsl import LslSource

    name = f"ictal-bench-reconnect-{uuid.uuid4().hex[:8]}"
    block = np.zeros((32, 19), dtype=np.float32)

    def outlet() -> pylsl.StreamOutlet:
        return pylsl.StreamOutlet(canonical_stream_info(name, 256.0, "bench-amp"))

    def read_until(condition, what: str) -> None:
        end = time.monotonic() + deadline_s
        while not condition():
            if time.monotonic() > end:
                raise TimeoutError(f"{what} not seen within {deadline_s} s")
            if amp is not None:
                amp.push_chunk(block)
            source.read(timeout_s=0.05)

    amp = outlet()
    source = LslSource(LslSourceConfig(name=name, resolve_timeout_s=5.0, reconnect_s=0.5))
    source.open()
    out = []
    try:
        for _ in range(cycles):
            amp = None  # the amplifier goes away: its outlet is destroyed
            read_until(lambda: not source.connected, "the loss")
            time.sleep(outage_s)
            amp = outlet()
            back = time.monotonic()
            n = source.n_connections
            read_until(lambda n=n: source.n_connections > n, "the stream's return")
            out.append(time.monotonic() - back)
    finally:
        source.close()
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ictal bench lsl`` (and ``python -m ictal.streaming.bench_lsl_reconnect``)."""
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--outage-s", type=float, default=1.0)
    parser.add_argument("--unicast", action="store_true", help="multicast off, KnownPeers = 127.0.0.1")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the child's output


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m ictal.streaming.bench_lsl_reconnect``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Print the reconnection delays (s) of ``--cycles`` outages."""
    if args.unicast and "LSLAPICFG" not in os.environ:
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "lsl_api.cfg"
            config.write_text(UNICAST_CONFIG)
            child = subprocess.run(
                [sys.executable, "-m", "ictal.streaming.bench_lsl_reconnect", "--cycles", str(args.cycles),
                 "--outage-s", str(args.outage_s), "--json"],
                env={**os.environ, "LSLAPICFG": str(config)}, capture_output=True, text=True, check=True,
            )
        seconds = json.loads(child.stdout.strip().splitlines()[-1])
    else:
        seconds = measure_reconnects(args.cycles, args.outage_s)
    if args.json:
        print(json.dumps(seconds))
        return 0
    discovery = "unicast (KnownPeers 127.0.0.1, no multicast)" if args.unicast else "liblsl default (multicast)"
    print(f"# machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f}")
    print(f"# discovery: {discovery}; outage {args.outage_s:g} s; {args.cycles} cycles")
    print(f"{'reconnect after return (s)':<30}{'median':>10}{'max':>10}")
    print(f"{'':<30}{statistics.median(seconds):>10.3f}{max(seconds):>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
