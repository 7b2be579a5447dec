"""Tables, figures and the Markdown report of ``eaco reproduce``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from rich.table import Table

from eaco.policies.eaco import EacoSettings
from eaco.report.files import _clean, metrics_row
from eaco.report.markdown import md_table
from eaco.report.sizing_report import SIZING_HEADER, sizing_rows
from eaco.report.seed_stats import Estimate, estimate
from eaco.report.plots import _step_downsample
from eaco.sim.metrics import Metrics, with_common_end
from eaco.study.paper_numbers import PaperNumber, load_paper_numbers
from eaco.study.reproduce import PAPER_RULES_LABEL, POLICIES, SeedRow, StudyResult, seed_rows, tradeoff_points
from eaco.units import S_PER_H


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _paper(numbers: dict[tuple[str, int, str], PaperNumber], metric: str, nodes: int, policy: str) -> str:
    if policy == "fifo" and metric.endswith("_vs_fifo"):
        return "1.00"
    n = numbers.get((metric, nodes, policy))
    if n is None or math.isnan(n.value):
        return "-"
    prefix = "<" if metric == "runtime_vs_fifo" else ("≥" if metric == "total_time_vs_fifo" else "")
    if metric == "total_time_vs_fifo":
        return f"up to {n.value:.2f}"
    return f"{prefix}{n.value:.2f}"


def _to_common_end(study: StudyResult, group: str, nodes: int) -> dict[str, Metrics]:
    """The group's runs, each with its energy until the latest makespan of the group (a policy
    done early leaves the cluster empty, drawing its idle or sleep power, not nothing)."""
    return dict(zip(POLICIES, with_common_end([study.find(group, nodes, p).metrics for p in POLICIES])))


def comparison_rows(study: StudyResult, group: str, nodes: int) -> list[dict[str, str]]:
    """One row per policy: ours vs the paper, normalised to FIFO."""
    numbers = load_paper_numbers()
    runs = _to_common_end(study, group, nodes)
    fifo = runs["fifo"]
    rows = []
    for policy in POLICIES:
        m = runs[policy]
        show_paper = group == "main"
        rows.append({
            "policy": policy,
            "energy_kwh": f"{m.energy_kwh:,.0f}",
            "energy": f"{_ratio(m.energy_kwh, fifo.energy_kwh):.2f}",
            "energy_paper": _paper(numbers, "energy_vs_fifo", nodes, policy) if show_paper else "",
            "energy_common_end": f"{_ratio(m.energy_common_end_kwh, fifo.energy_common_end_kwh):.2f}",
            "runtime": f"{_ratio(m.run_time_s.mean, fifo.run_time_s.mean):.3f}",
            "runtime_paper": _paper(numbers, "runtime_vs_fifo", nodes, policy) if show_paper else "",
            "total_time": f"{_ratio(m.total_time_s.mean, fifo.total_time_s.mean):.2f}",
            "total_time_paper": _paper(numbers, "total_time_vs_fifo", nodes, policy) if show_paper else "",
            "active_nodes": f"{m.avg_active_nodes:.1f} ({_ratio(m.avg_active_nodes, fifo.avg_active_nodes):.2f})",
            "active_nodes_paper": _paper(numbers, "active_nodes_vs_fifo", nodes, policy) if show_paper else "",
            "misses": f"{m.deadline_misses}/{m.jobs_with_deadline} ({m.deadline_misses_colocation})",
            "colocated": f"{m.colocated_jobs}",
            "undos": f"{m.undos}",
        })
    return rows


_COLUMNS = [
    ("policy", "policy"),
    ("energy_kwh", "energy kWh"),
    ("energy", "energy /FIFO"),
    ("energy_paper", "paper"),
    ("energy_common_end", "energy to common end /FIFO"),
    ("runtime", "avg runtime /FIFO"),
    ("runtime_paper", "paper"),
    ("total_time", "avg total time /FIFO"),
    ("total_time_paper", "paper"),
    ("active_nodes", "avg active nodes (/FIFO)"),
    ("active_nodes_paper", "paper"),
    ("misses", "deadline misses (by sharing)"),
    ("colocated", "co-located jobs"),
    ("undos", "undos"),
]


def comparison_table(study: StudyResult, group: str, nodes: int, title: str) -> Table:
    """Metrics as rows, policies as columns; the paper's number in brackets (fits 80 columns)."""
    rows = comparison_rows(study, group, nodes)
    table = Table(title=title)
    table.add_column("metric")
    for row in rows:
        table.add_column(row["policy"], justify="right")
    for key, label in _COLUMNS[1:]:
        if key.endswith("_paper"):
            continue
        paper_key = f"{key}_paper"
        cells = []
        for row in rows:
            paper = row.get(paper_key, "")
            cells.append(f"{row[key]} [dim](paper {paper})[/]" if paper and paper != "-" else row[key])
        table.add_row(label, *cells)
    return table


def beyond_paper_rows(study: StudyResult) -> list[dict[str, str]]:
    """EaCO with the paper's rules only vs our EaCO (and Gandiva), on the main workload and on a
    heavier one, normalised to FIFO on the same workload."""
    rows: list[dict[str, str]] = []
    if not study.group("beyond-paper"):
        return rows
    cfg = study.config
    cases = [
        (f"{cfg.arrival_rate_per_h:g}/h (main)", "main", "beyond-paper"),
        (f"{cfg.heavy_rate_per_h:g}/h (heavy)", "heavy", "heavy"),
    ]
    for load, group, paper_group in cases:
        fifo = study.find(group, 28, "fifo").metrics
        variants = [("gandiva", study.find(group, 28, "gandiva").metrics),
                    ("eaco, paper rules", study.find(paper_group, 28, "eaco", PAPER_RULES_LABEL).metrics),
                    ("eaco (ours)", study.find(group, 28, "eaco").metrics)]
        for name, m in variants:
            rows.append({
                "load": load, "policy": name,
                "energy": f"{_ratio(m.energy_kwh, fifo.energy_kwh):.3f}",
                "runtime": f"{_ratio(m.run_time_s.mean, fifo.run_time_s.mean):.3f}",
                "total_time": f"{_ratio(m.total_time_s.mean, fifo.total_time_s.mean):.2f}",
                "misses": f"{m.deadline_misses}/{m.jobs_with_deadline} ({m.deadline_misses_colocation})",
                "colocated": f"{m.colocated_jobs}", "undos": f"{m.undos}",
            })
    return rows


_BEYOND_COLUMNS = [("load", "load"), ("policy", "policy"), ("energy", "energy /FIFO"), ("runtime", "avg runtime /FIFO"),
                   ("total_time", "avg total time /FIFO"), ("misses", "deadline misses (by sharing)"),
                   ("colocated", "co-located jobs"), ("undos", "undos")]


def beyond_paper_table(study: StudyResult) -> Table:
    table = Table(title="beyond the paper (28 nodes): EaCO with the paper's rules only vs ours")
    for _, label in _BEYOND_COLUMNS:
        table.add_column(label, justify="left" if label in ("load", "policy") else "right")
    for row in beyond_paper_rows(study):
        table.add_row(*(row[k] for k, _ in _BEYOND_COLUMNS))
    return table


_SEED_COLUMNS = ("seed", "energy /FIFO", "energy /Gandiva", "avg runtime /FIFO", "misses (by sharing)", "targets met")


def seeds_table(study: StudyResult) -> Table:
    table = Table(title="EaCO at 28 nodes on other workloads (same generator, other seeds)")
    for name in _SEED_COLUMNS:
        table.add_column(name, justify="right")
    for r in seed_rows(study):
        table.add_row(*_seed_cells(r))
    return table


def _seed_cells(r: SeedRow) -> list[str]:
    return [str(r.seed), f"{r.energy_vs_fifo:.3f}", f"{r.energy_vs_gandiva:.3f}", f"{r.runtime_vs_fifo:.3f}",
            f"{r.misses}/{r.jobs_with_deadline} ({r.misses_by_sharing})", "yes" if r.targets_met else "no"]


def targets_table(study: StudyResult) -> Table:
    table = Table(title="targets (issue 3), main 28-node run")
    for name in ("target", "ours", "limit", "met"):
        table.add_column(name, justify="left" if name == "target" else "right")
    for t in study.targets:
        table.add_row(t.name, f"{t.value:.3f}", t.limit, "yes" if t.met else "NO")
    return table


def _markdown_table(study: StudyResult, group: str, nodes: int) -> str:
    rows = comparison_rows(study, group, nodes)
    keys = [(k, label) for k, label in _COLUMNS if group == "main" or not k.endswith("_paper")]
    lines = ["| " + " | ".join(label for _, label in keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(row[k] for k, _ in keys) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures
def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fig_energy_runtime(path: Path, study: StudyResult) -> Path:
    """Paper Fig. 3: energy and average runtime per policy, normalised to FIFO, per cluster size."""
    plt = _plt()
    nodes_list = study.config.node_counts
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(nodes_list)
    x = np.arange(len(POLICIES))
    for i, nodes in enumerate(nodes_list):
        fifo = study.find("main", nodes, "fifo").metrics
        energy = [study.find("main", nodes, p).metrics.energy_kwh / fifo.energy_kwh for p in POLICIES]
        runtime = [study.find("main", nodes, p).metrics.run_time_s.mean / fifo.run_time_s.mean for p in POLICIES]
        axes[0].bar(x + i * width, energy, width, label=f"{nodes} nodes")
        axes[1].bar(x + i * width, runtime, width, label=f"{nodes} nodes")
    axes[0].set_title("Total energy (normalised to FIFO)")
    axes[1].set_title("Average job runtime (normalised to FIFO)")
    for ax in axes:
        ax.set_xticks(x + width * (len(nodes_list) - 1) / 2, POLICIES)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fig_active_nodes(path: Path, study: StudyResult, nodes: int, group: str = "main") -> Path:
    """Paper Fig. 4: active nodes over time."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    for policy in POLICIES:
        r = study.find(group, nodes, policy).result
        t = np.append(np.asarray(r.timeseries.time_s, float), r.makespan_s)
        y = np.asarray(r.timeseries.active_nodes, float)
        y = np.append(y, y[-1] if y.size else 0.0)
        tg, yg = _step_downsample(t, y)
        ax.step(tg / S_PER_H, yg, where="post", label=policy, linewidth=1)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("active nodes")
    ax.set_ylim(0, nodes * 1.05)
    ax.set_title(f"Active nodes over time, {nodes} nodes x 8 V100")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fig_tradeoff(path: Path, study: StudyResult) -> Path:
    """Energy vs average JCT: EaCO's settings swept, the baselines as points."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5))
    points = tradeoff_points(study)
    seeds = points[0].seeds if points else 0
    for prefix, marker in (("alpha=", "o-"), ("util_threshold=", "s--")):
        pts = [p for p in points if p.setting.startswith(prefix)]
        if not pts:
            continue
        xs = [p.jct_h for p in pts]
        ys = [p.energy_kwh for p in pts]
        ax.plot(xs, ys, marker, label=f"EaCO, {prefix[:-1]} swept")
        for p, xv, yv in zip(pts, xs, ys):
            ax.annotate(p.setting.split("=")[1], (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("average JCT (h)")
    ax.set_ylabel("total energy (kWh)")
    ax.set_title(f"EaCO energy vs JCT, 28 nodes (mean of {seeds} workloads)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- files
def write_reproduce_report(out_dir: Path, study: StudyResult, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    cfg = study.config
    figs = []
    if all(n in cfg.node_counts for n in (28,)):
        figs.append(fig_energy_runtime(out_dir / "fig3_energy_runtime.png", study))
        figs.append(fig_tradeoff(out_dir / "tradeoff.png", study))
    for nodes in cfg.node_counts:
        figs.append(fig_active_nodes(out_dir / f"fig4_active_nodes_{nodes}.png", study, nodes))
    written.extend(figs)

    runs_csv = out_dir / "runs.csv"
    rows = []
    for r in study.runs:
        row = {"group": r.group, "nodes": r.nodes, "label": r.label}
        row.update(metrics_row(r.metrics))
        rows.append(row)
    with open(runs_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written.append(runs_csv)

    payload = {
        "command": command,
        "config": _clean(_config_dict(study)),
        "workload": study.workload.name,
        "num_jobs": study.workload.num_jobs,
        "wall_s": study.wall_s,
        "targets": [{"name": t.name, "value": t.value, "limit": t.limit, "met": t.met} for t in study.targets],
        "runs": [
            {"group": r.group, "nodes": r.nodes, "label": r.label, "metrics": _clean(r.metrics.to_dict())}
            for r in study.runs
        ],
    }
    json_path = out_dir / "reproduce.json"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    written.append(json_path)

    md = out_dir / "report.md"
    md.write_text(_markdown(study, command))
    written.insert(0, md)
    return written


def _config_dict(study: StudyResult) -> dict:
    from dataclasses import asdict

    return asdict(study.config)


def _extra_rules(settings: EacoSettings) -> str:
    """The optional rules beyond the paper that ``settings`` turns on, as a phrase to append."""
    extra = []
    if settings.reserve:
        extra.append("an urgent job that cannot be placed gets the node that frees first held for it")
    if settings.consolidate:
        extra.append("lightly loaded nodes are emptied by moving their jobs at epoch ends so that they sleep")
    return "".join(f"; {e}" for e in extra)


def _markdown(study: StudyResult, command: str) -> str:
    cfg = study.config
    parts = [
        "# EaCO: reproduction of the paper's simulation study",
        "",
        f"Produced by `{command}` in {study.wall_s:.0f} s. Every number below comes from `runs.csv` / "
        "`reproduce.json` in this folder.",
        "",
        "## Set-up",
        "",
        f"- Workload `{study.workload.name}`: {study.workload.num_jobs:,} jobs, Poisson arrivals at "
        f"{cfg.arrival_rate_per_h:g}/h, durations and GPU counts from the bundled Philly distribution "
        f"(Gavel's generator), job types by rule `{cfg.job_type_rule}`, seed {cfg.seed}.",
        f"- SLOs: {cfg.slo.describe()}.",
        f"- EaCO settings: {cfg.eaco}.",
        "- Energy: calibrated V100 power curve, Fan-Weber-Barroso host model, node baseline; empty "
        "nodes sleep only under EaCO (it manages node power); the baselines, as published, leave them idle.",
        "- Paper numbers: `src/eaco/data/paper_simulation.csv` (derived from the published percentages).",
        "",
        "## Targets",
        "",
        "| target | ours | limit | met |",
        "|---|---|---|---|",
    ]
    for t in study.targets:
        parts.append(f"| {t.name} | {t.value:.3f} | {t.limit} | {'yes' if t.met else 'NO'} |")
    for nodes in cfg.node_counts:
        parts += ["", f"## {nodes} nodes x 8 V100 (ours vs paper, normalised to FIFO)", "",
                  _markdown_table(study, "main", nodes), "",
                  f"![active nodes](fig4_active_nodes_{nodes}.png)"]
    parts += ["", "## Energy and runtime (paper Fig. 3)", "", "![energy and runtime](fig3_energy_runtime.png)"]
    if study.group("tradeoff"):
        points = tradeoff_points(study)
        parts += ["", f"## Energy vs JCT trade-off (EaCO settings swept, 28 nodes, mean of {points[0].seeds} "
                  "workloads with seeds " + ", ".join(str(s) for s in cfg.tradeoff_seeds) + ")", "",
                  "| setting | energy kWh | avg JCT h | avg runtime h | co-located jobs | undos |", "|---|---|---|---|---|---|"]
        for p in points:
            parts.append(f"| {p.setting} | {p.energy_kwh:,.0f} | {p.jct_h:.2f} | {p.run_time_h:.2f} "
                         f"| {p.colocated_jobs:.0f} | {p.undos:.1f} |")
        parts += ["", "![trade-off](tradeoff.png)"]
    if study.group("sleep-all"):
        parts += ["", "## Sensitivity: every policy sleeps empty nodes (28 nodes)", "",
                  _markdown_table(study, "sleep-all", 28)]
    if study.group("uniform-types"):
        parts += ["", "## Sensitivity: job types uniform over the catalogue (Gavel's rule, 28 nodes)", "",
                  _markdown_table(study, "uniform-types", 28)]
    rows = beyond_paper_rows(study)
    if rows:
        parts += ["", "## Beyond the paper: EaCO with the paper's rules only vs ours (28 nodes)", "",
                  "EaCO as the paper describes it lets a job wait whenever no co-location keeps every "
                  "member at `min_speed` and every deadline; under load many jobs then miss their "
                  "deadline in the queue. Ours adds (docs/eaco.md): a job whose deadline is "
                  "already lost is placed best-effort (its own deadline no longer blocks a co-location); "
                  f"a job with little slack left (slack / remaining time < {cfg.eaco.urgent_slack:g}) may "
                  f"share down to a predicted speed of {cfg.eaco.urgent_min_speed:g}, every member's "
                  "deadline still checked" + _extra_rules(cfg.eaco) +
                  f". Heavy load: the same generator at {cfg.heavy_rate_per_h:g} jobs/h.",
                  "", "| " + " | ".join(label for _, label in _BEYOND_COLUMNS) + " |", "|" + "---|" * len(_BEYOND_COLUMNS)]
        for row in rows:
            parts.append("| " + " | ".join(row[k] for k, _ in _BEYOND_COLUMNS) + " |")
    if study.sizing:
        lo, hi = study.sizing[0].lo, study.sizing[0].hi
        parts += ["", "## Beyond the paper: the fewest nodes that keep the deadlines (main workload)", "",
                  f"Per policy, the fewest nodes of {study.sizing[0].shape.describe()} (searched in {lo}-{hi} by "
                  f"bisection, as `eaco simulate --smallest`) with {cfg.sizing_target.describe()}; every size tried "
                  "is in `runs.csv` (group `sizing`). The tables above compare what one cluster draws under each "
                  "policy; this is how much cluster each policy needs for the same deadlines.", ""]
        parts += md_table(SIZING_HEADER, sizing_rows(study.sizing))
    rows_by_seed = seed_rows(study)
    if len(rows_by_seed) > 1:
        n = len(rows_by_seed)
        parts += ["", "## Other workloads: the 28-node comparison on other seeds", "",
                  "The same generator and settings with other seeds (the first row is the main workload). "
                  "Targets as above, per workload.", ""]
        parts += md_table(_SEED_COLUMNS, [_seed_cells(r) for r in rows_by_seed])
        e_fifo = estimate([r.energy_vs_fifo for r in rows_by_seed])
        e_gandiva = estimate([r.energy_vs_gandiva for r in rows_by_seed])
        e_runtime = estimate([r.runtime_vs_fifo for r in rows_by_seed])
        parts += ["", f"Mean over the {n} workloads, with its 95% confidence interval (Student's t over the seeds): "
                  f"energy {_mean_ci(e_fifo)} x FIFO (range {e_fifo.min:.3f}-{e_fifo.max:.3f}), "
                  f"{_mean_ci(e_gandiva)} x Gandiva, runtime {_mean_ci(e_runtime)} x FIFO; every target met on "
                  f"{sum(r.targets_met for r in rows_by_seed)} of {n}."]
    if study.group("philly"):
        philly_nodes = study.group("philly")[0].nodes
        parts += ["", f"## Full Philly trace on the Philly machine list ({philly_nodes} nodes)", "",
                  _markdown_table(study, "philly", philly_nodes)]
    parts += ["", "## Where we differ from the paper, and why", "", *_differences(study), ""]
    return "\n".join(parts)


def _mean_ci(e: Estimate) -> str:
    return f"{e.mean:.3f}" if e.n < 2 else f"{e.mean:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]"


def _differences(study: StudyResult) -> list[str]:
    out = [
        "- The paper does not name its trace, its SLOs or EaCO's thresholds; we use a Gavel-style "
        "generated workload, the SLO rule above and our documented defaults (docs/eaco.md).",
        "- Our baselines place jobs best-fit on as few nodes as possible (Gavel hands out worker "
        "ids in order), so their active-node counts are already lower than a spread placement; "
        "EaCO's active-node reduction against them is therefore smaller than the paper's.",
        "- Co-location speeds come from measured data (Gavel's pairs, the paper's sets) and a "
        "fitted model for unmeasured sets; EaCO plans with its own history H, which differs from "
        "that ground truth, so it sometimes undoes a co-location after observing it.",
    ]
    if 28 in study.config.node_counts:
        runs = _to_common_end(study, "main", 28)
        fifo, eaco = runs["fifo"], runs["eaco"]
        end_s = max(m.makespan_s for m in runs.values())
        out.append(
            "- 'energy /FIFO' counts each policy's energy until its own last completion, as the paper "
            "appears to; 'energy to common end' counts every policy until the latest last completion "
            f"({end_s / 3600:.1f} h at 28 nodes), the early finisher's empty cluster drawing its idle or "
            f"sleep power meanwhile: EaCO {eaco.energy_common_end_kwh / fifo.energy_common_end_kwh:.2f}x "
            f"FIFO on that measure vs {eaco.energy_kwh / fifo.energy_kwh:.2f}x on the first."
        )
    if study.group("beyond-paper"):
        paper = study.find("beyond-paper", 28, "eaco", PAPER_RULES_LABEL).metrics
        fifo = study.find("main", 28, "fifo").metrics
        out.append(
            "- EaCO in these tables runs with our rules beyond the paper (urgent jobs may share more, "
            "late jobs are best-effort" + _extra_rules(study.config.eaco) +
            "; section 'Beyond the paper'). With the paper's rules only it uses "
            f"{paper.energy_kwh / fifo.energy_kwh:.3f}x FIFO's energy at 28 nodes and misses "
            f"{paper.deadline_misses} deadlines instead of {study.find('main', 28, 'eaco').metrics.deadline_misses}."
        )
    rows_by_seed = seed_rows(study)
    if len(rows_by_seed) > 1:
        worst = max(rows_by_seed, key=lambda r: r.energy_vs_fifo)
        out.append(
            f"- One workload is one sample: on {len(rows_by_seed)} seeds of the same generator EaCO uses "
            f"{min(r.energy_vs_fifo for r in rows_by_seed):.2f}-{worst.energy_vs_fifo:.2f}x FIFO's energy "
            f"(seed {worst.seed} the most); how much it saves depends on how under-used the GPUs of "
            "that workload's jobs are (section 'Other workloads')."
        )
    if 64 in study.config.node_counts and 28 in study.config.node_counts:
        m64 = study.find("main", 64, "fifo").metrics
        e64 = study.find("main", 64, "eaco").metrics.energy_kwh / m64.energy_kwh
        out.append(
            f"- At 64 nodes the workload never over-subscribes the GPUs (FIFO's mean wait is "
            f"{m64.waiting_s.mean / 3600:.2f} h), so the packing baselines never pack and equal FIFO, as in "
            f"the paper; EaCO's {e64:.2f}x FIFO energy is below the paper's 0.61 because the baselines "
            "keep every empty node awake for the whole run."
        )
        e28 = study.find("main", 28, "eaco").metrics.total_time_s.mean / study.find("main", 28, "fifo").metrics.total_time_s.mean
        out.append(
            f"- Job total time: the paper reports 'up to 97%' lower than FIFO (its best case); our mean "
            f"over all jobs at 28 nodes is {e28:.2f}x FIFO. The reduction comes from sharing GPUs instead "
            "of queueing; how large it is depends on how congested FIFO is, which the unnamed trace decides."
        )
    if study.group("sleep-all"):
        e = study.find("sleep-all", 28, "eaco").metrics.energy_kwh / study.find("sleep-all", 28, "fifo").metrics.energy_kwh
        out.append(
            f"- Much of EaCO's saving over FIFO comes from sleeping empty nodes: when every policy may "
            f"sleep them, EaCO uses {e:.2f}x FIFO's energy (sensitivity table)."
        )
    if study.group("uniform-types"):
        e = study.find("uniform-types", 28, "eaco").metrics.energy_kwh / study.find("uniform-types", 28, "fifo").metrics.energy_kwh
        out.append(
            f"- With job types drawn uniformly from the catalogue (many GPU-heavy types that share "
            f"poorly), EaCO uses {e:.2f}x FIFO's energy: the saving depends on how under-used the "
            "GPUs are, which is why we draw types to match Philly's measured utilisation."
        )
    return out
