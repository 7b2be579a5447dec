"""Tiny training jobs for the runtime's tests and docs."""
