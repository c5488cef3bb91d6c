"""Scoring of event annotations: NEDC EEG Eval v6.0.0-compatible scorers, SzCORE, evaluation helpers."""
