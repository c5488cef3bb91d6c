"""Child process of the kill -9 test: publishes onset events as fast as it can until killed.

Usage: python journal_child.py JOURNAL_PATH PUB_ENDPOINT CATCHUP_ENDPOINT
"""

from __future__ import annotations

import sys

from ictal.alarms.config import JournalConfig, PublisherConfig
from ictal.alarms.journal import Journal
from ictal.alarms.publisher import AlarmPublisher
from ictal.alarms.schema import AlarmEvent

journal = Journal(JournalConfig(path=sys.argv[1]))
publisher = AlarmPublisher(PublisherConfig(pub_endpoint=sys.argv[2], catchup_endpoint=sys.argv[3]), journal)
print("ready", flush=True)
i = 0
while True:
    publisher.publish(AlarmEvent(kind="onset", bed_id=f"bed{i % 3}", onset_s=float(i)))
    i += 1
