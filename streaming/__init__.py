"""Time: sources (LSL inlet, EDF replay), the ring buffer, the window scheduler and the daemon loop."""
