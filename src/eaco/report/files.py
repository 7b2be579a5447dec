"""Machine-readable output of a simulation: JSON, CSV and the active-node time series."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import asdict
from pathlib import Path

from eaco.sim.metrics import Metrics
from eaco.sim.result import SimulationResult
from eaco.units import J_PER_KWH

METRIC_COLUMNS = (
    "policy",
    "workload",
    "cluster",
    "num_jobs",
    "energy_kwh",
    "gpu_busy_kwh",
    "gpu_idle_kwh",
    "host_kwh",
    "sleep_kwh",
    "attributed_to_jobs_kwh",
    "energy_common_end_kwh",
    "empty_cluster_power_w",
    "facility_energy_kwh",
    "electricity_cost",
    "electricity_cost_common_end",
    "carbon_kg",
    "carbon_kg_common_end",
    "hardware_cost",
    "hardware_cost_common_end",
    "ownership_cost",
    "ownership_cost_common_end",
    "makespan_s",
    "avg_active_nodes",
    "avg_gpu_util",
    "avg_busy_gpu_util",
    "jobs_with_deadline",
    "deadline_misses",
    "deadline_misses_colocation",
    "colocated_jobs",
    "undos",
    "migrations",
    "events",
    "policy_calls",
    "wall_s",
)
DIST_COLUMNS = ("jct_s", "run_time_s", "waiting_s", "total_time_s")


def file_label(policy: str) -> str:
    """A run's label as part of a file name: ``eaco(alpha=0.5,reserve=true)`` ->
    ``eaco_alpha=0.5_reserve=true`` (plain policy names are unchanged)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", policy).strip("_")


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def metrics_row(m: Metrics) -> dict[str, object]:
    row: dict[str, object] = {c: getattr(m, c) for c in METRIC_COLUMNS}
    for d in DIST_COLUMNS:
        dist = getattr(m, d)
        for stat in ("mean", "p50", "p95", "p99", "max"):
            row[f"{d}_{stat}"] = getattr(dist, stat)
    row["events_per_s"] = m.events_per_s
    return row


def write_metrics(out_dir: Path, metrics: list[Metrics], meta: dict[str, object]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "metrics.json"
    payload = {"meta": meta, "policies": [_clean(m.to_dict()) for m in metrics]}
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    csv_path = out_dir / "metrics.csv"
    rows = [metrics_row(m) for m in metrics]
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [json_path, csv_path]


def write_jobs(out_dir: Path, result: SimulationResult) -> Path:
    path = out_dir / f"jobs_{file_label(result.policy)}.csv"
    fields = [
        "job_id", "job_type", "num_gpus", "submit_s", "first_start_s", "finish_s", "run_time_s",
        "colocated_time_s", "exclusive_duration_s", "deadline_s", "priority", "energy_j", "undos",
        "migrations", "placements", "gpu_types", "lost_epochs", "colocation_delay_s", "restart_s",
    ]
    derived = ["jct_s", "waiting_s", "total_time_s", "missed_deadline"]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields + derived)
        for j in result.jobs:
            d = asdict(j)
            writer.writerow([d[f] for f in fields] + [j.jct_s, j.waiting_s, j.total_time_s, int(j.missed_deadline)])
    return path


def write_timeseries(out_dir: Path, result: SimulationResult) -> Path:
    path = out_dir / f"timeseries_{file_label(result.policy)}.csv"
    ts = result.timeseries
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["time_s", "active_nodes", "busy_gpus", "power_w"])
        for row in zip(ts.time_s, ts.active_nodes, ts.busy_gpus, ts.power_w):
            writer.writerow((f"{row[0]:.3f}", row[1], row[2], f"{row[3]:.1f}"))
    return path


def write_hourly_energy(out_dir: Path, result: SimulationResult) -> Path:
    """The run's exact energy per hour of simulated time (what hourly prices and carbon
    intensities apply to)."""
    path = out_dir / f"energy_hourly_{file_label(result.policy)}.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["hour", "energy_kwh"])
        for hour, energy_j in enumerate(result.timeseries.energy_per_hour_j):
            writer.writerow((hour, f"{energy_j / J_PER_KWH:.6f}"))
    return path
