"""Unit conversions shared by every part (no dependencies: the profiler imports it on GPU machines
where the package is not installed)."""

from __future__ import annotations

J_PER_KWH = 3.6e6  # joules in one kilowatt-hour
S_PER_H = 3600.0  # seconds in one hour
