"""The live runtime: real training jobs dispatched onto this machine's GPUs by the same policy
objects the simulator uses (docs/runtime.md)."""
