"""ictal: the command line, the composition of configs, and the notebook API.

``import ictal`` is cheap: it imports nothing heavy (no torch, no numpy). The notebook API
(:mod:`ictal.api`) is loaded on first use of one of its names::

    import ictal
    pred = ictal.predict_file("record.edf", checkpoint=ictal.demo_checkpoint())
    pred.times_s, pred.probabilities, pred.events, pred.quality_events

- ``ictal.load_detector(checkpoint)``: a checkpoint loaded as the daemon loads it;
- ``ictal.predict_file(path_or_raw, checkpoint=...)``: one EDF file (or ``mne.io.Raw``) through the
  daemon's per-bed path, as an ``ictal.Prediction``;
- ``ictal.evaluate(checkpoint, data, out_dir=None, ...)``: ``ictal evaluate``, returning the report dict;
- ``ictal.demo_checkpoint()``: the folder of the shipped demo checkpoint.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = ("load_detector", "predict_file", "evaluate", "demo_checkpoint", "Prediction", "raw_to_canonical",
        "DemoCheckpointMissing")
"""Names served lazily from :mod:`ictal.api` (PEP 562), so that ``import ictal`` stays fast."""

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from ictal import api

        return getattr(api, name)
    raise AttributeError(f"module 'ictal' has no attribute {name!r} (the API offers: {', '.join(_API)})")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
