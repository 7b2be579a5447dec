"""GPU types: memory and the reference speed of each generation.

Memory sizes are the vendors' datasheet values for the board variant named in ``variant``.
Power parameters live in :mod:`eaco.energy` (they are calibrated from measurements).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GpuType:
    """One GPU model. ``name`` is the lower-case key used everywhere (``"v100"``)."""

    name: str
    variant: str
    memory_gb: float


# Datasheet memory per GPU (a K80 board holds two GK210 GPUs of 12 GB each; the scheduler sees each).
GPU_TYPES: dict[str, GpuType] = {
    t.name: t
    for t in (
        GpuType("k80", "Tesla K80 (one GK210 die)", 12.0),
        GpuType("p100", "Tesla P100 PCIe 16 GB", 16.0),
        GpuType("t4", "Tesla T4", 16.0),
        GpuType("v100", "Tesla V100 SXM2 32 GB", 32.0),
        GpuType("a10", "A10", 24.0),
        GpuType("a100", "A100 SXM4 80 GB", 80.0),
        GpuType("h100", "H100 SXM5 80 GB", 80.0),
    )
}


def gpu_type(name: str) -> GpuType:
    """Look up a GPU type by name (case-insensitive); raise KeyError listing the known names."""
    key = name.strip().lower()
    try:
        return GPU_TYPES[key]
    except KeyError:
        known = ", ".join(sorted(GPU_TYPES))
        raise KeyError(f"unknown GPU type {name!r}; expected one of: {known}") from None


# Longest names first so that "a100" is not read as "a10"; a digit may not follow the name.
_GPU_NAME = re.compile(
    "(" + "|".join(sorted(map(re.escape, GPU_TYPES), key=len, reverse=True)) + r")(?!\d)"
)


def gpu_type_from_model(model: str) -> str | None:
    """Our GPU type for a vendor or Slurm GPU model name (``nvidia_a100-sxm4-80gb`` -> ``a100``):
    the one known type the name contains, else None (none, or several)."""
    found = set(_GPU_NAME.findall(model.lower()))
    return found.pop() if len(found) == 1 else None
