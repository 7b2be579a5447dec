"""Catalogue of job types: what the scheduler and the simulator know about each kind of job.

Contract (other packages rely on these names):

- ``JobTypeSpec``: one job type (model + batch size), with its per-GPU peak memory estimate,
  exclusive GPU utilisation per GPU type, and exclusive speed per GPU type relative to V100.
- ``JobCatalog``: an ordered, immutable collection with lookups by name.
- ``load_catalog(data_dir)``: the default catalogue (Gavel's job types + the paper's four models).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

REFERENCE_GPU = "v100"


@dataclass(frozen=True, slots=True)
class JobTypeSpec:
    name: str  # e.g. "ResNet-50 (batch size 64)" or "vgg16"
    family: str  # e.g. "ResNet-50"
    memory_gb: float  # peak memory per GPU (estimate; see ``memory_source``)
    gpu_util: Mapping[str, float]  # exclusive utilisation (0..1) per GPU type name
    relative_speed: Mapping[str, float]  # exclusive throughput on a GPU type / on V100
    cpu_util_per_gpu: float  # share of the host's CPU used per GPU of the job (0..1)
    source: str  # where the numbers come from
    memory_source: str = ""

    def util_on(self, gpu_type: str) -> float:
        got = self.gpu_util.get(gpu_type)
        return self.gpu_util[REFERENCE_GPU] if got is None else got

    def speed_on(self, gpu_type: str) -> float:
        return self.relative_speed.get(gpu_type, 1.0)


@dataclass(frozen=True, slots=True)
class JobCatalog:
    types: tuple[JobTypeSpec, ...]
    _by_name: Mapping[str, JobTypeSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by = {t.name: t for t in self.types}
        if len(by) != len(self.types):
            raise ValueError("duplicate job type names in catalogue")
        object.__setattr__(self, "_by_name", MappingProxyType(by))

    def get(self, name: str) -> JobTypeSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"unknown job type {name!r}; known: {', '.join(sorted(self._by_name))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.types)
