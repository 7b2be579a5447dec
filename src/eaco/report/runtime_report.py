"""``eaco report``: what the live runtime ran, as files a person opens and a program reads.

Built from the runtime's state folder alone (its SQLite store and the GPUs it recorded), so it
works while the daemon runs, after it stopped, or on a copy of the folder:

- ``jobs.csv``: per job, the figures of ``eaco status --summary`` (state, JCT, runtime, waiting,
  time shared, attributed energy, attempts, undos, moves, exclusive epoch time) plus its job
  type, GPU count and deadline from the spec;
- ``attempts.csv``: every attempt: job, GPUs, start, end, duration, outcome, exit code, shared;
- ``energy_hourly.csv``: the cluster's energy per UTC hour (as the daemon writes it);
- ``summary.json``: the summary (counts, mean JCT, co-located jobs, undos) and the energy
  totals over every hour the store holds;
- ``timeline.png``: per GPU, each attempt as a bar from its start to its end; attempts that
  overlap on a GPU (co-located by time-slicing) are drawn in lanes one above the other, so
  sharing shows as stacked bars; an attempt stopped to undo or move is hatched;
- ``report.md``: all of the above on one page.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from eaco.errors import InputError
from eaco.report.markdown import md_table
from eaco.runtime.layout import StateLayout
from eaco.runtime.spec import JobSpec
from eaco.runtime.store import AttemptRow, Store
from eaco.runtime.summary import HOURLY_FILE, build_summary, shared_split_sentence, write_hourly_energy
from eaco.runtime.trace_export import runtime_gpus
from eaco.units import J_PER_KWH

MAX_ROWS_IN_REPORT = 200  # jobs / attempts listed in report.md (every one is in the CSVs)
JOB_COLUMNS = ("job_id", "name", "state", "job_type", "num_gpus", "gpu_type", "deadline_unix", "missed_deadline",
               "first_start_unix", "finish_unix", "jct_s", "run_time_s", "waiting_s", "total_time_s", "colocated_s",
               "energy_j", "attempts", "undos", "migrations", "epochs_done", "exclusive_epoch_s", "reason")
ATTEMPT_COLUMNS = ("job_id", "name", "attempt", "gpus", "start_unix", "end_unix", "duration_s", "outcome",
                   "exit_code", "colocated")
STOPPED_OUTCOMES = ("stopped",)  # asked to stop at an epoch end: an undo or a move


@dataclass(frozen=True, slots=True)
class RuntimeReport:
    out: Path
    files: tuple[Path, ...]
    jobs: int
    attempts: int
    colocated_jobs: int
    energy_kwh: float


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def _lanes(attempts: Sequence[tuple[float, float, Any]]) -> list[tuple[int, int]]:
    """For intervals (start, end, key) on one GPU: per interval, its lane (the lowest free at its
    start) and the number of lanes of the group of overlapping intervals it belongs to."""
    order = sorted(range(len(attempts)), key=lambda i: (attempts[i][0], attempts[i][1]))
    lane_of = [0] * len(attempts)
    group_of = [0] * len(attempts)
    groups: list[int] = []  # group -> lanes used
    lane_end: list[float] = []
    group_end = -math.inf
    for i in order:
        start, end, _ = attempts[i]
        if start >= group_end:  # nothing running: a new group
            groups.append(0)
            lane_end = []
        lane = next((k for k, e in enumerate(lane_end) if e <= start), None)
        if lane is None:
            lane = len(lane_end)
            lane_end.append(end)
        else:
            lane_end[lane] = end
        lane_of[i], group_of[i] = lane, len(groups) - 1
        groups[-1] = max(groups[-1], lane + 1)
        group_end = max(group_end, end) if start < group_end else end
    return [(lane_of[i], groups[group_of[i]]) for i in range(len(attempts))]


def plot_timeline(path: Path, attempts: Sequence[AttemptRow], names: dict[int, str], origin_unix: float, now_unix: float) -> Path:
    """``timeline.png`` (module docs): GPUs on the y axis, time since ``origin_unix`` on x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    span_s = max(1.0, max((a.end_unix or now_unix) for a in attempts) - origin_unix)
    unit, scale = ("h", 3600.0) if span_s > 3 * 3600 else ("min", 60.0) if span_s > 180 else ("s", 1.0)
    gpus = sorted({g for a in attempts for g in a.gpus})
    row = {g: i for i, g in enumerate(gpus)}
    jobs = sorted({a.job_id for a in attempts})
    cmap = plt.get_cmap("tab20")
    colour = {j: cmap(k % 20) for k, j in enumerate(jobs)}
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.6 * len(gpus) + 1.5)))
    for g in gpus:
        on_gpu = [a for a in attempts if g in a.gpus]
        spans = [(a.start_unix, a.end_unix or now_unix, a) for a in on_gpu]
        for (start, end, a), (lane, lanes) in zip(spans, _lanes(spans)):
            height = 0.8 / lanes
            y = row[g] - 0.4 + lane * height
            x0, width = (start - origin_unix) / scale, max((end - start) / scale, span_s / scale / 500)
            ax.broken_barh([(x0, width)], (y, height * 0.92), facecolors=colour[a.job_id], edgecolor="0.25", linewidth=0.5,
                           hatch="//" if a.outcome in STOPPED_OUTCOMES else None)
            if width > span_s / scale / 40:
                ax.text(x0 + width / 2, y + height * 0.46, str(a.job_id), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(gpus)))
    ax.set_yticklabels([f"GPU {g}" for g in gpus])
    ax.set_ylim(-0.6, len(gpus) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(f"time since the first submit ({unit})")
    ax.set_title("Attempts per GPU (stacked: sharing the GPU; hatched: stopped to undo or move)", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[j]) for j in jobs[:20]]
    ax.legend(handles, [f"{j} {names.get(j, '')[:16]}" for j in jobs[:20]], fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), title="job", title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_runtime_report(state_dir: Path, out: Path, plots: bool = True, now_unix: float | None = None) -> RuntimeReport:
    """Write the report of the runtime whose state folder is ``state_dir`` into ``out``."""
    layout = StateLayout(Path(state_dir))
    if not layout.db.exists():
        raise InputError(str(state_dir), f"no runtime state here ({layout.db.name} missing): expected a folder 'eaco serve' used")
    now_unix = time.time() if now_unix is None else now_unix
    _, cluster = runtime_gpus(layout.root)
    store = Store(layout.db)
    try:
        summary = build_summary(store)
        rows = {r.job_id: r for r in store.jobs()}
        attempts = store.attempts()
        energy = store.energy_totals()
        out.mkdir(parents=True, exist_ok=True)
        write_hourly_energy(store, out / HOURLY_FILE)
    finally:
        store.close()
    specs = {j: JobSpec.model_validate_json(r.spec_json) for j, r in rows.items()}
    jobs = []
    for j in summary["jobs"]:
        spec, row = specs[j["job_id"]], rows[j["job_id"]]
        deadline = spec.deadline_after(row.submit_unix)
        # judged on finished jobs only (a failed or cancelled job met no deadline and missed none)
        missed = None if deadline is None or row.state != "finished" or row.finish_unix is None else row.finish_unix > deadline
        jobs.append({**j, "job_type": spec.job_type, "num_gpus": spec.num_gpus, "gpu_type": spec.gpu_type or "",
                     "deadline_unix": deadline, "missed_deadline": missed})
    files = [out / HOURLY_FILE]
    with open(out / "jobs.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(JOB_COLUMNS)
        w.writerows([[_cell(j.get(c)) for c in JOB_COLUMNS] for j in jobs])
    files.append(out / "jobs.csv")
    names = {j: r.name for j, r in rows.items()}
    with open(out / "attempts.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(ATTEMPT_COLUMNS)
        for a in attempts:
            duration = (a.end_unix - a.start_unix) if a.end_unix is not None else None
            w.writerow([a.job_id, names.get(a.job_id, ""), a.attempt, " ".join(str(g) for g in a.gpus), a.start_unix,
                        _cell(a.end_unix), _cell(duration), a.outcome, _cell(a.exit_code), int(a.colocated)])
    files.append(out / "attempts.csv")
    total_j = energy["gpu_busy_j"] + energy["gpu_idle_j"] + energy["host_j"]
    payload = {
        "state_dir": str(layout.root),
        "gpus": cluster,
        "written_unix": now_unix,
        "counts": summary["counts"],
        "mean_jct_s": summary["mean_jct_s"],
        "max_jct_s": summary["max_jct_s"],
        "colocated_jobs": summary["colocated_jobs"],
        "undos": summary["undos"],
        "migrations": summary["migrations"],
        "deadline_misses": sum(1 for j in jobs if j["missed_deadline"]),
        "finished_jobs_with_deadline": sum(1 for j in jobs if j["missed_deadline"] is not None),
        "energy": {**energy, "total_j": total_j, "total_kwh": total_j / J_PER_KWH,
                   "attributed_to_jobs_j": summary["attributed_energy_j"], "since": "the state folder's first accounted hour"},
        "jobs": jobs,
    }
    (out / "summary.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    files.append(out / "summary.json")
    figures = []
    if plots and attempts:
        origin = min(r.submit_unix for r in rows.values())
        figures.append(plot_timeline(out / "timeline.png", attempts, names, origin, now_unix))
    files += figures
    report = _write_markdown(out, payload, attempts, names, figures)
    return RuntimeReport(out, (report, *files), len(jobs), len(attempts), summary["colocated_jobs"], total_j / J_PER_KWH)


def _fmt(value: object, spec: str = ",.1f") -> str:
    return "-" if value is None or value == "" else format(value, spec) if isinstance(value, (int, float)) else str(value)


def _deadline_text(job: dict[str, Any]) -> str:
    if job["deadline_unix"] is None:
        return "-"
    if job["missed_deadline"] is not None:
        return "missed" if job["missed_deadline"] else "met"
    return "pending" if job["state"] in ("queued", "running", "stopping") else "-"


def _write_markdown(out: Path, payload: dict[str, Any], attempts: Sequence[AttemptRow], names: dict[int, str],
                    figures: Sequence[Path]) -> Path:
    e = payload["energy"]
    counts = ", ".join(f"{n} {s}" for s, n in payload["counts"].items() if n) or "none"
    lines = ["# eaco runtime report", "",
             f"- state folder: `{payload['state_dir']}`",
             f"- GPUs: {payload['gpus'] or 'not recorded'}",
             f"- written: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(payload['written_unix']))}",
             f"- jobs: {counts}; co-located {payload['colocated_jobs']}; undos {payload['undos']}; moves {payload['migrations']}; "
             f"deadlines missed {payload['deadline_misses']} of {payload['finished_jobs_with_deadline']} finished jobs with one",
             f"- JCT (finished jobs): mean {_fmt(payload['mean_jct_s'])} s, max {_fmt(payload['max_jct_s'])} s",
             f"- energy over {e['duration_s']:,.0f} s accounted: {e['total_j']:,.0f} J ({e['total_kwh']:.4f} kWh) = GPU busy "
             f"{e['gpu_busy_j']:,.0f} + GPU idle {e['gpu_idle_j']:,.0f} + host {e['host_j']:,.0f} J; attributed to jobs "
             f"{e['attributed_to_jobs_j']:,.0f} J",
             "- GPU energy: " + ("measured through NVML" if e["counter_gpu_s"] + e["power_gpu_s"] > 0 else "modelled (no NVML)")
             + f" (GPU-seconds: energy counter {e['counter_gpu_s']:,.0f}, power readings {e['power_gpu_s']:,.0f}, "
             f"modelled {e['model_gpu_s']:,.0f}); host power modelled",
             "- " + shared_split_sentence(e.get("split_measured_gpu_s", 0.0), e.get("split_declared_gpu_s", 0.0)), ""]
    if figures:
        lines += ["## Timeline", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    jobs = payload["jobs"]
    lines += ["## Jobs", ""]
    lines += md_table(
        ["id", "name", "type", "GPUs", "state", "JCT s", "run s", "wait s", "shared s", "energy J", "tries", "undos", "moves",
         "alone epoch s", "deadline"],
        [[str(j["job_id"]), j["name"], j["job_type"], str(j["num_gpus"]), j["state"], _fmt(j["jct_s"]), _fmt(j["run_time_s"]),
          _fmt(j["waiting_s"]), _fmt(j["colocated_s"]), _fmt(j["energy_j"], ",.0f"), str(j["attempts"]), str(j["undos"]),
          str(j["migrations"]), _fmt(j["exclusive_epoch_s"], ".3g"),
          _deadline_text(j)]
         for j in jobs[:MAX_ROWS_IN_REPORT]])
    if len(jobs) > MAX_ROWS_IN_REPORT:
        lines += ["", f"({len(jobs) - MAX_ROWS_IN_REPORT} more in `jobs.csv`)"]
    t0 = min((a.start_unix for a in attempts), default=0.0)
    lines += ["", "## Attempts", "", "Times in seconds since the first attempt started.", ""]
    lines += md_table(
        ["job", "name", "attempt", "GPUs", "start s", "end s", "outcome", "exit", "shared"],
        [[str(a.job_id), names.get(a.job_id, ""), str(a.attempt), " ".join(str(g) for g in a.gpus), _fmt(a.start_unix - t0),
          _fmt(None if a.end_unix is None else a.end_unix - t0), a.outcome, _fmt(a.exit_code, "d"), "yes" if a.colocated else "no"]
         for a in attempts[:MAX_ROWS_IN_REPORT]])
    if len(attempts) > MAX_ROWS_IN_REPORT:
        lines += ["", f"({len(attempts) - MAX_ROWS_IN_REPORT} more in `attempts.csv`)"]
    lines += ["", "## Files", "",
              "- `jobs.csv`: one row per job (the columns above, in seconds and Unix times)",
              "- `attempts.csv`: one row per attempt",
              f"- `{HOURLY_FILE}`: the cluster's energy per UTC hour, by part",
              "- `summary.json`: counts, JCT, energy totals and every job"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
