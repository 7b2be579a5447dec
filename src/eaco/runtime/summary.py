"""Energy and JCT summary of a runtime's jobs (``summary.json`` and ``eaco status --summary``).

JCT, runtime and waiting come from the store (wall-clock times the runtime recorded);
``exclusive_epoch_s`` is the median of the job's epochs measured alone on its GPUs
(:mod:`eaco.runtime.baselines`) of the type it last ran alone on (``exclusive_epoch_gpu_type``),
none when it never ran an epoch alone past its start-up. GPU energy
is measured through NVML on real GPUs and modelled on declared ones; host energy is modelled from
the measured CPU utilisation (see :mod:`eaco.runtime.accounting`). ``energy.label`` says which.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eaco.energy.grid import GridSettings, HourlySignal
from eaco.runtime.accounting import EnergyTotals
from eaco.runtime.baselines import MAX_BASELINE_EPOCHS
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.store import ENERGY_COLUMNS, JobRow, Store
from eaco.units import J_PER_KWH

HOURLY_FILE = "energy_hourly.csv"


def _alone_epoch(epochs: list[tuple[float, str]]) -> dict[str, Any]:
    """The median of a job's alone epochs on the GPU type it last ran alone on, that type, and
    how many alone epochs (of any type) were measured."""
    if not epochs:
        return {"exclusive_epoch_s": None, "exclusive_epoch_gpu_type": None, "alone_epochs_measured": 0}
    gpu_type = epochs[-1][1]
    return {"exclusive_epoch_s": statistics.median(d for d, t in epochs if t == gpu_type), "exclusive_epoch_gpu_type": gpu_type,
            "alone_epochs_measured": len(epochs)}


def job_times(row: JobRow) -> tuple[float | None, float | None]:
    """A job's JCT (first start to finish) and total time (submit to finish); None until it ended."""
    jct_s = row.finish_unix - row.first_start_unix if row.finish_unix and row.first_start_unix else None
    total_s = row.finish_unix - row.submit_unix if row.finish_unix else None
    return jct_s, total_s


def build_summary(store: Store, totals: EnergyTotals | None = None, inventory: GpuInventory | None = None) -> dict[str, Any]:
    jobs: list[dict[str, Any]] = []
    alone = store.exclusive_epochs_by_job(MAX_BASELINE_EPOCHS)
    for row in store.jobs():
        jct_s, total_s = job_times(row)
        jobs.append({
            "job_id": row.job_id, "name": row.name, "state": row.state, "attempts": row.attempts,
            "undos": row.undos, "migrations": row.migrations, "epochs_done": row.epochs_done, "jct_s": jct_s, "total_time_s": total_s,
            "run_time_s": row.run_time_s, "colocated_s": row.colocated_s,
            "waiting_s": (total_s - row.run_time_s) if total_s is not None else None,
            "energy_j": row.energy_j, "exclusive_only": row.exclusive_only, "reason": row.reason,
            "first_start_unix": row.first_start_unix, "finish_unix": row.finish_unix,
            **_alone_epoch(alone.get(row.job_id, [])),
        })
    finished = [j for j in jobs if j["state"] == "finished"]
    jcts = [j["jct_s"] for j in finished if j["jct_s"] is not None]
    out: dict[str, Any] = {
        "jobs": jobs,
        "counts": {s: sum(1 for j in jobs if j["state"] == s) for s in ("queued", "running", "stopping", "finished", "failed", "cancelled")},
        "mean_jct_s": sum(jcts) / len(jcts) if jcts else None,
        "max_jct_s": max(jcts) if jcts else None,
        "colocated_jobs": sum(1 for j in jobs if j["colocated_s"] > 0),
        "undos": sum(j["undos"] for j in jobs),
        "migrations": sum(j["migrations"] for j in jobs),
        "attributed_energy_j": sum(j["energy_j"] for j in jobs),
    }
    if totals is not None:
        out["energy"] = {
            "label": energy_label(totals),
            "gpu": totals.gpu_source,
            "cpu_util": totals.cpu_util_source,
            "duration_s": totals.duration_s,
            "total_j": totals.total_j,
            "gpu_busy_j": totals.gpu_busy_j,
            "gpu_idle_j": totals.gpu_idle_j,
            "host_j": totals.host_j,
            "total_kwh": totals.total_j / J_PER_KWH,
            "gpu_seconds_by_method": dict(totals.gpu_s_by_method),
            # shared GPU-seconds whose energy was split among the jobs by their measured share of
            # the kernel time (NVML per process) / by their declared utilisation
            "shared_gpu_split_s": dict(totals.split_s),
            # every daemon that served this state folder, not only the running one
            "since": "the state folder's first accounted hour",
            "hourly_file": HOURLY_FILE,
        }
        if totals.gpu_source != "modelled":
            measured_gpu_j = totals.gpu_busy_j + totals.gpu_idle_j
            model_gpu_j = totals.model_gpu_busy_j + totals.model_gpu_idle_j
            out["energy"]["gpu_measured_share"] = totals.measured_share
            out["energy"]["model_gpu_busy_j"] = totals.model_gpu_busy_j
            out["energy"]["model_gpu_idle_j"] = totals.model_gpu_idle_j
            out["energy"]["model_gpu_error_pct"] = 100.0 * (model_gpu_j - measured_gpu_j) / measured_gpu_j if measured_gpu_j > 0 else None
    if inventory is not None:
        out["gpus"] = inventory.describe()
    return out


def shared_split_sentence(measured_s: float, declared_s: float) -> str:
    """How shared GPUs' energy was split among their jobs (GPU-seconds each way)."""
    if measured_s <= 0:
        return (f"shared GPUs' energy ({declared_s:,.0f} GPU-s) split among their jobs by their declared utilisation "
                "(no per-process utilisation measured)")
    return (f"shared GPUs' energy split among their jobs by the kernel time NVML measured per process for {measured_s:,.0f} "
            f"GPU-s, by their declared utilisation for {declared_s:,.0f} GPU-s")


def energy_label(totals: EnergyTotals) -> str:
    host = "host power modelled (host model at the measured CPU utilisation) plus the node baseline"
    if totals.gpu_source == "modelled":
        return "GPU energy modelled, not measured (calibrated model at predicted utilisation; no NVML); " + host
    return "GPU energy measured through NVML (energy counter, else power readings integrated); " + host


def write_summary(store: Store, path: Path, totals: EnergyTotals | None, inventory: GpuInventory | None) -> None:
    """``summary.json`` at ``path`` and, beside it, the cluster's energy per hour (:data:`HOURLY_FILE`)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(build_summary(store, totals, inventory), indent=2), encoding="utf-8")
    os.replace(tmp, path)
    write_hourly_energy(store, path.with_name(HOURLY_FILE))


def write_hourly_energy(store: Store, path: Path) -> None:
    """One row per UTC hour with energy accounted: its start (Unix and ISO), the seconds
    accounted in it, energy by part in J and the total in kWh, the GPU-seconds measured by the
    energy counter, by power readings or only modelled, and the shared GPU-seconds whose energy
    was split by measured kernel time or by declared utilisation."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["hour_start_unix", "hour_start_utc", *ENERGY_COLUMNS, "total_kwh"])
        for row in store.energy_hours():
            start = row["hour_start_unix"]
            total_j = row["gpu_busy_j"] + row["gpu_idle_j"] + row["host_j"]
            w.writerow([start, datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        *(f"{row[c]:.6g}" for c in ENERGY_COLUMNS), f"{total_j / J_PER_KWH:.6g}"])
    os.replace(tmp, path)



def add_costs(summary: dict[str, Any], grid: GridSettings, hours: list[dict[str, float]] | None = None) -> dict[str, Any]:
    """The summary with electricity cost and carbon (on energy x PUE): ``costs`` for the whole run
    (the cluster's energy) and per job (its attributed energy). The summary is left as it was;
    nothing is added when ``grid`` has neither price nor intensity and PUE 1.

    Prices and intensities may vary by the hour (``--grid``): the runtime's hour ``h`` is the UTC
    hour ``h`` hours after 1970-01-01T00:00Z (``hour_start_unix // 3600``), so a 24-row daily
    series lines up with the UTC hours of the day (``offset_h`` shifts it: -1 for a series in
    UTC+1 local time). The cluster's cost is exact per hour (``hours``: the store's energy per
    hour); a job's energy is not kept per hour, so a job is charged its energy at the cluster's
    energy-weighted mean price (intensity) over the hours it ran."""
    if not grid.active:
        return summary
    by_hour = [(int(h["hour_start_unix"]) // 3600, (h["gpu_busy_j"] + h["gpu_idle_j"] + h["host_j"]) / J_PER_KWH * grid.pue)
               for h in (hours or [])]

    def mean_value(signal: HourlySignal | None, lo_unix: float | None, hi_unix: float | None) -> float | None:
        if signal is None:
            return None
        if len(signal.values) == 1:
            return signal.values[0]
        lo = -math.inf if lo_unix is None else lo_unix // 3600
        hi = math.inf if hi_unix is None else hi_unix // 3600
        span = [(h, kwh) for h, kwh in by_hour if lo <= h <= hi and kwh > 0]
        weight = sum(kwh for _, kwh in span)
        if weight > 0:
            return sum(kwh * signal.at_hour(h) for h, kwh in span) / weight
        return signal.at_hour(int(lo if math.isfinite(lo) else time.time() // 3600))

    def priced(energy_j: float, lo_unix: float | None = None, hi_unix: float | None = None) -> dict[str, float | None]:
        facility_kwh = energy_j / J_PER_KWH * grid.pue
        price = mean_value(grid.price_per_kwh, lo_unix, hi_unix)
        carbon = mean_value(grid.carbon_g_per_kwh, lo_unix, hi_unix)
        return {"facility_kwh": facility_kwh,
                "cost": facility_kwh * price if price is not None else None,
                "carbon_kg": facility_kwh * carbon / 1000.0 if carbon is not None else None}

    def cluster() -> dict[str, float | None] | None:
        energy = summary.get("energy")
        if not energy:
            return None
        if not by_hour:
            return priced(energy["total_j"])
        facility_kwh = sum(kwh for _, kwh in by_hour)
        price, carbon = grid.price_per_kwh, grid.carbon_g_per_kwh
        return {"facility_kwh": facility_kwh,
                "cost": sum(kwh * price.at_hour(h) for h, kwh in by_hour) if price is not None else None,
                "carbon_kg": sum(kwh * carbon.at_hour(h) for h, kwh in by_hour) / 1000.0 if carbon is not None else None}

    out = dict(summary)
    out["jobs"] = [{**j, **priced(j["energy_j"], j.get("first_start_unix"), j.get("finish_unix"))} for j in summary["jobs"]]
    out["costs"] = {"settings": grid.describe(), "currency": grid.currency,
                    "hourly": any(sig is not None and len(sig.values) > 1 for sig in (grid.price_per_kwh, grid.carbon_g_per_kwh)),
                    "attributed": {k: sum(j[k] for j in out["jobs"]) if all(j[k] is not None for j in out["jobs"]) else None
                                   for k in ("facility_kwh", "cost", "carbon_kg")} if out["jobs"] else priced(0.0),
                    "cluster": cluster()}
    return out
