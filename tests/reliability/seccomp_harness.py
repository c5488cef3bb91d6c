"""Run a command under a systemd unit's system-call filter and MemoryDenyWriteExecute, without systemd.

Usage: ``python tests/reliability/seccomp_harness.py UNIT_FILE -- COMMAND [ARG ...]``

Systemd is not PID 1 in the test machines, so the sandbox that ``systemd/ictal.service`` asks for is
rebuilt here from the unit's own lines and applied to this process, which then ``execvp``-s COMMAND
(the filter and MDWE are inherited across exec, as they are from systemd's ``ExecStart=``):

1. ``NoNewPrivileges=yes``: ``prctl(PR_SET_NO_NEW_PRIVS, 1)`` (also what lets an unprivileged process
   load a seccomp filter).
2. ``MemoryDenyWriteExecute=yes``, as systemd >= 254 enforces it: ``prctl(PR_SET_MDWE,
   PR_MDWE_REFUSE_EXEC_GAIN)`` (Linux >= 6.3): no mapping may be writable and executable at once, and
   no mapping may become executable after it was created. On an older kernel the harness falls back to
   what systemd itself does there (and systemd <= 253 always did): a seccomp filter refusing
   ``mmap``/``mprotect``/``pkey_mprotect`` with ``PROT_WRITE|PROT_EXEC``, ``mprotect``/``pkey_mprotect``
   with ``PROT_EXEC`` and ``shmat`` with ``SHM_EXEC``. The mode used is printed on stderr.
3. ``SystemCallFilter=`` lines, with systemd's semantics: the groups (``@system-service`` ...) are
   expanded with ``systemd-analyze syscall-filter`` of this machine; the first line, if an allow-list,
   starts from ``@default`` plus its names; later ``~`` lines remove names, later plain lines add them.
   Every other system call fails with ``SystemCallErrorNumber=`` (EPERM by default here, as in the
   unit). ``SystemCallArchitectures=native``: the filter is built for the native architecture only
   (other ABIs are killed by libseccomp's default bad-architecture action).

4. ``RestrictRealtime=yes``: ``sched_setscheduler`` only to a non-realtime policy (systemd filters it
   the same way; ``sched_setattr`` is left to the filter's lines).
5. ``LimitNOFILE=``: ``RLIMIT_NOFILE`` as the unit sets it, or systemd's default for services
   (soft 1024, hard 524288) when it does not: a flood of connections meets the same descriptor limit.

Not emulated (the filter is the subject here): ``RestrictAddressFamilies=``, namespaces, mounts,
capabilities, the ``ictal`` user. Needs ``libseccomp.so.2`` (Debian package ``libseccomp2``) and
``systemd-analyze`` (package ``systemd``); :func:`unavailable` says which is missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import resource
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65  # include/uapi/linux/prctl.h, Linux 6.3
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
SCHED_RESET_ON_FORK = 0x40000000
SCHED_NON_REALTIME = (0, 3, 5)  # SCHED_OTHER, SCHED_BATCH, SCHED_IDLE
NR_SCMP_ERROR = -1
# systemd's DefaultLimitNOFILE= for services (systemd >= 240): soft 1024 (select() safety), hard 512 Ki.
SYSTEMD_NOFILE = (1024, 524288)


def SCMP_ACT_ERRNO(code: int) -> int:  # noqa: N802 - libseccomp's macro name
    return 0x00050000 | (code & 0x0000FFFF)


class _ArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp`` of libseccomp."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def unavailable() -> str | None:
    """Why the harness cannot run here (a missing library or tool), or None."""
    try:
        _libseccomp()
    except OSError as exc:
        return f"libseccomp.so.2 cannot be loaded (Debian package libseccomp2): {exc}"
    if shutil.which("systemd-analyze") is None:
        return "systemd-analyze not found (Debian package systemd)"
    return None


@cache
def syscall_groups() -> dict[str, list[str]]:
    """Every ``@group`` of this machine's systemd and its members (names and nested ``@groups``).

    Raises
    ------
    RuntimeError
        If ``systemd-analyze syscall-filter`` fails or lists no group.
    """
    result = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"systemd-analyze syscall-filter failed ({result.returncode}): {result.stderr.strip()}")
    groups: dict[str, list[str]] = {}
    current = None
    for line in result.stdout.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif line.startswith("    "):
            if current is not None and not line.strip().startswith("#"):
                groups[current].append(line.strip())
        elif line.strip():
            current = None  # e.g. the trailing "# Unlisted system calls" section
    if "@system-service" not in groups:
        raise RuntimeError(f"systemd-analyze syscall-filter listed no @system-service group (found: {sorted(groups)})")
    return groups


def expand(names: list[str]) -> set[str]:
    """System-call names of ``names`` with every ``@group`` expanded (recursively).

    Raises
    ------
    ValueError
        If a group is unknown to this machine's systemd.
    """
    groups = syscall_groups()
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            if name not in groups:
                raise ValueError(f"system-call group {name} unknown to systemd-analyze (found: {sorted(groups)})")
            out |= expand(groups[name])
        else:
            out.add(name)
    return out


def service_lines(unit_text: str, key: str) -> list[str]:
    """The values of ``key=`` in the unit's ``[Service]`` section, in order (comments skipped)."""
    values, section = [], None
    for raw in unit_text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and line.split("=", 1)[0].strip() == key:
            values.append(line.split("=", 1)[1].strip())
    return values


def allowed_syscalls(unit_text: str) -> set[str]:
    """The system calls ``SystemCallFilter=`` lines of ``unit_text`` allow (systemd's semantics).

    Raises
    ------
    ValueError
        If the unit has no ``SystemCallFilter=`` or its first line is a deny-list (this harness
        emulates allow-lists only, which is what the unit uses).
    """
    lines = service_lines(unit_text, "SystemCallFilter")
    if not lines or lines[0].startswith("~"):
        raise ValueError(f"SystemCallFilter= of the unit is {lines}, expected an allow-list first")
    allowed = expand(["@default"])
    for line in lines:
        deny = line.startswith("~")
        names = re.split(r"\s+", line.lstrip("~").strip())
        names = [n.split(":", 1)[0] for n in names if n]  # name:errno overrides are not used here
        if deny:
            allowed -= expand(names)
        else:
            allowed |= expand(names)
    return allowed


def _errno_of(unit_text: str) -> int:
    values = service_lines(unit_text, "SystemCallErrorNumber")
    if not values:
        return errno.EPERM
    code = getattr(errno, values[-1], None)
    if code is None:
        raise ValueError(f"SystemCallErrorNumber={values[-1]} is not an errno name")
    return code


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    return lib


def _masked(arg: int, mask: int, value: int) -> _ArgCmp:
    return _ArgCmp(arg, SCMP_CMP_MASKED_EQ, mask, value)


def apply(unit_text: str) -> str:
    """Apply the unit's sandbox to this process (irreversible); the MDWE mode used.

    Returns
    -------
    mdwe : str
        ``"prctl"``, ``"seccomp"`` (fallback on a kernel without PR_SET_MDWE) or ``"off"``.

    Raises
    ------
    OSError
        If a prctl or the filter cannot be applied.
    """
    libc = _libc()
    # NoNewPrivileges=yes in the unit; systemd sets it for any SystemCallFilter= of an unprivileged unit
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    mdwe = "off"
    if service_lines(unit_text, "MemoryDenyWriteExecute")[-1:] == ["yes"]:
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0:
            mdwe = "prctl"
        elif ctypes.get_errno() == errno.EINVAL:
            mdwe = "seccomp"
        else:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE) failed")
    lib = _libseccomp()
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO(_errno_of(unit_text)))
    if not ctx:
        raise OSError(errno.ENOMEM, "seccomp_init failed")
    conditional = {"mmap", "mprotect", "pkey_mprotect", "shmat"} if mdwe == "seccomp" else set()
    if service_lines(unit_text, "RestrictRealtime")[-1:] == ["yes"]:
        conditional.add("sched_setscheduler")
    for name in sorted(allowed_syscalls(unit_text)):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == NR_SCMP_ERROR or nr < 0:
            continue  # not a system call of this architecture (e.g. setuid32 on x86_64)
        if name in conditional:
            if name == "sched_setscheduler":  # RestrictRealtime=yes: no SCHED_FIFO/RR/DEADLINE
                policy = 0xFFFFFFFF & ~SCHED_RESET_ON_FORK
                rules = [[_masked(1, policy, p)] for p in SCHED_NON_REALTIME]
            elif name == "shmat":
                rules = [[_masked(2, SHM_EXEC, 0)]]
            elif name == "mmap":
                wx = PROT_WRITE | PROT_EXEC
                rules = [[_masked(2, wx, 0)], [_masked(2, wx, PROT_WRITE)], [_masked(2, wx, PROT_EXEC)]]
            else:
                rules = [[_masked(2, PROT_EXEC, 0)]]
            for cmp in rules:
                array = (_ArgCmp * len(cmp))(*cmp)
                rc = lib.seccomp_rule_add_array(ctypes.c_void_p(ctx), SCMP_ACT_ALLOW, nr, len(cmp), array)
                if rc < 0:
                    raise OSError(-rc, f"seccomp_rule_add_array({name}) failed")
            continue
        rc = lib.seccomp_rule_add_array(ctypes.c_void_p(ctx), SCMP_ACT_ALLOW, nr, 0, None)
        if rc < 0:
            raise OSError(-rc, f"seccomp_rule_add({name}) failed")
    rc = lib.seccomp_load(ctypes.c_void_p(ctx))
    if rc < 0:
        raise OSError(-rc, "seccomp_load failed")
    return mdwe


def nofile_limit(unit_text: str) -> tuple[int, int]:
    """``RLIMIT_NOFILE`` (soft, hard) a service of this unit starts with.

    Raises
    ------
    ValueError
        If ``LimitNOFILE=`` is not ``N`` or ``SOFT:HARD``.
    """
    values = service_lines(unit_text, "LimitNOFILE")
    if not values:
        return SYSTEMD_NOFILE
    soft, _, hard = values[-1].partition(":")
    try:
        return int(soft), int(hard or soft)
    except ValueError:
        raise ValueError(f"LimitNOFILE={values[-1]} of the unit, expected N or SOFT:HARD") from None


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(f"usage: {Path(__file__).name} UNIT_FILE -- COMMAND [ARG ...] (got {argv})")
    unit_text = Path(argv[0]).read_text()
    allowed = allowed_syscalls(unit_text)  # before the filter: systemd-analyze runs as a child
    soft, hard = nofile_limit(unit_text)
    current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = hard if current_hard == resource.RLIM_INFINITY else min(hard, current_hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))
    mdwe = apply(unit_text)
    print(f"seccomp_harness: {len(allowed)} system calls allowed, MemoryDenyWriteExecute via {mdwe}, "
          f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)}",
          file=sys.stderr, flush=True)
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
