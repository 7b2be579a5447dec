"""The profiler's report: our version of the paper's Tables 1-4 and its utilisation-over-time figure.

Files written to the output folder:

- ``report.md``: Tables 1-4 (exclusive energy/time, exclusive utilisation, co-located energy/time
  with the energy saved against the members alone, co-located utilisation) and the provenance.
- ``exclusive.csv`` / ``colocated.csv``: the same columns as the paper's tables in
  ``shared/data/paper/eaco_v100_*.csv`` (kWh, hours, percent), for side-by-side comparison.
- ``paper_comparison.csv``: the models and sets the paper measured too, next to its numbers
  (:mod:`eaco.profiler.paper_compare`); the same as a section of ``report.md``.
- ``fig2_utilisation.png``: GPU utilisation over time of every run (host CPU utilisation where
  no GPU was read), with each job's exit marked.
- ``timeseries/<run>.csv``: every telemetry sample of every run.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from eaco.colocation.profiles import ColocatedProfile, ProfileStore
from eaco.errors import InputError
from eaco.measurements.paper import PaperTables, load_paper_tables
from eaco.profiler.experiment import RunOutcome
from eaco.profiler.paper_compare import PaperComparison, compare_with_paper
from eaco.report.markdown import md_table
from eaco.units import J_PER_KWH, S_PER_H


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.2f}"


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _csv_num(x: float | None, scale: float = 1.0, digits: int = 6) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * scale:.{digits}g}"


def job_ids(store: ProfileStore) -> dict[str, str]:
    """J1, J2, ... in the order of the exclusive rows (the paper's numbering)."""
    return {e.job_type: f"J{i}" for i, e in enumerate(store.exclusive, start=1)}


def _member_utils(c: ColocatedProfile, ids: dict[str, str]) -> str:
    """``J1 41, J3 30``: each member's GPU utilisation in the set (NVML per process), or -."""
    if c.member_gpu_util is None:
        return "-"
    return ", ".join(f"{ids[m]} {100.0 * u:.0f}" for m, u in zip(c.members, c.member_gpu_util))


def _set_name(c: ColocatedProfile, ids: dict[str, str]) -> str:
    return "+".join(sorted((ids[m] for m in c.members), key=lambda j: int(j[1:])))


def markdown_report(store: ProfileStore, comparison: PaperComparison | None = None, no_paper_why: str = "") -> str:
    ids = job_ids(store)
    p = store.provenance
    alone = {e.job_type: e for e in store.exclusive}
    lines = [
        "# Profiling report",
        "",
        f"GPU type `{p.gpu_type}` ({', '.join(p.gpu_names) or 'no GPU'}), driver {p.driver_version or 'n/a'},"
        f" CUDA {p.cuda_version or 'n/a'}, torch {p.torch_version}, eaco {p.eaco_version}; host `{p.host}`;"
        f" {p.created_utc}; telemetry: {p.telemetry} at {p.sample_hz:g} Hz.",
        "",
        f"Command: `{p.command}`",
        "",
        "Energy = GPU energy (NVML energy counter, else integrated board power) + host energy"
        " (Fan-Weber-Barroso model at the sampled CPU utilisation). Utilisation: mean over the run's GPUs"
        " per sample, then mean / max over samples.",
        "",
        "## Table 1: each job alone (power, energy, time)",
        "",
    ]
    lines += md_table(
        ["job", "model", "GPUs", "avg power (W)", "energy (J)", "GPU energy (J)", "JCT (s)", "epoch (s)", "samples/s"],
        [[ids[e.job_type], e.job_type, str(e.num_gpus), _f(e.avg_power_w, 1), _f(e.energy_j, 1), _f(e.gpu_energy_j, 1),
          _f(e.jct_s), _f(e.epoch_s, 3), _f(e.throughput_samples_per_s, 1)] for e in store.exclusive],
    )
    lines += ["", "## Table 2: each job alone (utilisation)", ""]
    lines += md_table(
        ["job", "model", "mem util avg (%)", "mem util max (%)", "GPU util avg (%)", "GPU util max (%)",
         "GPU memory peak (MiB)", "job memory peak (MiB)", "host CPU (%)"],
        [[ids[e.job_type], e.job_type, _pct(e.memory_util_mean), _pct(e.memory_util_max), _pct(e.gpu_util_mean),
          _pct(e.gpu_util_max), _f(e.gpu_memory_mib_peak, 0), _f(e.job_memory_mib_peak, 0),
          _pct(e.host_cpu_util_mean)] for e in store.exclusive],
    )
    lines += ["", "## Table 3: job sets at the same time (power, energy, time)", ""]
    rows = []
    for c in store.colocated:
        mean_alone_jct = sum(alone[m].jct_s for m in c.members) / len(c.members)
        mean_jct = sum(c.member_jct_s) / len(c.member_jct_s)
        rows.append([
            _set_name(c, ids), "+".join(c.members), _f(c.avg_power_w, 1), _f(c.energy_j, 1),
            _f(c.members_alone_energy_j, 1), _pct(c.energy_saved_frac), _f(mean_jct),
            f"{100.0 * (mean_jct / mean_alone_jct - 1.0):+.1f}", _f(sum(c.member_epoch_s) / len(c.member_epoch_s), 3),
            ", ".join(f"{s:.3f}" for s in c.speeds),
        ])
    lines += md_table(
        ["set", "members", "avg power (W)", "energy (J)", "alone (J)", "energy saved (%)", "avg JCT (s)",
         "JCT vs alone (%)", "avg epoch (s)", "speeds"],
        rows,
    )
    lines += ["", "## Table 4: job sets at the same time (utilisation)", ""]
    lines += md_table(
        ["set", "members", "mem util avg (%)", "mem util max (%)", "GPU util avg (%)", "GPU util max (%)",
         "GPU util per member (%)", "GPU memory peak (MiB)", "host CPU (%)"],
        [[_set_name(c, ids), "+".join(c.members), _pct(c.memory_util_mean), _pct(c.memory_util_max),
          _pct(c.gpu_util_mean), _pct(c.gpu_util_max), _member_utils(c, ids), _f(c.gpu_memory_mib_peak, 0),
          _pct(c.host_cpu_util_mean)]
         for c in store.colocated],
    )
    lines += ["", "Speeds: each member's exclusive epoch time / its epoch time while all members trained"
              " (docs/profiler.md). Figure: `fig2_utilisation.png`.", ""]
    lines += _comparison_section(comparison, no_paper_why)
    return "\n".join(lines)


def _comparison_section(comparison: PaperComparison | None, no_paper_why: str) -> list[str]:
    lines = ["## Compared with the paper (8 x V100, Tables 1-4)", ""]
    if comparison is None:
        return lines + [f"Not compared: {no_paper_why or 'the paper tables were not read'}.", ""]
    if not comparison.exclusive and not comparison.sets:
        return lines + ["None of the paper's jobs (AlexNet, ResNet-18, ResNet-50, VGG-16) is in this profile.", ""]
    lines += ["The paper's runs took about 35 h on a whole node, a profile minutes: only ratios and utilisation"
              " are compared (`paper_comparison.csv`).", ""]
    if comparison.exclusive:
        lines += md_table(["job", "model", "GPU util avg, paper (%)", "GPU util avg, ours (%)"],
                           [[e.job, e.model, _pct(e.paper_gpu_util), _pct(e.ours_gpu_util)] for e in comparison.exclusive])
        lines.append("")
    if comparison.sets:
        lines += md_table(
            ["set", "models", "energy saved, paper (%)", "energy saved, ours (%)", "JCT vs alone, paper (%)",
             "JCT vs alone, ours (%)", "GPU util avg, paper (%)", "GPU util avg, ours (%)"],
            [[c.job_set, "+".join(c.models), _pct(c.paper_energy_saved_frac), _pct(c.ours_energy_saved_frac),
              f"{100 * c.paper_jct_vs_alone:+.1f}", f"{100 * c.ours_jct_vs_alone:+.1f}", _pct(c.paper_gpu_util),
              _pct(c.ours_gpu_util)] for c in comparison.sets])
        lines += ["", comparison.summary()]
    if comparison.paper_sets_not_profiled:
        lines += ["", f"Sets the paper measured that this profile has not: {', '.join(comparison.paper_sets_not_profiled)}."]
    return lines + [""]


def write_comparison_csv(comparison: PaperComparison, path: Path) -> Path:
    """One row per compared job or set: ``kind`` (alone/set), names, paper and ours side by side."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["kind", "name", "models", "paper_energy_saved_pct", "ours_energy_saved_pct", "paper_jct_vs_alone_pct",
                    "ours_jct_vs_alone_pct", "paper_gpu_util_avg_pct", "ours_gpu_util_avg_pct"])
        for e in comparison.exclusive:
            w.writerow(["alone", e.job, e.model, "", "", "", "", _csv_num(e.paper_gpu_util, 100), _csv_num(e.ours_gpu_util, 100)])
        for c in comparison.sets:
            w.writerow(["set", c.job_set, "+".join(c.models), _csv_num(c.paper_energy_saved_frac, 100),
                        _csv_num(c.ours_energy_saved_frac, 100), _csv_num(c.paper_jct_vs_alone, 100),
                        _csv_num(c.ours_jct_vs_alone, 100), _csv_num(c.paper_gpu_util, 100), _csv_num(c.ours_gpu_util, 100)])
    return path


def write_paper_csvs(store: ProfileStore, out_dir: Path) -> tuple[Path, Path]:
    """``exclusive.csv`` and ``colocated.csv`` in the columns of ``shared/data/paper/eaco_v100_*.csv``."""
    ids = job_ids(store)
    ex_path, co_path = out_dir / "exclusive.csv", out_dir / "colocated.csv"
    with open(ex_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["job", "model", "node_gpus", "avg_node_power_w", "energy_kwh", "jct_h", "epoch_h",
                    "mem_util_avg_pct", "mem_util_max_pct", "gpu_util_avg_pct", "gpu_util_max_pct"])
        for e in store.exclusive:
            w.writerow([ids[e.job_type], e.job_type, e.num_gpus, _csv_num(e.avg_power_w), _csv_num(e.energy_j, 1 / J_PER_KWH),
                        _csv_num(e.jct_s, 1 / S_PER_H), _csv_num(e.epoch_s, 1 / S_PER_H),
                        _csv_num(e.memory_util_mean, 100), _csv_num(e.memory_util_max, 100),
                        _csv_num(e.gpu_util_mean, 100), _csv_num(e.gpu_util_max, 100)])
    with open(co_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["job_set", "avg_node_power_w", "energy_kwh", "avg_jct_h", "avg_epoch_h", "mem_util_avg_pct",
                    "mem_util_max_pct", "gpu_util_avg_pct", "gpu_util_max_pct", "energy_saved_pct"])
        for c in store.colocated:
            w.writerow([_set_name(c, ids), _csv_num(c.avg_power_w), _csv_num(c.energy_j, 1 / J_PER_KWH),
                        _csv_num(sum(c.member_jct_s) / len(c.member_jct_s), 1 / S_PER_H),
                        _csv_num(sum(c.member_epoch_s) / len(c.member_epoch_s), 1 / S_PER_H),
                        _csv_num(c.memory_util_mean, 100), _csv_num(c.memory_util_max, 100),
                        _csv_num(c.gpu_util_mean, 100), _csv_num(c.gpu_util_max, 100),
                        _csv_num(c.energy_saved_frac, 100)])
    return ex_path, co_path


def write_timeseries(run: RunOutcome, out_dir: Path) -> Path:
    """Every sample of a run: host rows (cpu_util, host_power_w) and GPU rows (one per GPU and sample)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{run.run_id}.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time_s", "source", "gpu_index", "power_w", "energy_counter_j", "util_pct", "memory_used_mib",
                    "cpu_util", "host_power_w"])
        for h in run.host_samples:
            w.writerow([f"{h.time_s:.3f}", "host", "", "", "", "", "", f"{h.cpu_util:.4f}", f"{h.host_power_w:.2f}"])
        for s in run.gpu_samples:
            for r in s.readings:
                w.writerow([f"{s.time_s:.3f}", "gpu", r.index, _csv_num(r.power_w), _csv_num(r.energy_counter_j, 1, 12),
                            _csv_num(r.util_pct), _csv_num(r.memory_used_mib), "", ""])
    return path


def plot_utilisation(runs: Sequence[RunOutcome], path: Path) -> Path:
    """Paper Fig. 2: utilisation over time, one panel per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(runs))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, run in zip(axes.flat, runs):
        gpu = [(s.time_s, sum(r.util_pct for r in s.readings) / len(s.readings))
               for s in run.gpu_samples if s.readings and all(r.util_pct is not None for r in s.readings)]  # type: ignore[misc]
        if gpu:
            ax.plot([t for t, _ in gpu], [u for _, u in gpu], lw=1.0, color="tab:green")
            ax.set_ylabel("GPU util (%)")
        else:
            ax.plot([h.time_s for h in run.host_samples], [100 * h.cpu_util for h in run.host_samples], lw=1.0,
                    color="tab:blue")
            ax.set_ylabel("host CPU util (%)\n(no GPU telemetry)")
        for job in run.jobs:
            ax.axvline(job.exit_s, color="grey", ls=":", lw=0.8)
        ax.set_title(run.run_id.replace("alone-", "alone: ").replace("set-", "together: "), fontsize=9)
        ax.set_ylim(0, 105)
        ax.set_xlabel("time (s)")
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    fig.suptitle("Utilisation over time (dotted: a job exits)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(store: ProfileStore, runs: Sequence[RunOutcome], out_dir: Path,
                 paper: PaperTables | None = None) -> dict[str, Path]:
    """``paper``: the paper's tables to compare with (default: read from the shared data folder;
    without it the report says why and compares nothing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    why = ""
    if paper is None:
        try:
            paper = load_paper_tables()
        except (OSError, InputError) as exc:
            why = f"the paper's tables could not be read ({exc})"
    comparison = compare_with_paper(store, paper) if paper is not None else None
    md = out_dir / "report.md"
    md.write_text(markdown_report(store, comparison, why), encoding="utf-8")
    ex, co = write_paper_csvs(store, out_dir)
    files: dict[str, Path] = {}
    if comparison is not None:
        files["paper_comparison_csv"] = write_comparison_csv(comparison, out_dir / "paper_comparison.csv")
    fig = plot_utilisation(runs, out_dir / "fig2_utilisation.png")
    for r in runs:
        write_timeseries(r, out_dir / "timeseries")
    return {"report": md, "exclusive_csv": ex, "colocated_csv": co, **files, "figure": fig, "timeseries": out_dir / "timeseries"}
