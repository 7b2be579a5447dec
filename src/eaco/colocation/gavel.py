"""Loader for Gavel's measured throughputs (``colocation/gavel_throughputs.json.gz``).

Origin: stanford-futuredata/gavel, ``scheduler/simulation_throughputs.json`` (MIT licence).
Layout of the file::

    {gpu_type: {"('<job type>', <scale_factor>)": {
        "null": <exclusive steps/s>,
        "('<other job type>', <scale_factor>)": [<self steps/s>, <other steps/s>],
        ...}}}

Each pair entry is the throughput of both jobs while they share the same GPU(s) (the job's
scale factor is its GPU count; pairs are only measured between jobs of equal scale factor).
``[0, 0]`` means Gavel has no throughput for the pair: the pair could not run (out of memory)
or was not measured; we treat it as "cannot share".

The ``<gpu>_unconsolidated`` keys hold throughputs of multi-GPU jobs whose GPUs are spread over
several servers. For scale factor 1 they are identical to the consolidated entries (checked:
0 differences on k80, p100 and v100), so the loader skips them.
"""

from __future__ import annotations

import ast
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from eaco.errors import InputError
from eaco.paths import shared_data_dir

GAVEL_FILE = ("colocation", "gavel_throughputs.json.gz")
GAVEL_GPU_TYPES = ("k80", "p100", "v100")
_UNCONSOLIDATED_SUFFIX = "_unconsolidated"


@dataclass(frozen=True, slots=True)
class GavelExclusive:
    """One job type alone on ``scale_factor`` GPUs of ``gpu_type``."""

    gpu_type: str
    job_type: str
    scale_factor: int
    steps_per_s: float


@dataclass(frozen=True, slots=True)
class GavelPair:
    """Two jobs sharing the same GPU(s). ``runnable`` is False where the file holds ``[0, 0]``."""

    gpu_type: str
    job_type: str
    other_type: str
    scale_factor: int
    self_steps_per_s: float
    other_steps_per_s: float

    @property
    def runnable(self) -> bool:
        return self.self_steps_per_s > 0.0 or self.other_steps_per_s > 0.0


@dataclass(frozen=True, slots=True)
class GavelThroughputs:
    """All measured records, with dict lookups built once."""

    source: str
    exclusive: tuple[GavelExclusive, ...]
    pairs: tuple[GavelPair, ...]
    _exclusive_by_key: Mapping[tuple[str, str, int], GavelExclusive]
    _pair_by_key: Mapping[tuple[str, str, str, int], GavelPair]

    @classmethod
    def build(
        cls, source: str, exclusive: tuple[GavelExclusive, ...], pairs: tuple[GavelPair, ...]
    ) -> "GavelThroughputs":
        ex = {(r.gpu_type, r.job_type, r.scale_factor): r for r in exclusive}
        pr = {(r.gpu_type, r.job_type, r.other_type, r.scale_factor): r for r in pairs}
        return cls(source, exclusive, pairs, MappingProxyType(ex), MappingProxyType(pr))

    def job_types(self, gpu_type: str = "v100", scale_factor: int = 1) -> tuple[str, ...]:
        """Job type names measured alone on ``gpu_type`` at ``scale_factor``, in file order."""
        return tuple(
            r.job_type
            for r in self.exclusive
            if r.gpu_type == gpu_type and r.scale_factor == scale_factor
        )

    def exclusive_steps_per_s(self, gpu_type: str, job_type: str, scale_factor: int = 1) -> float | None:
        rec = self._exclusive_by_key.get((gpu_type, job_type, scale_factor))
        return None if rec is None else rec.steps_per_s

    def pair(self, gpu_type: str, job_type: str, other_type: str, scale_factor: int = 1) -> GavelPair | None:
        return self._pair_by_key.get((gpu_type, job_type, other_type, scale_factor))


def _parse_job_key(raw: str, where: str) -> tuple[str, int]:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise InputError(where, f"malformed job key {raw!r}; expected \"('<name>', <scale_factor>)\"") from None
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or not isinstance(value[1], int)
        or value[1] < 1
    ):
        raise InputError(where, f"malformed job key {raw!r}; expected \"('<name>', <scale_factor>)\"")
    return value[0], value[1]


def _positive_or_zero(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise InputError(where, f"expected a throughput >= 0 (steps/s), got {value!r}")
    return float(value)


def parse_gavel_throughputs(doc: Any, source: str) -> GavelThroughputs:
    """Turn the decoded JSON document into typed records; errors name the offending key path."""
    if not isinstance(doc, dict):
        raise InputError(source, f"expected a JSON object at top level, got {type(doc).__name__}")
    exclusive: list[GavelExclusive] = []
    pairs: list[GavelPair] = []
    for gpu, jobs in doc.items():
        if gpu.endswith(_UNCONSOLIDATED_SUFFIX):
            continue
        if not isinstance(jobs, dict):
            raise InputError(source, f"key [{gpu!r}]: expected an object of job keys")
        for job_key, entry in jobs.items():
            where = f"{source} [{gpu!r}][{job_key!r}]"
            name, sf = _parse_job_key(job_key, where)
            if not isinstance(entry, dict) or "null" not in entry:
                raise InputError(where, "expected an object with a 'null' (exclusive throughput) entry")
            exclusive.append(GavelExclusive(gpu, name, sf, _positive_or_zero(entry["null"], where + "['null']")))
            for other_key, value in entry.items():
                if other_key == "null":
                    continue
                pwhere = f"{where}[{other_key!r}]"
                other, other_sf = _parse_job_key(other_key, pwhere)
                if other_sf != sf:
                    raise InputError(pwhere, f"pair of different scale factors ({sf} and {other_sf})")
                if not isinstance(value, list) or len(value) != 2:
                    raise InputError(pwhere, f"expected [self steps/s, other steps/s], got {value!r}")
                pairs.append(
                    GavelPair(
                        gpu,
                        name,
                        other,
                        sf,
                        _positive_or_zero(value[0], pwhere + "[0]"),
                        _positive_or_zero(value[1], pwhere + "[1]"),
                    )
                )
    return GavelThroughputs.build(source, tuple(exclusive), tuple(pairs))


def load_gavel_throughputs(data_dir: Path | None = None) -> GavelThroughputs:
    """Read ``<data_dir>/colocation/gavel_throughputs.json.gz`` (default: the shared data dir)."""
    path = (data_dir or shared_data_dir()).joinpath(*GAVEL_FILE)
    if not path.exists():
        raise FileNotFoundError(f"{path}: Gavel throughput file missing")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        try:
            doc = json.load(fh)
        except json.JSONDecodeError as err:
            raise InputError(str(path), f"invalid JSON: {err.msg}", err.lineno) from None
    return parse_gavel_throughputs(doc, str(path))
