"""Probabilities in, alarm events out.

The post-processor (hysteresis, minimum duration, merge gap), the event schema, the durable journal,
the ZeroMQ publisher and the Prometheus metrics. This package knows nothing of EEG.

Modules: :mod:`alarms.config` (pydantic configs), :mod:`alarms.postprocess` (``PostProcessor``,
``detect_events``), :mod:`alarms.thresholds` (the tuned thresholds file), :mod:`alarms.schema`
(``AlarmEvent``, ``BedStatus``; JSON Schema in ``alarm_event.schema.json``), :mod:`alarms.journal`
(SQLite WAL, synchronous=FULL, exclusive locking; journal id; file-fault checks), :mod:`alarms.publisher` (PUB + heartbeat + catch-up REP; wire format documented
there), :mod:`alarms.subscriber` (catch-up then live, used by ``ictal alarms watch``),
:mod:`alarms.metrics` (Prometheus), :mod:`alarms.bench_alarms` (``ictal bench alarms``),
:mod:`alarms.bench_flood` (``python -m alarms.bench_flood``: the catch-up endpoint under pipelined
requests and idle connections, daemon memory and descriptors).
"""
