"""Typed rows of ``src/eaco/data/job_types.csv`` (the hand-entered catalogue inputs + fitted utilisations).

See ``src/eaco/data/job_types.md`` for where every column comes from. The ``util_<gpu>`` columns of
Gavel's job types are written by ``python -m eaco.colocation.fit --write``; everything else is
hand-entered. Peak memory per GPU is *computed* here from the row (rule below), never typed in.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from eaco.csv_fields import csv_float
from eaco.errors import InputError
from eaco.paths import PACKAGE_DATA_DIR

JOB_TYPES_CSV = PACKAGE_DATA_DIR / "job_types.csv"
FITTED_GPU_TYPES = ("k80", "p100", "v100")  # GPU types with Gavel pair measurements
BYTES_PER_PARAM_FP32 = 4
# Reference host for ``cpu_util_per_gpu``: the paper's node (2x Xeon Gold 6240 = 72 hardware threads).
REFERENCE_HOST_THREADS = 72
ORIGINS = ("gavel", "paper")
MEMORY_SOURCES = {
    "count": "layer-by-layer count of the feature maps kept for the backward pass (FP32)",
    "rough": "order-of-magnitude estimate from the model's published architecture (FP32)",
}
COLUMNS = (
    "name", "family", "origin", "dataset", "batch_size_per_gpu", "params_m", "weight_copies",
    "activation_mb_per_sample", "overhead_gb", "cpu_threads_per_gpu",
    "util_k80", "util_p100", "util_v100", "source", "memory_source",
)


@dataclass(frozen=True, slots=True)
class JobTypeRow:
    name: str
    family: str
    origin: str  # "gavel" or "paper"
    dataset: str
    batch_size_per_gpu: int
    params_m: float  # parameters, millions
    weight_copies: int  # weights + gradients + optimizer states (SGD+momentum: 3, Adam: 4, SGD: 2)
    activation_mb_per_sample: float  # feature maps kept for backward, MB per sample
    overhead_gb: float  # CUDA context + cuDNN workspace + allocator slack
    cpu_threads_per_gpu: float  # data-loader workers + the training process, per GPU
    fitted_util: Mapping[str, float]  # util_<gpu> columns present in the row
    source: str
    memory_source: str
    line: int

    @property
    def weights_gb(self) -> float:
        return self.params_m * 1e6 * BYTES_PER_PARAM_FP32 * self.weight_copies / 1e9

    @property
    def activations_gb(self) -> float:
        return self.activation_mb_per_sample * self.batch_size_per_gpu / 1e3

    @property
    def memory_gb(self) -> float:
        """Peak memory per GPU: overhead + weights x copies + activations/sample x batch per GPU."""
        return self.overhead_gb + self.weights_gb + self.activations_gb

    @property
    def cpu_util_per_gpu(self) -> float:
        return self.cpu_threads_per_gpu / REFERENCE_HOST_THREADS

    def memory_rule(self) -> str:
        return (
            f"estimate ({MEMORY_SOURCES[self.memory_source]}): {self.overhead_gb:g} GB overhead"
            f" + {self.params_m:g}M params x 4 B x {self.weight_copies} copies ({self.weights_gb:.2f} GB)"
            f" + {self.activation_mb_per_sample:g} MB/sample x batch {self.batch_size_per_gpu}"
            f" ({self.activations_gb:.2f} GB) = {self.memory_gb:.2f} GB"
        )




def read_job_type_rows(path: Path = JOB_TYPES_CSV) -> tuple[JobTypeRow, ...]:
    rows: list[JobTypeRow] = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise InputError(str(path), f"missing columns {missing}", 1)
        for line, row in enumerate(reader, start=2):
            origin = row["origin"].strip()
            if origin not in ORIGINS:
                raise InputError(str(path), f"expected one of {ORIGINS}, got {origin!r}", line, "origin")
            mem_src = row["memory_source"].strip()
            if mem_src not in MEMORY_SOURCES:
                raise InputError(
                    str(path), f"expected one of {sorted(MEMORY_SOURCES)}, got {mem_src!r}", line, "memory_source"
                )
            utils: dict[str, float] = {}
            for gpu in FITTED_GPU_TYPES:
                field = f"util_{gpu}"
                if (row.get(field) or "").strip():
                    u = csv_float(path, line, row, field, positive=True)
                    if u > 1.0:
                        raise InputError(str(path), f"utilisation must be in (0, 1], got {u}", line, field)
                    utils[gpu] = u
            rows.append(
                JobTypeRow(
                    name=row["name"].strip(),
                    family=row["family"].strip(),
                    origin=origin,
                    dataset=row["dataset"].strip(),
                    batch_size_per_gpu=int(csv_float(path, line, row, "batch_size_per_gpu", positive=True)),
                    params_m=csv_float(path, line, row, "params_m", positive=True),
                    weight_copies=int(csv_float(path, line, row, "weight_copies", positive=True)),
                    activation_mb_per_sample=csv_float(path, line, row, "activation_mb_per_sample", positive=True),
                    overhead_gb=csv_float(path, line, row, "overhead_gb"),
                    cpu_threads_per_gpu=csv_float(path, line, row, "cpu_threads_per_gpu", positive=True),
                    fitted_util=MappingProxyType(utils),
                    source=row["source"].strip(),
                    memory_source=mem_src,
                    line=line,
                )
            )
    names = [r.name for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(str(path), f"duplicate job type names {dupes}", None, "name")
    return tuple(rows)


def write_fitted_utils(fitted: Mapping[str, Mapping[str, float]], path: Path = JOB_TYPES_CSV) -> None:
    """Rewrite only the ``util_<gpu>`` columns for the named job types; every other cell is kept."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fieldnames = list(reader.fieldnames or COLUMNS)
        rows = list(reader)
    for row in rows:
        per_gpu = fitted.get(row["name"].strip())
        if per_gpu is None:
            continue
        for gpu in FITTED_GPU_TYPES:
            if gpu in per_gpu:
                row[f"util_{gpu}"] = f"{per_gpu[gpu]:.4f}"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
