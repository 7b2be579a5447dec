"""Electricity cost and carbon of simulated runs, from their exact hourly energy
(:class:`~eaco.sim.energy_meter.TimeSeries`) and the user's :class:`~eaco.energy.grid.GridSettings`;
and their cost of ownership, the cluster's hardware written off over the same time
(:class:`~eaco.model.ownership.HardwareCost`) plus that electricity.

Each run is priced over its own period (until its last completion) and, when several policies
ran the same workload, until their common end too: the latest makespan among them, the early
finisher's empty cluster drawing its end power (nodes asleep, or awake and idle) meanwhile, as
for ``energy_common_end_kwh``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from eaco.energy.grid import GridSettings
from eaco.model.cluster import ClusterSpec
from eaco.model.ownership import HardwareCost
from eaco.sim.energy_meter import spread_over_hours
from eaco.sim.metrics import Metrics
from eaco.sim.result import SimulationResult
from eaco.units import J_PER_KWH

G_PER_KG = 1000.0


@dataclass(frozen=True, slots=True)
class CostFigures:
    facility_energy_kwh: float  # IT energy x PUE
    electricity_cost: float | None  # in the grid settings' currency; None without a price
    carbon_kg: float | None  # kg CO2e; None without an intensity


def energy_per_hour_j(result: SimulationResult, end_power_w: float, end_s: float | None = None) -> list[float]:
    """The run's energy per simulated hour, extended from its makespan to ``end_s`` (if later)
    at ``end_power_w``."""
    hourly = list(result.timeseries.energy_per_hour_j)
    if end_s is not None and end_s > result.makespan_s and end_power_w > 0:
        spread_over_hours(hourly, end_power_w, result.makespan_s, end_s)
    return hourly


def cost_figures(hourly_j: Sequence[float], grid: GridSettings) -> CostFigures:
    """Cost and carbon of IT energy ``hourly_j`` (J per simulated hour) under ``grid``."""
    facility_j = [e * grid.pue for e in hourly_j]
    cost = None if grid.price_per_kwh is None else grid.price_per_kwh.weighted_sum(facility_j) / J_PER_KWH
    carbon = None if grid.carbon_g_per_kwh is None else grid.carbon_g_per_kwh.weighted_sum(facility_j) / J_PER_KWH / G_PER_KG
    return CostFigures(sum(facility_j) / J_PER_KWH, cost, carbon)


def _common_end_s(rows: Sequence[Metrics]) -> float | None:
    """The latest makespan, where the rows are compared to a common end (they carry
    ``energy_common_end_kwh``), else None."""
    return max(m.makespan_s for m in rows) if any(m.energy_common_end_kwh is not None for m in rows) else None


def with_costs(results: Sequence[SimulationResult], rows: Sequence[Metrics], grid: GridSettings) -> list[Metrics]:
    """``rows`` (the metrics of ``results``, same order) with cost and carbon filled in; to the
    common end as well when the rows carry ``energy_common_end_kwh`` (:func:`~eaco.sim.metrics.with_common_end`)."""
    if len(results) != len(rows):
        raise ValueError(f"{len(results)} results but {len(rows)} metrics rows")
    if not grid.active:
        return list(rows)
    end_s = _common_end_s(rows)
    out = []
    for result, m in zip(results, rows):
        own = cost_figures(result.timeseries.energy_per_hour_j, grid)
        m = replace(m, facility_energy_kwh=own.facility_energy_kwh, electricity_cost=own.electricity_cost, carbon_kg=own.carbon_kg)
        if end_s is not None:
            to_end = cost_figures(energy_per_hour_j(result, m.empty_cluster_power_w, end_s), grid)
            m = replace(m, electricity_cost_common_end=to_end.electricity_cost, carbon_kg_common_end=to_end.carbon_kg)
        out.append(m)
    return out


def with_ownership(rows: Sequence[Metrics], clusters: Sequence[ClusterSpec], hardware: HardwareCost) -> list[Metrics]:
    """``rows`` with their hardware cost (each run's cluster, ``clusters`` in the same order,
    written off over the run's makespan, and until the common end when the rows carry one) and
    their cost of ownership (hardware + electricity, where the electricity is priced)."""
    if len(clusters) != len(rows):
        raise ValueError(f"{len(rows)} metrics rows but {len(clusters)} clusters")
    if not hardware.active:
        return list(rows)
    end_s = _common_end_s(rows)
    out = []
    for m, cluster in zip(rows, clusters):
        per_s = hardware.cluster_cost_per_s(cluster)
        own = per_s * m.makespan_s
        to_end = per_s * end_s if end_s is not None else None
        out.append(replace(
            m, hardware_cost=own, hardware_cost_common_end=to_end,
            ownership_cost=own + m.electricity_cost if m.electricity_cost is not None else None,
            ownership_cost_common_end=(to_end + m.electricity_cost_common_end
                                       if to_end is not None and m.electricity_cost_common_end is not None else None),
        ))
    return out
