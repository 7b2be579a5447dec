"""Calibrate the node power model on the EaCO paper's own node measurements.

The paper (arXiv 2412.08294) publishes average node power and average GPU utilisation of four
ImageNet jobs, each alone on an 8xV100 node (Tables 1-2, "exclusive"), and of six sets of those
jobs time-sliced on one node (Tables 3-4, "co-located"). We fit the node model
(:mod:`eaco.energy.node_fit`) on the exclusive rows only and predict the co-located rows as a
held-out check.

CPU utilisation is not published. Assumption (documented in docs/energy.md): every job keeps its
data-loader workers busy, and nothing else on the host. PyTorch ``examples/imagenet`` (which the
paper used with default settings) splits its default 4 loader workers over the 8 per-GPU processes,
rounding up to 1 each: 8 busy loader processes per job on a 72-thread host, i.e. a CPU share of
8/72 = 0.111 per job. Co-located jobs add their shares (capped at 1). Pass ``cpu_util_per_job=0``
to leave CPU load out entirely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from eaco.energy.gpu_power import GpuPowerModel
from eaco.energy.host_power import PAPER_NODE_HW_THREADS, HostPowerModel
from eaco.energy.node_fit import NodeFit, NodeObservation, fit_node_power, predict_node_power_w
from eaco.energy.power_table import GPU_POWER_CSV, load_gpu_power_models
from eaco.measurements.paper import PAPER_GPU_TYPE, PAPER_NODE_GPUS, PaperTables, load_paper_tables
from eaco.paths import shared_data_dir

# pytorch/examples imagenet/main.py: --workers defaults to 4; with one process per GPU it sets
# workers = ceil(4 / 8) = 1 per process, so an 8-GPU job runs 8 loader worker processes.
PAPER_LOADER_WORKERS_PER_JOB = 8
PAPER_CPU_UTIL_PER_JOB = PAPER_LOADER_WORKERS_PER_JOB / PAPER_NODE_HW_THREADS  # 0.111
# The same share per GPU, for job catalogues that state CPU load per GPU.
PAPER_CPU_UTIL_PER_GPU = PAPER_CPU_UTIL_PER_JOB / PAPER_NODE_GPUS

ROLE_FIT = "fit"
ROLE_HELD_OUT = "held-out"


def paper_cpu_util(n_jobs: int, cpu_util_per_job: float = PAPER_CPU_UTIL_PER_JOB) -> float:
    """Assumed host CPU utilisation with ``n_jobs`` of the paper's jobs on the node."""
    return min(1.0, n_jobs * cpu_util_per_job)


def paper_observations(
    tables: PaperTables, cpu_util_per_job: float = PAPER_CPU_UTIL_PER_JOB
) -> tuple[list[NodeObservation], list[NodeObservation]]:
    """(exclusive rows, co-located rows) as node observations."""
    exclusive = [
        NodeObservation(r.job, r.gpu_util_avg, paper_cpu_util(1, cpu_util_per_job), r.avg_node_power_w)
        for r in tables.exclusive
    ]
    colocated = [
        NodeObservation(
            "+".join(r.job_set), r.gpu_util_avg, paper_cpu_util(len(r.job_set), cpu_util_per_job), r.avg_node_power_w
        )
        for r in tables.colocated
    ]
    return exclusive, colocated


def fit_paper_node(
    data_dir: Path | None = None,
    *,
    gpu_idle_power_w: float,
    gpu_max_power_w: float,
    host: HostPowerModel | None = None,
    cpu_util_per_job: float = PAPER_CPU_UTIL_PER_JOB,
) -> NodeFit:
    """Fit node baseline and V100 exponent on the paper's exclusive rows."""
    tables = load_paper_tables(data_dir)
    exclusive, _ = paper_observations(tables, cpu_util_per_job)
    return fit_node_power(
        exclusive,
        gpu_type=PAPER_GPU_TYPE,
        gpu_idle_power_w=gpu_idle_power_w,
        gpu_max_power_w=gpu_max_power_w,
        host=host or HostPowerModel(),
        n_gpus=PAPER_NODE_GPUS,
    )


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    job_set: str  # "J3" or "J1+J3"
    models: tuple[str, ...]  # ("alexnet", "resnet50")
    role: str  # "fit" or "held-out"
    gpu_util: float  # measured average GPU utilisation (0..1)
    cpu_util: float  # assumed CPU utilisation (0..1)
    measured_power_w: float
    modelled_power_w: float

    @property
    def error_pct(self) -> float:
        """Signed error of the model, in percent of the measurement."""
        return 100.0 * (self.modelled_power_w - self.measured_power_w) / self.measured_power_w


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    rows: tuple[CalibrationRow, ...]
    gpu: GpuPowerModel  # V100 with the fitted exponent
    host: HostPowerModel
    node_baseline_w: float
    baseline_at_bound: bool
    n_gpus: int
    cpu_util_per_job: float
    gpu_power_source: str  # file the GPU idle/max came from
    data_dir: str
    notes: tuple[str, ...] = field(default=())

    def mae_pct(self, role: str) -> float:
        errors = [abs(r.error_pct) for r in self.rows if r.role == role]
        if not errors:
            raise ValueError(f"no calibration rows with role {role!r}")
        return sum(errors) / len(errors)

    @property
    def mae_pct_fit(self) -> float:
        return self.mae_pct(ROLE_FIT)

    @property
    def mae_pct_held_out(self) -> float:
        return self.mae_pct(ROLE_HELD_OUT)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu_type": self.gpu.gpu_type,
            "n_gpus": self.n_gpus,
            "fitted": {"node_baseline_w": self.node_baseline_w, "gpu_exponent": self.gpu.exponent},
            "baseline_at_bound": self.baseline_at_bound,
            "fixed": {
                "gpu_idle_power_w": self.gpu.idle_power_w,
                "gpu_max_power_w": self.gpu.max_power_w,
                "host_idle_power_w": self.host.idle_power_w,
                "host_max_power_w": self.host.max_power_w,
                "host_exponent_r": self.host.exponent_r,
                "cpu_util_per_job": self.cpu_util_per_job,
            },
            "gpu_power_source": self.gpu_power_source,
            "data_dir": self.data_dir,
            "mae_pct": {ROLE_FIT: self.mae_pct_fit, ROLE_HELD_OUT: self.mae_pct_held_out},
            "rows": [
                {
                    "job_set": r.job_set,
                    "models": list(r.models),
                    "role": r.role,
                    "gpu_util": r.gpu_util,
                    "cpu_util": r.cpu_util,
                    "measured_power_w": r.measured_power_w,
                    "modelled_power_w": r.modelled_power_w,
                    "error_pct": r.error_pct,
                }
                for r in self.rows
            ],
            "notes": list(self.notes),
        }


def run_calibration(
    data_dir: Path | None = None,
    *,
    gpu_power_csv: Path | None = None,
    host: HostPowerModel | None = None,
    cpu_util_per_job: float = PAPER_CPU_UTIL_PER_JOB,
) -> CalibrationReport:
    """Fit on the paper's exclusive rows, predict its co-located rows (held out).

    GPU idle and max power are taken from ``gpu_power_csv`` (default: the packaged table); the node
    baseline and the V100 exponent are fitted.
    """
    if not 0.0 <= cpu_util_per_job <= 1.0:
        raise ValueError(f"run_calibration: cpu_util_per_job must be within 0..1, got {cpu_util_per_job}")
    data = data_dir or shared_data_dir()
    host = host or HostPowerModel()
    csv_path = gpu_power_csv or GPU_POWER_CSV
    table_gpu = load_gpu_power_models(csv_path)[PAPER_GPU_TYPE]
    tables = load_paper_tables(data)
    exclusive, colocated = paper_observations(tables, cpu_util_per_job)
    fit = fit_node_power(
        exclusive,
        gpu_type=PAPER_GPU_TYPE,
        gpu_idle_power_w=table_gpu.idle_power_w,
        gpu_max_power_w=table_gpu.max_power_w,
        host=host,
        n_gpus=PAPER_NODE_GPUS,
    )
    gpu = GpuPowerModel(PAPER_GPU_TYPE, table_gpu.idle_power_w, table_gpu.max_power_w, fit.gpu_exponent)
    models_by_job = {r.job: r.model for r in tables.exclusive}
    rows: list[CalibrationRow] = []
    for role, observations in ((ROLE_FIT, exclusive), (ROLE_HELD_OUT, colocated)):
        for o in observations:
            modelled = predict_node_power_w(gpu, host, fit.node_baseline_w, PAPER_NODE_GPUS, o.gpu_util, o.cpu_util)
            models = tuple(models_by_job[j] for j in o.label.split("+"))
            rows.append(CalibrationRow(o.label, models, role, o.gpu_util, o.cpu_util, o.measured_power_w, modelled))
    notes = [
        "GPU utilisation is the node's time-average; power is modelled at that average (Jensen gap ignored).",
        f"CPU utilisation assumed: {cpu_util_per_job:.3f} per job, summed over co-located jobs (not published).",
    ]
    if fit.baseline_at_bound:
        notes.append("node_baseline_w hit its lower bound 0: the host model alone exceeds the fitted constant.")
    return CalibrationReport(
        rows=tuple(rows),
        gpu=gpu,
        host=host,
        node_baseline_w=fit.node_baseline_w,
        baseline_at_bound=fit.baseline_at_bound,
        n_gpus=PAPER_NODE_GPUS,
        cpu_util_per_job=cpu_util_per_job,
        gpu_power_source=str(csv_path),
        data_dir=str(data),
        notes=tuple(notes),
    )


def format_calibration_table(report: CalibrationReport) -> Table:
    """A rich table: one row per job set, then MAE per role."""
    g = report.gpu
    table = Table(
        title=(
            f"Node power calibration ({report.n_gpus}x {g.gpu_type.upper()}): "
            f"baseline {report.node_baseline_w:.1f} W, GPU {g.idle_power_w:.1f}-{g.max_power_w:.1f} W, "
            f"exponent {g.exponent:.3f}"
        )
    )
    table.add_column("job set")
    table.add_column("models")
    table.add_column("role")
    table.add_column("GPU util", justify="right")
    table.add_column("measured W", justify="right")
    table.add_column("modelled W", justify="right")
    table.add_column("error %", justify="right")
    for r in report.rows:
        table.add_row(
            r.job_set,
            "+".join(r.models),
            r.role,
            f"{100.0 * r.gpu_util:.1f}%",
            f"{r.measured_power_w:.0f}",
            f"{r.modelled_power_w:.0f}",
            f"{r.error_pct:+.1f}",
        )
    table.add_section()
    table.add_row("MAE", "", ROLE_FIT, "", "", "", f"{report.mae_pct_fit:.1f}")
    table.add_row("MAE", "", ROLE_HELD_OUT, "", "", "", f"{report.mae_pct_held_out:.1f}")
    return table
