"""Probabilities in, alarm events out.

The post-processor (hysteresis, minimum duration, merge gap), the event schema, the durable journal,
the ZeroMQ publisher and the Prometheus metrics. This package knows nothing of EEG.

Modules: :mod:`ictal.alarms.config` (pydantic configs), :mod:`ictal.alarms.postprocess` (``PostProcessor``,
``detect_events``), :mod:`ictal.alarms.thresholds` (the tuned thresholds file), :mod:`ictal.alarms.schema`
(``AlarmEvent``, ``BedStatus``; JSON Schema in ``alarm_event.schema.json``), :mod:`ictal.alarms.journal`
(SQLite WAL, synchronous=FULL, exclusive locking; journal id; file-fault checks), :mod:`ictal.alarms.publisher` (PUB + heartbeat + catch-up REP; wire format documented
there), :mod:`ictal.alarms.subscriber` (catch-up then live, used by ``ictal alarms watch``),
:mod:`ictal.alarms.metrics` (Prometheus), :mod:`ictal.alarms.bench_alarms` (``ictal bench alarms``),
:mod:`ictal.alarms.bench_flood` (``python -m ictal.alarms.bench_flood``: the catch-up endpoint under pipelined
requests and idle connections, daemon memory and descriptors).
"""
