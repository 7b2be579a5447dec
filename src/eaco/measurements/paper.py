"""The EaCO paper's measured node tables (arXiv 2412.08294, Tables 1-4).

Files: ``<data>/paper/eaco_v100_exclusive.csv`` (each job alone on an 8xV100 node) and
``<data>/paper/eaco_v100_colocated.csv`` (sets of those jobs time-sliced on one node).
Utilisation percentages are converted to fractions (0..1).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from eaco.csv_fields import csv_float
from eaco.errors import InputError
from eaco.paths import shared_data_dir

PAPER_NODE_GPUS = 8
PAPER_GPU_TYPE = "v100"


@dataclass(frozen=True, slots=True)
class PaperExclusiveRow:
    job: str  # "J1"
    model: str  # "alexnet"
    node_gpus: int
    avg_node_power_w: float
    energy_kwh: float
    jct_h: float
    epoch_h: float
    gpu_util_avg: float
    gpu_util_max: float


@dataclass(frozen=True, slots=True)
class PaperColocatedRow:
    job_set: tuple[str, ...]  # ("J1", "J3")
    avg_node_power_w: float
    energy_kwh: float
    avg_jct_h: float
    avg_epoch_h: float  # NaN where the paper gives none (the four-job set)
    gpu_util_avg: float
    gpu_util_max: float


@dataclass(frozen=True, slots=True)
class PaperTables:
    exclusive: tuple[PaperExclusiveRow, ...]
    colocated: tuple[PaperColocatedRow, ...]

    def by_job(self) -> dict[str, PaperExclusiveRow]:
        return {r.job: r for r in self.exclusive}

    def models(self, row: PaperColocatedRow) -> tuple[str, ...]:
        jobs = self.by_job()
        return tuple(jobs[j].model for j in row.job_set)




def load_paper_tables(data_dir: Path | None = None) -> PaperTables:
    base = (data_dir or shared_data_dir()) / "paper"
    ex_path = base / "eaco_v100_exclusive.csv"
    co_path = base / "eaco_v100_colocated.csv"
    exclusive: list[PaperExclusiveRow] = []
    with open(ex_path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            exclusive.append(
                PaperExclusiveRow(
                    job=row["job"].strip(),
                    model=row["model"].strip(),
                    node_gpus=int(csv_float(ex_path, line, row, "node_gpus")),
                    avg_node_power_w=csv_float(ex_path, line, row, "avg_node_power_w"),
                    energy_kwh=csv_float(ex_path, line, row, "energy_kwh"),
                    jct_h=csv_float(ex_path, line, row, "jct_h"),
                    epoch_h=csv_float(ex_path, line, row, "epoch_h"),
                    gpu_util_avg=csv_float(ex_path, line, row, "gpu_util_avg_pct") / 100.0,
                    gpu_util_max=csv_float(ex_path, line, row, "gpu_util_max_pct") / 100.0,
                )
            )
    known = {r.job for r in exclusive}
    colocated: list[PaperColocatedRow] = []
    with open(co_path, newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            members = tuple(p.strip() for p in row["job_set"].split("+"))
            for m in members:
                if m not in known:
                    raise InputError(str(co_path), f"unknown job {m!r}; expected one of {sorted(known)}", line, "job_set")
            colocated.append(
                PaperColocatedRow(
                    job_set=members,
                    avg_node_power_w=csv_float(co_path, line, row, "avg_node_power_w"),
                    energy_kwh=csv_float(co_path, line, row, "energy_kwh"),
                    avg_jct_h=csv_float(co_path, line, row, "avg_jct_h"),
                    avg_epoch_h=csv_float(co_path, line, row, "avg_epoch_h", allow_empty=True),
                    gpu_util_avg=csv_float(co_path, line, row, "gpu_util_avg_pct") / 100.0,
                    gpu_util_max=csv_float(co_path, line, row, "gpu_util_max_pct") / 100.0,
                )
            )
    return PaperTables(tuple(exclusive), tuple(colocated))
