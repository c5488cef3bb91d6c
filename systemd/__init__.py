"""Package data: the systemd unit (`ictal.resources.systemd_unit`; not code)."""
