"""Rich tables of simulation metrics, one row per policy."""

from __future__ import annotations

from rich.table import Table

from eaco.sim.metrics import Metrics

H = 3600.0


def metrics_table(rows: list[Metrics], title: str = "") -> Table:
    table = Table(title=title or None, show_lines=False)
    cols = [
        ("policy", "left"),
        ("energy kWh", "right"),
        ("GPU busy/idle/host/sleep kWh", "right"),
        ("avg JCT h", "right"),
        ("p95 JCT h", "right"),
        ("avg run h", "right"),
        ("avg wait h", "right"),
        ("avg total h", "right"),
        ("p99 total h", "right"),
        ("makespan h", "right"),
        ("avg active nodes", "right"),
        ("avg GPU util", "right"),
        ("co-located jobs", "right"),
        ("deadline misses", "right"),
        ("undos", "right"),
    ]
    for name, justify in cols:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for m in rows:
        table.add_row(
            m.policy,
            f"{m.energy_kwh:,.0f}",
            f"{m.gpu_busy_kwh:,.0f}/{m.gpu_idle_kwh:,.0f}/{m.host_kwh:,.0f}/{m.sleep_kwh:,.0f}",
            f"{m.jct_s.mean / H:,.2f}",
            f"{m.jct_s.p95 / H:,.2f}",
            f"{m.run_time_s.mean / H:,.2f}",
            f"{m.waiting_s.mean / H:,.2f}",
            f"{m.total_time_s.mean / H:,.2f}",
            f"{m.total_time_s.p99 / H:,.2f}",
            f"{m.makespan_s / H:,.1f}",
            f"{m.avg_active_nodes:,.1f}",
            f"{m.avg_gpu_util:.1%}",
            f"{m.colocated_jobs:,}",
            f"{m.deadline_misses:,}/{m.jobs_with_deadline:,}",
            f"{m.undos:,}",
        )
    return table


def speed_table(rows: list[Metrics]) -> Table:
    table = Table(title="simulator speed")
    for name in ("policy", "jobs", "events", "wall s", "events/s", "jobs/s"):
        table.add_column(name, justify="left" if name == "policy" else "right")
    for m in rows:
        table.add_row(
            m.policy,
            f"{m.num_jobs:,}",
            f"{m.events:,}",
            f"{m.wall_s:.2f}",
            f"{m.events_per_s:,.0f}",
            f"{m.num_jobs / m.wall_s:,.0f}" if m.wall_s > 0 else "-",
        )
    return table
