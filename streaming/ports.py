"""Who holds a TCP port: the process behind "address already in use".

A busy port is named with its holder, ``port 5556 in use by pid 1234 (python -m ictal serve ...)``,
read from Linux's ``/proc``:

1. ``/proc/net/tcp`` and ``/proc/net/tcp6`` list every TCP socket with its local address and port
   (hexadecimal), its state and its inode. Sockets whose local port is the one asked and whose inode
   is not 0 (a ``TIME_WAIT`` socket has none and holds no process) are kept; listening ones
   (state ``0A``) first.
2. ``/proc/<pid>/fd/*`` links to ``socket:[<inode>]``: the process whose descriptor names one of
   those inodes holds the port; its command line is ``/proc/<pid>/cmdline``.

Another user's descriptors cannot be read without privileges: a socket whose holder is not found
(or of a process in another PID namespace, e.g. a container) is then reported as held by a process
not found (with its uid from ``/proc/net/tcp``),
never as free. On a system without ``/proc`` (not Linux) nothing is found and the caller says the
port is in use without a holder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
"""Root of the process file system (a parameter of the functions for tests)."""

TCP_LISTEN = "0A"
"""State of a listening socket in ``/proc/net/tcp`` (``TCP_LISTEN`` = 10 in include/net/tcp_states.h)."""

MAX_COMMAND_CHARS = 160
"""Characters of a holder's command line quoted in a message (a long Python command line is kilobytes)."""


@dataclass(frozen=True)
class PortHolder:
    """A socket on the port and, when visible, the process that holds it.

    Attributes
    ----------
    port : int
    inode : int
        The socket's inode (``socket:[inode]`` in ``/proc/<pid>/fd``).
    uid : int
        Owner of the socket (``/proc/net/tcp``).
    listening : bool
        State ``LISTEN`` (otherwise bound or connected with that local port).
    pid : int or None
        The holding process; None when no readable ``/proc/<pid>/fd`` names the inode.
    command : str or None
        Its command line, arguments separated by spaces, cut at ``MAX_COMMAND_CHARS``.
    """

    port: int
    inode: int
    uid: int
    listening: bool
    pid: int | None = None
    command: str | None = None

    def describe(self) -> str:
        """``pid 1234 (python -m ictal serve ...)`` or or ``a process of uid 1001 not found ...``."""
        if self.pid is None:
            return (f"a process of uid {self.uid} not found among the readable /proc/<pid>/fd (another user's, or "
                    f"in another PID namespace; socket inode {self.inode})")
        return f"pid {self.pid} ({self.command or 'command line unreadable'})"


def _sockets_on_port(port: int, proc: Path) -> list[tuple[int, int, bool]]:
    """``(inode, uid, listening)`` of the TCP sockets whose local port is ``port``."""
    found: list[tuple[int, int, bool]] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:  # no IPv6 on this host, or no /proc: nothing to read there
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local, state, uid, inode = fields[1], fields[3], fields[7], fields[9]
            _, _, hex_port = local.rpartition(":")
            try:
                if int(hex_port, 16) != port or int(inode) == 0:
                    continue
                found.append((int(inode), int(uid), state == TCP_LISTEN))
            except ValueError:
                continue
    found.sort(key=lambda item: not item[2])  # listening sockets first
    return found


def _command_line(pid: int, proc: Path) -> str | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    command = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    if len(command) > MAX_COMMAND_CHARS:
        command = command[:MAX_COMMAND_CHARS] + " ..."
    return command or None


def _pids_by_inode(inodes: set[int], proc: Path) -> dict[int, int]:
    """``{inode: pid}`` for the inodes found among the readable ``/proc/<pid>/fd`` links."""
    owners: dict[int, int] = {}
    try:
        entries = [entry for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return owners
    for entry in entries:
        try:
            fds = os.scandir(Path(entry.path) / "fd")
        except OSError:  # another user's process, or gone since the listing
            continue
        with fds:
            for fd in fds:
                try:
                    target = os.readlink(fd.path)
                except OSError:
                    continue
                if target.startswith("socket:[") and target.endswith("]"):
                    inode = int(target[8:-1])
                    if inode in inodes and inode not in owners:
                        owners[inode] = int(entry.name)
        if len(owners) == len(inodes):
            break
    return owners


def port_holders(port: int, proc: Path = PROC) -> list[PortHolder]:
    """The TCP sockets on local port ``port`` and the processes holding them, listening ones first.

    Parameters
    ----------
    port : int
        TCP port, 1-65535.
    proc : Path
        The ``/proc`` file system.

    Returns
    -------
    holders : list of PortHolder
        Empty when no socket uses the port or ``/proc`` cannot be read (then nothing is known).
    """
    sockets = _sockets_on_port(port, proc)
    if not sockets:
        return []
    owners = _pids_by_inode({inode for inode, _, _ in sockets}, proc)
    holders = []
    for inode, uid, listening in sockets:
        pid = owners.get(inode)
        holders.append(PortHolder(port, inode, uid, listening, pid,
                                  _command_line(pid, proc) if pid is not None else None))
    return holders


def describe_port_holder(port: int, proc: Path = PROC) -> str:
    """``port 5556 in use by pid 1234 (python -m ictal serve ...)``, or why the holder is not named.

    The first holder found is named (a listening socket before a connected one); others with a
    distinct pid are added (``SO_REUSEPORT`` or a forked server share a port).
    """
    holders = port_holders(port, proc)
    if not holders:
        return (f"port {port} in use by a process not found in {proc}/net/tcp{{,6}} "
                "(another network namespace, or not Linux)")
    named: list[str] = []
    seen: set[int | None] = set()
    for holder in holders:
        if holder.pid in seen:
            continue
        seen.add(holder.pid)
        named.append(holder.describe())
    return f"port {port} in use by " + "; ".join(named)
