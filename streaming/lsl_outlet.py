"""Publish an EDF/EDF+ file as a real-time LSL EEG stream (the engine of ``ictal replay``).

The stream looks like an amplifier's: type ``EEG``, the 19 canonical channels in microvolts at the
file's native rate, and the channel meta-data of the XDF/LSL convention in the stream description
(``desc/channels/channel/{label,unit,type}``, https://github.com/sccn/xdf/wiki/EEG-Meta-Data), so the
daemon's ``LslSource`` maps it exactly as it maps a device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pylsl

from ictal.detector import CANONICAL_CHANNELS
from ictal.detector.config import FrontendConfig
from ictal.streaming.chunk import Chunk
from ictal.streaming.config import EdfSourceConfig
from ictal.streaming.lsl_config import configure_liblsl
from ictal.streaming.sources.edf_replay import EdfReplaySource

configure_liblsl()  # before any LSL call: liblsl reads its configuration once

XDF_UNIT_MICROVOLTS = "microvolts"
"""Unit string of the XDF EEG meta-data convention for uV."""


def default_source_id(name: str) -> str:
    """LSL ``source_id`` of a replay named ``name``: stable, so consumers recover it after a restart."""
    return f"ictal-replay:{name}"


def canonical_stream_info(
    name: str, fs: float, source_id: str, labels: tuple[str, ...] = CANONICAL_CHANNELS,
    unit: str = XDF_UNIT_MICROVOLTS,
) -> pylsl.StreamInfo:
    """LSL stream info of an EEG stream with XDF channel meta-data.

    Parameters
    ----------
    name : str
        Stream name (what ``LslSourceConfig.name`` resolves).
    fs : float
        Nominal sampling rate in Hz.
    source_id : str
        Unique, stable id of the device (here: the replay).
    labels : tuple of str
        Channel labels, one per channel.
    unit : str
        Unit of every channel (XDF convention: ``"microvolts"``).

    Returns
    -------
    info : pylsl.StreamInfo
        Type ``EEG``, float32 samples, ``desc/channels/channel/{label,unit,type}`` filled.
    """
    info = pylsl.StreamInfo(name, "EEG", len(labels), fs, "float32", source_id)
    channels = info.desc().append_child("channels")
    for label in labels:
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("unit", unit)
        channel.append_child_value("type", "EEG")
    acquisition = info.desc().append_child("acquisition")
    acquisition.append_child_value("manufacturer", "ictal")
    acquisition.append_child_value("model", "replay")
    return info


class ReplayPublisher:
    """Replay an EDF file into an LSL outlet at real-time pace (or ``speed`` times faster).

    Pacing is ``EdfReplaySource``'s absolute schedule. Each chunk is pushed with the timestamp of
    its last sample, ``t0 + (last_index) / fs`` on the LSL clock, where ``t0`` is ``local_clock()``
    when the first chunk was due; LSL derives the earlier samples' timestamps from the nominal rate.
    At ``speed = 1`` the timestamps are the samples' acquisition times, as an amplifier's; at other
    speeds they are the stream's own time base (1 / fs apart), which runs faster or slower than the
    wall clock.

    Parameters
    ----------
    path : Path
        EDF or EDF+ file.
    name : str
        LSL stream name.
    speed : float
        Pacing factor (1 = real time; 0 = as fast as possible).
    loop : bool
        Start again at the end of the file.
    chunk_s : float
        Seconds of signal per pushed chunk.
    source_id : str, optional
        LSL source_id (default: ``default_source_id(name)``).
    frontend_config : FrontendConfig, optional
        Supplies ``repair_missing`` for the montage.
    """

    def __init__(
        self, path: Path, name: str, speed: float = 1.0, loop: bool = False, chunk_s: float = 0.05,
        source_id: str | None = None, frontend_config: FrontendConfig | None = None,
    ) -> None:
        self.source = EdfReplaySource(
            EdfSourceConfig(path=path, speed=speed, loop=loop, chunk_s=chunk_s), frontend_config
        )
        self.name = name
        self.source_id = source_id or default_source_id(name)
        self.outlet: pylsl.StreamOutlet | None = None
        self.n_pushed = 0

    def open(self) -> pylsl.StreamOutlet:
        """Load the file and create the outlet (visible to consumers from now on)."""
        self.source.open()
        info = canonical_stream_info(self.name, self.source.fs, self.source_id)
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
        return self.outlet

    def run(
        self, stop: threading.Event | None = None, wait_consumer_s: float = 0.0,
        on_chunk: Callable[[Chunk], None] | None = None, linger_s: float = 2.0,
    ) -> int:
        """Publish until the end of the file (or forever with ``loop``) or until ``stop`` is set.

        Parameters
        ----------
        stop : threading.Event, optional
            Set it to end the replay.
        wait_consumer_s : float
            Wait up to this many seconds for a consumer before the first sample (0: start at once;
            samples pushed before an inlet connects are not delivered to it).
        on_chunk : callable, optional
            Called with each chunk after it was pushed (for benchmarks).
        linger_s : float
            Seconds the outlet stays up after the file's last sample, so that consumers pull the
            samples still in flight (an inlet that sees its outlet vanish reports the stream lost and
            may drop what it had not pulled yet).

        Returns
        -------
        n_pushed : int
            Samples pushed per channel.
        """
        if self.outlet is None:
            self.open()
        if wait_consumer_s > 0:
            self.outlet.wait_for_consumers(wait_consumer_s)
        fs = self.source.fs
        t0_lsl: float | None = None
        while stop is None or not stop.is_set():
            chunk = self.source.read(timeout_s=0.1)
            if chunk is None:
                if self.source.exhausted:
                    break
                continue
            if t0_lsl is None:
                # LSL time of sample 0: the first chunk is released when its last sample is due.
                t0_lsl = pylsl.local_clock() - (time.monotonic() - self._schedule_t0()) if \
                    self.source.config.speed > 0 else pylsl.local_clock()
            self.outlet.push_chunk(chunk.data.T.copy(), t0_lsl + (chunk.end_index - 1) / fs)
            self.n_pushed += chunk.n_samples
            if on_chunk is not None:
                on_chunk(chunk)
        if self.source.exhausted and linger_s > 0:
            if stop is None:
                time.sleep(linger_s)
            else:
                stop.wait(linger_s)
        return self.n_pushed

    def _schedule_t0(self) -> float:
        return self.source.release_time(0)

    def close(self) -> None:
        """Remove the outlet (consumers see the stream disappear) and forget the file."""
        self.outlet = None
        self.source.close()
