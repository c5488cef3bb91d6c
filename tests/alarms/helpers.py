"""Helpers of the alarms tests: free loopback ports, sample events, a publisher factory."""

from __future__ import annotations

from pathlib import Path

from ictal.alarms.config import AlarmThresholds, JournalConfig, PublisherConfig
from ictal.alarms.journal import Journal
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent, ModelInfo, Probability
from tests.reliability.helpers import free_port  # one definition, below the ephemeral range

__all__ = ["free_port", "onset", "open_publisher", "publisher_config"]




def publisher_config(heartbeat_s: float = 0.1, **kwargs) -> PublisherConfig:
    """A publisher config on two free loopback ports."""
    return PublisherConfig(pub_endpoint=f"tcp://127.0.0.1:{free_port()}",
                           catchup_endpoint=f"tcp://127.0.0.1:{free_port()}", heartbeat_s=heartbeat_s, **kwargs)


def onset(bed: str = "bed1", onset_s: float = 100.0) -> AlarmEvent:
    """A realistic onset event."""
    return AlarmEvent(kind="onset", bed_id=bed, onset_s=onset_s, stream_time_s=onset_s + 10.0,
                      probability=Probability(peak=0.97, mean=0.9),
                      model=ModelInfo(model_id="ckpt-test", stack="bimamba2", backend="reference"),
                      thresholds=AlarmThresholds(), reason="min_duration")


def open_publisher(tmp: Path, config: PublisherConfig, metrics=None) -> tuple[Journal, AlarmPublisher]:
    """A journal in ``tmp`` and a publisher on ``config``."""
    journal = Journal(JournalConfig(path=tmp / "journal.sqlite3"))
    return journal, AlarmPublisher(config, journal, metrics=metrics)
