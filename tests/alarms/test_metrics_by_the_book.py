"""Prometheus by the book: collectors, build info, no _created, per-bed series from start, TLS and basic auth.

Every check reads a real HTTP(S) scrape of a served registry, parsed by prometheus-client's parser.
"""

from __future__ import annotations

import base64
import math
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from ictal.alarms.config import AlarmThresholds, MetricsBasicAuthConfig, MetricsConfig, MetricsTLSConfig
from ictal.alarms.metrics import IctalMetrics, IctalRegistry, serve_metrics
from ictal.alarms.metrics_auth import BasicAuth, hash_password
from ictal.alarms.metrics_http import MetricsHTTPServer, tls_context
from ictal.streaming.daemon_metrics import DaemonMetrics

BEDS = ("icu-1", "icu-2")


def fetch(url: str, *, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None,
          ) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def parse(text: str) -> dict[str, dict[tuple, float]]:
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def daemon_like_metrics() -> tuple[IctalMetrics, DaemonMetrics]:
    """The daemon's composition: IctalMetrics, then DaemonMetrics in its registry, then each bed's thresholds."""
    metrics = IctalMetrics()
    daemon_metrics = DaemonMetrics(metrics.registry)
    metrics.set_model_info(stack="bimamba2", backend="reference", device="cpu", checkpoint_id="ck-abc",
                           version="9.9.9")
    return metrics, daemon_metrics


def scrape_text(metrics: IctalMetrics, accept: str = "", query: str = "") -> str:
    server = serve_metrics(MetricsConfig(port=0), metrics)
    try:
        status, body, _ = fetch(server.url + query, headers={"Accept": accept} if accept else None)
    finally:
        server.close()
    assert status == 200
    return body


def test_scrape_has_process_platform_and_build_info_and_no_created_line():
    metrics, daemon_metrics = daemon_like_metrics()
    for bed in BEDS:
        metrics.set_thresholds(bed, AlarmThresholds())
    metrics.record_alarm("icu-1")
    daemon_metrics.scoring_latency.labels(bed="icu-1").observe(0.2)
    text = scrape_text(metrics)
    s = parse(text)
    assert s["process_resident_memory_bytes"][()] > 10e6
    assert s["process_cpu_seconds_total"][()] > 0
    assert "python_info" in s and "python_gc_collections_total" in s
    assert s["ictal_build_info"] == {(("backend", "reference"), ("checkpoint_id", "ck-abc"), ("device", "cpu"),
                                      ("stack", "bimamba2"), ("version", "9.9.9")): 1.0}
    assert [line for line in text.splitlines() if "_created" in line] == []
    # OpenMetrics, and the name[] filter (a restricted registry), leave them out as well
    om = scrape_text(metrics, accept="application/openmetrics-text; version=1.0.0")
    assert "ictal_alarms_raised_total{bed=\"icu-1\"} 1.0" in om
    assert [line for line in om.splitlines() if "_created" in line] == []
    filtered = scrape_text(metrics, query="?name[]=ictal_alarms_raised_total&name[]=ictal_alarms_raised_created")
    assert "ictal_alarms_raised_total{bed=\"icu-1\"} 1.0" in filtered
    assert "_created" not in filtered


def test_every_per_bed_series_exists_from_set_thresholds_before_any_event():
    metrics, _ = daemon_like_metrics()
    for bed in BEDS:
        metrics.set_thresholds(bed, AlarmThresholds())
    s = parse(scrape_text(metrics))
    for bed in BEDS:
        key = (("bed", bed),)
        # counters and histograms with only a bed label, ictal's and the daemon's (registered after ictal's)
        for name in ("ictal_alarms_raised_total", "ictal_windows_scored_total", "ictal_samples_received_total",
                     "ictal_samples_lost_total", "ictal_stream_gap_seconds_total", "ictal_windows_skipped_total",
                     "ictal_bed_failures_total", "ictal_source_refusals_total", "ictal_clock_jumps_back_total",
                     "ictal_inference_latency_seconds_count", "ictal_alarm_latency_seconds_count",
                     "ictal_scoring_latency_seconds_count", "ictal_alarm_rate_per_24h", "ictal_alarm_active"):
            assert s[name][key] == 0.0, (name, bed)
        assert s["ictal_scoring_latency_seconds_bucket"][(("bed", bed), ("le", "+Inf"))] == 0.0
        assert math.isnan(s["ictal_seizure_probability"][key])  # not scored yet: no made-up 0
    # a gauge whose 0 would be a false reading stays absent until measured
    assert "ictal_stream_effective_rate_hz" not in s
    # label values known in advance exist at 0
    assert s["ictal_journal_errors_total"][()] == 0.0
    assert s["ictal_journal_faults_total"][(("fault", "stalled"),)] == 0.0
    assert s["ictal_events_published_total"][(("kind", "onset"),)] == 0.0
    assert s["ictal_catchup_requests_total"][(("result", "dropped"),)] == 0.0


def test_registering_a_bed_again_changes_no_value():
    metrics, _ = daemon_like_metrics()
    metrics.set_thresholds("icu-1", AlarmThresholds())
    metrics.record_alarm("icu-1")
    metrics.set_probability("icu-1", 0.93)
    metrics.set_thresholds("icu-1", AlarmThresholds())  # a reload
    metrics.register_beds(["icu-1"])
    s = parse(scrape_text(metrics))
    key = (("bed", "icu-1"),)
    assert s["ictal_alarms_raised_total"][key] == 1.0
    assert s["ictal_alarm_active"][key] == 1.0
    assert s["ictal_seizure_probability"][key] == pytest.approx(0.93)


def test_alarm_active_follows_onset_and_offset_and_ends_by_max_duration():
    now = [1000.0]
    metrics = IctalMetrics(clock=lambda: now[0])
    metrics.set_thresholds("icu-1", AlarmThresholds(max_duration_s=300.0))
    assert not metrics.alarm_active("icu-1")
    metrics.record_alarm("icu-1")
    now[0] += 299.0
    assert metrics.alarm_active("icu-1")
    now[0] += 2.0  # past max_duration_s: the post-processor has closed the event, offset seen or not
    assert not metrics.alarm_active("icu-1")
    metrics.record_alarm("icu-1")  # the next onset (status epilepticus re-announced)
    assert metrics.alarm_active("icu-1")
    metrics.record_offset("icu-1")
    assert not metrics.alarm_active("icu-1")


def test_alarm_active_is_exported_and_probability_is_checked():
    metrics, _ = daemon_like_metrics()
    metrics.record_alarm("icu-2")  # a bed never registered still gets its series
    assert parse(scrape_text(metrics))["ictal_alarm_active"][(("bed", "icu-2"),)] == 1.0
    metrics.record_offset("icu-2")
    s = parse(scrape_text(metrics))
    assert s["ictal_alarm_active"][(("bed", "icu-2"),)] == 0.0
    assert s["ictal_alarms_raised_total"][(("bed", "icu-2"),)] == 1.0
    for bad in (1.5, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="icu-2.*expected a number in \\[0, 1\\]"):
            metrics.set_probability("icu-2", bad)


def test_ictal_metrics_refuses_a_plain_registry():
    with pytest.raises(TypeError, match="expected IctalRegistry"):
        IctalMetrics(registry=CollectorRegistry())
    assert isinstance(IctalMetrics().registry, IctalRegistry)


# -- TLS and basic auth -------------------------------------------------------------------------------


def test_non_loopback_metrics_host_is_refused_without_tls_and_basic_auth(tmp_path):
    with pytest.raises(ValidationError, match="'0.0.0.0' is not a loopback address and tls and basic_auth"):
        MetricsConfig(host="0.0.0.0")
    tls = MetricsTLSConfig(certfile=tmp_path / "c.pem", keyfile=tmp_path / "k.pem")
    with pytest.raises(ValidationError, match="basic_auth is not configured"):
        MetricsConfig(host="10.1.2.3", tls=tls)
    auth = MetricsBasicAuthConfig(username="prom", password_hash=hash_password("s3cret", iterations=1000))
    with pytest.raises(ValidationError, match="tls is not configured"):
        MetricsConfig(host="::", basic_auth=auth)
    assert MetricsConfig(host="0.0.0.0", tls=tls, basic_auth=auth).host == "0.0.0.0"
    assert MetricsConfig(host="::1").tls is None and MetricsConfig(host="localhost").basic_auth is None
    # the server refuses too, whatever config built it
    with pytest.raises(ValueError, match="0.0.0.0:0 is not loopback and has no TLS and basic auth"):
        MetricsHTTPServer(IctalMetrics().registry, "0.0.0.0", 0)


def test_basic_auth_config_needs_exactly_one_secret_and_a_known_hash(tmp_path):
    with pytest.raises(ValidationError, match="exactly one of password_hash and password_file"):
        MetricsBasicAuthConfig(username="prom")
    with pytest.raises(ValidationError, match="exactly one"):
        MetricsBasicAuthConfig(username="prom", password_hash="x", password_file=tmp_path / "p")
    with pytest.raises(ValueError, match="expected pbkdf2_sha256"):
        BasicAuth(MetricsBasicAuthConfig(username="prom", password_hash="sha1$abc"))
    with pytest.raises(ValueError, match="password_file .*missing.* cannot be read"):
        BasicAuth(MetricsBasicAuthConfig(username="prom", password_file=tmp_path / "missing"))
    with pytest.raises(ValueError, match="4: pbkdf2_sha256"):
        BasicAuth(MetricsBasicAuthConfig(username="prom", password_hash="pbkdf2_sha256$1000$abc"))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_checks_user_and_password_and_remembers_an_accepted_header():
    auth = BasicAuth(MetricsBasicAuthConfig(username="prom", password_hash=hash_password("s3cret", 1000)))
    assert auth.check(basic("prom", "s3cret"))
    assert auth.known(basic("prom", "s3cret"))
    assert not auth.check(basic("prom", "wrong")) and not auth.check(basic("other", "s3cret"))
    assert not auth.check(None) and not auth.check("Bearer abc") and not auth.check("Basic !!!")
    assert not auth.check("Basic " + base64.b64encode(b"no-colon").decode())
    assert not auth.known(basic("prom", "wrong"))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command absent: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@pytest.mark.parametrize("secret", ["hash", "file"])
def test_https_metrics_off_loopback_answer_only_the_configured_user(tmp_path, certificate, secret):
    cert, key = certificate
    if secret == "hash":
        auth = MetricsBasicAuthConfig(username="prom", password_hash=hash_password("s3cret", iterations=20_000))
    else:
        (tmp_path / "password").write_text("s3cret\n")
        auth = MetricsBasicAuthConfig(username="prom", password_file=tmp_path / "password")
    metrics, _ = daemon_like_metrics()
    metrics.set_thresholds("icu-1", AlarmThresholds())
    # bound on every address (not loopback): the case the issue names
    server = serve_metrics(MetricsConfig(host="0.0.0.0", port=0, tls=MetricsTLSConfig(certfile=cert, keyfile=key),
                                         basic_auth=auth), metrics)
    url = f"https://127.0.0.1:{server.port}/metrics"
    try:
        assert server.url.startswith("https://")
        status, _, headers = fetch(url, context=trusting(cert))
        assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="ictal metrics"')
        assert fetch(url, context=trusting(cert), headers={"Authorization": basic("prom", "nope")})[0] == 401
        status, body, _ = fetch(url, context=trusting(cert), headers={"Authorization": basic("prom", "s3cret")})
        assert status == 200
        assert parse(body)["ictal_alarms_raised_total"][(("bed", "icu-1"),)] == 0.0
        # plain HTTP on the TLS port gets no metrics
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                reply = raw.recv(4096)
            except (ConnectionResetError, TimeoutError):
                reply = b""
        assert b"ictal_" not in reply
        assert server.server.stats().rejected[401] == 2
    finally:
        server.close()


def test_tls_with_unreadable_files_fails_at_start_naming_them(tmp_path):
    config = MetricsConfig(port=0, tls=MetricsTLSConfig(certfile=tmp_path / "none.pem", keyfile=tmp_path / "k.pem"))
    with pytest.raises(OSError, match="none.pem"):
        serve_metrics(config, IctalMetrics())


def test_forgetting_a_removed_bed_drops_every_series_of_it_and_only_it():
    metrics, daemon_metrics = daemon_like_metrics()
    for bed in BEDS:
        metrics.set_thresholds(bed, AlarmThresholds())
        metrics.set_channel_quality(bed, {"T5": True, "O2": False})
        daemon_metrics.bed_monitored.labels(bed=bed).set(0)
        daemon_metrics.bed_state.labels(bed=bed, state="connecting").set(1)
    metrics.record_alarm("icu-1")
    metrics.forget_bed("icu-1")
    text = scrape_text(metrics)
    assert 'bed="icu-1"' not in text
    s = parse(text)
    assert s["ictal_bed_monitored"] == {(("bed", "icu-2"),): 0.0}
    assert s["ictal_alarms_raised_total"] == {(("bed", "icu-2"),): 0.0}
    assert (("bed", "icu-2"), ("channel", "O2")) in s["ictal_signal_quality_ok"]
    metrics.set_thresholds("icu-1", AlarmThresholds())  # configured again: back, from 0
    s = parse(scrape_text(metrics))
    assert s["ictal_alarms_raised_total"][(("bed", "icu-1"),)] == 0.0
    assert s["ictal_alarm_active"][(("bed", "icu-1"),)] == 0.0


def test_forgetting_a_bed_works_without_remove_by_labels(monkeypatch):
    from prometheus_client.metrics import MetricWrapperBase

    monkeypatch.delattr(MetricWrapperBase, "remove_by_labels")  # prometheus-client versions before it
    metrics, daemon_metrics = daemon_like_metrics()
    for bed in BEDS:
        metrics.set_thresholds(bed, AlarmThresholds())
        daemon_metrics.bed_state.labels(bed=bed, state="connecting").set(1)
    metrics.forget_bed("icu-2")
    text = scrape_text(metrics)
    assert 'bed="icu-2"' not in text and 'ictal_bed_state{bed="icu-1",state="connecting"} 1.0' in text


def test_a_client_stuck_in_the_tls_handshake_is_dropped_after_the_read_timeout(certificate):
    cert, key = certificate
    server = MetricsHTTPServer(IctalMetrics().registry, "127.0.0.1", 0, read_timeout_s=0.5,
                               ssl_context=tls_context(MetricsTLSConfig(certfile=cert, keyfile=key)))
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
            t0 = time.monotonic()
            assert raw.recv(100) == b""  # closed by the server, not by our 5 s timeout
            assert time.monotonic() - t0 < 4.0
    finally:
        server.close()
