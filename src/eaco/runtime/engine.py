"""The daemon's main loop: poll processes and epoch reports, call the policy, carry out its
decisions on real processes. Mirrors the simulator's policy loop (apply decisions in order, call
again while something was placed or undone); the store is written before every action."""

from __future__ import annotations

import logging
import math
from collections import Counter
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from eaco.colocation.catalog import JobCatalog
from eaco.energy.node_power import EnergyModel
from eaco.errors import PolicyError
from eaco.model.job import Job
from eaco.policies.base import Policy
from eaco.policies.decisions import Place, WakeUp, Watch
from eaco.policies.driver import drive_policy
from eaco.policies.view import EpochReport, JobProgress, SchedulerView
from eaco.profiler.epoch_report import REPORT_FILE_ENV, EpochRecord
from eaco.runtime.accounting import EnergyAccountant
from eaco.runtime.backend import AttemptExit, Backend, LaunchRequest, ProcessHandle
from eaco.runtime.control import (
    ATTEMPT_ENV, CHECKPOINT_DIR_ENV, CONTROL_DIR_ENV, EXIT_STOPPED, JOB_ID_ENV, clear_stop,
)
from eaco.runtime.errors import RuntimeStateError
from eaco.runtime.exit_rules import AttemptEnd, judge_exit
from eaco.runtime.gpu_meter import GpuMeter
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.baselines import MAX_BASELINE_EPOCHS, AloneEpoch, AloneTracker, EpochBaseline, choose_baseline, workload_key
from eaco.runtime.jobs import declared_gpu_type, job_from_spec, largest_gpu_memory_gb, reference_epoch_s
from eaco.runtime.layout import StateLayout
from eaco.runtime.memory import MIB_PER_GB, MemoryEstimate, choose_memory, peak_to_gb
from eaco.runtime.procs import session_of
from eaco.runtime.metrics import GpuSnapshot, RuntimeSnapshot
from eaco.runtime.reports import ReportTail
from eaco.runtime.spec import JobSpec
from eaco.runtime.store import ACTIVE_STATES, Store
from eaco.runtime.summary import write_summary
from eaco.runtime.wrapper import ABANDONED_FILE
from eaco.state.cluster_state import ClusterState

# after writing summary.json, the daemon waits this many times as long as the write took before
# it writes it again (it always writes it when it stops)
SUMMARY_GAP_FACTOR = 10.0

log = logging.getLogger("eaco.runtime")

MAX_POLICY_CALLS_PER_TICK = 1000
OOM_MARKERS = ("out of memory", "outofmemoryerror")
BASELINE_EVENT_CHANGE = 0.1  # a job's event log notes a baseline that moved by more than this share


@dataclass(slots=True)
class _Watch:
    start_unix: float
    epochs: int
    durations_s: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _Live:
    """A process of a job that the runtime watches (running, or stopping after an undo)."""

    attempt: int
    handle: ProcessHandle
    attempt_dir: Path


class Runtime:
    def __init__(
        self,
        layout: StateLayout,
        store: Store,
        backend: Backend,
        policy: Policy,
        inventory: GpuInventory,
        catalog: JobCatalog,
        energy: EnergyModel,
        cpu_util: Callable[[], float] | None = None,
        tick_s: float = 0.2,
        gpu_meter: GpuMeter | None = None,
        alone_first: bool = True,
    ) -> None:
        self.layout = layout
        self.store = store
        self.backend = backend
        self.policy = policy
        self.inventory = inventory
        self.catalog = catalog
        self.tick_s = tick_s
        # a job whose exclusive epoch time nobody knows (none declared, none measured for its
        # workload) asks for whole GPUs until it has measured one alone: its observed speeds are
        # then calibrated, and H learns from every co-location it is part of
        self.alone_first = alone_first
        self.unmeasured: set[int] = set()
        self.state = ClusterState(inventory.cluster())
        self.origin_unix = store.clock_origin_unix
        self.jobs: dict[int, Job] = {}
        self.specs: dict[int, JobSpec] = {}
        self.status: dict[int, str] = {}  # queued | running | stopping (the daemon's mirror of the store)
        # undone jobs whose old process still runs until its epoch end: they keep their GPUs in
        # ``state`` (so no policy counts that memory as free) and are shown to the policy as high
        # priority (so none co-locates onto them); job id -> the job as it really is
        self.draining: dict[int, Job] = {}
        self.live: dict[int, _Live] = {}
        self.tails: dict[int, ReportTail] = {}
        self.watches: dict[int, _Watch] = {}
        self.epochs_done: dict[int, int] = {}
        # each job's exclusive epoch time here (what observed speeds are relative to), its
        # workload key, and when it had its GPUs to itself (eaco.runtime.baselines)
        self.baselines: dict[int, EpochBaseline] = {}
        self.workload_keys: dict[int, str] = {}
        # the memory each job holds per GPU when it shares, and where the figure comes from
        # (measured from its epoch reports, else earlier jobs', else declared, eaco.runtime.memory)
        self.memory: dict[int, MemoryEstimate] = {}
        self._process_peak_gb: dict[int, float] = {}  # job -> the most NVML saw its processes hold on one GPU
        self.alone = AloneTracker()
        self.first_start: dict[int, float] = {}
        self.placed: dict[int, tuple[float, int]] = {}
        self.colocated_attempts: set[tuple[int, int]] = set()
        self.finished_pending: list[int] = []
        self.reports_pending: list[EpochReport] = []
        self.wake_at_unix = math.inf
        self.accountant = EnergyAccountant(energy, catalog, cpu_util, gpu_meter)
        self.accountant.totals.add_parts(store.energy_totals())  # what daemons on this state folder used before
        if getattr(backend, "local_pids", False) or hasattr(backend, "session_leaders"):
            self.accountant.per_job = self._per_job  # NVML's per-process figures map to jobs
        store.fill_epoch_gpu_type(inventory.gpu_type)  # alone epochs stored before they carried their GPU type
        self._last_tick_unix: float | None = None
        self._something_ended = False
        self._summary_due_unix = 0.0  # summary.json is rewritten after a job ends, not before this
        self.policy_calls = 0
        self._learned_saved = 0  # how many of the policy's learnt items are in the store
        self.snapshot: RuntimeSnapshot | None = None  # what the metrics endpoint reads (another thread)

    # ================================================================ clock
    def now_s(self, now_unix: float | None = None) -> float:
        return (time.time() if now_unix is None else now_unix) - self.origin_unix

    # ============================================================= startup
    def _load_job(self, job_id: int, shares_gpus: bool = False) -> Job:
        """The job the policy sees, from the store. ``shares_gpus``: it holds GPUs with other jobs
        already (a daemon restarted on such a state folder), so it cannot ask for them whole."""
        row = self.store.job(job_id)
        spec = JobSpec.model_validate_json(row.spec_json)
        key = workload_key(spec, self.inventory.gpu_type)
        baseline = self._choose_baseline(job_id, spec, self.store.workload_exclusive_epochs(key, MAX_BASELINE_EPOCHS, except_job=job_id))
        self.workload_keys[job_id] = key
        self.baselines[job_id] = baseline
        self.memory[job_id] = self._memory_estimate(job_id, spec)
        alone_first = self.alone_first and not baseline.calibrated and not row.exclusive_only and not shares_gpus
        if alone_first and job_id not in self.unmeasured:
            self.unmeasured.add(job_id)
            if row.state == "queued" and row.attempts == 0:
                self.store.event(job_id, "baseline", "no exclusive epoch time declared or measured for this workload: "
                                                     "it runs alone until it has measured one")
        job = job_from_spec(job_id, spec, row.submit_unix - self.origin_unix, self.catalog, self.inventory, baseline,
                            row.exclusive_only, alone_first=alone_first, memory_gb=self.memory[job_id].memory_gb)
        if shares_gpus and job.exclusive:  # it runs next to others already: it cannot hold the GPUs whole
            job = replace(job, exclusive=False)
        self.jobs[job_id] = job
        self.specs[job_id] = spec
        self.epochs_done[job_id] = row.epochs_done
        if row.first_start_unix is not None:
            self.first_start[job_id] = row.first_start_unix
        self.tails.setdefault(job_id, ReportTail(self.layout.report_file(job_id)))
        return job

    def recover(self) -> None:
        """Find every job the store knows: queued ones queue, running ones are re-attached when
        their process is still the one recorded, otherwise their end is handled (requeued)."""
        rows = self.store.jobs(ACTIVE_STATES)
        holders = Counter(g for r in rows if r.state != "queued" for g in r.gpus or ())
        for row in rows:
            shares = row.state != "queued" and any(holders[g] > 1 for g in row.gpus or ())
            job = self._load_job(row.job_id, shares_gpus=shares)
            if row.state == "queued":
                self.status[row.job_id] = "queued"
                continue
            attempt = self.store.attempt(row.job_id, row.attempts)
            attempt_dir = self.layout.attempt_dir(row.job_id, row.attempts)
            handle = self.backend.find(attempt_dir)
            if handle is None and attempt.pid is not None:
                handle = ProcessHandle(attempt.pid, attempt.start_ticks)
            if handle is None:
                handle = self._abandon_or_find(attempt_dir)
            self.status[row.job_id] = row.state
            if row.state == "running":
                self.state.place(self._fitting(job, row.gpus or ()), row.gpus or ())
                self.placed[row.job_id] = (row.placed_unix or time.time(), row.epochs_at_placement)
            else:  # stopping: its old process holds its old GPUs until it has stopped
                if row.next_gpus is not None:  # written by an older runtime that pre-placed it
                    self.store.set_next_gpus(row.job_id, None)
                self._start_draining(row.job_id, row.gpus or ())
            if handle is None:
                self.store.event(row.job_id, "recover", f"attempt {row.attempts} left no process")
                self._handle_exit(row.job_id, row.attempts, AttemptExit(None), time.time())
                continue
            if attempt.pid is None:
                self.store.set_pid(row.job_id, row.attempts, handle.pid, handle.start_ticks)
            self.live[row.job_id] = _Live(row.attempts, handle, attempt_dir)
            if attempt.colocated:
                self.colocated_attempts.add((row.job_id, row.attempts))
            self.store.event(row.job_id, "recover", f"attempt {row.attempts} pid {handle.pid}: watching it again")
        self._mark_colocations()

    def _abandon_or_find(self, attempt_dir: Path) -> ProcessHandle | None:
        """An attempt with no process on record: give it up, unless its wrapper started meanwhile
        (the handshake of :mod:`eaco.runtime.wrapper`: mark it abandoned, then look again)."""
        try:
            attempt_dir.mkdir(parents=True, exist_ok=True)
            (attempt_dir / ABANDONED_FILE).touch()
        except OSError as exc:
            log.warning("cannot mark %s abandoned: %s", attempt_dir, exc)
        return self.backend.find(attempt_dir)

    # ============================================================== the tick
    def tick(self) -> None:
        now_unix = time.time()
        if self._last_tick_unix is not None:
            increments = self.accountant.step(self.state, self.jobs, now_unix - self._last_tick_unix)
            self.store.add_accounting(increments, self.accountant.last_step, now_unix)
            self._measure_process_memory()
        else:
            self.accountant.start()
        self._last_tick_unix = now_unix
        active = self.store.active_states()  # one light read per tick, whatever the queue length
        self._pick_up_new_jobs(active)
        self._handle_cancels(active)
        self._poll_processes()
        self._read_reports(now_unix)
        queue = [j for j, s in self.status.items() if s == "queued"]
        woken = time.time() >= self.wake_at_unix
        if woken:
            self.wake_at_unix = math.inf
        if queue or self.reports_pending or self.finished_pending or woken:
            self._call_policy()
        self.alone.update(self.state, [j for j, s in self.status.items() if s == "running"], now_unix, time.time())
        if self._something_ended and time.time() >= self._summary_due_unix:
            self._something_ended = False
            started = time.time()
            self.write_summary()
            # a state folder with a long history takes a while to summarise (about 1.3 s for
            # 100,000 jobs on 2 cores): keep that under a tenth of the loop's time
            done = time.time()
            self._summary_due_unix = done + SUMMARY_GAP_FACTOR * (done - started)
        self.snapshot = self.take_snapshot(now_unix)

    def active_jobs(self) -> int:
        return len(self.status)

    def take_snapshot(self, now_unix: float | None = None) -> RuntimeSnapshot:
        """The state the metrics endpoint shows (built on the loop's thread, read on another)."""
        state, t = self.state, self.accountant.totals
        measured = t.gpu_measured
        gpus = tuple(
            GpuSnapshot(
                gpu=g, gpu_type=state.gpu_type[g], job_ids=tuple(on_gpu), memory_reserved_gb=state.gpu_memory_used_gb[g],
                memory_gb=state.gpu_memory_gb[g], util_estimate=min(1.0, sum(self.jobs[j].gpu_util for j in on_gpu)),
                measured=measured[g] if g < len(measured) else None,
            )
            for g, on_gpu in enumerate(state.gpu_jobs)
        )
        colocated = sum(1 for gs in state.job_gpus.values() if any(len(state.gpu_jobs[g]) > 1 for g in gs))
        statuses = list(self.status.values())
        return RuntimeSnapshot(
            time_unix=time.time() if now_unix is None else now_unix,
            queue_length=statuses.count("queued"), running_jobs=statuses.count("running"),
            stopping_jobs=statuses.count("stopping"), colocated_jobs=colocated,
            power_w={"gpu_busy": t.gpu_busy_w, "gpu_idle": t.gpu_idle_w, "host": t.host_w},
            energy_j={"gpu_busy": t.gpu_busy_j, "gpu_idle": t.gpu_idle_j, "host": t.host_j},
            gpu_energy_source="modelled" if t.gpu_source == "modelled" else "measured",
            model_gpu_energy_j={"gpu_busy": t.model_gpu_busy_j, "gpu_idle": t.model_gpu_idle_j},
            accounted_s=t.duration_s, policy_calls=self.policy_calls, gpus=gpus,
            policy_decisions=dict(self.policy.decision_counts()),
        )

    def write_summary(self) -> None:
        write_summary(self.store, self.layout.summary_file, self.accountant.totals, self.inventory)

    def _pick_up_new_jobs(self, active: dict[int, tuple[str, bool]]) -> None:
        for job_id, (state, _) in active.items():
            if state == "queued" and job_id not in self.status:
                self._load_job(job_id)
                self.status[job_id] = "queued"

    def _handle_cancels(self, active: dict[int, tuple[str, bool]]) -> None:
        for job_id, (_, cancel_requested) in active.items():
            if cancel_requested and job_id in self.live:
                self.backend.terminate(self.live[job_id].handle, grace_s=5.0)
        for job_id in [j for j in self.status if j not in active and self.store.job(j).state == "cancelled"]:
            self._forget(job_id)  # cancelled while queued (by the API)

    def _forget(self, job_id: int) -> None:
        if job_id in self.state.job_gpus:
            self.state.remove(job_id)
            self.finished_pending.append(job_id)
        self.status.pop(job_id, None)
        self.draining.pop(job_id, None)
        self.watches.pop(job_id, None)
        self.live.pop(job_id, None)
        self.alone.forget(job_id)
        self.unmeasured.discard(job_id)
        self._process_peak_gb.pop(job_id, None)
        self._something_ended = True

    # ========================================================== processes
    def _poll_processes(self) -> None:
        for job_id, live in list(self.live.items()):
            ended = self.backend.poll(live.handle, live.attempt_dir)
            if ended is not None:
                self._read_reports(time.time(), only=job_id)
                self._handle_exit(job_id, live.attempt, ended, time.time())

    def _log_mentions_oom(self, job_id: int) -> bool:
        try:
            with open(self.layout.log_file(job_id), "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - 8192))
                tail = fh.read().decode("utf-8", errors="replace").lower()
        except OSError:
            return False
        return any(m in tail for m in OOM_MARKERS)

    def _handle_exit(self, job_id: int, attempt: int, ended: AttemptExit, now_unix: float) -> None:
        self.live.pop(job_id, None)
        self.watches.pop(job_id, None)
        row = self.store.job(job_id)
        status = self.status.get(job_id, row.state)
        code = ended.exit_code
        original = self.draining.pop(job_id, None)
        if original is not None:
            self.jobs[job_id] = original  # no longer shown as high priority

        def leave_gpus() -> None:
            if job_id in self.state.job_gpus:
                self.state.remove(job_id)
            self.placed.pop(job_id, None)
            self.finished_pending.append(job_id)

        attempt_row = self.store.attempt(job_id, attempt)
        tail = self.tails.get(job_id)
        failure = code not in (0, None, EXIT_STOPPED)
        verdict = judge_exit(AttemptEnd(
            exit_code=code, attempt=attempt, start_unix=attempt_row.start_unix,
            cancel_requested=row.cancel_requested, stopping=status == "stopping",
            colocated=(job_id, attempt) in self.colocated_attempts or attempt_row.colocated,
            exclusive_only=row.exclusive_only,
            ended_record_s=tail.ended_s if tail is not None else None,
            stopped_record_s=tail.stopped_s if tail is not None else None,
            log_mentions_oom=failure and not row.cancel_requested and self._log_mentions_oom(job_id),
            detail=ended.detail or "",
        ))
        if verdict.stop_reported:
            # it reported that it stopped on request; a launcher (torchrun) made a failure of the 75
            self.store.event(job_id, "stopped", f"attempt {attempt} reported a stop at an epoch end and exited with code {code}")
        self.store.end_attempt(job_id, attempt, code, verdict.outcome, verdict.new_state, now_unix,
                               reason=verdict.reason, exclusive_only=True if verdict.exclusive_only else None)
        if not verdict.requeued:
            leave_gpus()
            self._forget(job_id)
            return
        if status == "stopping" and verdict.outcome in ("stopped", "lost"):
            # undone (or moved): the policy took it off these GPUs already (no `finished` for
            # it, which would make the policy forget what it learnt, e.g. the GPU sets undone
            # for it); it resumes from its checkpoint wherever the policy places it now
            if job_id in self.state.job_gpus:
                self.state.remove(job_id)
            self.placed.pop(job_id, None)
        else:
            leave_gpus()
        if verdict.exclusive_only:
            self.jobs[job_id] = job_from_spec(job_id, self.specs[job_id], self.jobs[job_id].submit_time_s, self.catalog, self.inventory,
                                              self.baselines[job_id], exclusive_only=True,
                                              memory_gb=self.memory[job_id].memory_gb)
        self.status[job_id] = "queued"

    def _launch(self, job_id: int, gpus: tuple[int, ...], now_unix: float) -> None:
        spec = self.specs[job_id]
        colocated = any(len(self.state.gpu_jobs[g]) > 1 for g in gpus)
        others = tuple(sorted({j for g in gpus for j in self.state.gpu_jobs[g] if j != job_id}))
        try:
            attempt = self.store.begin_attempt(job_id, gpus, colocated, now_unix, sharing_with=others)
        except RuntimeStateError:  # cancelled through the API a moment ago
            if job_id in self.state.job_gpus:
                self.state.remove(job_id)
            self.finished_pending.append(job_id)
            self._forget(job_id)
            return
        row = self.store.job(job_id)
        self.placed[job_id] = (now_unix, row.epochs_done)
        self.first_start.setdefault(job_id, now_unix)
        self.status[job_id] = "running"
        control = self.layout.control_dir(job_id)
        control.mkdir(parents=True, exist_ok=True)
        clear_stop(control)
        checkpoint_dir = Path(spec.checkpoint_dir) if spec.checkpoint_dir else self.layout.default_checkpoint_dir(job_id)
        env = dict(spec.env)
        env.update({
            REPORT_FILE_ENV: str(self.layout.report_file(job_id)),
            CONTROL_DIR_ENV: str(control),
            CHECKPOINT_DIR_ENV: str(checkpoint_dir),
            JOB_ID_ENV: str(job_id),
            ATTEMPT_ENV: str(attempt),
        })
        attempt_dir = self.layout.attempt_dir(job_id, attempt)
        request = LaunchRequest(
            job_id=job_id, attempt=attempt, command=tuple(spec.command), working_dir=Path(spec.working_dir),
            env=env, device_indices=tuple(self.inventory.device_indices[g] for g in gpus),
            attempt_dir=attempt_dir, log_file=self.layout.log_file(job_id),
        )
        try:
            handle = self.backend.launch(request)
        except OSError as exc:
            self.store.end_attempt(job_id, attempt, None, "failed", "failed", time.time(), reason=f"could not start: {exc}")
            if job_id in self.state.job_gpus:
                self.state.remove(job_id)
            self.finished_pending.append(job_id)
            self._forget(job_id)
            return
        self.store.set_pid(job_id, attempt, handle.pid, handle.start_ticks)
        self.live[job_id] = _Live(attempt, handle, attempt_dir)
        if colocated:
            self.colocated_attempts.add((job_id, attempt))

    def _mark_colocations(self) -> None:
        """Every live attempt that shares a GPU now is marked co-located (for failure handling)."""
        for job_id, gpus in self.state.job_gpus.items():
            live = self.live.get(job_id)
            if live is None or (job_id, live.attempt) in self.colocated_attempts:
                continue
            if any(len(self.state.gpu_jobs[g]) > 1 for g in gpus):
                self.colocated_attempts.add((job_id, live.attempt))
                self.store.mark_colocated(job_id, live.attempt)

    # ============================================================== reports
    def _read_reports(self, now_unix: float, only: int | None = None) -> None:
        ids = [only] if only is not None else list(self.live)
        for job_id in ids:
            tail = self.tails.get(job_id)
            if tail is None:
                continue
            records = tail.read_new()
            if not records:
                continue
            done = max(self.epochs_done.get(job_id, 0), *(r.epoch + 1 for r in records))
            if done != self.epochs_done.get(job_id):
                self.epochs_done[job_id] = done
                self.store.set_progress(job_id, done)
            self._measure_memory(job_id, records)
            if self.status.get(job_id) != "running":
                continue
            self._measure_alone_epochs(job_id, records)
            watch = self.watches.get(job_id)
            if watch is None:
                continue
            for r in records:
                if r.end_time_s - r.duration_s >= watch.start_unix - 0.01:
                    watch.durations_s.append(r.duration_s)
            job = self.jobs[job_id]
            if len(watch.durations_s) >= watch.epochs and done < job.num_epochs:
                del self.watches[job_id]
                mean_s = sum(watch.durations_s) / len(watch.durations_s)
                neighbours = {j for g in self.state.job_gpus[job_id] for j in self.state.gpu_jobs[g]} - {job_id}
                baseline = self.baselines[job_id]
                gpu_type = self.state.gpu_type[self.state.job_gpus[job_id][0]]
                exclusive_s = baseline.on(gpu_type, self.catalog.get(job.job_type))
                self.reports_pending.append(EpochReport(
                    job_id=job_id, time_s=self.now_s(now_unix), epochs_done=done,
                    window_s=sum(watch.durations_s), window_epochs=float(len(watch.durations_s)),
                    observed_speed=exclusive_s / mean_s if mean_s > 0 else 1.0,
                    co_located_with=tuple(sorted(neighbours)),
                    speed_calibrated=baseline.calibrated,
                ))

    def _measure_alone_epochs(self, job_id: int, records: Sequence[EpochRecord]) -> None:
        """Store the epochs the job ran alone on its GPUs (not the first of an attempt) and move
        its baseline, and the exclusive epoch time the policy sees, to what they measure."""
        placed = self.placed.get(job_id)
        gpus = self.state.job_gpus.get(job_id)
        if placed is None or not gpus:
            return
        gpu_type = self.state.gpu_type[gpus[0]]
        key = self.workload_keys[job_id]
        added = False
        for r in records:
            if r.epoch <= placed[1] or r.duration_s <= 0:
                continue  # the attempt's first epoch (start-up) or one from before this attempt
            if self.alone.was_alone(job_id, r.end_time_s - r.duration_s, r.end_time_s):
                self.store.add_exclusive_epoch(job_id, key, r.epoch, r.duration_s, r.end_time_s, gpu_type)
                added = True
        if not added:
            return
        old = self.baselines[job_id]
        spec = self.specs[job_id]
        new = self._choose_baseline(job_id, spec)
        self.baselines[job_id] = new
        if old.source != new.source or abs(new.epoch_s - old.epoch_s) > BASELINE_EVENT_CHANGE * old.epoch_s:
            on = f" on {new.gpu_type}" if len(self.inventory.gpu_types()) > 1 else ""
            self.store.event(job_id, "baseline", f"exclusive epoch {new.epoch_s:.3g} s{on} measured alone over {new.epochs} "
                                                 f"epoch(s) (was {old.epoch_s:.3g} s, {old.source})")
        self.jobs[job_id] = replace(self.jobs[job_id],
                                    epoch_duration_s=reference_epoch_s(new, spec, self.catalog))
        if job_id in self.unmeasured and new.calibrated:
            self._may_share_now(job_id)
        if job_id in self.state.job_gpus:
            self.state.touch(job_id)  # cached predictions of its nodes' end times are stale

    def _choose_baseline(self, job_id: int, spec: JobSpec, history: Sequence[AloneEpoch] = ()) -> EpochBaseline:
        """The job's baseline from its alone epochs in the store, ``history`` (earlier jobs' ones)
        and its spec (:func:`~eaco.runtime.baselines.choose_baseline`)."""
        return choose_baseline(self.store.exclusive_epochs(job_id, MAX_BASELINE_EPOCHS), history, spec,
                               self.catalog.get(spec.job_type), declared_gpu_type(spec, self.inventory))

    def _memory_estimate(self, job_id: int, spec: JobSpec) -> MemoryEstimate:
        return choose_memory(spec, self.catalog.get(spec.job_type).memory_gb, self.store.memory_peak_gb(job_id),
                             self.store.workload_memory_peak_gb(self.workload_keys[job_id], except_job=job_id))

    def _measure_memory(self, job_id: int, records: Sequence[EpochRecord]) -> None:
        """A new largest GPU memory peak the job reported in its epoch records (the allocator's
        peak plus the CUDA context): :meth:`_record_memory_peak`."""
        peaks = [r.peak_gpu_memory_mib for r in records if r.peak_gpu_memory_mib is not None and r.peak_gpu_memory_mib > 0]
        if peaks:
            self._record_memory_peak(job_id, peak_to_gb(max(peaks)), "reported")

    def _per_job(self, per_gpu: dict[int, dict[int, float]]) -> dict[int, dict[int, float]]:
        """NVML's per-process figures (per policy GPU, pid -> value) summed per job (per GPU,
        job -> value); processes of no job are left out. Each attempt leads a session that the
        processes it starts stay in: on this machine (local backend) a process's session is read
        here; a Ray node's meter keys its figures by session already, and the backend knows
        which attempt leads which session on which node (:meth:`RayBackend.session_leaders`)."""
        if getattr(self.backend, "local_pids", False):
            leaders = {live.handle.pid: job_id for job_id, live in self.live.items()}
            sessions: dict[int, int | None] = {}

            def job_of(g: int, pid: int) -> int | None:
                if pid not in sessions:
                    sessions[pid] = session_of(pid)
                sid = sessions[pid]
                return leaders.get(sid) if sid is not None else None
        else:
            by_node = self.backend.session_leaders()  # type: ignore[attr-defined]
            if not by_node:
                return {}
            job_of_key = {getattr(live.handle, "key", ""): job_id for job_id, live in self.live.items()}
            nodes: dict[int, str] = {}

            def job_of(g: int, sid: int) -> int | None:
                if g not in nodes:
                    nodes[g] = self.inventory.node_name(g)  # type: ignore[attr-defined]
                key = by_node.get((nodes[g], sid))
                return job_of_key.get(key) if key is not None else None
        out: dict[int, dict[int, float]] = {}
        for g, procs in per_gpu.items():
            by_job: dict[int, float] = {}
            for pid, value in procs.items():
                job_id = job_of(g, pid)
                if job_id is not None:
                    by_job[job_id] = by_job.get(job_id, 0.0) + value
            if by_job:
                out[g] = by_job
        return out

    def _measure_process_memory(self) -> None:
        """NVML's per-process GPU memory, on real GPUs (a local machine's or Ray nodes'): what a
        job's processes hold together on one of its GPUs (:meth:`_per_job`), CUDA context
        included, at its most is a measured peak (:meth:`_record_memory_peak`). Unlike the
        epoch reports this needs nothing from the job and sees memory as soon as it is taken."""
        meter = self.accountant.gpu_meter
        per_gpu = getattr(meter, "process_memory_mib", None)
        if not per_gpu or self.accountant.per_job is None:
            return
        held: dict[int, dict[int, float]] = {}  # job -> policy GPU -> MiB
        for g, by_job in self._per_job(per_gpu).items():
            for job_id, mib in by_job.items():
                if g in self.state.job_gpus.get(job_id, ()):
                    held.setdefault(job_id, {})[g] = mib
        for job_id, by_gpu in held.items():
            peak_gb = max(by_gpu.values()) / MIB_PER_GB
            if peak_gb > self._process_peak_gb.get(job_id, 0.0) + 1e-9:  # only a new high reaches the store
                self._process_peak_gb[job_id] = peak_gb
                self._record_memory_peak(job_id, peak_gb, "measured through NVML")

    def _record_memory_peak(self, job_id: int, peak_gb: float, how: str) -> None:
        """Store a new largest GPU memory peak of the job, and let the memory it holds follow
        (:mod:`eaco.runtime.memory`): the policy sees the new figure for its GPUs now and
        wherever it is placed later. ``how``: where the figure comes from, for its event."""
        if job_id not in self.specs:
            return
        if not self.store.add_memory_peak(job_id, self.workload_keys[job_id], peak_gb):
            return
        old = self.memory[job_id]
        new = self._memory_estimate(job_id, self.specs[job_id])
        self.memory[job_id] = new
        if abs(new.memory_gb - old.memory_gb) < 1e-9:
            return
        note = (f"peak GPU memory {peak_gb:.3g} GB per GPU {how}: it holds {new.memory_gb:.3g} GB ({new.source}; "
                f"was {old.memory_gb:.3g} GB, {old.source})")
        job = self.jobs[job_id]
        if job_id in self.unmeasured or self.store.job(job_id).exclusive_only:
            self.store.event(job_id, "memory", note + "; it keeps its GPUs to itself for now")
            return
        memory_gb = min(new.memory_gb, largest_gpu_memory_gb(self.specs[job_id], self.inventory))
        self.jobs[job_id] = replace(job, memory_gb=memory_gb)
        if job_id in self.draining:  # the job as it really is, once its old process has stopped
            self.draining[job_id] = replace(self.draining[job_id], memory_gb=memory_gb)
        if self.status.get(job_id) != "running" or job_id not in self.state.job_gpus:
            self.store.event(job_id, "memory", note)
            return
        # its GPUs: the new figure, or what is left next to its neighbours (the GPU is then full
        # for the policy: the memory really is in use, whatever the others declared)
        room = self._room_gb(self.state.job_gpus[job_id], self.state.job_memory_gb[job_id])
        granted = min(new.memory_gb, room)
        self.state.set_job_memory(job_id, granted)
        if granted < new.memory_gb - 1e-9:
            note += f"; only {granted:.3g} GB is left next to its neighbours: its GPUs are full for the policy"
        self.store.event(job_id, "memory", note)

    def _may_share_now(self, job_id: int) -> None:
        """A job that ran alone to measure its epoch time has: from now on it asks for its
        declared memory, so the policy may co-locate others onto its GPUs (and it onto others
        if it is requeued)."""
        self.unmeasured.discard(job_id)
        row = self.store.job(job_id)
        shared = job_from_spec(job_id, self.specs[job_id], self.jobs[job_id].submit_time_s, self.catalog, self.inventory,
                               self.baselines[job_id], row.exclusive_only, memory_gb=self.memory[job_id].memory_gb)
        if job_id in self.state.job_gpus and not shared.exclusive:
            try:
                self.state.end_exclusive(job_id, shared.memory_gb)
            except PolicyError as exc:  # cannot happen when it asked for more before; keep it whole
                log.warning("job %d keeps its GPUs to itself: %s", job_id, exc)
                return
        self.jobs[job_id] = shared
        self.store.event(job_id, "baseline", f"measured alone: others may now share its GPUs (memory {shared.memory_gb:.3g} GB)")

    # =============================================================== policy
    def _progress(self, job_id: int) -> JobProgress:
        placed = self.placed.get(job_id) if job_id in self.state.job_gpus else None
        first = self.first_start.get(job_id)
        return JobProgress(
            epochs_done=float(self.epochs_done.get(job_id, 0)),
            first_start_s=None if first is None else self.now_s(first),
            placed_at_s=None if placed is None else self.now_s(placed[0]),
            epochs_at_placement=float(placed[1]) if placed is not None else float(self.epochs_done.get(job_id, 0)),
        )

    def _queue(self) -> list[Job]:
        jobs = [self.jobs[j] for j, s in self.status.items() if s == "queued"]
        jobs.sort(key=lambda j: (-j.priority, j.submit_time_s, j.job_id))
        return jobs

    def _call_policy(self) -> None:
        reports, finished = self.reports_pending, self.finished_pending
        self.reports_pending, self.finished_pending = [], []
        now = [time.time()]  # refreshed for every call of the policy

        def make_view(reports: Sequence[EpochReport], finished: Sequence[int]) -> SchedulerView:
            now[0] = time.time()
            return SchedulerView(self.now_s(now[0]), self.state, self._queue(), self.jobs, self._progress, reports, finished)

        def watch(d: Watch) -> None:
            if self.status.get(d.job_id) == "stopping":
                return  # it is stopping: it reports no more epochs here
            if d.job_id not in self.state.job_gpus or self.status.get(d.job_id) != "running":
                raise PolicyError(f"policy {self.policy.name} watches job {d.job_id}, which is not running")
            self.watches[d.job_id] = _Watch(now[0], d.epochs)

        def wake_up(d: WakeUp) -> None:
            self.wake_at_unix = min(self.wake_at_unix, self.origin_unix + d.at_s)

        self.policy_calls += drive_policy(
            self.policy, make_view,
            on_place=lambda d: self._place(d, now[0]),
            on_undo=lambda d: self._undo(d.job_id, d.reason),
            on_watch=watch,
            on_wake_up=wake_up,
            reports=reports, finished=finished, max_calls=MAX_POLICY_CALLS_PER_TICK,
        )
        self._mark_colocations()
        self._save_learned()

    def restore_learned(self) -> int:
        """Give the policy what earlier daemons on this store learnt (EaCO's history H)."""
        items = self.store.learned()
        taken = self.policy.restore_learned(items) if items else 0
        self._learned_saved = len(self.policy.learned())
        if items:
            log.info("policy %s: restored %d of %d learnt co-location speeds", self.policy.name, taken, len(items))
        return taken

    def _save_learned(self) -> None:
        learned = self.policy.learned()
        if len(learned) > self._learned_saved:
            self.store.add_learned(learned[self._learned_saved:])
            self._learned_saved = len(learned)

    def _place(self, d: Place, now_unix: float) -> None:
        if self.status.get(d.job_id) != "queued":
            raise PolicyError(f"policy {self.policy.name} placed job {d.job_id}, which is not queued")
        gpus = tuple(d.gpus)
        self.state.place(self.jobs[d.job_id], gpus)
        self._launch(d.job_id, gpus, now_unix)

    def _undo(self, job_id: int, reason: str = "colocation") -> None:
        """Ask the job to stop at its next epoch end. Until its process has exited it keeps its
        GPUs in ``state`` (its memory is really in use there) and is out of the queue; it is queued
        (and placed anew by the policy) once the process has checkpointed and exited. ``reason``
        (the policy's ``Undo.reason``) says whether it is counted as an undo or a move."""
        status = self.status.get(job_id)
        if status == "running":
            self.backend.request_stop(self.live[job_id].handle, self.layout.control_dir(job_id))
            self.store.request_undo(job_id, reason)
            self.watches.pop(job_id, None)
            self.status[job_id] = "stopping"
            self._start_draining(job_id, self.state.job_gpus[job_id])
        elif status == "stopping":
            return  # already asked to stop
        else:
            raise PolicyError(f"policy {self.policy.name} undid job {job_id}, which is not running")

    def _start_draining(self, job_id: int, gpus: tuple[int, ...]) -> None:
        """Show a stopping job to the policy as high priority on the GPUs its old process holds:
        its memory stays counted and no policy co-locates onto it (it would watch a job that
        reports no more epochs). Re-placing it bumps the state's versions so caches see it."""
        job = self.draining.get(job_id, self.jobs[job_id])
        self.draining[job_id] = job
        shown = replace(job, priority=max(1, job.priority))
        self.jobs[job_id] = shown
        if job_id in self.state.job_gpus:
            self.state.remove(job_id)
        if gpus:
            self.state.place(self._fitting(shown, gpus), gpus, shareable=False)  # no packing policy pairs a job with it

    def _fitting(self, job: Job, gpus: tuple[int, ...]) -> Job:
        """The job with its memory cut to what is left on ``gpus``, to re-attach a process that
        already runs there (its memory is in use, whatever the figures of its neighbours say;
        the GPUs are then full for the policy). Estimates can outgrow the GPU between two runs of
        the daemon when a job measured a larger peak than it held."""
        if not gpus:
            return job
        room = self._room_gb(gpus)
        return job if job.memory_gb <= room else replace(job, memory_gb=max(0.0, room))

    def _room_gb(self, gpus: tuple[int, ...], held_gb: float = 0.0) -> float:
        """The least free memory among ``gpus``, counting ``held_gb`` (a placed job's own figure
        there) as free."""
        return min(self.state.gpu_memory_gb[g] - self.state.gpu_memory_used_gb[g] + held_gb for g in gpus)

    # ================================================================= loop
    def run(self, stop: threading.Event, exit_when_idle: bool = False) -> None:
        self.restore_learned()
        self.recover()
        self.snapshot = self.take_snapshot()
        try:
            while not stop.is_set():
                self.tick()
                if exit_when_idle and not self.status:
                    break
                stop.wait(self.tick_s)
        finally:
            self.write_summary()
            self.backend.close()
            if self.accountant.gpu_meter is not None:
                self.accountant.gpu_meter.close()
