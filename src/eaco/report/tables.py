"""Rich tables of simulation metrics, one row per policy."""

from __future__ import annotations

from typing import Callable

from rich.table import Table

from eaco.sim.metrics import Metrics
from eaco.units import S_PER_H


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def metrics_table(rows: list[Metrics], title: str = "", currency: str = "USD") -> Table:
    """One column per policy, one row per metric (fits a narrow terminal)."""
    table = Table(title=title or None)
    table.add_column("metric", justify="left")
    for m in rows:
        table.add_column(m.policy, justify="right")
    for label, cells in metric_rows(rows, currency):
        table.add_row(label, *cells)
    return table


def metric_rows(rows: list[Metrics], currency: str = "USD") -> list[tuple[str, list[str]]]:
    """The metrics table's content: (label, one formatted value per policy). Cost and carbon rows
    appear when the rows carry them (``eaco simulate --price-per-kwh/--carbon-g-per-kwh/--grid``)."""
    lines: list[tuple[str, Callable[[Metrics], str]]] = [
        ("jobs", lambda m: f"{m.num_jobs:,}"),
        ("energy (kWh)", lambda m: f"{m.energy_kwh:,.0f}"),
        ("  GPU busy (kWh)", lambda m: f"{m.gpu_busy_kwh:,.0f}"),
        ("  GPU idle (kWh)", lambda m: f"{m.gpu_idle_kwh:,.0f}"),
        ("  host (kWh)", lambda m: f"{m.host_kwh:,.0f}"),
        ("  sleep (kWh)", lambda m: f"{m.sleep_kwh:,.0f}"),
        ("JCT avg / p50 (h)", lambda m: f"{m.jct_s.mean / S_PER_H:,.2f} / {m.jct_s.p50 / S_PER_H:,.2f}"),
        ("JCT p95 / p99 (h)", lambda m: f"{m.jct_s.p95 / S_PER_H:,.1f} / {m.jct_s.p99 / S_PER_H:,.1f}"),
        ("runtime avg (h)", lambda m: f"{m.run_time_s.mean / S_PER_H:,.2f}"),
        ("waiting avg / p99 / max (h)",
         lambda m: f"{m.waiting_s.mean / S_PER_H:,.2f} / {m.waiting_s.p99 / S_PER_H:,.1f} / {m.waiting_s.max / S_PER_H:,.1f}"),
        ("total time avg / p50 (h)", lambda m: f"{m.total_time_s.mean / S_PER_H:,.2f} / {m.total_time_s.p50 / S_PER_H:,.2f}"),
        ("total time p95 / p99 (h)", lambda m: f"{m.total_time_s.p95 / S_PER_H:,.1f} / {m.total_time_s.p99 / S_PER_H:,.1f}"),
        ("makespan (h)", lambda m: f"{m.makespan_s / S_PER_H:,.1f}"),
        ("avg active nodes", lambda m: f"{m.avg_active_nodes:,.1f}"),
        ("avg GPU util (all / busy)", lambda m: f"{m.avg_gpu_util:.1%} / {m.avg_busy_gpu_util:.1%}"),
        ("co-located jobs", lambda m: f"{m.colocated_jobs:,}"),
        ("deadline misses", lambda m: f"{m.deadline_misses:,} of {m.jobs_with_deadline:,}"),
        ("  caused by sharing", lambda m: f"{m.deadline_misses_colocation:,}"),
        ("undone co-locations", lambda m: f"{m.undos:,}"),
        ("jobs moved to empty a node", lambda m: f"{m.migrations:,}"),
    ]
    if any(m.energy_common_end_kwh is not None for m in rows):
        ends = max(m.makespan_s for m in rows) / S_PER_H
        after_split = next(i for i, (label, _) in enumerate(lines) if label == "  sleep (kWh)") + 1
        lines.insert(after_split, (f"energy to {ends:,.0f} h (kWh)", lambda m: (
            f"{m.energy_common_end_kwh:,.0f}" if m.energy_common_end_kwh is not None else "-")))
    lines.extend(_cost_lines(rows, currency))
    return [(label, [fmt(m) for m in rows]) for label, fmt in lines]


def _cost_lines(rows: list[Metrics], currency: str) -> list[tuple[str, Callable[[Metrics], str]]]:
    """Facility energy (when PUE > 1), electricity cost, carbon, hardware written off and cost of
    ownership, each also to the common end."""
    out: list[tuple[str, Callable[[Metrics], str]]] = []
    ends = max((m.makespan_s for m in rows), default=0.0) / S_PER_H
    if any(m.facility_energy_kwh is not None and abs(m.facility_energy_kwh - m.energy_kwh) > 1e-9 for m in rows):
        out.append(("facility energy, x PUE (kWh)", lambda m: _money(m.facility_energy_kwh)))
    if any(m.electricity_cost is not None for m in rows):
        out.append((f"electricity cost ({currency})", lambda m: _money(m.electricity_cost)))
        if any(m.electricity_cost_common_end is not None for m in rows):
            out.append((f"  to {ends:,.0f} h ({currency})", lambda m: _money(m.electricity_cost_common_end)))
    if any(m.carbon_kg is not None for m in rows):
        out.append(("carbon (kg CO2e)", lambda m: _money(m.carbon_kg)))
        if any(m.carbon_kg_common_end is not None for m in rows):
            out.append((f"  to {ends:,.0f} h (kg CO2e)", lambda m: _money(m.carbon_kg_common_end)))
    if any(m.hardware_cost is not None for m in rows):
        out.append((f"hardware, written off ({currency})", lambda m: _money(m.hardware_cost)))
        if any(m.hardware_cost_common_end is not None for m in rows):
            out.append((f"  to {ends:,.0f} h ({currency})", lambda m: _money(m.hardware_cost_common_end)))
    if any(m.ownership_cost is not None for m in rows):
        out.append((f"cost of ownership ({currency})", lambda m: _money(m.ownership_cost)))
        if any(m.ownership_cost_common_end is not None for m in rows):
            out.append((f"  to {ends:,.0f} h ({currency})", lambda m: _money(m.ownership_cost_common_end)))
    return out


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


IDLE_CLUSTER_SHARE = 0.25  # below this share of nodes active on average, say what dominates energy


def idle_cluster_note(rows: list[Metrics], num_nodes: int, sleep: str) -> str | None:
    """A warning when most of the cluster had no job under every policy and some policy kept its
    empty nodes awake: the energy gap then mostly measures idle nodes, not placement."""
    if not rows or num_nodes <= 0 or sleep != "policy":
        return None
    busiest = max(m.avg_active_nodes for m in rows)
    awake = [m for m in rows if m.sleep_kwh == 0 and m.energy_kwh > 0]
    if busiest >= IDLE_CLUSTER_SHARE * num_nodes or not awake:
        return None
    worst = max(awake, key=lambda m: (m.gpu_idle_kwh) / m.energy_kwh)
    return (f"note: on average at most {busiest:,.1f} of {num_nodes:,} nodes had a job; {', '.join(m.policy for m in awake)} "
            f"keep empty nodes awake (as published), so idle GPUs alone are {worst.gpu_idle_kwh / worst.energy_kwh:.0%} of "
            f"{worst.policy}'s energy. --sleep all lets empty nodes sleep under every policy, to compare placement alone; "
            f"or size the cluster to the workload.")
