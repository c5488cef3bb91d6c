"""A file scored through the daemon path, laid into a :class:`~ictal.streaming.view.hub.ViewHub` for the page.

``ictal view FILE.edf --checkpoint DIR`` runs the file through ``streaming.bed.run_recording`` (the
per-bed path of ``ictal serve``: front-end in 0.25 s chunks, windows every hop, stitching, signal
quality, post-processor), then fills a hub with what the live daemon would have shown: the file's EEG,
the stitched probabilities (with their usable flags), the onset/offset and signal-quality events, and
the bed's state at the end of the file. The page is then the same as for a live bed (mode
``offline``); nothing updates.

The file's name and its EDF header's patient field never reach the hub; the caller passes a
recording name only when ``ViewConfig.allow_patient_id`` allows it. The bed id is ``bed_id``
(``"offline"`` by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ictal.alarms.config import AlarmThresholds
from ictal.alarms.schema import AlarmEvent, BedStatus
from ictal.detector.config import FrontendConfig
from ictal.streaming.bed import RecordingResult, Scorer, run_recording
from ictal.streaming.chunk import Chunk
from ictal.streaming.edf import BLOCK_S, open_canonical
from ictal.streaming.view.hub import ViewHub

MAX_DEFAULT_MINUTES: float = 120.0
"""Most minutes of a file held by default (19 channels at 128 Hz: about 70 MB); the page shows the
last ones of a longer file unless ``minutes`` says otherwise."""


@dataclass
class OfflineView:
    """The hub of a scored file and what the scoring gave (for the caller's summary and tests).

    Attributes
    ----------
    hub : ViewHub
    result : RecordingResult
    alarms : list of AlarmEvent
        Onset events, in order (the page's alarm list).
    """

    hub: ViewHub
    result: RecordingResult
    alarms: list[AlarmEvent]


def view_file(path: str | Path, detector: Scorer, frontend_config: FrontendConfig, thresholds: AlarmThresholds,
              hop_s: float, *, min_history_s: float = 10.0, minutes: float | None = None,
              bed_id: str = "offline", recording: str | None = None) -> OfflineView:
    """Score an EDF/EDF+ file through the daemon path and fill a view hub with it.

    Parameters
    ----------
    path : str or Path
        EDF/EDF+ file with the 19 referential channels (``streaming.edf.open_canonical``).
    detector : Scorer
        ``detector.inference.Detector`` (the checkpoint's model).
    frontend_config : FrontendConfig
        The checkpoint's front-end.
    thresholds : AlarmThresholds
        Post-processor thresholds (tau_on, tau_off drawn on the trend).
    hop_s : float
        Seconds between scored windows (the daemon's ``scheduler.hop_s``).
    min_history_s : float, default 10
        As ``SchedulerConfig.min_history_s``.
    minutes : float, optional
        Minutes kept; default the whole file (at least 1 minute), at most :data:`MAX_DEFAULT_MINUTES`.
        The hub keeps the last ``minutes``.
    bed_id : str, default "offline"
    recording : str, optional
        Name shown on the page; pass one only when patient identifiers are allowed.

    Returns
    -------
    view : OfflineView

    Raises
    ------
    FileNotFoundError, ValueError, detector.montage.MontageError
        As ``streaming.edf.open_canonical``.
    """
    result = run_recording(path, detector, frontend_config, thresholds, hop_s, min_history_s=min_history_s,
                           bed_id=bed_id)
    if minutes is None:
        minutes = min(MAX_DEFAULT_MINUTES, max(1.0, result.duration_s / 60.0 + 0.1))
    from ictal.detector.montage import montage_channels

    hub = ViewHub(minutes, {"tau_on": thresholds.tau_on, "tau_off": thresholds.tau_off}, recording=recording,
                  mode="offline", channels=montage_channels(frontend_config.montage))
    with open_canonical(path, frontend_config) as stream:
        block = max(1, round(BLOCK_S * stream.fs))
        for first, data in stream.blocks(block):
            hub.on_chunk(bed_id, Chunk(data=np.ascontiguousarray(data, dtype=np.float32), first_index=first,
                                       clock_s=first / stream.fs, fs=stream.fs))
    hub.add_probabilities(bed_id, [(result.first_index, result.probabilities)], result.usable)
    for event in sorted(result.events + result.quality_events, key=lambda e: e.stream_time_s or 0.0):
        hub.on_event(event)
    scored = np.isfinite(result.probabilities)
    last_usable = bool(result.usable[scored][-1]) if scored.any() else False
    state = ("monitored", f"offline file scored to {result.duration_s:.1f} s; last window usable") if last_usable \
        else ("not_monitored", "offline file: " + ("last window unusable (signal quality)" if scored.any()
                                                   else f"no window scored (shorter than {min_history_s:g} s?)"))
    hub.on_state(bed_id, BedStatus(state=state[0], reason=state[1]))
    onsets = [e for e in result.events if e.kind == "onset"]
    return OfflineView(hub=hub, result=result, alarms=onsets)

