"""Configuration of the bedside EEG view (``ictal view``; the daemon's ``view:`` section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from ictal.alarms.config import _is_loopback
from ictal.detector.config import StrictModel

DEFAULT_VIEW_PORT = 9110
"""Next to the metrics port (9108, ``alarms.config.MetricsConfig``); the alarm sockets use 5556/5557."""


class ViewConfig(StrictModel):
    """The web page that shows each bed's EEG, probability trend, spectral array and alarms.

    Off loopback the page carries EEG: like the alarm sockets (``alarms.config.PublisherConfig``), a
    non-loopback ``host`` is refused unless TLS (certificate and key) and authentication (a token file)
    are both configured.
    """

    enabled: bool = Field(
        False, description="Serve the page from `ictal serve` (false: the daemon opens no extra port unless "
        "asked; `ictal view` always serves it)."
    )
    host: str = Field("127.0.0.1", description="Bind address; loopback by default (the page shows patient EEG).")
    port: int = Field(DEFAULT_VIEW_PORT, ge=0, le=65535, description="HTTP(S) port of the page (0: any free port).")
    minutes: float = Field(
        10.0, gt=0, le=120,
        description="Minutes of EEG, trend and spectral array kept per bed for the page (10 min: the span a "
        "neurophysiologist reviews before acting; 19 channels at 128 Hz cost about 6 MB a bed).",
    )
    allow_patient_id: bool = Field(
        False, description="Show the recording's name (an EDF file name often holds a patient identifier) on "
        "the page; false: only bed ids reach it (no identifier leaves the daemon by default)."
    )
    tls_certfile: Path | None = Field(None, description="PEM certificate; required with tls_keyfile off loopback.")
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile.")
    auth_token_file: Path | None = Field(
        None, description="File holding one secret token; every request must then carry it (HTTP Basic password "
        "or `Authorization: Bearer`). Required off loopback."
    )

    @model_validator(mode="after")
    def _refuse_open_bind(self) -> ViewConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError(
                f"view tls_certfile and tls_keyfile go together (found certfile={self.tls_certfile}, "
                f"keyfile={self.tls_keyfile})"
            )
        if not _is_loopback(f"tcp://{self.host}:{self.port}"):
            missing = [name for name, value in (("tls_certfile/tls_keyfile", self.tls_certfile),
                                                ("auth_token_file", self.auth_token_file)) if value is None]
            if missing:
                raise ValueError(
                    f"view host {self.host!r} is not a loopback address and {' and '.join(missing)} "
                    "is not configured; the EEG page off loopback requires TLS and authentication"
                )
        return self

    def read_token(self) -> str | None:
        """The authentication token (stripped), or None when no token file is configured.

        Raises
        ------
        ValueError
            If the token file is empty.
        OSError
            If it cannot be read.
        """
        if self.auth_token_file is None:
            return None
        token = self.auth_token_file.read_text().strip()
        if not token:
            raise ValueError(f"view auth_token_file {self.auth_token_file} is empty (expected one secret token)")
        return token
