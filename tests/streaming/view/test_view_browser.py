"""`ictal view` in a real browser: headless Chromium draws the traces, the trend and the alarms (issue 19).

Both tests run the real command in a subprocess on a real recording (``labelled/iiic_01.edf``, 50 s
with a rated seizure at 20-30 s, on which the demo checkpoint alarms: it is one of its training
recordings, the same input as ``ictal demo``), open the page in headless Chromium over the
DevTools protocol, wait for ``document.body.dataset.ready`` and compare what the page shows with the
source of truth: the scored file's events (offline) and the daemon's journal (live). Each saves a
screenshot under ``$ICTAL_TEST_ARTEFACTS`` (else the test's tmp folder) and prints its path.

Skipped with a reason when Chromium is absent (`apt-get install chromium`; CI installs it) or the real
data folder is absent.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ictal.streaming.view.live import POLL_S
from ictal.streaming.view.server import UPDATE_PERIOD_S
from tests.streaming.view.cdp import Chromium, find_chromium

EDF = "labelled/iiic_01.edf"
EDF_SECONDS = 50.0
REPLAY_SPEED = 6.0  # the 50 s recording replays in about 8 s
READY_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; CI installs it)")
    return binary


@pytest.fixture
def artefacts(tmp_path) -> Path:
    folder = Path(os.environ.get("ICTAL_TEST_ARTEFACTS", tmp_path / "artefacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(chromium_binary, tmp_path):
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    chromium = Chromium(chromium_binary, profile)
    yield chromium
    chromium.close()


def _start_view(args: list[str], cwd: Path, timeout_s: float = 180.0) -> tuple[subprocess.Popen, str, list[str]]:
    """Run `ictal view ARGS`; return the process, the URL of its 'view: URL' line and stdout so far."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ictal", "view", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("view: "):
                return proc, line.split()[1], lines
        elif proc.poll() is not None:
            break
    _stop(proc)
    raise AssertionError("ictal view printed no 'view: URL' line:\n" + "\n".join(lines[-40:]))


def _stop(proc: subprocess.Popen) -> str:
    """SIGTERM, wait, and return the rest of its output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, _ = proc.communicate(timeout=10)
    return rest or ""


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def _page_alarms(browser: Chromium) -> list[float]:
    return browser.evaluate("[...document.querySelectorAll('#alarm-rows tr')].map(r => parseFloat(r.dataset.onset))")


def _wait_drawn(browser: Chromium, n_traces: int) -> None:
    browser.wait_for("document.body.dataset.ready === '1'", READY_TIMEOUT_S, "its traces and trend")
    drawn = int(browser.evaluate("document.body.dataset.traces"))
    assert drawn == n_traces, f"{drawn} EEG traces drawn with samples, expected {n_traces}"
    # live, the trend grows as windows are scored: wait for 10 s of it
    browser.wait_for("parseInt(document.body.dataset.trendPoints) > 10", READY_TIMEOUT_S, "10 probability points")
    # uPlot drew on its canvases: some pixels of the EEG canvas are dark (the traces)
    ink = browser.evaluate("""(() => { const c = document.querySelector('#eeg canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0 && d[i-3] < 100) n++; return n; })()""")
    assert ink > 5000, f"the EEG canvas has only {ink} dark pixels: traces not drawn"


def _click_first_alarm_and_check_jump(browser: Chromium, onset_s: float) -> None:
    browser.evaluate("document.querySelector('#alarm-rows tr').click()")
    page_s = float(browser.evaluate("parseFloat(document.getElementById('page').value)"))
    expected = onset_s - 0.3 * page_s
    browser.wait_for(f"Math.abs(parseFloat(document.body.dataset.pageStart) - {expected}) < 0.01", 10,
                     f"the EEG page at the alarm's onset ({expected:.2f} s)")
    assert browser.evaluate("document.getElementById('follow').checked") is False


def test_offline_view_of_a_real_recording_draws_traces_trend_and_alarms(shared_data, repo_root, browser, artefacts,
                                                                          tmp_path):
    edf = shared_data / EDF
    proc, url, lines = _start_view([str(edf), "--checkpoint", str(repo_root / "checkpoints/demo"), "--port", "0",
                                    "--device", "cpu"], cwd=repo_root)
    try:
        assert url.startswith("http://127.0.0.1:"), f"not on loopback by default: {url}"
        snapshot = json.loads(_get(url + "api/beds/offline/snapshot"))
        onsets = [e["onset_s"] for e in snapshot["events"] if e["kind"] == "onset"]
        assert onsets, "the demo model raises an alarm on this rated-seizure recording; the view holds none"
        browser.navigate(url)
        _wait_drawn(browser, 19)
        assert _page_alarms(browser) == pytest.approx(onsets)
        assert browser.evaluate("document.body.dataset.state") == snapshot["state"]["state"]
        # patient identifiers: neither the file name nor its path reaches the page by default
        html = browser.evaluate("document.documentElement.outerHTML")
        for body in (html, _get(url + "api/meta"), json.dumps(snapshot)):
            assert edf.stem not in body
        # the banana montage draws 18 traces
        browser.evaluate("(() => { const s = document.getElementById('montage'); s.value = 'banana';"
                         " s.dispatchEvent(new Event('change')); })()")
        browser.wait_for("document.body.dataset.traces === '18'", 10, "18 double-banana traces")
        _click_first_alarm_and_check_jump(browser, onsets[0])
        time.sleep(0.5)
        shot = browser.screenshot(artefacts / "ictal_view_offline.png")
        print(f"screenshot: {shot}")
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, f"ictal view exited {proc.returncode}:\n{out}"


def test_live_view_of_a_replayed_recording_matches_the_journal(shared_data, repo_root, browser, artefacts, tmp_path):
    from ictal.alarms.config import JournalConfig
    from ictal.alarms.journal import Journal

    journal_path = tmp_path / "journal.sqlite3"
    config = {
        "kind": "daemon",
        "beds": [{"bed_id": "bed-1", "source": {"type": "edf", "path": str(shared_data / EDF),
                                                "speed": REPLAY_SPEED}}],
        "detector": {"checkpoint": str(repo_root / "checkpoints/demo"), "device": "cpu", "queue_windows": 16},
        "alarms": {"journal": {"path": str(journal_path)},
                   "publisher": {"pub_endpoint": "tcp://127.0.0.1:*", "catchup_endpoint": "tcp://127.0.0.1:*"},
                   "metrics": {"port": 0}},
    }
    config_path = tmp_path / "daemon.yaml"
    config_path.write_text(yaml.safe_dump(config))
    proc, url, lines = _start_view(["--config", str(config_path), "--port", "0"], cwd=tmp_path)
    try:
        browser.navigate(url)
        _wait_drawn(browser, 19)
        # the file ends: its alarm is closed at the end of the data; then nothing changes any more
        browser.wait_for("document.getElementById('alarm-rows').textContent.includes('end_of_data')",
                         EDF_SECONDS / REPLAY_SPEED + 90, "the alarm closed at the end of the replay (end_of_data)")
        time.sleep(3 * POLL_S + 2 * UPDATE_PERIOD_S)  # the last state read by the feed, then sent to the page
        page_onsets = _page_alarms(browser)
        page_state = browser.evaluate("document.body.dataset.state")
        # the whole trend reached the page (live updates send what changed, late windows included)
        held = json.loads(_get(url + "api/beds/bed-1/snapshot"))["trend"]["t_s"]
        assert browser.evaluate("[...S.trend.keys()].sort((a, b) => a - b)") == held
        page_head = browser.evaluate("Math.max(...S.events.map(e => e.journal_seq))")
        _click_first_alarm_and_check_jump(browser, page_onsets[0])
        time.sleep(0.5)
        shot = browser.screenshot(artefacts / "ictal_view_live.png")
        print(f"screenshot: {shot}")
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, f"ictal view (live) exited {proc.returncode}:\n{out}"
    with Journal(JournalConfig(path=journal_path)) as journal:
        events = [e for e in journal.since(0) if e.bed_id == "bed-1"]
    journal_onsets = [e.onset_s for e in events if e.kind == "onset"]
    assert page_onsets == pytest.approx(journal_onsets), "the page's alarm list is not the journal's"
    # the bed's state as the journal had it when the page last heard from it (the shutdown may add events)
    states = [e.detail.split(":")[0] for e in events if e.kind == "signal_quality"
              and e.reason in ("monitored", "not_monitored") and e.journal_seq <= page_head]
    assert states and states[-1] == page_state, f"journal's last state {states[-1:]} vs page {page_state!r}"
    assert "monitored" in states, "the bed was never monitored during the replay"
    assert journal_onsets, "the demo model raises an alarm on this rated-seizure recording; the journal holds none"
