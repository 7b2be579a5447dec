"""What a runtime ran, as a workload trace the simulator replays (``eaco export-trace``).

The loop from the live runtime back to the simulator: an operator records the jobs that really
ran, then asks what another policy or cluster would have made of them (``eaco simulate -w
csv:trace.csv -c <cluster> --no-slos -p fifo,eaco``: ``--no-slos`` keeps the jobs' own deadlines
and gives none to those that had none). The file is the CSV trace format of
:mod:`eaco.workloads.csv_trace`, one row per job, with:

- ``submit_time_s``: the job's submit time (Unix seconds; the loader rebases to the first job);
- ``duration_s``: ``epochs`` x its exclusive epoch time on the reference V100, from the runtime's
  own baseline (:func:`eaco.runtime.baselines.choose_baseline`: epochs it ran alone, else those of
  earlier runs of the same workload, else the spec's ``expected_epoch_s``), converted from the GPU
  type it rests on with the catalogue's relative speeds, as the runtime's policy plans;
- ``num_gpus``, ``job_type``, ``gpu_type``, ``priority``, ``epochs``, ``gpu_util`` from the spec;
  ``deadline_s`` = submit + the spec's deadline (or slack) as the runtime applied it;
  ``memory_gb``: the largest peak the job reported, else the spec's (empty: the type's);
- informational columns the loader ignores: ``name``, ``runtime_state``, ``epoch_source``,
  ``runtime_jct_s``, ``runtime_total_time_s``, ``runtime_run_time_s``, ``runtime_energy_j``,
  ``runtime_colocated_s``, ``runtime_undos`` (what really happened, to compare with a replay).

Jobs left out, counted by reason: those not ended as chosen (default: finished only), and those
whose exclusive epoch time the runtime never learnt (no alone epoch, none declared). The
runtime's GPUs come back as ``eaco simulate``'s ``--cluster`` text (:func:`runtime_gpus`).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.runtime.baselines import MAX_BASELINE_EPOCHS, choose_baseline, workload_key
from eaco.runtime.layout import StateLayout
from eaco.runtime.ray_inventory import NODES_FILE
from eaco.runtime.spec import JobSpec
from eaco.runtime.store import JobRow, Store
from eaco.runtime.summary import job_times
from eaco.runtime.wrapper import read_json_dict
from eaco.workloads.csv_trace import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

INFO_COLUMNS = ("name", "runtime_state", "epoch_source", "runtime_jct_s", "runtime_total_time_s", "runtime_run_time_s",
                "runtime_energy_j", "runtime_colocated_s", "runtime_undos")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS + INFO_COLUMNS
ENDED_STATES = ("finished", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class TraceExport:
    path: Path
    jobs: int  # rows written
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> jobs
    epoch_sources: dict[str, int] = field(default_factory=dict)  # baseline source -> jobs written
    cluster: str | None = None  # the runtime's GPUs as eaco simulate's --cluster text


def runtime_gpus(root: Path) -> tuple[str, str | None]:
    """The runtime's main GPU type and its GPUs as ``--cluster`` text (``1x2xv100`` for a local
    daemon, ``2x2xv100,1x1xa100`` for Ray nodes grouped in order), from what the daemon recorded
    in the state folder; (``v100``, None) if it recorded nothing."""
    local = read_json_dict(StateLayout(Path(root)).gpus_file)
    if local and local.get("device_indices"):
        gpu_type = str(local.get("gpu_type") or "v100")
        return gpu_type, f"1x{len(local['device_indices'])}x{gpu_type}"  # type: ignore[arg-type]
    ray = read_json_dict(Path(root) / NODES_FILE)
    if ray and ray.get("nodes"):
        groups: list[list[Any]] = []  # [count, gpus, type], consecutive equal nodes merged
        for _, gpus, gpu_type in ray["nodes"]:  # type: ignore[union-attr]
            if groups and groups[-1][1:] == [int(gpus), str(gpu_type)]:
                groups[-1][0] += 1
            else:
                groups.append([1, int(gpus), str(gpu_type)])
        main = str(ray.get("gpu_type") or groups[0][2])
        return main, ",".join(f"{n}x{g}x{t}" for n, g, t in groups)
    return "v100", None


def _num(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def export_trace(state_dir: Path, out: Path, catalog: JobCatalog, states: Sequence[str] = ("finished",)) -> TraceExport:
    """Write the jobs of the runtime's state folder ``state_dir`` that ended in one of ``states``
    as a CSV trace at ``out`` (module docs). ``catalog``: the job types the runtime knew (the
    default catalogue, plus profiled jobs when it was served with ``--profiles``)."""
    bad = [s for s in states if s not in ENDED_STATES]
    if bad or not states:
        raise InputError("--states", f"expected some of {', '.join(ENDED_STATES)}, got {', '.join(states) or 'none'}")
    layout = StateLayout(Path(state_dir))
    if not layout.db.exists():
        raise InputError(str(state_dir), f"no runtime state here ({layout.db.name} missing): expected a folder 'eaco serve' used")
    main_type, cluster = runtime_gpus(layout.root)
    store = Store(layout.db)
    left_out: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    rows: list[list[str]] = []
    try:
        for row in store.jobs():
            if row.state not in states:
                left_out[f"{row.state} (not exported)" if row.state in ENDED_STATES else f"{row.state} (not ended)"] += 1
                continue
            spec = JobSpec.model_validate_json(row.spec_json)
            if spec.job_type not in catalog:
                left_out[f"job type {spec.job_type!r} unknown here (serve's --profiles?)"] += 1
                continue
            kind = catalog.get(spec.job_type)
            declared = spec.gpu_type or main_type
            history = store.workload_exclusive_epochs(workload_key(spec, main_type), MAX_BASELINE_EPOCHS, except_job=row.job_id)
            baseline = choose_baseline(store.exclusive_epochs(row.job_id, MAX_BASELINE_EPOCHS), history, spec, kind, declared)
            if not baseline.calibrated:
                left_out["exclusive epoch time never learnt (no alone epoch, none declared)"] += 1
                continue
            sources[baseline.source] += 1
            rows.append(_row(row, spec, baseline.reference_s(kind), baseline.source, store.memory_peak_gb(row.job_id)))
    finally:
        store.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return TraceExport(out, len(rows), dict(left_out), dict(sources), cluster)


def _row(row: JobRow, spec: JobSpec, reference_epoch_s: float, source: str, peak_gb: float | None) -> list[str]:
    memory_gb = peak_gb if peak_gb is not None else spec.memory_gb
    jct_s, total_s = job_times(row)
    return [
        repr(float(row.submit_unix)), repr(spec.epochs * reference_epoch_s), str(spec.num_gpus),
        spec.job_type, spec.gpu_type or "", _num(spec.deadline_after(row.submit_unix)),
        str(spec.priority), _num(memory_gb), _num(spec.gpu_util), str(spec.epochs), "false",
        spec.name, row.state, source, _num(jct_s), _num(total_s), _num(row.run_time_s), _num(row.energy_j),
        _num(row.colocated_s), str(row.undos),
    ]


def describe(result: TraceExport) -> str:
    """What was written, what was left out, and the command that replays it."""
    lines = [f"wrote {result.jobs} job(s) to {result.path} (exclusive epoch times: "
             + (", ".join(f"{n} {s}" for s, n in sorted(result.epoch_sources.items())) or "none") + ")"]
    for reason, n in sorted(result.left_out.items()):
        lines.append(f"left out {n}: {reason}")
    cluster = f" -c {result.cluster}" if result.cluster else ""
    lines.append(f"replay it: eaco simulate -w csv:{result.path}{cluster} --no-slos -p fifo,eaco")
    return "\n".join(lines)


def summary_json(result: TraceExport) -> str:
    return json.dumps({"path": str(result.path), "jobs": result.jobs, "left_out": result.left_out,
                       "epoch_sources": result.epoch_sources, "cluster": result.cluster}, indent=2)
