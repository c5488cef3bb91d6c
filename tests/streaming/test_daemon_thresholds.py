"""The thresholds in force in the daemon: a thresholds file of another checkpoint, its explicit
acceptance (WARNING + ``daemon`` event ``foreign_thresholds`` at start and at every reload), and the
precedence error, at construction and on reload (real journal, real sockets, no model)."""

from __future__ import annotations

import logging

import pytest

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.journal import Journal
from ictal.alarms.thresholds import ThresholdsMismatchError, ThresholdsPrecedenceError, save_thresholds
from ictal.streaming.daemon import Daemon
from ictal.streaming.notify import SystemdNotifier
from tests.streaming.daemon_helpers import LineLengthScorer, daemon_config

FOREIGN = "f0f0f0f0f0f0f0f0"


class TunedScorer(LineLengthScorer):
    """A scorer whose checkpoint carries tuned thresholds (as ``ictal tune --write-checkpoint`` leaves it)."""

    thresholds = {"tau_on": 0.6, "tau_off": 0.4, "min_duration_s": 4.0}


EEGMAT = "background/eegmat/Subject08_1.edf"


@pytest.fixture
def edf(shared_data):
    """One bed replaying a real EDF in real time (a daemon without beds is not what is tested here)."""
    return shared_data / EEGMAT


def _config(tmp_path, edf, **alarms):
    config = daemon_config(tmp_path, {"bed-t": edf}, speed=1.0)
    # rebuilt from a mapping, as a file is read: only the keys written are in model_fields_set
    data = config.model_dump(mode="json")
    del data["alarms"]["thresholds"]
    data["alarms"].update(alarms)
    return type(config).model_validate(data)


def _foreign_file(tmp_path, checkpoint_id=FOREIGN):
    return save_thresholds(tmp_path / "th.json", AlarmThresholds(tau_on=0.7, tau_off=0.3), target_fa_per_24h=1.0,
                           dataset="d", checkpoint_id=checkpoint_id, recordings=["r1"])


def _daemon(config, scorer=None):
    return Daemon(config, scorer or LineLengthScorer(), notifier=SystemdNotifier(socket_path=None))


def _daemon_events(path):
    from ictal.alarms.config import JournalConfig

    journal = Journal(JournalConfig(path=path))
    try:
        return [e for e in journal.since(0) if e.kind == "daemon"]
    finally:
        journal.close()


def test_a_thresholds_file_of_another_checkpoint_stops_the_daemon_naming_both_ids(tmp_path, edf):
    path = _foreign_file(tmp_path)
    with pytest.raises(ThresholdsMismatchError) as err:
        _daemon(_config(tmp_path, edf, thresholds_file=str(path)))
    assert FOREIGN in str(err.value) and "line-length" in str(err.value) and str(path) in str(err.value)


def test_an_accepted_foreign_file_is_logged_and_published_at_start_and_at_every_reload(tmp_path, edf, caplog):
    path = _foreign_file(tmp_path)
    config = _config(tmp_path, edf, thresholds_file=str(path), accept_thresholds_of_checkpoint=FOREIGN)
    daemon = _daemon(config)
    assert daemon.thresholds.tau_on == 0.7 and daemon.thresholds_source.foreign_checkpoint_id == FOREIGN
    with caplog.at_level(logging.INFO, logger="ictal.daemon"):
        daemon.start()
        try:
            assert daemon.reload(config) is True
        finally:
            daemon.shutdown()
    events = _daemon_events(config.alarms.journal.path)
    reasons = [e.reason for e in events]
    assert reasons == ["started", "foreign_thresholds", "reloaded", "foreign_thresholds", "stopped"], reasons
    for event in events:
        if event.reason == "foreign_thresholds":
            assert FOREIGN in event.detail and "line-length" in event.detail and str(path) in event.detail
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and "event=foreign_thresholds" in r.getMessage()]
    assert len(warnings) == 2 and all(FOREIGN in w and "line-length" in w for w in warnings)
    in_force = [r.getMessage() for r in caplog.records if "event=thresholds_in_force" in r.getMessage()]
    assert len(in_force) == 2 and "at=start" in in_force[0] and "at=reload" in in_force[1]
    assert all("tau_on=0.7" in line and FOREIGN in line for line in in_force)


def test_reload_refuses_a_foreign_file_or_a_precedence_conflict_and_keeps_the_running_thresholds(tmp_path, edf, caplog):
    config = _config(tmp_path, edf)
    daemon = _daemon(config, TunedScorer())
    assert daemon.thresholds.tau_on == 0.6 and daemon.thresholds_source == "checkpoint"
    path = _foreign_file(tmp_path)
    with caplog.at_level(logging.INFO, logger="ictal.daemon"):
        daemon.start()
        try:
            assert daemon.reload(_config(tmp_path, edf, thresholds_file=str(path))) is False
            conflict = _config(tmp_path, edf, thresholds={"tau_on": 0.97, "tau_off": 0.9})
            assert daemon.reload(conflict) is False
            assert daemon.thresholds.tau_on == 0.6
            # the explicit choice: the configured thresholds, logged with their source
            chosen = _config(tmp_path, edf, thresholds={"tau_on": 0.97, "tau_off": 0.9}, use_checkpoint_thresholds=False)
            assert daemon.reload(chosen) is True
            assert daemon.thresholds.tau_on == 0.97 and daemon.thresholds_source == "config"
        finally:
            daemon.shutdown()
    refused = [r.getMessage() for r in caplog.records if "event=reload_refused" in r.getMessage()]
    assert len(refused) == 2
    assert FOREIGN in refused[0] and "line-length" in refused[0]
    assert "use_checkpoint_thresholds" in refused[1]
    assert any("event=thresholds_in_force" in r.getMessage() and "at=reload" in r.getMessage()
               and "source=config" in r.getMessage() and "tau_on=0.97" in r.getMessage() for r in caplog.records)
    reasons = [e.reason for e in _daemon_events(config.alarms.journal.path)]
    assert "foreign_thresholds" not in reasons


def test_config_thresholds_written_out_against_the_checkpoints_stop_the_daemon(tmp_path, edf):
    with pytest.raises(ThresholdsPrecedenceError, match="use_checkpoint_thresholds"):
        _daemon(_config(tmp_path, edf, thresholds={"tau_on": 0.97}), TunedScorer())


def test_unusual_thresholds_in_force_are_logged_as_warnings(tmp_path, edf, caplog):
    config = _config(tmp_path, edf, thresholds={"tau_on": 0.9, "tau_off": 0.9, "min_duration_s": 2.0})
    daemon = _daemon(config)
    with caplog.at_level(logging.INFO, logger="ictal.daemon"):
        daemon.start()
        daemon.shutdown()
    unusual = [r.getMessage() for r in caplog.records if "event=thresholds_unusual" in r.getMessage()]
    assert len(unusual) == 2 and "no hysteresis" in unusual[0] and "below the floor" in unusual[1]
