"""Event-driven cluster simulator: engine, ground truth, energy meter and metrics."""
