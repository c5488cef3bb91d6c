"""The shipped operations assets: Grafana dashboard and Prometheus rules, checked against a running daemon.

- ``promtool check rules`` and ``promtool test rules`` (Debian package ``prometheus``) pass on
  ``deploy/prometheus/ictal-rules.yml`` and its unit tests.
- The dashboard is provisionable JSON (a uid, no baked-in id or data source uid) covering the panels
  the issue lists.
- Every metric the dashboard and the rules use exists in a running daemon's ``/metrics`` right after
  start, before any alarm (two beds replayed at real time); that scrape also has ``ictal_build_info``,
  ``process_resident_memory_bytes``, no ``_created`` line and a zero ``ictal_alarms_raised_total`` for
  every configured bed. Fast: the daemon in this process with a line-length scorer; slow: ``ictal serve``
  with the shipped demo checkpoint in a process of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ictal.streaming.daemon import Daemon
from ictal.streaming.notify import SystemdNotifier
from tests.reliability.helpers import free_port
from tests.streaming.daemon_helpers import LineLengthScorer, daemon_config, wait_for

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "ictal-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "ictal-rules.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "ictal-dashboard.json"
EDF = "background/eegmat/Subject00_1.edf"
BEDS = ("icu-1", "icu-2")
# Series Prometheus makes itself (not in /metrics) and PromQL words the name pattern would catch.
NOT_EXPORTED = {"up"}
METRIC = re.compile(r"\b((?:ictal|process|python)_[a-z0-9_]+)\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool absent (Debian package prometheus): cannot check the rules")
    return path


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    return exprs


def metric_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC.findall(expr)} - NOT_EXPORTED


def test_promtool_check_rules_passes():
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass():
    result = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            timeout=60, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_cover_the_conditions_the_issue_lists():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    assert {"IctalBedNotMonitored", "IctalScoringBehind", "IctalJournalErrors", "IctalScoringLatencyHigh",
            "IctalNoHeartbeat", "IctalDaemonDown"} <= set(rules)
    assert rules["IctalBedNotMonitored"]["for"] == "1m"
    assert "ictal_scoring_latency_bound_seconds" in rules["IctalScoringLatencyHigh"]["expr"]
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_dashboard_is_provisionable_and_covers_the_panels():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "ictal-daemon" and board.get("id") is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
    exprs = " ".join(dashboard_exprs())
    for needed in ("ictal_seizure_probability", "ictal_scoring_latency_seconds_bucket", "ictal_scoring_busy_ratio",
                   "ictal_journal_errors_total", "process_resident_memory_bytes", "process_cpu_seconds_total",
                   "ictal_alarm_active", "ictal_bed_monitored"):
        assert needed in exprs, needed
    annotations = {a["name"]: a for a in board["annotations"]["list"]}
    assert "ictal_alarms_raised_total" in annotations["Alarm onsets"]["expr"]
    assert "ictal_bed_monitored" in annotations["Bed not monitored"]["expr"]
    assert "ictal_signal_usable" in annotations["Signal unusable"]["expr"]


def scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


@pytest.mark.slow  # about 25 s: loads torch and the demo checkpoint in a process of its own
def test_ictal_serve_exports_every_metric_the_dashboard_and_rules_use(tmp_path, shared_data):
    port = free_port()
    config = {
        "kind": "daemon",
        "beds": [{"bed_id": bed, "source": {"type": "edf", "path": str(shared_data / EDF), "speed": 1.0}}
                 for bed in BEDS],
        "shutdown_timeout_s": 1.0,
        "detector": {"checkpoint": str(REPO / "checkpoints" / "demo"), "device": "cpu", "max_batch": 4},
        "alarms": {"journal": {"path": str(tmp_path / "journal.sqlite3")},
                   "publisher": {"pub_endpoint": f"tcp://127.0.0.1:{free_port()}",
                                 "catchup_endpoint": f"tcp://127.0.0.1:{free_port()}"},
                   "metrics": {"port": port}},
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    url = f"http://127.0.0.1:{port}/metrics"
    texts: list[str] = []

    def beds_configured() -> bool:
        text = scrape(url)
        if text is not None and f"ictal_beds {float(len(BEDS))}" in text:
            texts.append(text)
            return True
        return False

    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ictal", "serve", "--config", str(path)], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for(beds_configured, 120.0, 0.2), log.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    check_daemon_scrape(texts[-1], checkpoint_id=None)


def test_an_in_process_daemon_exports_every_metric_the_dashboard_and_rules_use(tmp_path, shared_data):
    config = daemon_config(tmp_path, {bed: shared_data / EDF for bed in BEDS}, speed=1.0)
    daemon = Daemon(config, LineLengthScorer(), notifier=SystemdNotifier(socket_path=""))
    daemon.start()
    try:
        text = scrape(daemon.metrics_server.url)
    finally:
        daemon.shutdown()
    assert text is not None
    check_daemon_scrape(text, checkpoint_id="line-length")


def check_daemon_scrape(text: str, checkpoint_id: str | None) -> None:
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    assert [line for line in text.splitlines() if line.split(" ")[0].split("{")[0].endswith("_created")] == []
    assert samples["process_resident_memory_bytes"][()] > 50e6
    (build,) = samples["ictal_build_info"]
    build_labels = dict(build)
    assert build_labels["stack"] and build_labels["device"] == "cpu"
    assert build_labels["version"] and build_labels["backend"] and build_labels["checkpoint_id"]
    if checkpoint_id is not None:
        assert build_labels["checkpoint_id"] == checkpoint_id
    for bed in BEDS:  # before any alarm: present, and 0
        assert samples["ictal_alarms_raised_total"][(("bed", bed),)] == 0.0, bed
        assert samples["ictal_windows_skipped_total"][(("bed", bed),)] == 0.0, bed
        assert (("bed", bed),) in samples["ictal_bed_monitored"], bed
    used = metric_names(rule_exprs()) | metric_names(dashboard_exprs())
    assert len(used) > 25
    missing = sorted(used - set(samples))
    assert missing == [], f"used by the dashboard or the rules but not in the daemon's /metrics: {missing}"
