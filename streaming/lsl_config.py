"""liblsl's own log: quiet by default, the site's ``lsl_api.cfg`` respected when there is one.

liblsl writes its own log lines to stderr (``... data_receiver.cpp:375 ERR| Stream transmission broke
off (Input stream error.); re-connecting...``) at every normal end of a replay and at every outlet that
goes away; they interleave with ictal's logfmt lines and read as errors where nothing went wrong. ictal
observes the stream itself (the bed's monitored state, ``stream_lost``/``source_error`` signal-quality
events, ``ictal_bed_state``), so liblsl is told to log only fatal errors (``[log] level = -3`` of
liblsl's configuration, through ``pylsl.set_config_content``; levels per liblsl's ``lsl_api.cfg``
documentation: -3 fatal, -2 errors, -1 warnings, 0 info).

A site that configures liblsl (multicast off, ``KnownPeers`` for unicast resolution, a log file) keeps
its configuration: when ``LSLAPICFG`` is set or an ``lsl_api.cfg`` exists where liblsl looks for one
(``./lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``, ``/etc/lsl_api/lsl_api.cfg``), nothing is changed, since
``set_config_content`` would take precedence over that file. liblsl reads its configuration once, at
its first use, so :func:`configure_liblsl` must run before any other LSL call; the modules that use
pylsl call it when they are imported.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LIBLSL_LOG_LEVEL: int = -3
"""liblsl's log level when the site has no configuration of its own: fatal errors only."""

_configured: str | None = None


def site_config_file() -> Path | None:
    """The liblsl configuration file liblsl would read here, or None.

    Returns
    -------
    path : Path or None
        ``$LSLAPICFG`` when set, else the first of ``./lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``,
        ``/etc/lsl_api/lsl_api.cfg`` that exists.
    """
    env = os.environ.get("LSLAPICFG")
    if env:
        return Path(env)
    for candidate in (Path("lsl_api.cfg"), Path.home() / "lsl_api" / "lsl_api.cfg", Path("/etc/lsl_api/lsl_api.cfg")):
        if candidate.is_file():
            return candidate
    return None


def configure_liblsl() -> str:
    """Quiet liblsl's log unless the site configures liblsl; idempotent.

    Returns
    -------
    how : str
        ``"quiet"`` (level set to :data:`LIBLSL_LOG_LEVEL`) or ``"site:<path>"`` (the site's file
        governs, nothing changed).
    """
    global _configured
    if _configured is not None:
        return _configured
    site = site_config_file()
    if site is not None:
        _configured = f"site:{site}"
        log.debug("liblsl configured by %s (its [log] level applies)", site)
        return _configured
    import pylsl

    pylsl.set_config_content(f"[log]\nlevel = {LIBLSL_LOG_LEVEL}\n")
    _configured = "quiet"
    return _configured
