"""The LSL streams visible from this machine, and which configured bed each would be selected by.

"Is my amplifier there?" is the first question when wiring a bed. :func:`survey` answers it:

1. Every visible stream is listed (``pylsl.resolve_streams`` for ``wait_s`` seconds): name, type,
   source_id, hostname, channel count and nominal rate.
2. Each LSL bed of the config is resolved with the very predicate its source resolves with
   (:meth:`ictal.streaming.sources.lsl.LslSource.predicate`, evaluated by liblsl's ``resolve_bypred`` for the
   same ``wait_s``; the beds and the listing are resolved in parallel, so the survey takes about
   ``wait_s`` up to ``MAX_PARALLEL_RESOLVES - 1`` beds). A stream is matched to a bed by its ``uid``.

A bed matched by no stream is waiting for its device (the daemon starts anyway and connects when the
stream appears); a bed matched by several streams is a problem: its source takes none of them and
says so (``streaming.sources.lsl``, "none taken"). Discovery depends on the network (multicast, or
liblsl's ``KnownPeers``): a stream not listed here is not visible to the daemon either.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ictal.streaming.config import DaemonConfig, LslSourceConfig

MAX_STREAMS = 1024
"""Most streams one resolve returns (pylsl's buffer); asked as the minimum so each resolve waits ``wait_s``."""


MAX_PARALLEL_RESOLVES = 32
"""Resolves run at once (one liblsl resolver each); 64 beds take two rounds of ``wait_s``."""


@dataclass(frozen=True)
class VisibleStream:
    """One LSL stream as its outlet announces it.

    Attributes
    ----------
    name, stream_type, source_id, hostname, uid : str
    channel_count : int
    nominal_rate_hz : float
        0 for an irregular-rate stream.
    """

    name: str
    stream_type: str
    source_id: str
    hostname: str
    channel_count: int
    nominal_rate_hz: float
    uid: str

    @classmethod
    def of(cls, info) -> VisibleStream:
        """From a ``pylsl.StreamInfo``."""
        return cls(info.name(), info.type(), info.source_id(), info.hostname(), info.channel_count(),
                   info.nominal_srate(), info.uid())

    def describe(self) -> str:
        """``name 'amp', type 'EEG', source_id 'sn-1', host 'icu-3', 19 channels, 256 Hz``."""
        rate = f"{self.nominal_rate_hz:g} Hz" if self.nominal_rate_hz > 0 else "irregular rate"
        return (f"name {self.name!r}, type {self.stream_type!r}, source_id {self.source_id!r}, host "
                f"{self.hostname!r}, {self.channel_count} channels, {rate}")


@dataclass
class LslSurvey:
    """What :func:`survey` found.

    Attributes
    ----------
    streams : list of VisibleStream
        Every stream seen, sorted by name then source_id.
    beds_of_stream : dict of str to list of str
        ``uid -> bed ids`` whose predicate selects that stream.
    streams_of_bed : dict of str to list of VisibleStream
        ``bed id -> streams`` its predicate selects (every LSL bed of the config has a key).
    predicates : dict of str to str
        ``bed id -> predicate`` resolved.
    """

    streams: list[VisibleStream] = field(default_factory=list)
    beds_of_stream: dict[str, list[str]] = field(default_factory=dict)
    streams_of_bed: dict[str, list[VisibleStream]] = field(default_factory=dict)
    predicates: dict[str, str] = field(default_factory=dict)


def _resolve(predicate: str | None, wait_s: float) -> list[VisibleStream]:
    import pylsl

    from ictal.streaming.lsl_config import configure_liblsl

    configure_liblsl()

    if predicate is None:
        infos = pylsl.resolve_streams(wait_time=wait_s)
    else:
        infos = pylsl.resolve_bypred(predicate, minimum=MAX_STREAMS, timeout=wait_s)
    return [VisibleStream.of(info) for info in infos]


def survey(config: DaemonConfig | None, wait_s: float = 2.0) -> LslSurvey:
    """List the visible LSL streams and match them to the config's LSL beds.

    Parameters
    ----------
    config : DaemonConfig or None
        Its LSL beds are matched; None lists the streams only.
    wait_s : float
        Seconds each resolve waits for streams to answer (they run in parallel).

    Returns
    -------
    survey : LslSurvey

    Raises
    ------
    RuntimeError
        If liblsl cannot be loaded (pylsl's error).
    """
    from ictal.streaming.sources.lsl import LslSource

    beds = [bed for bed in (config.beds if config is not None else []) if isinstance(bed.source, LslSourceConfig)]
    result = LslSurvey()
    for bed in beds:
        result.predicates[bed.bed_id] = LslSource(bed.source, config.frontend).predicate()
    queries: list[str | None] = [None] + [result.predicates[bed.bed_id] for bed in beds]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_RESOLVES, len(queries))) as pool:
        answers = list(pool.map(lambda query: _resolve(query, wait_s), queries))
    by_uid = {stream.uid: stream for answer in answers for stream in answer}
    result.streams = sorted(by_uid.values(), key=lambda s: (s.name, s.source_id, s.hostname, s.uid))
    for bed, answer in zip(beds, answers[1:], strict=True):
        result.streams_of_bed[bed.bed_id] = sorted(answer, key=lambda s: (s.name, s.source_id, s.uid))
        for stream in answer:
            result.beds_of_stream.setdefault(stream.uid, []).append(bed.bed_id)
    return result
