"""Our GPU type key from the name NVML reports ("NVIDIA H100 80GB HBM3" -> "h100")."""

from __future__ import annotations

import re

from eaco.model.gpu import GPU_TYPES

CPU_GPU_TYPE = "cpu"  # what a run without a GPU records as its GPU type
_VENDOR_WORDS = frozenset({"nvidia", "tesla", "geforce", "quadro", "gpu"})


def gpu_type_key(nvml_name: str) -> str:
    """Lower-case key: a known type from :mod:`eaco.model.gpu` if one appears as a word of the name
    ("Tesla V100-SXM2-32GB" -> "v100", "NVIDIA A10" -> "a10", never "a10" for "A100"), else the first
    model-like word ("NVIDIA H200" -> "h200", "NVIDIA L40S" -> "l40s"), else the words joined by "_"."""
    words = [w for w in re.split(r"[^a-z0-9]+", nvml_name.strip().lower()) if w]
    if not words:
        raise ValueError(f"GPU name {nvml_name!r}: no letters or digits")
    for w in words:
        if w in GPU_TYPES:
            return w
    model_words = [w for w in words if w not in _VENDOR_WORDS]
    for w in model_words:
        if re.fullmatch(r"[a-z]{1,3}\d{1,4}[a-z]?", w):
            return w
    return "_".join(model_words or words)
