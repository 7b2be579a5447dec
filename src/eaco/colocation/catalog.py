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


# --- Loading the default catalogue ------------------------------------------------------------
# (imports placed here so the dataclasses above stay importable on their own)

from pathlib import Path  # noqa: E402

from eaco.colocation.gavel import GAVEL_GPU_TYPES, GavelThroughputs, load_gavel_throughputs  # noqa: E402
from eaco.colocation.generations import amdahl_speed, amdahl_util, generation_factor  # noqa: E402
from eaco.colocation.job_types import JOB_TYPES_CSV, JobTypeRow, read_job_type_rows  # noqa: E402
from eaco.errors import InputError  # noqa: E402
from eaco.measurements.paper import PAPER_GPU_TYPE, PaperTables, load_paper_tables  # noqa: E402
from eaco.model.gpu import GPU_TYPES  # noqa: E402

_GAVEL_SOURCE = (
    "Gavel (stanford-futuredata/gavel simulation_throughputs.json): relative_speed on k80/p100 ="
    " measured exclusive steps/s / V100's; gpu_util on k80/p100/v100 = effective utilisation fitted"
    " to Gavel's pair slowdowns (python -m eaco.colocation.fit); t4/a10/a100/h100 by the"
    " generation rule (eaco.colocation.generations, assumption)"
)
_PAPER_SOURCE = (
    "EaCO paper Table 1 (arXiv 2412.08294; 8x V100, ImageNet, batch 256 over 8 GPUs):"
    " gpu_util on v100 = measured average; other GPU types by the generation rule"
    " (eaco.colocation.generations, assumption)"
)


def _gavel_spec(row: JobTypeRow, gavel: GavelThroughputs, csv_path: Path) -> JobTypeSpec:
    ref = gavel.exclusive_steps_per_s(PAPER_GPU_TYPE, row.name)
    if not ref:
        raise InputError(str(csv_path), f"no exclusive V100 throughput in Gavel's file for {row.name!r}", row.line, "name")
    util_v100 = row.fitted_util.get("v100")
    if util_v100 is None:
        raise InputError(str(csv_path), "empty; run python -m eaco.colocation.fit --write", row.line, "util_v100")
    util: dict[str, float] = {}
    speed: dict[str, float] = {}
    for gpu in GPU_TYPES:
        if gpu in GAVEL_GPU_TYPES:
            got = gavel.exclusive_steps_per_s(gpu, row.name)
            if not got:
                raise InputError(str(csv_path), f"no exclusive {gpu} throughput in Gavel's file", row.line, "name")
            fitted = row.fitted_util.get(gpu)
            if fitted is None:
                raise InputError(str(csv_path), "empty; run python -m eaco.colocation.fit --write", row.line, f"util_{gpu}")
            speed[gpu] = got / ref
            util[gpu] = fitted
        else:
            f = generation_factor(gpu)
            speed[gpu] = amdahl_speed(util_v100, f)
            util[gpu] = amdahl_util(util_v100, f)
    return _spec(row, util, speed, _GAVEL_SOURCE)


def _spec(row: JobTypeRow, util: dict[str, float], speed: dict[str, float], source: str) -> JobTypeSpec:
    """The catalogue entry of ``row`` with its per-GPU-type utilisation and relative speed."""
    return JobTypeSpec(
        name=row.name,
        family=row.family,
        memory_gb=row.memory_gb,
        gpu_util=MappingProxyType(util),
        relative_speed=MappingProxyType(speed),
        cpu_util_per_gpu=row.cpu_util_per_gpu,
        source=source,
        memory_source=row.memory_rule(),
    )


def _paper_spec(row: JobTypeRow, paper: PaperTables, csv_path: Path) -> JobTypeSpec:
    measured = {r.model: r for r in paper.exclusive}
    if row.name not in measured:
        raise InputError(str(csv_path), f"model {row.name!r} not in the paper's Table 1 ({sorted(measured)})", row.line, "name")
    util_v100 = measured[row.name].gpu_util_avg
    util: dict[str, float] = {}
    speed: dict[str, float] = {}
    for gpu in GPU_TYPES:
        f = generation_factor(gpu)
        speed[gpu] = amdahl_speed(util_v100, f)
        util[gpu] = amdahl_util(util_v100, f)
    speed[PAPER_GPU_TYPE], util[PAPER_GPU_TYPE] = 1.0, util_v100
    return _spec(row, util, speed, _PAPER_SOURCE)


def build_catalog(
    rows: tuple[JobTypeRow, ...], gavel: GavelThroughputs, paper: PaperTables, csv_path: Path = JOB_TYPES_CSV
) -> JobCatalog:
    """Catalogue from parsed rows and the measurements they refer to (see ``load_catalog``)."""
    in_file = set(gavel.job_types(PAPER_GPU_TYPE))
    in_csv = {r.name for r in rows if r.origin == "gavel"}
    if in_file != in_csv:
        raise InputError(
            str(csv_path),
            f"Gavel job types differ from {gavel.source}: missing {sorted(in_file - in_csv)}, unknown {sorted(in_csv - in_file)}",
            None,
            "name",
        )
    specs = tuple(
        _gavel_spec(r, gavel, csv_path) if r.origin == "gavel" else _paper_spec(r, paper, csv_path) for r in rows
    )
    return JobCatalog(specs)


def load_catalog(data_dir: Path | None = None) -> JobCatalog:
    """Gavel's 26 job types + the paper's four models, for every GPU type in ``eaco.model.gpu``.

    ``data_dir``: the shared data folder (default: :func:`eaco.paths.shared_data_dir`), which holds
    ``colocation/gavel_throughputs.json.gz`` and ``paper/``. The per-type inputs come from the
    package's ``data/job_types.csv`` (see ``data/job_types.md``).
    """
    return build_catalog(read_job_type_rows(), load_gavel_throughputs(data_dir), load_paper_tables(data_dir))
