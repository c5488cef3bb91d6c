"""Probabilities in, alarm events out.

The post-processor (hysteresis, minimum duration, merge gap), the event schema, the durable journal,
the ZeroMQ publisher and the Prometheus metrics. This package knows nothing of EEG.
"""
