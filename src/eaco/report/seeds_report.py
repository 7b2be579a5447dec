"""What ``eaco simulate --seeds`` writes at the top of its output folder: every run on every
seed (``seeds.csv``), the estimates over the seeds (``summary.csv``, ``summary.json``), a
figure of each run's energy against the reference seed by seed (``seeds_energy.png``) and a
``report.md`` that links each seed's own report (``seed-N/report.md``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

from rich.table import Table

from eaco.report.files import metrics_row
from eaco.report.markdown import md_table
from eaco.report.seed_stats import CONFIDENCE, SUMMARY_METRICS, Estimate, RunSummary
from eaco.sim.metrics import Metrics
from eaco.units import S_PER_H

SEED_DIR = "seed-{seed}"
_PCT = f"{CONFIDENCE:.0%}"


def seed_dir(out_dir: Path, seed: int) -> Path:
    return out_dir / SEED_DIR.format(seed=seed)


def _pm(e: Estimate | None, scale: float = 1.0, fmt: str = ",.0f") -> str:
    """``mean ± half-width`` (``mean`` alone with one seed)."""
    if e is None:
        return "-"
    if not math.isfinite(e.half_width):
        return format(e.mean / scale, fmt)
    return f"{format(e.mean / scale, fmt)} ± {format(e.half_width / scale, fmt)}"


def _ratio(e: Estimate | None) -> str:
    """``mean [low, high]`` of a ratio."""
    if e is None:
        return "-"
    if not math.isfinite(e.half_width):
        return f"{e.mean:.3f}"
    return f"{e.mean:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]"


def _num(v: float) -> str:
    """A figure with as many decimals as its size needs (float noise around 0 shown as 0)."""
    if abs(v) < 1e-9:
        return "0"
    if abs(v) >= 1000 or v == round(v):
        return f"{v:,.0f}"
    return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"


def _misses(e: Estimate | None) -> str:
    if e is None:
        return "-"
    return f"{e.mean:,.1f} ({e.min:,.0f}-{e.max:,.0f})"


def summary_rows(summaries: Sequence[RunSummary], reference: str) -> tuple[list[str], list[list[str]]]:
    """The summary table, one column per run (fits a narrow terminal): header and rows."""
    # (label, cell, whether the row compares with the reference: "-" in the reference's column)
    lines: list[tuple[str, Callable[[RunSummary], str], bool]] = [
        ("energy (kWh)", lambda s: _pm(s.values.get("energy_kwh")), False),
        (f"energy / {reference}", lambda s: _ratio(s.ratios.get("energy_kwh")), True),
        (f"less energy than {reference}", lambda s: f"{s.lower_energy_seeds} of {len(s.seeds)}", True),
        ("avg JCT (h)", lambda s: _pm(s.values.get("jct_s_mean"), S_PER_H, ",.2f"), False),
        (f"avg JCT / {reference}", lambda s: _ratio(s.ratios.get("jct_s_mean")), True),
        (f"avg runtime / {reference}", lambda s: _ratio(s.ratios.get("run_time_s_mean")), True),
        (f"avg total time / {reference}", lambda s: _ratio(s.ratios.get("total_time_s_mean")), True),
        ("deadline misses (range)", lambda s: _misses(s.values.get("deadline_misses")), False),
        ("  caused by sharing", lambda s: _misses(s.values.get("deadline_misses_colocation")), False),
    ]
    rows = [[label, *("-" if vs_reference and s.run == reference else cell(s) for s in summaries)]
            for label, cell, vs_reference in lines]
    return ["metric", *(s.run for s in summaries)], rows


def seeds_table(summaries: Sequence[RunSummary], reference: str, title: str) -> Table:
    header, rows = summary_rows(summaries, reference)
    table = Table(title=title)
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def write_seeds_csv(out_dir: Path, per_seed: Sequence[tuple[int, Sequence[Metrics]]]) -> Path:
    """``seeds.csv``: one row per seed and run, every column of ``metrics.csv``."""
    path = out_dir / "seeds.csv"
    rows = [{"seed": seed, **metrics_row(m)} for seed, metrics in per_seed for m in metrics]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_summary_files(out_dir: Path, summaries: Sequence[RunSummary], meta: Mapping[str, object],
                        reference: str) -> list[Path]:
    """``summary.csv`` (run, metric, kind = value or ratio to the reference, n, mean, std, 95%
    interval, min, max) and ``summary.json`` (the same per run, with the set-up)."""
    csv_path = out_dir / "summary.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["run", "metric", "kind", "n", "mean", "std", "ci95_low", "ci95_high", "min", "max"])
        for s in summaries:
            for kind, got in (("value", s.values), (f"ratio_to_{reference}", s.ratios)):
                for key, e in got.items():
                    d = e.to_dict()
                    writer.writerow([s.run, key, kind, *("" if d[k] is None else d[k] for k in
                                                           ("n", "mean", "std", "ci95_low", "ci95_high", "min", "max"))])
    json_path = out_dir / "summary.json"
    payload = {"meta": dict(meta), "reference": reference, "confidence": CONFIDENCE,
               "runs": [s.to_dict() for s in summaries]}
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return [csv_path, json_path]


def plot_seed_energy(out_path: Path, per_seed: Sequence[tuple[int, Sequence[Metrics]]],
                     summaries: Sequence[RunSummary], reference: str) -> Path:
    """Per run, its energy over the reference's on each seed (dots) and the mean with its 95%
    interval (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = {seed: {m.policy: m for m in metrics}.get(reference) for seed, metrics in per_seed}
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(summaries) + 2), 4))
    for i, s in enumerate(summaries):
        ratios = []
        for seed, metrics in per_seed:
            mine = next((m for m in metrics if m.policy == s.run), None)
            base = ref.get(seed)
            if mine is not None and base is not None and base.energy_kwh > 0:
                ratios.append(mine.energy_kwh / base.energy_kwh)
        ax.scatter([i] * len(ratios), ratios, s=14, color="0.45", zorder=3)
        e = s.ratios.get("energy_kwh")
        if e is not None:
            err = [[e.mean - e.ci_low], [e.ci_high - e.mean]] if math.isfinite(e.half_width) else None
            ax.bar(i, e.mean, width=0.6, alpha=0.55, yerr=err, capsize=6)
    ax.axhline(1.0, color="k", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(summaries)))
    ax.set_xticklabels([s.run for s in summaries], rotation=20, ha="right")
    ax.set_ylabel(f"energy / {reference}'s, same seed")
    ax.set_title(f"{len(per_seed)} seeds: mean and {_PCT} interval (bars), each seed (dots)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path


def write_seeds_report(out_dir: Path, summaries: Sequence[RunSummary], meta: Mapping[str, object],
                       reference: str, seeds: Sequence[int], figures: Sequence[Path] = (),
                       sections: Sequence[Sequence[str]] = ()) -> Path:
    """``report.md``: set-up, the summary table, ``sections`` (Markdown lines, heading first), the
    per-metric estimates, links to each seed."""
    title = f"{meta.get('workload', 'workload')} on {meta.get('cluster', 'cluster')}"
    lines = [f"# eaco simulate over {len(seeds)} seeds: {title}", "",
             f"- command: `{meta.get('command', '')}`",
             f"- seeds: {', '.join(str(s) for s in seeds)} (each seed draws its own workload"
             " where the workload is generated, and its own job types and SLOs where they are assigned)",
             f"- reference run: {reference} (ratios are taken seed by seed, then averaged)",
             f"- intervals: {_PCT} confidence interval of the mean over the seeds (Student's t); "
             "`±` gives its half-width, `[low, high]` its ends (cut at 0: no metric here can be negative)", ""]
    header, rows = summary_rows(summaries, reference)
    lines += ["## Summary", ""] + md_table(header, rows)
    for section in sections:
        lines += ["", *section]
    labels = dict(SUMMARY_METRICS)
    keys = [k for k, _ in SUMMARY_METRICS if any(k in s.values for s in summaries)]
    lines += ["", "## Every metric: mean [95% interval] (min-max)", ""]
    cells = []
    for k in keys:
        scale = S_PER_H if k.endswith("_s") or k.endswith("_s_mean") else 1.0
        row = [labels[k].replace("(s)", "(h)")]
        for s in summaries:
            e = s.values.get(k)
            if e is None:
                row.append("-")
            elif math.isfinite(e.half_width):
                row.append(f"{_num(e.mean / scale)} [{_num(e.ci_low / scale)}, {_num(e.ci_high / scale)}] "
                           f"({_num(e.min / scale)}-{_num(e.max / scale)})")
            else:
                row.append(_num(e.mean / scale))
        cells.append(row)
    lines += md_table(["metric", *(s.run for s in summaries)], cells)
    if figures:
        lines += ["", "## Figures", ""] + [f"![{f.stem.replace('_', ' ')}]({f.name})" for f in figures]
    lines += ["", "## Each seed", ""]
    lines += [f"- seed {s}: [{SEED_DIR.format(seed=s)}/report.md]({SEED_DIR.format(seed=s)}/report.md)" for s in seeds]
    lines += ["", "## Files", "",
              "- `seeds.csv`: every run on every seed, the columns of `metrics.csv` plus `seed`",
              "- `summary.csv`: per run and metric, its value over the seeds (`kind` value) and its ratio "
              f"to {reference} (`kind` ratio_to_{reference}): n, mean, std, ci95_low, ci95_high, min, max",
              "- `summary.json`: the same per run, with the set-up",
              "- `seed-N/`: each seed's own output (report, metrics, per-job CSVs, time series)"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
