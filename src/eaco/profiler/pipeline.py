"""The whole profiling experiment: every chosen job (zoo models and own jobs,
:mod:`eaco.profiler.members`) alone, then every chosen set together; then the profile store and
the report. Used by ``eaco profile`` (:mod:`eaco.profiler.cli`).

Each finished run is saved (:mod:`eaco.profiler.run_io`) and its training checkpoints deleted
(they are no result, and one of VGG-16 is about 1 GB). With ``resume`` the runs saved by an
earlier, interrupted command with the same settings on the same GPUs are kept; with
``time_budget_s`` no new run starts once that much time has passed (at least one run is made):
:class:`ProfileIncomplete` then says how far it got, and the same command with ``resume`` goes on.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eaco.colocation.profiles import ProfileStore, read_profile_store, write_profile_store
from eaco.energy.host_power import HostPowerModel
from eaco.profiler.experiment import JobSettings, RunOutcome, run_together
from eaco.profiler.members import ZOO, Member
from eaco.profiler.provenance import collect_provenance
from eaco.profiler.report import write_report
from eaco.profiler.run_io import load_run, read_run, run_fingerprint, save_run
from eaco.profiler.store import build_store
from eaco.profiler.telemetry import GpuSource, open_nvml

STORE_FILE = "profiles.json"


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    members: tuple[Member, ...]  # zoo models first, then own jobs (eaco.profiler.members)
    sets: tuple[tuple[str, ...], ...]  # of member names
    settings: JobSettings  # the zoo models' settings
    out_dir: Path
    sample_hz: float = 10.0
    gpus: tuple[int, ...] = ()  # NVML / CUDA indices (PCI bus order); () = all visible
    gpu_type: str | None = None  # override the key derived from the NVML name
    host_model: HostPowerModel = HostPowerModel()
    timeout_s: float = 3600.0  # per run
    command: str | None = None  # recorded in the provenance (default: this process's argv)
    resume: bool = False  # keep runs an earlier command saved with the same fingerprint
    time_budget_s: float | None = None  # start no new run after this long (None: no limit)


@dataclass(frozen=True, slots=True)
class ProfileResult:
    store: ProfileStore
    store_path: Path
    files: dict[str, Path]
    runs: tuple[RunOutcome, ...]
    telemetry_note: str  # "" with NVML, else why there is no GPU telemetry
    runs_kept: tuple[str, ...] = ()  # run ids taken from an earlier command (resume)


class ProfileIncomplete(RuntimeError):
    """The time budget ran out before every run was made; the finished ones are saved."""

    def __init__(self, done: int, total: int, out_dir: Path) -> None:
        super().__init__(f"{done} of {total} runs done (saved under {out_dir / 'runs'}); "
                         f"the same command with --resume goes on from there")
        self.done = done
        self.total = total


def run_plan(models: Sequence[str], sets: Sequence[tuple[str, ...]]) -> list[tuple[str, tuple[str, ...]]]:
    """The runs of an experiment in order, as (run id, member names): every job alone, then every set."""
    return [(f"alone-{m}", (m,)) for m in models] + [(f"set-{'+'.join(s)}", tuple(s)) for s in sets]


def run_profile(
    cfg: ProfileConfig,
    console: Console | None = None,
    gpu_source_factory: Callable[[tuple[int, ...]], tuple[GpuSource | None, str]] | None = None,
) -> ProfileResult:
    console = console or Console(stderr=True, emoji=False)
    opener = gpu_source_factory or open_nvml
    source, note = opener(cfg.gpus)
    if source is None:
        console.print(f"[yellow]no GPU telemetry:[/] {note}. Measuring timing, CPU utilisation and host power only.")
    driver = getattr(source, "driver_version", None)
    devices = source.devices if source is not None else ()
    visible = ",".join(str(i) for i in cfg.gpus) if cfg.gpus else None
    num_gpus = max(1, len(devices))
    by_name = {m.name: m for m in cfg.members}
    plan = run_plan([m.name for m in cfg.members], cfg.sets)
    fingerprints = {run_id: run_fingerprint([by_name[n] for n in names], devices, cfg.sample_hz, cfg.host_model, cfg.gpus)
                    for run_id, names in plan}
    kept: dict[str, RunOutcome] = {}
    if cfg.resume:
        for run_id, _ in plan:
            outcome, why = load_run(cfg.out_dir / "runs" / run_id, fingerprints[run_id])
            if outcome is not None:
                kept[run_id] = outcome
            elif why != "not run yet":
                console.print(f"[yellow]{run_id} runs again:[/] {why}")
        console.print(f"resume: {len(kept)} of {len(plan)} runs kept from {cfg.out_dir / 'runs'}")
    settings_record = {**asdict(cfg.settings), "members": [m.name for m in cfg.members],
                       "models": [m.name for m in cfg.members if m.source == ZOO],
                       "jobs": [m.record() for m in cfg.members if m.source != ZOO], "sets": ["+".join(s) for s in cfg.sets],
                       "gpus": list(cfg.gpus), "host_model": asdict(cfg.host_model), "timeout_s": cfg.timeout_s,
                       "runs_kept_from_an_earlier_command": list(kept)}
    provenance = collect_provenance(devices, driver, "nvml" if source is not None else f"none: {note}",
                                    cfg.sample_hz, settings_record, cfg.gpu_type, cfg.command)
    runs: list[RunOutcome] = []
    started = time.monotonic()
    made = 0
    try:
        with Progress(TextColumn("[bold]{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
            overall = progress.add_task("runs", total=len(plan), status="")
            for run_id, names in plan:
                members = [by_name[n] for n in names]
                if run_id in kept:
                    runs.append(kept[run_id])
                    progress.update(overall, advance=1)
                    continue
                if cfg.time_budget_s is not None and made > 0 and time.monotonic() - started >= cfg.time_budget_s:
                    raise ProfileIncomplete(len(runs), len(plan), cfg.out_dir)
                total = sum(m.epochs for m in members)
                task = progress.add_task(run_id[:34], total=total, status="epochs")

                def on_poll(done: int, total: int, task: int = task) -> None:
                    progress.update(task, completed=done)

                run_dir = cfg.out_dir / "runs" / run_id
                outcome = run_together(run_id, members, run_dir, source, cfg.sample_hz, cfg.host_model, visible,
                                       cfg.timeout_s, on_poll)
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
                save_run(run_dir, outcome, fingerprints[run_id])
                runs.append(outcome)
                made += 1
                progress.update(task, completed=total)
                progress.update(overall, advance=1)
    finally:
        if source is not None:
            source.close()
    n_alone = len(cfg.members)
    store = build_store(provenance, runs[:n_alone], runs[n_alone:], {m.name: m.batch_size for m in cfg.members}, num_gpus)
    store_path = write_profile_store(store, cfg.out_dir / STORE_FILE)
    files = write_report(store, runs, cfg.out_dir)
    return ProfileResult(store, store_path, files, tuple(runs), note, tuple(kept))


def rebuild_report(out_dir: Path) -> dict[str, Path]:
    """Write the report of a finished profile again from its files (``profiles.json`` and the
    saved runs), e.g. on another machine, where the paper's tables can be read to compare with."""
    store = read_profile_store(out_dir / STORE_FILE)
    settings = store.provenance.settings
    plan = run_plan(settings.get("members", settings.get("models", [e.model for e in store.exclusive])),
                    [tuple(s.split("+")) for s in settings.get("sets", [])])
    runs = [read_run(out_dir / "runs" / run_id) for run_id, _ in plan]
    return write_report(store, runs, out_dir)
