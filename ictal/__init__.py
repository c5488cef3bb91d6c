"""The `ictal` command line and the composition of configs. No logic lives here."""

__version__ = "0.1.0"
