"""Security: loopback binds, CURVE required off loopback, read-only metrics, no unpickling, no patient
identifiers in logs, events or errors.

The systemd unit's ``systemd-analyze security`` exposure is tested in tests/ictal/test_systemd.py.
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import json
import logging
import os
import pickle
import re
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import edfio
import numpy as np
import pytest
import yaml

from ictal.alarms.config import AlarmThresholds, MetricsConfig, PublisherConfig
from ictal.alarms.journal import Journal
from ictal.alarms.metrics import IctalMetrics, serve_metrics
from ictal.alarms.publisher import AlarmPublisher
from ictal.config import ConfigError, load_config
from ictal.streaming.config import DaemonConfig
from ictal.streaming.edf import load_canonical, read_edf
from tests.reliability.edf_surgery import set_field
from tests.reliability.helpers import REPO_ROOT

PACKAGES = ("detector", "training", "streaming", "alarms", "ictal")


# -- binds ----------------------------------------------------------------------------------------------

def _write_yaml(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_minimal_daemon_file_binds_every_port_to_loopback(tmp_path):
    config = load_config(_write_yaml(tmp_path, {"kind": "daemon"}), kind="daemon")
    assert isinstance(config, DaemonConfig)
    publisher, metrics = config.alarms.publisher, config.alarms.metrics
    for endpoint in (publisher.pub_endpoint, publisher.catchup_endpoint):
        assert endpoint.startswith("tcp://127.0.0.1:"), endpoint
    assert metrics.host == "127.0.0.1"
    assert publisher.curve is None


def test_the_shipped_daemon_config_binds_to_loopback(repo_root):
    config = load_config(repo_root / "configs" / "daemon.yaml", kind="daemon")
    publisher = config.alarms.publisher
    assert all(e.startswith("tcp://127.0.0.1:") for e in (publisher.pub_endpoint, publisher.catchup_endpoint))
    assert config.alarms.metrics.host == "127.0.0.1"


@pytest.mark.parametrize("endpoint", [
    "tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://[::]:5556", "tcp://192.168.1.20:5556", "tcp://eth0:5556",
    "tcp://localhost.example.org:5556", "tcp://10.0.0.1:5556", "tcp://[::ffff:10.0.0.1]:5556",
])
@pytest.mark.parametrize("key", ["pub_endpoint", "catchup_endpoint"])
def test_a_non_loopback_alarm_socket_without_curve_keys_is_refused_from_yaml(tmp_path, key, endpoint):
    path = _write_yaml(tmp_path, {"kind": "daemon", "alarms": {"publisher": {key: endpoint}}})
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and endpoint in message and "CURVE" in message


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:1", "tcp://127.0.0.2:1", "tcp://localhost:1",
                                      "tcp://[::1]:1", "ipc:///run/ictal/alarms", "inproc://alarms"])
def test_loopback_and_local_transports_need_no_keys(tmp_path, endpoint):
    path = _write_yaml(tmp_path, {"kind": "daemon", "alarms": {"publisher": {"pub_endpoint": endpoint}}})
    assert load_config(path).alarms.publisher.pub_endpoint == endpoint


def test_a_non_loopback_bind_is_accepted_with_curve_keys(tmp_path):
    path = _write_yaml(tmp_path, {"kind": "daemon", "alarms": {"publisher": {
        "pub_endpoint": "tcp://0.0.0.0:5556", "catchup_endpoint": "tcp://0.0.0.0:5557",
        "curve": {"server_secret_file": str(tmp_path / "server.key_secret")}}}})
    assert load_config(path).alarms.publisher.curve is not None


def _non_loopback_ipv4() -> str | None:
    """An address of this machine that is not loopback, or None (found via a UDP 'connect', no packet sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, nothing is sent by connect()
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_default_binds_are_unreachable_from_the_machines_other_addresses(tmp_path):
    metrics = IctalMetrics()
    server = serve_metrics(MetricsConfig(port=0), metrics)
    journal = Journal(tmp_path_journal(tmp_path))
    publisher = AlarmPublisher(PublisherConfig(pub_endpoint="tcp://127.0.0.1:*", catchup_endpoint="tcp://127.0.0.1:*"),
                               journal)
    try:
        ports = [server.port, int(publisher.pub_endpoint.rsplit(":", 1)[1]),
                 int(publisher.catchup_endpoint.rsplit(":", 1)[1])]
        assert publisher.pub_endpoint.startswith("tcp://127.0.0.1:")
        assert publisher.catchup_endpoint.startswith("tcp://127.0.0.1:")
        for port in ports:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()  # reachable on loopback
        other = _non_loopback_ipv4()
        if other is not None:
            for port in ports:
                with pytest.raises(OSError):
                    socket.create_connection((other, port), timeout=2).close()
    finally:
        publisher.close()
        journal.close()
        server.close()


def tmp_path_journal(tmp_path: Path):
    from ictal.alarms.config import JournalConfig

    return JournalConfig(path=tmp_path / "journal.sqlite3")


# -- metrics are read-only ---------------------------------------------------------------------------

def _request(url: str, method: str, body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _samples(text: bytes) -> dict[str, str]:
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = value
    return out


def test_metrics_endpoint_ignores_writes_and_serves_no_files(tmp_path):
    metrics = IctalMetrics()
    metrics.record_alarm("bed-01")
    metrics.samples_received.labels(bed="bed-01").inc(1234)
    metrics.set_thresholds("bed-01", AlarmThresholds())
    server = serve_metrics(MetricsConfig(port=0), metrics)
    try:
        status, before = _request(server.url, "GET")
        assert status == 200 and b'ictal_samples_received_total{bed="bed-01"} 1234.0' in before
        body = b'ictal_samples_received_total{bed="bed-01"} 0\nictal_threshold_tau_on{bed="bed-01"} 0.01\n'
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/metrics", "/", "/metrics/job/x"):
                status, _ = _request(f"http://127.0.0.1:{server.port}{path}", method, body)
                assert status >= 400, f"{method} {path} answered {status}"
        for path in ("/../../../../etc/passwd", "/etc/passwd", "/%2e%2e/%2e%2e/etc/hostname"):
            status, text = _request(f"http://127.0.0.1:{server.port}{path}", "GET")
            assert b"root:" not in text and b"/bin/" not in text, f"GET {path} served a file"
        status, after = _request(server.url, "GET")
        assert status == 200
        samples_before, samples_after = _samples(before), _samples(after)
        for name in ('ictal_samples_received_total{bed="bed-01"}', 'ictal_threshold_tau_on{bed="bed-01"}',
                     'ictal_alarms_raised_total{bed="bed-01"}'):
            assert samples_after[name] == samples_before[name], f"{name} changed after write attempts"
    finally:
        server.close()


# -- checkpoints and other files are never unpickled -------------------------------------------------

def _python_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO_ROOT / pkg).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _unsafe_calls(path: Path) -> list[str]:
    """Calls that can unpickle or run code while loading data, as 'file:line: reason'."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module_name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "torch" and "load" in names:
                found.append(f"{path}:{node.lineno}: imports torch.load by name (unchecked weights_only)")
            for name in names:
                if name and name.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "shelve", "marshal",
                                                   "cloudpickle"):
                    found.append(f"{path}:{node.lineno}: imports {name}")
        if not isinstance(node, ast.Call):
            continue
        func = _dotted(node.func)
        tail = func.rsplit(".", 1)[-1]
        where = f"{path}:{node.lineno}: {func}"
        if func.endswith("torch.load"):
            weights_only = _keyword(node, "weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"{where} without weights_only=True")
        if tail in ("load", "loads", "Unpickler") and func.split(".")[0] in ("pickle", "cPickle", "dill",
                                                                              "cloudpickle", "joblib", "marshal"):
            found.append(where)
        if func in ("np.load", "numpy.load", "np.lib.format.read_array"):
            allow = _keyword(node, "allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append(f"{where} with allow_pickle={ast.unparse(allow)}")
        if func in ("yaml.load", "yaml.load_all"):
            loader = _keyword(node, "Loader")
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            if loader is None or not _is_safe_loader(module_name, loader):
                found.append(f"{where} with a loader that is not a yaml.SafeLoader")
        if func in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "torch.jit.load", "eval", "exec"):
            found.append(where)
    return found


def _is_safe_loader(module_name: str, node: ast.AST) -> bool:
    import yaml as yaml_module

    dotted = _dotted(node)
    if dotted in ("yaml.SafeLoader", "yaml.CSafeLoader"):
        return True
    if isinstance(node, ast.Name):
        obj = getattr(importlib.import_module(module_name), node.id, None)
        return isinstance(obj, type) and issubclass(obj, yaml_module.SafeLoader)
    return False


def test_no_module_can_unpickle_or_run_code_while_loading_data():
    files = _python_files()
    assert len(files) > 50, f"found only {len(files)} modules under {PACKAGES}"
    problems = [p for f in files for p in _unsafe_calls(f)]
    assert not problems, "calls that can unpickle or execute code:\n" + "\n".join(problems)


def test_the_unpickle_scan_flags_what_it_should(tmp_path, monkeypatch):
    sample = REPO_ROOT / "detector" / "_scan_probe_does_not_exist.py"
    source = ("import pickle\nimport torch\nimport numpy as np\nimport yaml\n"
              "torch.load('x')\ntorch.load('x', weights_only=False)\ntorch.load('x', weights_only=True)\n"
              "np.load('x', allow_pickle=True)\nnp.load('x')\npickle.loads(b'')\nyaml.load('a')\n"
              "yaml.load('a', Loader=yaml.SafeLoader)\nyaml.unsafe_load('a')\n")
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    flagged = _unsafe_calls(sample)
    lines = sorted(int(f.split(":")[1]) for f in flagged)
    assert lines == [1, 5, 6, 8, 10, 11, 13], flagged


class _Payload:
    """Unpickling this runs ``touch MARKER``: the proof that a loader unpickled something."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    import torch

    from ictal.detector.checkpoint import save_checkpoint
    from ictal.detector.config import FrontendConfig
    from ictal.detector.model import build_model
    from tests.detector.model_configs import small_config

    torch.manual_seed(0)
    config = small_config()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "small", build_model(config).eval(), config,
                           FrontendConfig())


@pytest.mark.parametrize("target", ["model.safetensors", "metadata.json", "torch_save_weights"])
def test_a_checkpoint_holding_a_pickle_payload_is_refused_and_the_payload_never_runs(small_checkpoint, tmp_path,
                                                                                     target):
    import torch

    from ictal.detector.checkpoint import CheckpointError, load_checkpoint

    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "evil"
    shutil.copytree(small_checkpoint, path)
    if target == "torch_save_weights":  # the zip+pickle format of torch.save, with the payload inside
        torch.save({"weights": torch.zeros(1), "payload": _Payload(marker)}, path / "model.safetensors")
    else:
        (path / target).write_bytes(_evil_pickle(marker))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists(), "the pickle payload ran while loading the checkpoint"
    assert pickle.loads(_evil_pickle(marker)) == 0 and marker.exists(), "the payload itself does run (control)"


def test_a_pickle_file_beside_a_valid_checkpoint_is_never_opened(small_checkpoint, tmp_path):
    from ictal.detector.checkpoint import load_checkpoint

    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "with_extras"
    shutil.copytree(small_checkpoint, path)
    for name in ("optimizer.pt", "model.pt", "model.pkl", "model.bin", "state.npy"):
        (path / name).write_bytes(_evil_pickle(marker))
    loaded = load_checkpoint(path)
    assert loaded.checkpoint_id == json.loads((small_checkpoint / "metadata.json").read_text())["checkpoint_id"]
    assert not marker.exists()


# -- no patient identifier in logs, events, LSL metadata or errors -------------------------------------

PATIENT_NAME = "Zyxwvutson_Quintavalle"
PATIENT_CODE = "MRN-7731-90422"
HOSPITAL_CODE = "ADM-HOSP-55123"
TECHNICIAN = "Tech_Oberwaldner"
EQUIPMENT = "AmpSerial-XQ9"
BIRTHDATE = dt.date(1931, 7, 29)
IDENTIFIERS = (PATIENT_NAME, PATIENT_CODE, HOSPITAL_CODE, TECHNICIAN, EQUIPMENT, "29-JUL-1931", "1931-07-29",
               "Zyxwvutson", "Quintavalle", "7731", "55123", "Oberwaldner")


@pytest.fixture(scope="module")
def identified_edf(shared_data, tmp_path_factory) -> Path:
    """A real 90 s recording rewritten with a distinctive fake patient and recording identification."""
    rec = read_edf(shared_data / "labelled" / "hms_1628180742.edf")
    signals = [
        edfio.EdfSignal(np.asarray(data, dtype=np.float64), fs, label=label, physical_dimension=dim,
                        physical_range=(-3000.0, 3000.0))
        for label, dim, fs, data in zip(rec.labels, rec.physical_dimensions, rec.sampling_rates_hz, rec.signals,
                                        strict=True)
    ]
    edf = edfio.Edf(
        signals,
        patient=edfio.Patient(code=PATIENT_CODE, sex="F", birthdate=BIRTHDATE, name=PATIENT_NAME),
        recording=edfio.Recording(startdate=dt.date(2026, 1, 2), hospital_administration_code=HOSPITAL_CODE,
                                  investigator_technician_code=TECHNICIAN, equipment_code=EQUIPMENT),
        annotations=[edfio.EdfAnnotation(20.0, 50.0, "seiz")],
    )
    path = tmp_path_factory.mktemp("phi") / "identified.edf"
    edf.write(path)
    raw = path.read_bytes()
    assert PATIENT_NAME.encode() in raw and HOSPITAL_CODE.encode() in raw, "the fixture holds no identifiers"
    return path


def _identifier_in(token: str, text: str) -> bool:
    """Case-insensitive search; a purely numeric fragment counts only as a whole token.

    Metrics and logs are full of numbers: "7731" inside a sample counter such as 177310 or 7731.0 is
    not a leak, while ``patient="7731"`` or ``code 7731,`` is.
    """
    if token.isdigit():
        return re.search(rf"(?<![\w.]){token}(?![\w.])", text) is not None
    return token.lower() in text.lower()


def _assert_no_identifier(text: str, where: str) -> None:
    leaked = [token for token in IDENTIFIERS if _identifier_in(token, text)]
    assert not leaked, f"patient/recording identifiers {leaked} reached {where}"


class _ConstantScorer:
    """A stand-in detector: probability 0.95 everywhere (raises alarms, so events are written)."""

    model_id = "security-test"
    stack = "none"
    backend = "reference"
    max_batch = 8

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[-1]), 0.95, dtype=np.float32)


def test_no_patient_identifier_reaches_logs_events_or_lsl_metadata(identified_edf, caplog, capsys):
    from ictal.detector.config import FrontendConfig
    from ictal.streaming.bed import run_recording
    from ictal.streaming.config import EdfSourceConfig
    from ictal.streaming.lsl_outlet import ReplayPublisher
    from ictal.streaming.sources.edf_replay import EdfReplaySource

    caplog.set_level(logging.DEBUG)
    recording = load_canonical(identified_edf)
    assert recording.data.shape[0] == 19
    source = EdfReplaySource(EdfSourceConfig(path=identified_edf, speed=0.0))
    source.open()
    chunks = 0
    while source.read(0.1) is not None and chunks < 50:
        chunks += 1
    assert chunks > 0
    result = run_recording(identified_edf, _ConstantScorer(), FrontendConfig(),
                           AlarmThresholds(min_duration_s=1.0, max_duration_s=30.0), hop_s=4.0,
                           min_history_s=10.0, bed_id="bed-phi")
    assert result.events, "the stand-in detector raised no alarm: nothing to inspect"
    events_json = "\n".join(e.model_dump_json() for e in result.events + result.quality_events)
    publisher = ReplayPublisher(identified_edf, name="ictal-phi-test", speed=0.0, chunk_s=1.0)
    try:
        outlet = publisher.open()
        stream_xml = outlet.get_info().as_xml()
    finally:
        publisher.close()
    metrics = IctalMetrics()
    metrics.samples_received.labels(bed="bed-phi").inc(recording.data.shape[1])
    from prometheus_client import generate_latest

    captured = capsys.readouterr()
    assert caplog.records or captured.out or captured.err or events_json, "nothing was captured at all"
    _assert_no_identifier(caplog.text, "the logs")
    _assert_no_identifier(captured.out + captured.err, "stdout/stderr")
    _assert_no_identifier(events_json, "the alarm events")
    _assert_no_identifier(stream_xml, "the LSL stream description")
    _assert_no_identifier(generate_latest(metrics.registry).decode(), "the metrics")
    _assert_no_identifier(repr(recording) + repr(read_edf(identified_edf)), "the recording objects' repr")


def test_errors_about_a_broken_identified_file_do_not_quote_its_identifiers(identified_edf, tmp_path):
    raw = identified_edf.read_bytes()
    broken = {
        "records": set_field(raw, "num_data_records", "abc"),
        "bytes_in_header": set_field(raw, "bytes_in_header", "xyz"),
        "version": set_field(raw, "version", "9"),
        "truncated": raw[:300],
        "patient_field_binary": set_field(raw, "patient", PATIENT_NAME.encode() + b"\xff\xfe"),
    }
    for name, data in broken.items():
        path = tmp_path / f"{name}.edf"
        path.write_bytes(data)
        try:
            load_canonical(path)
        except Exception as exc:  # noqa: BLE001 - whatever is raised, its message is checked
            _assert_no_identifier(str(exc), f"the error for {name}")


def test_no_patient_identifier_reaches_the_daemons_log_journal_or_metrics(identified_edf, tmp_path):
    from tests.reliability.daemon_harness import DaemonProcess, wait_for

    daemon = DaemonProcess(tmp_path, {"bed-phi": {"type": "edf", "path": str(identified_edf), "speed": 20.0,
                                                  "loop": True}},
                           {"tau_on": 0.8, "tau_off": 0.5, "min_duration_s": 1.0, "max_duration_s": 5.0,
                            "merge_gap_s": 0.0, "refractory_s": 0.0})
    try:
        daemon.start()
        assert wait_for(lambda: sum(e["kind"] == "onset" for e in daemon.catch_up(0)) >= 2, 60.0), daemon.log()[-3000:]
        metrics_text = urllib.request.urlopen(daemon.metrics_url, timeout=5).read().decode()
        journal = json.dumps(daemon.catch_up(0))
    finally:
        assert daemon.stop() == 0
    assert "bed-phi" in metrics_text and "bed-phi" in journal and "bed-phi" in daemon.log()
    _assert_no_identifier(daemon.log(), "the daemon's log")
    _assert_no_identifier(metrics_text, "the daemon's metrics")
    _assert_no_identifier(journal, "the journal")
    _assert_no_identifier(daemon.journal_path.read_bytes().decode("latin-1"), "the journal file")
