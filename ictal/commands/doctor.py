"""`ictal doctor`: what this machine can run (versions, CUDA, fused kernels, liblsl, ports)."""

from __future__ import annotations

import argparse
import platform
import socket
import sys
from urllib.parse import urlsplit

from ictal.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `doctor` subcommand."""
    parser = subparsers.add_parser(
        "doctor", help="Report versions, CUDA, fused kernels, liblsl and whether configured ports are free.",
        description="Check this machine: Python/torch versions, CUDA device, fused kernels (mamba-ssm, "
        "flash-linear-attention), liblsl, and whether the ports of the daemon config are free.",
    )
    parser.add_argument("--config", default="configs/daemon.yaml", help="Daemon config whose ports to check.")
    parser.set_defaults(func=run)


def port_free(host: str, port: int) -> bool:
    """True when a TCP socket can bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def run(args: argparse.Namespace) -> int:
    """Print the report; exit 1 when something the daemon needs is missing (liblsl, a busy port)."""
    import torch

    from detector.backends import probe_fused_kernels

    problems = 0
    print(f"python        {platform.python_version()} ({sys.executable})")
    print(f"torch         {torch.__version__}")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        print(f"cuda          {torch.version.cuda}, device 0: {name} ({torch.cuda.device_count()} device(s))")
    else:
        print("cuda          not available: the reference PyTorch backends run on the CPU")
    for status in probe_fused_kernels():
        version = status.version or "-"
        print(f"{status.package:<13} {version}: {status.detail}")
    try:
        import pylsl

        version = pylsl.library_version()  # an int such as 118 for 1.18
        print(f"liblsl        {version // 100}.{version % 100} (pylsl {pylsl.__version__})")
    except Exception as exc:  # liblsl is a shared library that may fail to load; say why
        print(f"liblsl        MISSING: {type(exc).__name__}: {exc}")
        problems += 1
    try:
        config = load_config(args.config, kind="daemon")
    except ConfigError as exc:
        print(f"ports         not checked: {exc}")
        return 1
    publisher = config.alarms.publisher
    endpoints = [("alarm PUB", publisher.pub_endpoint), ("catch-up REP", publisher.catchup_endpoint)]
    endpoints.append(("metrics HTTP", f"tcp://{config.alarms.metrics.host}:{config.alarms.metrics.port}"))
    for label, endpoint in endpoints:
        parts = urlsplit(endpoint)
        if parts.scheme != "tcp" or parts.port is None:
            print(f"port          {label} {endpoint}: not a tcp endpoint, not checked")
            continue
        free = port_free(parts.hostname or "127.0.0.1", parts.port)
        print(f"port          {label} {endpoint}: {'free' if free else 'IN USE'}")
        problems += 0 if free else 1
    return 1 if problems else 0
