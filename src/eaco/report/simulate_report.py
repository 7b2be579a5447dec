"""``report.md`` of an ``eaco simulate`` run: what was run, the metrics table, each policy against
the first one, the figures and what every other file holds. One page a person can open or share;
every number in it is also in ``metrics.json`` / ``metrics.csv``."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from eaco.report.markdown import md_table
from eaco.report.tables import metric_rows
from eaco.sim.metrics import Metrics

REPORT_FILE = "report.md"

# (label in the table, metrics.json key(s) under "meta")
_SETUP = (
    ("command", "command"),
    ("options from", "config"),
    ("workload", "workload"),
    ("workload source", "workload_source"),
    ("cluster", "cluster"),
    ("cluster source", "cluster_source"),
    ("cluster notes", "cluster_notes"),
    ("seed", "seed"),
    ("SLOs", "slos"),
    ("empty nodes sleep", "sleep"),
    ("node low-power state (W)", "sleep_power_w"),
    ("profile stores", "profiles"),
    ("EaCO settings", "eaco_settings"),
    ("electricity cost and carbon", "grid"),
    ("hardware cost", "hardware"),
    ("smallest cluster", "smallest"),
    ("eaco version", "eaco_version"),
    ("Python", "python"),
)

_FILES = (
    ("metrics.json", "every metric of every policy (distributions with mean, p50, p95, p99, max) and the set-up above"),
    ("metrics.csv", "the same, one row per policy"),
    ("jobs_<policy>.csv", "one row per job: submit, start, finish, run and co-located time, energy, undos, moves, GPU types it ran on, deadline"),
    ("timeseries_<policy>.csv", "active nodes, busy GPUs and cluster power at every change"),
    ("energy_hourly_<policy>.csv", "energy per hour of simulated time"),
)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.3f}" if base > 0 else "-"


def relative_rows(metrics: Sequence[Metrics]) -> list[list[str]]:
    """Each policy against the first: energy, average JCT, runtime, waiting and total time."""
    base = metrics[0]
    out = []
    for m in metrics:
        out.append([
            m.policy,
            _ratio(m.energy_kwh, base.energy_kwh),
            _ratio(m.energy_common_end_kwh, base.energy_common_end_kwh)
            if m.energy_common_end_kwh is not None and base.energy_common_end_kwh is not None else "-",
            _ratio(m.jct_s.mean, base.jct_s.mean),
            _ratio(m.run_time_s.mean, base.run_time_s.mean),
            _ratio(m.total_time_s.mean, base.total_time_s.mean),
            _ratio(m.avg_active_nodes, base.avg_active_nodes),
            f"{m.deadline_misses:,} ({m.deadline_misses_colocation:,})",
        ])
    return out


def _value(v: object) -> str:
    if isinstance(v, dict) and "file" in v:  # --config: the file and what it set
        values = v.get("values") or {}
        return f"{v['file']}: " + ", ".join(f"{k.replace('_', '-')}={val}" for k, val in values.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) if v else "none"
    return str(v)


def write_simulate_report(out_dir: Path, metrics: Sequence[Metrics], meta: Mapping[str, object],
                          figures: Sequence[Path] = (), notes: Sequence[str] = (), currency: str = "USD",
                          sections: Sequence[Sequence[str]] = ()) -> Path:
    """Write ``out_dir/report.md``; ``figures`` are PNGs in ``out_dir``; ``notes`` are the
    warnings the command printed; ``sections`` (Markdown lines each, their own heading first)
    come before the metrics."""
    title = f"{meta.get('workload', 'workload')} on {meta.get('cluster', 'cluster')}"
    lines = [f"# eaco simulate: {title}", ""]
    lines += md_table(["set-up", ""], [[label, f"`{_value(meta[key])}`" if key == "command" else _value(meta[key])]
                                       for label, key in _SETUP if key in meta])
    for section in sections:
        lines += ["", *section]
    lines += ["", "## Metrics", ""]
    lines += md_table(["metric", *(m.policy for m in metrics)], [[label, *cells] for label, cells in metric_rows(list(metrics), currency)])
    if len(metrics) > 1:
        base = metrics[0].policy
        lines += ["", f"## Against {base}", "",
                  f"Each policy's figure divided by {base}'s (below 1: less). Energy to the common end adds the "
                  "idle or sleeping cluster after a policy's last job until the last policy's, so that policies "
                  "finishing at different times compare over the same span.", ""]
        lines += md_table(["policy", "energy", "energy to common end", "avg JCT", "avg runtime", "avg total time",
                           "avg active nodes", "deadline misses (by sharing)"], relative_rows(metrics))
    types = list(dict.fromkeys(t for m in metrics for t in m.job_gpu_hours_by_type))
    if len(types) > 1:
        lines += ["", "## Where the work ran", "",
                  "GPU-hours the jobs held on each GPU type (GPUs x run time; a GPU two jobs share counts twice; "
                  "`job_gpu_hours_by_type` in `metrics.json`, `gpu_types` per job in the jobs CSVs).", ""]
        lines += md_table(["GPU type", *(m.policy for m in metrics)],
                          [[t, *(f"{m.job_gpu_hours_by_type.get(t, 0.0):,.0f}" for m in metrics)] for t in types])
    counted = [m for m in metrics if m.policy_stats]
    if counted:
        kinds = list(dict.fromkeys(k for m in counted for k in m.policy_stats))
        lines += ["", "## What the policies did", "",
                  "Decisions counted by the policies themselves (`policy_stats` in `metrics.json`; "
                  "docs/eaco.md explains each rule).", ""]
        lines += md_table(["decisions", *(m.policy for m in counted)],
                          [[k.replace("_", " "), *(f"{m.policy_stats.get(k, 0):,}" for m in counted)] for k in kinds])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n.removeprefix('note: ')}" for n in notes]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f.stem.replace('_', ' ')}]({f.name})" for f in figures]
    lines += ["", "## Files", ""] + [f"- `{name}`: {what}" for name, what in _FILES]
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
