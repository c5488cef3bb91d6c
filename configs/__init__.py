"""Package data: the shipped configuration files (`ictal.resources` finds them; not code)."""
