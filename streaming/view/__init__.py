"""The bedside EEG page (`ictal view`): hub, server, offline scoring, static files."""
