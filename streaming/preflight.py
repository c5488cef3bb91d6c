"""Pre-flight checks of a daemon config: what would stop ``ictal serve`` at start, found before it.

:func:`preflight` runs every check below and collects every problem (not only the first), so one
run of ``ictal config check FILE`` or ``ictal doctor --config FILE`` names all of them. Nothing is
bound for good, the journal is never opened, no stream is connected.

Checks (in this order; each names the config key, the value found and what was expected):

``checkpoint``
    ``detector.checkpoint`` is loaded as the daemon loads it (:func:`ictal.streaming.daemon.load_detector`:
    the directory, the weights, the front-end compared with ``frontend``), without the warm-up pass.
``thresholds``
    The thresholds in force are resolved by the daemon's own call
    (:func:`ictal.alarms.thresholds.thresholds_in_force` with the same arguments as ``Daemon.__init__``, and
    ``checkpoint_id=<the checkpoint's model_id>`` when that function accepts it, so a thresholds file
    tuned for another checkpoint is refused here as it is at start). A thresholds file is still parsed
    when the checkpoint did not load (it is then not matched against a checkpoint: said so).
``journal``
    The directory of ``alarms.journal.path`` exists and a file can be created and removed in it, or
    (absent) its outermost missing directory can be created (it is made and removed at once; the
    journal creates the missing directories); an existing journal file is readable and writable. The
    journal itself is not opened.
``ports``
    Each TCP endpoint (alarm PUB, catch-up REP, metrics HTTP) can be bound now: a socket is bound and
    closed at once (``SO_REUSEADDR`` like ZeroMQ's listeners, so a port in ``TIME_WAIT`` is free). A
    busy port names its holder (:func:`ictal.streaming.ports.describe_port_holder`). Two endpoints on one
    port are a problem. ``ipc://``, ``inproc://`` and port ``0``/``*`` (chosen at bind) are not checked
    (said so).
``beds``
    Each EDF bed's file opens as the replay source opens it (:func:`ictal.streaming.edf.open_canonical`:
    header, annotations, montage and calibration; no sample is read for a real file) and holds
    samples. LSL beds need their stream only once running (``ictal doctor`` lists the streams).

Output contract (``ictal config check``, ``ictal doctor --config``): one line per check passed,
``ok      <check>: <what>``, one per warning, ``WARNING <check>: <what>`` (unusual, does not fail), and
one per problem, ``PROBLEM <check>: <what>``; the commands exit non-zero when
:attr:`PreflightReport.problems` is not empty.
"""

from __future__ import annotations

import errno
import inspect
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ictal.alarms import thresholds as thresholds_module
from ictal.alarms.thresholds import ThresholdsFileError, thresholds_in_force
from ictal.streaming.config import DaemonConfig, EdfSourceConfig
from ictal.streaming.ports import describe_port_holder


@dataclass
class PreflightReport:
    """What the pre-flight found.

    Attributes
    ----------
    passed : list of (str, str)
        ``(check, what)`` of each check passed (or skipped, saying why).
    problems : list of (str, str)
        ``(check, what)`` of each problem, naming the key, the value found and the value expected.
    warnings : list of (str, str)
        ``(check, what)`` of what would not stop the daemon but is unusual (thresholds without
        hysteresis, a minimum duration below the floor: ``alarms.thresholds.threshold_warnings``).
    model_id : str or None
        The checkpoint's model id when it loaded.
    """

    passed: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    model_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def lines(self) -> list[str]:
        """The report: one line per check passed, per warning, then per problem (the output contract)."""
        return ([f"ok      {check}: {what}" for check, what in self.passed]
                + [f"WARNING {check}: {what}" for check, what in self.warnings]
                + [f"PROBLEM {check}: {what}" for check, what in self.problems])


def _load_checkpoint(config: DaemonConfig, report: PreflightReport):
    from ictal.streaming.daemon import DaemonError, load_detector

    no_warmup = config.model_copy(update={"detector": config.detector.model_copy(update={"warmup": False})})
    try:
        detector = load_detector(no_warmup)
    except DaemonError as exc:
        report.problems.append(("checkpoint", f"detector.checkpoint: {exc}"))
        return None
    except RuntimeError as exc:  # torch refusing the device or the weights
        report.problems.append(("checkpoint", f"detector.checkpoint: cannot load {config.detector.checkpoint}: "
                                              f"{type(exc).__name__}: {exc}"))
        return None
    model_id = str(getattr(detector, "model_id", "unknown"))
    report.model_id = model_id
    report.passed.append(("checkpoint", f"{config.detector.checkpoint} loads (model {model_id}, front-end as "
                                        "the config's; warm-up not run)"))
    return detector


def _check_thresholds(config: DaemonConfig, detector, report: PreflightReport) -> None:
    kwargs = {}
    matched = ""
    if detector is not None and "checkpoint_id" in inspect.signature(thresholds_in_force).parameters:
        kwargs["checkpoint_id"] = str(getattr(detector, "model_id", "unknown"))
        if config.alarms.thresholds_file is not None:
            matched = f", matched to checkpoint {kwargs['checkpoint_id']}"
    elif detector is None and config.alarms.thresholds_file is not None:
        matched = ", not matched to a checkpoint (the checkpoint did not load)"
    try:
        thresholds, source = thresholds_in_force(config.alarms, getattr(detector, "thresholds", None), **kwargs)
    except ThresholdsFileError as exc:
        report.problems.append(("thresholds", f"alarms.thresholds_file: {exc}"))
        return
    except ValueError as exc:  # the checkpoint's tuned thresholds are invalid
        report.problems.append(("thresholds", str(exc)))
        return
    report.passed.append(("thresholds", f"from {source}: tau_on {thresholds.tau_on:g}, tau_off "
                                        f"{thresholds.tau_off:g}, min_duration_s {thresholds.min_duration_s:g}"
                                        f"{matched}"))
    warn = getattr(thresholds_module, "threshold_warnings", None)  # added with issue 17's precedence rule
    for sentence in warn(thresholds) if warn is not None else []:
        report.warnings.append(("thresholds", f"from {source}: {sentence}"))


def _check_journal(config: DaemonConfig, report: PreflightReport) -> None:
    path = Path(config.alarms.journal.path)
    directory = path.parent if str(path.parent) else Path(".")
    key = f"alarms.journal.path {path} (resolved: {path.resolve()})"
    if path.is_dir():
        report.problems.append(("journal", f"{key} is a directory; expected a SQLite file path"))
        return
    if not directory.exists():
        top = directory  # the outermost missing directory: made and removed at once, as a trial
        while not top.parent.exists() and top.parent != top:
            top = top.parent
        try:
            top.mkdir()
            top.rmdir()
        except OSError as exc:
            report.problems.append(("journal", f"{key}: directory {directory} does not exist and cannot be created "
                                               f"(mkdir {top}: {exc.strerror})"))
            return
        report.passed.append(("journal", f"{key}: directory {directory} absent, can be created (the journal "
                                         "creates it)"))
        return
    if not directory.is_dir():
        report.problems.append(("journal", f"{key}: {directory} is not a directory"))
        return
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".ictal-preflight-"):
            pass  # created, then removed on leaving the block
    except OSError as exc:
        report.problems.append(("journal", f"{key}: directory {directory} is not writable ({exc.strerror}); the "
                                           "journal and its -wal/-shm files are written there"))
        return
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        report.problems.append(("journal", f"{key}: the journal file exists but is not readable and writable "
                                           "by this user"))
        return
    state = "exists" if path.exists() else "will be created"
    report.passed.append(("journal", f"{key}: directory writable, journal file {state} (not opened)"))


def _bind_problem(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now; else why not (a busy port names its holder)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"host {host!r} does not resolve ({exc}); expected an address, a host name or an interface name"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return describe_port_holder(port)
            return f"cannot bind {host}:{port} ({exc.strerror})"
    return None


def endpoints(config: DaemonConfig) -> list[tuple[str, str, str]]:
    """``(label, config key, endpoint)`` of the daemon's listening sockets."""
    publisher, metrics = config.alarms.publisher, config.alarms.metrics
    return [("alarm PUB", "alarms.publisher.pub_endpoint", publisher.pub_endpoint),
            ("catch-up REP", "alarms.publisher.catchup_endpoint", publisher.catchup_endpoint),
            ("metrics HTTP", "alarms.metrics.host/port", f"tcp://{metrics.host}:{metrics.port}")]


def _check_ports(config: DaemonConfig, report: PreflightReport) -> None:
    used: dict[int, str] = {}
    for label, key, endpoint in endpoints(config):
        parts = urlsplit(endpoint)
        if parts.scheme != "tcp":
            report.passed.append(("port", f"{label} {endpoint}: not a tcp endpoint, not checked"))
            continue
        host, _, port_text = parts.netloc.rpartition(":")
        host = host.strip("[]")
        if port_text in ("*", "0"):
            report.passed.append(("port", f"{label} {endpoint}: port chosen at bind, not checked"))
            continue
        try:
            port = int(port_text)
        except ValueError:
            report.problems.append(("port", f"{key} {endpoint}: port {port_text!r} is not a number"))
            continue
        if port in used:
            report.problems.append(("port", f"{key} {endpoint}: port {port} is also the {used[port]}'s; expected "
                                            "a distinct port per endpoint"))
            continue
        used[port] = label
        if host in {name for _, name in socket.if_nameindex()}:
            report.passed.append(("port", f"{label} {endpoint}: a ZeroMQ interface name, bound by ZeroMQ; not checked"))
            continue
        problem = _bind_problem("" if host == "*" else host, port)
        if problem is None:
            report.passed.append(("port", f"{label} {endpoint}: free"))
        else:
            report.problems.append(("port", f"{label} {endpoint} ({key}): {problem}"))


def _check_edf_beds(config: DaemonConfig, report: PreflightReport) -> None:
    from ictal.streaming.edf import open_canonical

    for bed in config.beds:
        if not isinstance(bed.source, EdfSourceConfig):
            continue
        path = bed.source.path
        where = f"bed {bed.bed_id}"
        try:
            with open_canonical(path, config.frontend) as stream:
                n_samples, fs = stream.n_samples, stream.fs
        except (OSError, ValueError) as exc:
            report.problems.append((where, f"source.path {path} (resolved: {Path(path).resolve()}): {exc}"))
            continue
        if n_samples == 0:
            report.problems.append((where, f"source.path {path}: holds no samples; expected an EEG recording"))
            continue
        report.passed.append((where, f"EDF {path} opens ({n_samples / fs:.0f} s at {fs:g} Hz; header and "
                                     "montage checked)"))


def preflight(config: DaemonConfig, *, load_checkpoint: bool = True) -> PreflightReport:
    """Run every pre-flight check of ``config`` and collect every problem.

    Parameters
    ----------
    config : DaemonConfig
        Validated (``ictal.config.load_config``); relative paths resolve in the working directory,
        as the daemon's do.
    load_checkpoint : bool
        Load the checkpoint (seconds on a CPU); without it the thresholds file is parsed but not
        matched to a checkpoint.

    Returns
    -------
    report : PreflightReport
        Every check passed and every problem found; nothing is left bound or open.
    """
    report = PreflightReport()
    detector = _load_checkpoint(config, report) if load_checkpoint else None
    if not load_checkpoint:
        report.passed.append(("checkpoint", "not loaded (asked)"))
    _check_thresholds(config, detector, report)
    _check_journal(config, report)
    _check_ports(config, report)
    _check_edf_beds(config, report)
    return report
