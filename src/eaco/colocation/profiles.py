"""Profile store: what the profiler measured, read back for the simulator and the predictor.

A profile store is one versioned JSON file written by ``eaco profile`` (:mod:`eaco.profiler`)::

    {"schema_version": 1,
     "provenance": {...},                      # who, where, when, how (see Provenance)
     "exclusive": [ExclusiveProfile, ...],     # each job alone
     "colocated": [ColocatedProfile, ...]}     # each set of jobs at the same time on the same GPUs

:func:`read_profile_store` validates a file (errors name the file and the field, e.g.
``profiles.json: field 'colocated[2].speeds'``); :func:`load_profiles` turns one or more stores into
:class:`MeasuredProfiles`: measured speeds and utilisation per (GPU type, sorted member job types),
which :func:`eaco.colocation.model.load_colocation_model` uses with source ``"profile"``.

Job types not in the catalogue: :func:`extend_catalog` adds a :class:`JobTypeSpec` for each, built
from its exclusive row on a known GPU type (memory = measured peak, utilisation = measured on that
GPU type, other GPU types by the generation rule of :mod:`eaco.colocation.generations`). Rows on GPU
types that :mod:`eaco.model.gpu` does not know (e.g. ``"cpu"`` from a CPU-only run) are kept in the
store and skipped by the model (listed in ``MeasuredProfiles.skipped``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from eaco.colocation.catalog import REFERENCE_GPU, JobCatalog, JobTypeSpec
from eaco.colocation.generations import amdahl_speed, amdahl_util, generation_factor
from eaco.errors import InputError
from eaco.model.gpu import GPU_TYPES

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Provenance:
    created_utc: str  # ISO 8601
    command: str  # the exact command line
    host: str
    gpu_type: str  # our key ("h100"; "cpu" when no GPU was used)
    gpu_names: tuple[str, ...]  # as NVML reports them, one per GPU used
    driver_version: str | None
    cuda_version: str | None  # torch.version.cuda
    torch_version: str
    python_version: str
    eaco_version: str
    telemetry: str  # "nvml", or "none: <reason>"
    sample_hz: float
    settings: Mapping[str, Any] = field(default_factory=dict)  # batch size, epochs, image size, ...


@dataclass(frozen=True, slots=True)
class ExclusiveProfile:
    """One job alone on ``num_gpus`` GPUs of ``gpu_type``."""

    job_type: str  # catalogue name ("resnet18") or a new name ("transformer_lm")
    model: str  # zoo model, or the name of an own job (eaco profile --jobs)
    batch_size: int | None  # None: not known (an own job's script chooses it)
    gpu_type: str
    num_gpus: int
    epochs: int
    epoch_s: float  # steady-state mean epoch time (epoch 0 excluded when there are more)
    jct_s: float  # launch to exit
    throughput_samples_per_s: float  # samples / s over the steady-state epochs (0: the job counted none)
    gpu_util_mean: float | None  # 0..1; None without GPU telemetry
    gpu_util_max: float | None
    memory_util_mean: float | None  # GPU memory used / total, 0..1
    memory_util_max: float | None
    gpu_memory_mib_peak: float | None  # device memory used, summed over the GPUs
    job_memory_mib_peak: float | None  # the job's own peak (CUDA reserved, else host RSS)
    avg_power_w: float  # energy_j / duration_s (GPU + host)
    energy_j: float  # GPU + host over the run
    gpu_energy_j: float | None
    host_energy_j: float
    host_cpu_util_mean: float  # 0..1
    duration_s: float  # measurement window


@dataclass(frozen=True, slots=True)
class ColocatedProfile:
    """A set of jobs time-sliced on the same GPUs. Member tuples are aligned with ``members`` (sorted)."""

    members: tuple[str, ...]  # job types, sorted
    gpu_type: str
    num_gpus: int
    member_epoch_s: tuple[float, ...]  # mean epoch time while every other member was training
    member_jct_s: tuple[float, ...]
    speeds: tuple[float, ...]  # exclusive epoch_s / co-located epoch_s
    gpu_util_mean: float | None
    gpu_util_max: float | None
    memory_util_mean: float | None
    memory_util_max: float | None
    gpu_memory_mib_peak: float | None
    avg_power_w: float
    energy_j: float
    gpu_energy_j: float | None
    host_energy_j: float
    host_cpu_util_mean: float
    duration_s: float
    members_alone_energy_j: float  # sum of the members' exclusive energy_j
    energy_saved_j: float  # members_alone_energy_j - energy_j
    energy_saved_frac: float  # energy_saved_j / members_alone_energy_j
    # per member, its mean GPU utilisation while the set ran (its share of the kernel time, from
    # NVML's per-process utilisation, times the GPU's utilisation; 0..1); None: not measured
    member_gpu_util: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class ProfileStore:
    provenance: Provenance
    exclusive: tuple[ExclusiveProfile, ...]
    colocated: tuple[ColocatedProfile, ...]
    schema_version: int = SCHEMA_VERSION


# --- writing ------------------------------------------------------------------------------------


def store_to_json(store: ProfileStore) -> dict[str, Any]:
    prov = {f.name: getattr(store.provenance, f.name) for f in fields(Provenance)}
    prov["gpu_names"] = list(store.provenance.gpu_names)
    prov["settings"] = json.loads(json.dumps(dict(store.provenance.settings), default=str))
    return {
        "schema_version": store.schema_version,
        "provenance": prov,
        "exclusive": [asdict(r) for r in store.exclusive],
        "colocated": [{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(r).items()
                       if k != "member_gpu_util" or v is not None} for r in store.colocated],
    }


def write_profile_store(store: ProfileStore, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(store_to_json(store), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


# --- reading and validation ----------------------------------------------------------------------


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> InputError:
        return InputError(self.source, message, None, where)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a JSON object, got {type(value).__name__}")
        return value

    def get(self, obj: dict[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(f"{where}.{key}" if where else key, "missing")
        return obj[key]

    def num(self, value: Any, where: str, *, optional: bool = False, lo: float = 0.0, hi: float = math.inf,
            positive: bool = False) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"expected a finite number{' or null' if optional else ''}, got {value!r}")
        v = float(value)
        if v < lo or v > hi or (positive and v <= 0):
            bound = f"> {lo}" if positive else f">= {lo}"
            if hi != math.inf:
                bound += f" and <= {hi}"
            raise self.fail(where, f"expected a number {bound}, got {v}")
        return v

    def integer(self, value: Any, where: str, lo: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise self.fail(where, f"expected an integer >= {lo}, got {value!r}")
        return value

    def text(self, value: Any, where: str, *, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not optional and not value.strip()):
            raise self.fail(where, f"expected a non-empty string, got {value!r}")
        return value


# Fields and their checks: (name, kind) with kind in text | int | int? | pos (> 0) | nonneg | frac | frac? | nonneg?
_EXCLUSIVE_FIELDS = {
    "job_type": "text", "model": "text", "batch_size": "int?", "gpu_type": "text", "num_gpus": "int",
    "epochs": "int", "epoch_s": "pos", "jct_s": "pos", "throughput_samples_per_s": "nonneg",
    "gpu_util_mean": "frac?", "gpu_util_max": "frac?", "memory_util_mean": "frac?", "memory_util_max": "frac?",
    "gpu_memory_mib_peak": "nonneg?", "job_memory_mib_peak": "nonneg?", "avg_power_w": "nonneg",
    "energy_j": "nonneg", "gpu_energy_j": "nonneg?", "host_energy_j": "nonneg", "host_cpu_util_mean": "frac",
    "duration_s": "pos",
}
_COLOCATED_SCALARS = {
    "gpu_type": "text", "num_gpus": "int", "gpu_util_mean": "frac?", "gpu_util_max": "frac?",
    "memory_util_mean": "frac?", "memory_util_max": "frac?", "gpu_memory_mib_peak": "nonneg?",
    "avg_power_w": "nonneg", "energy_j": "nonneg", "gpu_energy_j": "nonneg?", "host_energy_j": "nonneg",
    "host_cpu_util_mean": "frac", "duration_s": "pos", "members_alone_energy_j": "nonneg",
    "energy_saved_j": "any", "energy_saved_frac": "frac_signed",
}
_COLOCATED_LISTS = ("member_epoch_s", "member_jct_s", "speeds")


def _check(r: _Reader, kind: str, value: Any, where: str) -> Any:
    if kind == "text":
        return r.text(value, where)
    if kind == "int":
        return r.integer(value, where)
    if kind == "int?":
        return None if value is None else r.integer(value, where)
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if base == "pos":
        return r.num(value, where, positive=True)
    if base == "nonneg":
        return r.num(value, where, optional=optional)
    if base == "frac":
        return r.num(value, where, optional=optional, hi=1.0)
    if base == "frac_signed":
        return r.num(value, where, lo=-math.inf, hi=1.0)
    return r.num(value, where, lo=-math.inf)


def _read_provenance(r: _Reader, raw: Any) -> Provenance:
    obj = r.obj(raw, "provenance")
    vals: dict[str, Any] = {}
    for f in fields(Provenance):
        where = f"provenance.{f.name}"
        if f.name == "settings":
            vals[f.name] = MappingProxyType(dict(r.obj(obj.get("settings", {}), where)))
        elif f.name == "gpu_names":
            names = r.get(obj, f.name, "provenance")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise r.fail(where, f"expected a list of strings, got {names!r}")
            vals[f.name] = tuple(names)
        elif f.name == "sample_hz":
            vals[f.name] = r.num(r.get(obj, f.name, "provenance"), where, positive=True)
        elif f.name in ("driver_version", "cuda_version"):
            vals[f.name] = r.text(obj.get(f.name), where, optional=True)
        else:
            vals[f.name] = r.text(r.get(obj, f.name, "provenance"), where)
    return Provenance(**vals)


def parse_profile_store(data: Any, source: str = "<profile store>") -> ProfileStore:
    """Validate a decoded JSON document; raise :class:`InputError` naming ``source`` and the field."""
    r = _Reader(source)
    top = r.obj(data, "(top level)")
    version = r.get(top, "schema_version", "")
    if version != SCHEMA_VERSION:
        raise r.fail("schema_version", f"expected {SCHEMA_VERSION}, got {version!r} (written by another eaco version?)")
    prov = _read_provenance(r, r.get(top, "provenance", ""))
    ex_raw = r.get(top, "exclusive", "")
    co_raw = r.get(top, "colocated", "")
    if not isinstance(ex_raw, list) or not isinstance(co_raw, list):
        raise r.fail("exclusive" if not isinstance(ex_raw, list) else "colocated", "expected a list")
    exclusive = []
    for i, row in enumerate(ex_raw):
        w = f"exclusive[{i}]"
        obj = r.obj(row, w)
        vals = {k: _check(r, kind, r.get(obj, k, w), f"{w}.{k}") for k, kind in _EXCLUSIVE_FIELDS.items()}
        exclusive.append(ExclusiveProfile(**vals))
    alone = {(e.gpu_type, e.job_type) for e in exclusive}
    colocated = []
    for i, row in enumerate(co_raw):
        w = f"colocated[{i}]"
        obj = r.obj(row, w)
        members = r.get(obj, "members", w)
        if not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, str) and m for m in members):
            raise r.fail(f"{w}.members", f"expected a list of at least 2 job types, got {members!r}")
        if members != sorted(members):
            raise r.fail(f"{w}.members", f"expected the job types sorted, got {members!r}")
        vals = {k: _check(r, kind, r.get(obj, k, w), f"{w}.{k}") for k, kind in _COLOCATED_SCALARS.items()}
        for name in _COLOCATED_LISTS:
            seq = r.get(obj, name, w)
            if not isinstance(seq, list) or len(seq) != len(members):
                raise r.fail(f"{w}.{name}", f"expected a list of {len(members)} numbers (one per member), got {seq!r}")
            vals[name] = tuple(r.num(x, f"{w}.{name}[{j}]", positive=True) for j, x in enumerate(seq))  # type: ignore[misc]
        utils = obj.get("member_gpu_util")  # optional: measured where the GPU gives per-process utilisation
        if utils is not None:
            if not isinstance(utils, list) or len(utils) != len(members):
                raise r.fail(f"{w}.member_gpu_util", f"expected null or a list of {len(members)} fractions (one per member), got {utils!r}")
            vals["member_gpu_util"] = tuple(r.num(x, f"{w}.member_gpu_util[{j}]", hi=1.0) for j, x in enumerate(utils))  # type: ignore[misc]
        for m in members:
            if (vals["gpu_type"], m) not in alone:
                raise r.fail(f"{w}.members", f"member {m!r} has no exclusive row on {vals['gpu_type']!r} to compare with")
        colocated.append(ColocatedProfile(members=tuple(members), **vals))
    return ProfileStore(prov, tuple(exclusive), tuple(colocated), SCHEMA_VERSION)


def read_profile_store(path: str | Path) -> ProfileStore:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(p), "profile store not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(str(p), f"not valid JSON ({exc.msg})", exc.lineno) from None
    return parse_profile_store(data, str(p))


# --- what the co-location model uses ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetMeasurement:
    speed_by_type: Mapping[str, float]  # a type listed twice gets its members' mean speed
    utilisation: float | None  # measured mean GPU utilisation of the set (0..1)
    source: str  # the store's file


@dataclass(frozen=True, slots=True)
class MeasuredProfiles:
    exclusive: Mapping[tuple[str, str], ExclusiveProfile]  # (gpu_type, job_type)
    sets: Mapping[tuple[str, tuple[str, ...]], SetMeasurement]  # (gpu_type, sorted job types)
    sources: tuple[str, ...]
    skipped: tuple[str, ...]  # rows not usable by the model, with the reason


def load_profiles(paths: str | Path | Iterable[str | Path]) -> MeasuredProfiles:
    """Read one or more stores; a later file's measurement of the same (GPU type, set) replaces an earlier one."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    stores = [(str(p), read_profile_store(p)) for p in paths]
    return measured_profiles(stores)


def measured_profiles(stores: Sequence[tuple[str, ProfileStore]]) -> MeasuredProfiles:
    exclusive: dict[tuple[str, str], ExclusiveProfile] = {}
    sets: dict[tuple[str, tuple[str, ...]], SetMeasurement] = {}
    skipped: list[str] = []
    for source, store in stores:
        for e in store.exclusive:
            if e.gpu_type not in GPU_TYPES:
                skipped.append(f"{source}: {e.job_type} alone on {e.gpu_type!r}: GPU type unknown to eaco.model.gpu")
                continue
            exclusive[(e.gpu_type, e.job_type)] = e
        for c in store.colocated:
            if c.gpu_type not in GPU_TYPES:
                skipped.append(f"{source}: {'+'.join(c.members)} on {c.gpu_type!r}: GPU type unknown to eaco.model.gpu")
                continue
            by_type: dict[str, list[float]] = {}
            for m, s in zip(c.members, c.speeds):
                by_type.setdefault(m, []).append(s)
            speed = {m: sum(v) / len(v) for m, v in by_type.items()}
            sets[(c.gpu_type, c.members)] = SetMeasurement(MappingProxyType(speed), c.gpu_util_mean, source)
    return MeasuredProfiles(MappingProxyType(exclusive), MappingProxyType(sets), tuple(s for s, _ in stores),
                            tuple(skipped))


def _v100_equivalent_util(util: float, factor: float) -> float:
    """Invert :func:`amdahl_util`: the V100 utilisation that the generation rule maps to ``util``."""
    return util * factor / (1.0 - util + util * factor)


def extend_catalog(catalog: JobCatalog, profiles: MeasuredProfiles) -> JobCatalog:
    """``catalog`` plus a spec for every profiled job type it lacks (see the module docstring)."""
    new: dict[str, ExclusiveProfile] = {}
    for (gpu, job_type), e in sorted(profiles.exclusive.items()):
        if job_type in catalog or e.gpu_util_mean is None:
            continue
        if job_type not in new or gpu == REFERENCE_GPU:
            new[job_type] = e
    if not new:
        return catalog
    specs = list(catalog.types)
    for job_type, e in new.items():
        f = generation_factor(e.gpu_type)
        u_meas = min(1.0, max(0.01, e.gpu_util_mean or 0.0))
        u_v100 = _v100_equivalent_util(u_meas, f)
        util = {g: amdahl_util(u_v100, generation_factor(g)) for g in GPU_TYPES}
        util[e.gpu_type] = u_meas
        speed = {g: amdahl_speed(u_v100, generation_factor(g)) / amdahl_speed(u_v100, generation_factor(REFERENCE_GPU))
                 for g in GPU_TYPES}
        mem_mib = e.job_memory_mib_peak if e.job_memory_mib_peak is not None else (e.gpu_memory_mib_peak or 0.0)
        specs.append(
            JobTypeSpec(
                name=job_type,
                family=e.model,
                memory_gb=mem_mib / e.num_gpus * 2**20 / 1e9,
                gpu_util=MappingProxyType(util),
                relative_speed=MappingProxyType(speed),
                cpu_util_per_gpu=min(0.99, max(0.01, e.host_cpu_util_mean / e.num_gpus)),
                source=(
                    f"profile store ({e.model}, batch {e.batch_size} on {e.gpu_type}): gpu_util on {e.gpu_type}"
                    " measured; other GPU types and relative_speed by the generation rule (assumption)"
                ),
                memory_source="measured peak memory of the job (profile store)",
            )
        )
    return JobCatalog(tuple(specs))
