"""The systemd notification protocol (``sd_notify``): READY, STATUS, WATCHDOG, RELOADING, STOPPING.

A service of ``Type=notify`` tells systemd about its state by sending newline-separated
``KEY=VALUE`` assignments in one datagram to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``
(a path, or an abstract-namespace name written with a leading ``@``). ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``, when set, naming this process) gives the watchdog period: the service must send
``WATCHDOG=1`` more often than that, or systemd kills and restarts it.

Reference: sd_notify(3), https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("ictal.notify")


class SystemdNotifier:
    """Send state notifications to systemd; a no-op where ``$NOTIFY_SOCKET`` is not set.

    Parameters
    ----------
    socket_path : str, optional
        Default ``$NOTIFY_SOCKET``. ``@name`` is an abstract socket.
    watchdog_usec : int, optional
        Default ``$WATCHDOG_USEC`` (when ``$WATCHDOG_PID`` is unset or names this process).

    Attributes
    ----------
    enabled : bool
        Whether a socket is configured.
    watchdog_s : float or None
        Watchdog period in seconds, or None when systemd expects no keep-alives.
    """

    def __init__(self, socket_path: str | None = None, watchdog_usec: int | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
        self.address: str | bytes | None = None
        if path:
            self.address = b"\0" + path[1:].encode() if path.startswith("@") else path
        self.enabled = self.address is not None
        if watchdog_usec is None:
            usec = os.environ.get("WATCHDOG_USEC")
            pid = os.environ.get("WATCHDOG_PID")
            if usec and (not pid or pid == str(os.getpid())):
                try:
                    watchdog_usec = int(usec)
                except ValueError:
                    log.error("event=watchdog_usec_invalid value=%r expected=\"integer microseconds\"", usec)
        self.watchdog_s = watchdog_usec / 1e6 if watchdog_usec and watchdog_usec > 0 else None
        self._sock: socket.socket | None = None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased), e.g. ``notify(ready=1, status="3 beds")``.

        Returns
        -------
        sent : bool
            False when notifications are disabled or the send failed (logged; never raises: a
            daemon keeps serving beds when systemd's socket is gone).
        """
        if not self.enabled:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:
            log.warning("event=notify_failed socket=%r error=%r", self.address, str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (and a STATUS line): start-up finished."""
        return self.notify(ready=1, **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line shown by ``systemctl status``."""
        return self.notify(status=text.replace("\n", " "))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: keep-alive."""
        return self.notify(watchdog=1)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (follow with :meth:`ready` when done)."""
        return self.notify(reloading=1, monotonic_usec=int(time.monotonic() * 1e6))

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown started."""
        return self.notify(stopping=1)

    def close(self) -> None:
        """Close the socket; idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
