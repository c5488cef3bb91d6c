"""Package data: the shipped demo checkpoint in demo/ (`ictal.resources.demo_checkpoint`; not code)."""
