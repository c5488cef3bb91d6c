"""`ictal doctor`: the visible LSL streams (real outlets on loopback) and the configured bed each would select,
with the predicate the LSL source resolves with."""

from __future__ import annotations

import socket
import sys
import uuid

import pylsl
import pytest

from ictal.cli import main
from ictal.config import load_config
from ictal.streaming.lsl_outlet import canonical_stream_info
from ictal.streaming.lsl_survey import survey
from tests.ictal import test_preflight
from tests.ictal.test_preflight import daemon_yaml

WAIT_S = 1.5

held_port = test_preflight.held_port  # a port listened on by another process (fixture)


@pytest.fixture
def outlets():
    """Three EEG outlets: ``amp-<tag>`` (sn-1), ``twin-<tag>`` twice (sn-2, sn-3); yields the tag."""
    tag = uuid.uuid4().hex[:8]
    made = [pylsl.StreamOutlet(canonical_stream_info(name, 256.0, source_id))
            for name, source_id in ((f"amp-{tag}", f"sn-1-{tag}"), (f"twin-{tag}", f"sn-2-{tag}"),
                                    (f"twin-{tag}", f"sn-3-{tag}"))]
    yield tag
    del made


def _config(tmp_path, tag: str):
    path = tmp_path / "daemon.yaml"
    path.write_text(
        "kind: daemon\n"
        f"detector:\n  checkpoint: {tmp_path / 'gone'}\n"
        "beds:\n"
        f"  - {{bed_id: bed-amp, source: {{type: lsl, name: amp-{tag}}}}}\n"
        f"  - {{bed_id: bed-twin, source: {{type: lsl, name: twin-{tag}}}}}\n"
        f"  - {{bed_id: bed-pinned, source: {{type: lsl, source_id: sn-3-{tag}}}}}\n"
        f"  - {{bed_id: bed-absent, source: {{type: lsl, name: absent-{tag}}}}}\n"
    )
    return path


def test_survey_matches_each_stream_to_the_beds_whose_predicate_selects_it(tmp_path, outlets):
    tag = outlets
    found = survey(load_config(_config(tmp_path, tag)), WAIT_S)
    ours = [s for s in found.streams if s.name.endswith(tag)]
    assert [(s.name, s.source_id, s.channel_count, s.nominal_rate_hz, s.stream_type) for s in ours] == [
        (f"amp-{tag}", f"sn-1-{tag}", 19, 256.0, "EEG"),
        (f"twin-{tag}", f"sn-2-{tag}", 19, 256.0, "EEG"),
        (f"twin-{tag}", f"sn-3-{tag}", 19, 256.0, "EEG")]
    assert [found.beds_of_stream.get(s.uid) for s in ours] == [
        ["bed-amp"], ["bed-twin"], ["bed-twin", "bed-pinned"]]
    assert [s.source_id for s in found.streams_of_bed["bed-twin"]] == [f"sn-2-{tag}", f"sn-3-{tag}"]
    assert found.streams_of_bed["bed-absent"] == []
    assert found.predicates["bed-pinned"] == f"type='EEG' and source_id='sn-3-{tag}'"


def test_doctor_lists_streams_and_beds_and_fails_on_an_ambiguous_bed(tmp_path, outlets, capsys):
    tag = outlets
    assert main(["doctor", "--config", str(_config(tmp_path, tag)), "--lsl-wait", str(WAIT_S)]) == 1
    out = capsys.readouterr().out
    host = socket.gethostname()
    assert (f"lsl stream    name 'amp-{tag}', type 'EEG', source_id 'sn-1-{tag}', host '{host}', 19 channels, "
            "256 Hz -> bed bed-amp") in out
    assert f"source_id 'sn-3-{tag}'" in out and "-> bed bed-twin, bed-pinned" in out
    assert f"PROBLEM bed-twin (type='EEG' and name='twin-{tag}'): 2 streams match" in out
    assert f"bed-absent (type='EEG' and name='absent-{tag}'): no stream visible" in out
    assert f"bed-pinned (type='EEG' and source_id='sn-3-{tag}'): selects" in out
    assert f"PROBLEM checkpoint: detector.checkpoint: checkpoint {tmp_path / 'gone'}" in out  # the pre-flight ran


def test_doctor_names_the_process_holding_a_configured_port(tmp_path, capsys, held_port):
    port, pid = held_port
    config = daemon_yaml(tmp_path, checkpoint=str(tmp_path / "gone"), metrics=port)
    assert main(["doctor", "--config", str(config), "--lsl-wait", "0.2"]) == 1
    out = capsys.readouterr().out
    assert f"PROBLEM port: metrics HTTP tcp://127.0.0.1:{port} (alarms.metrics.host/port): port {port} in use by " \
           f"pid {pid} ({sys.executable} -c import socket" in out
    assert "ok      port: alarm PUB" in out and "ok      port: catch-up REP" in out
