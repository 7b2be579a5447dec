"""Experiments built from simulator runs (the paper's study, sweeps)."""
