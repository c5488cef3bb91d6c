"""Run the real ``streaming.daemon.Daemon`` with a constant-probability stand-in for the model.

Usage: ``python tests/reliability/stub_daemon.py CONFIG`` (environment ``ICTAL_STUB_PROBABILITY``,
default 0.95). Everything but the neural network is the production code: config loading, bed
threads, LSL sources, front-end, ring buffers, scheduler, scoring loop, post-processor, journal,
publisher, metrics endpoint, signal handling (SIGTERM drain, SIGHUP reload). Exit codes as
``ictal serve``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


class StubScorer:
    """Answers ``ICTAL_STUB_PROBABILITY`` for every sample of every window, instantly."""

    model_id = "stub-constant"
    stack = "none"
    backend = "reference"
    device = "cpu"

    def __init__(self, frontend_config, max_batch: int) -> None:
        self.frontend_config = frontend_config
        self.max_batch = max_batch
        self.probability = float(os.environ.get("ICTAL_STUB_PROBABILITY", "0.95"))

    def warmup(self) -> None:
        """Nothing to warm up."""

    def predict(self, windows: np.ndarray) -> np.ndarray:
        return np.full((windows.shape[0], windows.shape[-1]), self.probability, dtype=np.float32)


def main(config_path: str) -> int:
    from ictal.config import load_config
    from ictal.streaming.daemon import Daemon
    from ictal.streaming.logfmt import configure_logging

    config = load_config(Path(config_path), kind="daemon")
    configure_logging(config.log_level)
    daemon = Daemon(config, StubScorer(config.frontend, config.detector.max_batch), config_path=config_path)
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
