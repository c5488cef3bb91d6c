"""Configuration of the post-processor, the journal, the publisher and the metrics endpoint."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from ictal.detector.config import StrictModel


class AlarmThresholds(StrictModel):
    """Hysteresis and duration rules that turn per-sample probability into alarm events."""

    tau_on: float = Field(
        0.8, gt=0, lt=1, description="Probability at or above which an event may start (0.8: conservative "
        "until `ictal tune` fits it to the ward's target FA/24h; false alarms cost nurses' trust)."
    )
    tau_off: float = Field(
        0.5, gt=0, lt=1, description="Probability below which an event may end; <= tau_on (the hysteresis: a "
        "seizure whose probability sags between 0.5 and 0.8 stays one event, not a string of alarms)."
    )
    min_duration_s: float = Field(
        10.0, ge=0, description="Time above tau_on before an onset is raised (10 s: the usual shortest "
        "electrographic seizure)."
    )
    merge_gap_s: float = Field(
        30.0, ge=0, description="A dip below tau_off shorter than this does not end the event (30 s: one "
        "seizure with a brief lull, or seizures in a cluster, is one alarm to attend, not several)."
    )
    max_duration_s: float = Field(
        600.0, gt=0, description="An event longer than this is closed and a new one may start (status "
        "epilepticus is re-announced rather than silent)."
    )
    refractory_s: float = Field(
        60.0, ge=0, description="After an offset no new onset is raised for this long (limits alarm storms)."
    )

    @model_validator(mode="after")
    def _check_order(self) -> AlarmThresholds:
        if self.tau_off > self.tau_on:
            raise ValueError(f"tau_off must be <= tau_on (found tau_off={self.tau_off}, tau_on={self.tau_on})")
        if self.max_duration_s <= self.min_duration_s:
            raise ValueError(
                f"max_duration_s must be > min_duration_s (found max_duration_s={self.max_duration_s}, "
                f"min_duration_s={self.min_duration_s})"
            )
        return self


JOURNAL_FILE_NAME = "ictal-journal.sqlite3"
"""File name of the alarm journal in its default directory."""


def default_journal_path() -> Path:
    """Where the alarm journal goes when the config names none: a state directory, never the working one.

    ``$STATE_DIRECTORY`` when set (systemd sets it from the unit's ``StateDirectory=ictal``: /var/lib/ictal;
    the first entry when it lists several), else ``$XDG_STATE_HOME/ictal``, else ``~/.local/state/ictal``
    (the XDG Base Directory specification's user state directory). The journal creates the directory when
    it opens.

    Returns
    -------
    Path
        An absolute path to ``ictal-journal.sqlite3``.
    """
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state).absolute() / JOURNAL_FILE_NAME
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "ictal" / JOURNAL_FILE_NAME


class JournalConfig(StrictModel):
    """Durable local store of every event, written before publication."""

    path: Path = Field(
        default_factory=default_journal_path,
        description="SQLite file (WAL, synchronous=FULL). Default: ictal-journal.sqlite3 in $STATE_DIRECTORY "
        "(systemd's StateDirectory=, /var/lib/ictal for the shipped unit), else $XDG_STATE_HOME/ictal, else "
        "~/.local/state/ictal: a state directory, never the working directory (alarms.config."
        "default_journal_path). A relative path resolves in the working directory.",
    )
    retention_days: float = Field(
        30.0, gt=0, description="Events older than this are pruned; 30 days covers a long ICU stay."
    )


class CurveConfig(StrictModel):
    """ZeroMQ CURVE keys (files written by zmq.auth.create_certificates)."""

    server_secret_file: Path = Field(description="Server secret certificate file.")
    authorized_clients_dir: Path | None = Field(
        None, description="Directory of client public certificates allowed to connect; None allows any "
        "client that knows the server key."
    )


def _is_loopback(endpoint: str) -> bool:
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PublisherConfig(StrictModel):
    """ZeroMQ endpoints: live PUB stream and journal catch-up REQ/REP."""

    pub_endpoint: str = Field("tcp://127.0.0.1:5556", description="PUB socket; loopback by default.")
    catchup_endpoint: str = Field("tcp://127.0.0.1:5557", description="REP socket serving the journal.")
    heartbeat_s: float = Field(
        5.0, gt=0, description="Heartbeat period: a subscriber that hears nothing for 3 periods knows "
        "the daemon is gone."
    )
    curve: CurveConfig | None = Field(None, description="CURVE authentication; required off loopback.")
    journal_timeout_s: float = Field(
        1.0, gt=0, description="Longest an event waits for its journal append (fsync) before it is published "
        "live without a journal_seq, with a daemon event 'journal_stalled' (1 s: a healthy fsync takes "
        "milliseconds; a hung disk must not hold an alarm back)."
    )
    max_connections: int = Field(
        128, ge=1, description="Most peers connected to each of the two sockets; a connection beyond it is "
        "closed at once (128 x 2 sockets stays far below the usual 1024 file descriptors, so idle connections "
        "cannot starve the daemon; a ward has a handful of subscribers)."
    )
    handshake_timeout_s: float = Field(
        5.0, gt=0, description="A connection that has not completed the ZMTP handshake after this long is "
        "closed (ZMQ_HANDSHAKE_IVL; 5 s is ample on a LAN, libzmq's default is 30 s)."
    )

    @model_validator(mode="after")
    def _refuse_open_bind(self) -> PublisherConfig:
        for name in ("pub_endpoint", "catchup_endpoint"):
            endpoint = getattr(self, name)
            if not _is_loopback(endpoint) and self.curve is None:
                raise ValueError(
                    f"{name} {endpoint!r} is not a loopback address and no curve keys are configured; "
                    "alarm sockets off loopback require CURVE authentication"
                )
        return self


def _host_is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class MetricsTLSConfig(StrictModel):
    """TLS of the metrics endpoint (the parameters of prometheus-client's ``start_http_server``)."""

    certfile: Path = Field(description="Server certificate chain (PEM); Prometheus' scrape config names its CA "
                           "in tls_config.ca_file.")
    keyfile: Path = Field(description="Private key of the certificate (PEM), readable by the service only.")
    client_cafile: Path | None = Field(
        None, description="CA bundle that client certificates must chain to; None: client certificates are not "
        "asked for (basic auth identifies the scraper)."
    )
    client_auth_required: bool = Field(
        False, description="Require a client certificate signed by client_cafile (mutual TLS) on top of basic "
        "auth; false by default because basic auth is already required off loopback."
    )

    @model_validator(mode="after")
    def _check_client_ca(self) -> MetricsTLSConfig:
        if self.client_auth_required and self.client_cafile is None:
            raise ValueError("alarms.metrics.tls.client_auth_required is true but client_cafile is not set "
                             "(expected the CA bundle client certificates must chain to)")
        return self


class MetricsBasicAuthConfig(StrictModel):
    """HTTP basic authentication of the metrics endpoint (one user: the site's Prometheus)."""

    username: str = Field(min_length=1, description="User name Prometheus sends (basic_auth.username).")
    password_hash: str | None = Field(
        None, description="Hash of the password: pbkdf2_sha256$<iterations>$<salt>$<hash> (base64; print one with "
        "`python -m ictal.alarms.metrics_auth`) or a bcrypt hash ($2b$..., as in Prometheus' web config; needs the "
        "bcrypt package). A hash, not the password, so the config file can be read without giving it away."
    )
    password_file: Path | None = Field(
        None, description="File holding the password itself (one line; e.g. a systemd credential). Exactly one "
        "of password_hash and password_file."
    )

    @model_validator(mode="after")
    def _one_secret(self) -> MetricsBasicAuthConfig:
        if (self.password_hash is None) == (self.password_file is None):
            raise ValueError("alarms.metrics.basic_auth needs exactly one of password_hash and password_file "
                             f"(found password_hash {'set' if self.password_hash else 'unset'}, password_file "
                             f"{'set' if self.password_file else 'unset'})")
        return self


class MetricsConfig(StrictModel):
    """Prometheus metrics endpoint (read-only HTTP; HTTPS with basic auth off loopback)."""

    host: str = Field("127.0.0.1", description="Bind address; loopback by default. Any other address requires "
                      "tls and basic_auth (the alarm sockets require CURVE off loopback for the same reason).")
    port: int = Field(9108, ge=0, le=65535, description="HTTP port for /metrics.")
    alarm_rate_window_h: float = Field(
        24.0, gt=0, description="Rolling window of the alarm-rate gauge (24 h: FA/24h is the unit ICU staff "
        "and the tuning speak)."
    )
    scoring_latency_bound_s: float = Field(
        2.0, gt=0, description="Bound on the p99 of the scoring latency (a window's last chunk arriving -> its "
        "probabilities at the post-processor), exported as ictal_scoring_latency_bound_seconds for the shipped "
        "alert IctalScoringLatencyHigh. 2 s: half the default 4 s hop, so a late window still leaves half a "
        "hop before the next; the CPU demo scores a window in tens of ms."
    )
    tls: MetricsTLSConfig | None = Field(
        None, description="Serve HTTPS; required when host is not loopback (the metrics name beds and their "
        "seizure probability, which is patient data)."
    )
    basic_auth: MetricsBasicAuthConfig | None = Field(
        None, description="Require HTTP basic auth; required when host is not loopback (with tls, so the "
        "password does not cross the network in clear)."
    )

    @model_validator(mode="after")
    def _refuse_open_bind(self) -> MetricsConfig:
        if _host_is_loopback(self.host):
            return self
        missing = [name for name in ("tls", "basic_auth") if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"alarms.metrics.host {self.host!r} is not a loopback address and {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not configured; a metrics endpoint off loopback requires "
                "tls (certfile, keyfile) and basic_auth (username, password_hash or password_file)"
            )
        return self


class AlarmsConfig(StrictModel):
    """Everything the alarms package needs in the daemon."""

    thresholds: AlarmThresholds = Field(
        default_factory=AlarmThresholds, description="Thresholds used when neither a thresholds_file nor the "
        "checkpoint's tuned thresholds apply (precedence: alarms.thresholds module docstring). Writing this "
        "section while one of those wins is an error at start, never a silent override."
    )
    thresholds_file: Path | None = Field(
        None, description="Thresholds written by `ictal tune`; when set it wins over the checkpoint's tuned "
        "thresholds. It must have been tuned for the checkpoint served (its provenance.checkpoint_id), else "
        "`ictal serve` refuses to start (exit 2) unless accept_thresholds_of_checkpoint names its id."
    )
    use_checkpoint_thresholds: bool = Field(
        True, description="Without a thresholds_file, use the thresholds tuned into the checkpoint "
        "(`ictal tune --write-checkpoint`) when it has them: they were chosen for that model's target "
        "FA/24h, so they are safer than generic defaults. false: use `thresholds`."
    )
    accept_thresholds_of_checkpoint: str | None = Field(
        None, description="The id of another checkpoint whose thresholds_file this site accepts for the "
        "checkpoint served (written out, not a yes/no: accepting names what is accepted). null (default): a "
        "thresholds file tuned for another checkpoint is refused; when accepted, the daemon logs a WARNING "
        "and publishes a daemon event (reason foreign_thresholds) at start and at every reload."
    )
    journal: JournalConfig = Field(default_factory=JournalConfig)
    publisher: PublisherConfig = Field(default_factory=PublisherConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
