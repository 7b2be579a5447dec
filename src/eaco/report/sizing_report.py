"""What ``eaco simulate --smallest`` found: per policy the fewest nodes meeting the deadline
target, every size it evaluated, as a table, CSV, JSON, a figure and a section of report.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

from rich.table import Table

from eaco.report.markdown import md_table
from eaco.study.sizing import SizingOutcome, SizingTarget, miss_share
from eaco.units import S_PER_H

POINT_COLUMNS = ("policy", "num_nodes", "num_gpus", "meets_target", "deadline_misses", "jobs_with_deadline",
                 "miss_share", "avg_wait_h", "energy_kwh", "avg_active_nodes", "avg_total_time_h", "makespan_h")


def _answer(o: SizingOutcome) -> str:
    return f"{o.smallest:,}" if o.smallest is not None else f"none up to {o.hi:,}"


def _tried(o: SizingOutcome) -> str:
    """``28+ 2- 15-``: each size tried, in order, + where it met the target, - where it missed."""
    return " ".join(f"{p.num_nodes}{'+' if p.met else '-'}" for p in o.points)


def _gpus(o: SizingOutcome, num_nodes: int) -> int:
    return num_nodes * o.shape.gpus_per_node


def sizing_rows(outcomes: Sequence[SizingOutcome]) -> list[list[str]]:
    """Per policy: answer, its GPUs, misses there, energy there, sizes tried (in order)."""
    rows = []
    for o in outcomes:
        m = o.chosen.metrics
        rows.append([o.label, _answer(o), f"{_gpus(o, o.chosen.num_nodes):,}",
                     f"{m.deadline_misses:,} of {m.jobs_with_deadline:,} ({miss_share(m):.1%})",
                     f"{m.waiting_s.mean / S_PER_H:,.2f}", f"{m.energy_kwh:,.0f}", _tried(o)])
    return rows


SIZING_HEADER = ["policy", "fewest nodes", "GPUs", "deadline misses there", "avg wait there (h)", "energy there (kWh)",
                 "sizes tried (+ met, - missed)"]


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], left: Sequence[str]) -> Table:
    """A terminal table: the columns named in ``left`` aligned left, the figures right."""
    table = Table(title=title)
    for name in header:
        table.add_column(name, justify="left" if name in left else "right")
    for row in rows:
        table.add_row(*row)
    return table


def sizing_table(outcomes: Sequence[SizingOutcome], target: SizingTarget) -> Table:
    return _table(f"smallest cluster of {outcomes[0].shape.describe()} nodes with {target.describe()}",
                  SIZING_HEADER, sizing_rows(outcomes), (SIZING_HEADER[0], SIZING_HEADER[-1]))


def sizing_section(outcomes: Sequence[SizingOutcome], target: SizingTarget) -> list[str]:
    """Markdown lines for report.md."""
    lines = ["## Smallest cluster", "",
             f"Per policy, the fewest nodes of {outcomes[0].shape.describe()} (searched in {outcomes[0].lo:,}-{outcomes[0].hi:,} by "
             f"bisection) with {target.describe()}; the "
             "metrics below are each policy's run at its own smallest size (at the largest when none met the target). "
             "The bisection assumes that more nodes never miss more deadlines: every size tried is listed, and "
             "`sizing.csv` has each one's figures.", ""]
    return lines + md_table(SIZING_HEADER, sizing_rows(outcomes))


def write_sizing_files(out_dir: Path, outcomes: Sequence[SizingOutcome], target: SizingTarget) -> list[Path]:
    """``sizing.csv`` (every size evaluated, one row each) and ``sizing.json`` (the target and
    each policy's answer with its points)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    points = []
    for o in outcomes:
        for p in o.points:
            m = p.metrics
            points.append({"policy": o.label, "num_nodes": p.num_nodes, "num_gpus": _gpus(o, p.num_nodes),
                           "meets_target": p.met, "deadline_misses": m.deadline_misses,
                           "jobs_with_deadline": m.jobs_with_deadline, "miss_share": miss_share(m),
                           "avg_wait_h": m.waiting_s.mean / S_PER_H,
                           "energy_kwh": m.energy_kwh, "avg_active_nodes": m.avg_active_nodes,
                           "avg_total_time_h": m.total_time_s.mean / S_PER_H, "makespan_h": m.makespan_s / S_PER_H})
    csv_path = out_dir / "sizing.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=POINT_COLUMNS)
        writer.writeheader()
        writer.writerows(points)
    json_path = out_dir / "sizing.json"
    payload = {
        "node": outcomes[0].shape.describe(),
        "max_miss_share": target.max_miss_share,
        "max_avg_wait_h": None if target.max_avg_wait_s is None else target.max_avg_wait_s / S_PER_H,
        "range": [outcomes[0].lo, outcomes[0].hi],
        "policies": [{"policy": o.label, "smallest_nodes": o.smallest,
                      "points": [p for p in points if p["policy"] == o.label]} for o in outcomes],
    }
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    return [csv_path, json_path]


def plot_sizing(out_path: Path, outcomes: Sequence[SizingOutcome], target: SizingTarget) -> Path:
    """Deadline misses and energy against the node count, every size tried, per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_miss, ax_energy) = plt.subplots(1, 2, figsize=(11, 4))
    for o in outcomes:
        pts = sorted(o.points, key=lambda p: p.num_nodes)
        nodes = [p.num_nodes for p in pts]
        line, = ax_miss.plot(nodes, [100 * miss_share(p.metrics) for p in pts], marker="o", label=o.label)
        ax_energy.plot(nodes, [p.metrics.energy_kwh for p in pts], marker="o", color=line.get_color(), label=o.label)
        if o.smallest is not None:
            ax_miss.axvline(o.smallest, color=line.get_color(), linestyle=":", linewidth=1)
    ax_miss.axhline(100 * target.max_miss_share, color="black", linestyle="--", linewidth=1, label="target")
    ax_miss.set_xlabel("nodes")
    ax_miss.set_ylabel("deadlines missed (% of jobs with one)")
    ax_energy.set_xlabel("nodes")
    ax_energy.set_ylabel("energy (kWh)")
    ax_miss.legend()
    ax_energy.legend()
    fig.suptitle("sizes tried (dotted: each policy's fewest nodes meeting the target)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


# --- over several seeds ---------------------------------------------------------------------------

def seeds_sizing_rows(per_seed: Sequence[tuple[int, Sequence[SizingOutcome]]]) -> tuple[list[str], list[list[str]]]:
    """Per policy (the first seed's order): its fewest nodes on each seed's workload, and the
    most of them, the size that met the target on every seed (by the search's assumption that
    more nodes never miss more)."""
    seeds = [s for s, _ in per_seed]
    header = ["policy", *(f"seed {s}" for s in seeds), "on every seed"]
    rows = []
    for k, first in enumerate(per_seed[0][1]):
        outcomes = [searches[k] for _, searches in per_seed]
        sizes = [o.smallest for o in outcomes]
        every = f"{max(sizes):,}" if all(n is not None for n in sizes) else f"none up to {first.hi:,}"
        rows.append([first.label, *(_answer(o) for o in outcomes), every])
    return header, rows


def seeds_sizing_table(per_seed: Sequence[tuple[int, Sequence[SizingOutcome]]], target: SizingTarget) -> Table:
    header, rows = seeds_sizing_rows(per_seed)
    return _table(f"fewest {per_seed[0][1][0].shape.describe()} nodes with {target.describe()}, seed by seed",
                  header, rows, ("policy",))


def seeds_sizing_section(per_seed: Sequence[tuple[int, Sequence[SizingOutcome]]], target: SizingTarget) -> list[str]:
    header, rows = seeds_sizing_rows(per_seed)
    first = per_seed[0][1][0]
    return ["## Smallest cluster, seed by seed", "",
            f"Each seed's workload sized on its own (fewest nodes of {first.shape.describe()} in {first.lo:,}-{first.hi:,} "
            f"with {target.describe()}; each seed's `sizing.csv` has the sizes tried), and the most of them: by the "
            "search's assumption that more nodes never miss more, a size that meets the target on every seed's "
            "workload. The summary above compares each policy at its own size on each seed (`sizing_seeds.csv`).",
            ""] + md_table(header, rows)


def write_seeds_sizing(out_dir: Path, per_seed: Sequence[tuple[int, Sequence[SizingOutcome]]]) -> Path:
    """``sizing_seeds.csv``: one row per policy and seed with its fewest nodes (empty: none in range)."""
    path = out_dir / "sizing_seeds.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["policy", "seed", "smallest_nodes", "range_lo", "range_hi", "deadline_misses", "jobs_with_deadline",
                         "energy_kwh"])
        for seed, searches in per_seed:
            for o in searches:
                m = o.chosen.metrics
                writer.writerow([o.label, seed, "" if o.smallest is None else o.smallest, o.lo, o.hi, m.deadline_misses,
                                 m.jobs_with_deadline, m.energy_kwh])
    return path
