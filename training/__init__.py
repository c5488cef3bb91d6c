"""Offline work: datasets, preprocessing cache, training, scoring, evaluation and threshold tuning."""
