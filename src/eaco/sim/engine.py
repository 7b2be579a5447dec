"""The event-driven simulator.

Events (arrivals, completions, watched epoch ends, policy wake-ups) sit in a heap; there is no
fixed time step. Between two events nothing changes: every job progresses at a constant rate and
every node draws a constant power, so progress and energy are integrated exactly. A job's rate
changes only when the set of jobs sharing its GPUs changes, and only then are its completion and
watch events re-scheduled (stale heap entries are skipped by a version number).

After all events of one instant are handled, the policy is called with a read-only view; the
decisions it returns are applied in order and, if it placed or undid a job, it is called again
until it has nothing more to do at that instant.
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from eaco.errors import PolicyError
from eaco.model.cluster import ClusterSpec
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.model.job import DEFAULT_RESTART_OVERHEAD_S, Job
from eaco.policies.base import Policy
from eaco.policies.decisions import Place, WakeUp, Watch
from eaco.policies.driver import drive_policy
from eaco.policies.view import EpochReport, JobProgress, SchedulerView
from eaco.sim.energy_meter import EnergyMeter
from eaco.sim.ground_truth import GroundTruth
from eaco.sim.result import JobRecord, SimulationResult
from eaco.state.cluster_state import ClusterState
from eaco.units import S_PER_H
from eaco.workloads.base import Workload

if TYPE_CHECKING:
    from eaco.energy.node_power import EnergyModel

# event kinds, in the order they are handled at one instant
_COMPLETE = 0
_WATCH = 1
_RESUMED = 2
_ARRIVAL = 3
_WAKEUP = 4

_PENDING = 0  # not yet submitted
_QUEUED = 1
_RUNNING = 2
_DONE = 3

EPOCH_EPS = 1e-9
MAX_POLICY_CALLS_PER_INSTANT = 1_000_000

ProgressCallback = Callable[[int, int, float], None]


@dataclass(slots=True)
class _JobRun:
    """Mutable run state of one job (engine-private)."""

    job: Job
    status: int = _PENDING
    progress: float = 0.0  # epochs done
    rate: float = 0.0  # epochs per second now
    exclusive_rate: float = 0.0  # epochs per second alone on its current GPUs
    last_t: float = 0.0
    version: int = 0
    first_start_s: float = math.nan
    placed_at_s: float = math.nan
    epochs_at_placement: float = 0.0
    finish_s: float = math.nan
    run_time_s: float = 0.0
    colocated_time_s: float = 0.0
    colocated_since_s: float = math.nan
    watch_target: float = -1.0
    watch_start_s: float = 0.0
    watch_start_progress: float = 0.0
    undos: int = 0
    migrations: int = 0
    placements: int = 0
    gpu_types: list[str] = field(default_factory=list)  # the GPU types it was placed on, in order (no repeats in a row)
    lost_epochs: float = 0.0
    exclusive_equiv_s: float = 0.0  # time the progress made would have taken alone on the same GPUs
    restarting_until_s: float = -math.inf  # a resumed job makes no progress before this time
    restart_time_s: float = 0.0
    queue_key: tuple[int, float, int] = (0, 0.0, 0)


@dataclass(slots=True)
class SimulationOptions:
    """Knobs of the engine itself (not of a policy)."""

    progress_every_events: int = 5000
    record_timeseries: bool = True
    # re-check every invariant after each instant (slow; for tests and debugging)
    check_invariants: bool = False
    # a job placed again after an undo restarts from its checkpoint: it holds its new GPUs this
    # long before it makes progress (process start, checkpoint load, input pipeline warm-up)
    restart_overhead_s: float = DEFAULT_RESTART_OVERHEAD_S


@dataclass(slots=True)
class _Instant:
    reports: list[EpochReport] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    woken: bool = False


class Simulator:
    """Replays one workload on one cluster under one policy."""

    def __init__(
        self,
        cluster: ClusterSpec,
        workload: Workload,
        policy: Policy,
        truth: GroundTruth,
        energy: "EnergyModel",
        options: SimulationOptions | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.cluster = cluster
        self.workload = workload
        self.policy = policy
        self.truth = truth
        self.energy_model = energy
        self.options = options or SimulationOptions()
        self.on_progress = on_progress
        self.state = ClusterState(cluster)
        jobs = workload.jobs
        for i, job in enumerate(jobs):
            if job.job_id != i:
                raise ValueError(f"workload {workload.name}: job ids must be 0..n-1 in order; position {i} has id {job.job_id}")
        self._check_fits(jobs)
        self.jobs: dict[int, Job] = {j.job_id: j for j in jobs}
        self.meter = EnergyMeter(self.state, energy, truth, self.jobs)
        self.runs: list[_JobRun] = [_JobRun(job=j, queue_key=(-j.priority, j.submit_time_s, j.job_id)) for j in jobs]
        self.queue: list[Job] = []
        self._queue_keys: list[tuple[int, float, int]] = []
        self._heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self.now_s = 0.0
        self.events_processed = 0
        self.policy_calls = 0
        self.undos = 0
        self.migrations = 0
        self.gpu_s_by_type: dict[str, float] = {}  # GPU-seconds held by jobs, per GPU type
        self.max_work_residual_epochs = 0.0
        self._gpu_speeds: list[tuple[float, ...]] = [()] * self.state.num_gpus

    # ------------------------------------------------------------------ checks
    def _check_fits(self, jobs: tuple[Job, ...]) -> None:
        gpus_by_type: dict[str, int] = {}
        mem_by_type: dict[str, float] = {}
        for node in self.cluster.nodes:
            gpus_by_type[node.gpu_type] = gpus_by_type.get(node.gpu_type, 0) + node.num_gpus
        for t in gpus_by_type:
            mem_by_type[t] = lookup_gpu_type(t).memory_gb
        bad: list[str] = []
        for job in jobs:
            types = [job.gpu_type] if job.gpu_type else list(gpus_by_type)
            if not any(
                gpus_by_type.get(t, 0) >= job.num_gpus and mem_by_type.get(t, 0.0) >= job.memory_gb
                for t in types
            ):
                bad.append(
                    f"job {job.job_id} ({job.num_gpus} x {job.gpu_type or 'any'} GPU, {job.memory_gb:.1f} GB)"
                )
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ValueError(
                f"{len(bad)} job(s) of workload {self.workload.name} can never run on cluster "
                f"{self.cluster.describe()}: {', '.join(bad[:5])}{more}"
            )

    # ------------------------------------------------------------------- heap
    def _push(self, t: float, kind: int, job_id: int, version: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, kind, self._seq, job_id, version))

    # ---------------------------------------------------------------- the loop
    def run(self) -> SimulationResult:
        wall_start = time.perf_counter()
        jobs = self.workload.jobs
        n_jobs = len(jobs)
        next_arrival = 0
        done = 0
        heap = self._heap
        runs = self.runs
        report_every = self.options.progress_every_events
        next_report = report_every
        meter = self.meter
        meter.start(0.0)
        if self.options.record_timeseries:
            meter.record(0.0)

        while done < n_jobs:
            t_heap = heap[0][0] if heap else math.inf
            t_arr = jobs[next_arrival].submit_time_s if next_arrival < n_jobs else math.inf
            t = t_heap if t_heap < t_arr else t_arr
            if t == math.inf:
                stuck = [j.job_id for j in self.queue[:10]]
                raise PolicyError(
                    f"policy {self.policy.name} left {len(self.queue)} job(s) waiting with nothing "
                    f"running and nothing to wait for (first: {stuck}) at t={self.now_s:.0f}s"
                )
            meter.advance(t)
            self.now_s = t
            instant = _Instant()
            # completions and watched epochs first, then arrivals, then wake-ups
            while heap and heap[0][0] == t and heap[0][1] < _RESUMED:
                _, kind, _, job_id, version = heapq.heappop(heap)
                run = runs[job_id]
                self.events_processed += 1
                if run.status != _RUNNING or run.version != version:
                    continue
                if kind == _COMPLETE:
                    self._finish(run, t)
                    instant.finished.append(job_id)
                    done += 1
                else:
                    instant.reports.append(self._watch_report(run, t))
            while heap and heap[0][0] == t and heap[0][1] == _RESUMED:
                _, _, _, job_id, _ = heapq.heappop(heap)
                run = runs[job_id]
                self.events_processed += 1
                if run.status == _RUNNING and run.restarting_until_s == t:
                    run.restart_time_s += t - run.placed_at_s
                    self._gpus_changed(self.state.job_gpus[job_id], t)
            while next_arrival < n_jobs and jobs[next_arrival].submit_time_s == t:
                self._enqueue(runs[next_arrival])
                next_arrival += 1
                self.events_processed += 1
            while heap and heap[0][0] == t:
                heapq.heappop(heap)
                self.events_processed += 1
                instant.woken = True
            if self.queue or instant.reports or instant.finished or instant.woken:
                self._call_policy(t, instant)
            if self.options.record_timeseries:
                meter.record(t)
            if self.options.check_invariants:
                self.check_invariants()
            if self.on_progress is not None and self.events_processed >= next_report:
                next_report = self.events_processed + report_every
                self.on_progress(done, n_jobs, t)
        if self.on_progress is not None:
            self.on_progress(done, n_jobs, self.now_s)
        meter.finish(self.now_s)
        wall_s = time.perf_counter() - wall_start
        return self._result(wall_s)

    # ------------------------------------------------------------- the policy
    def _call_policy(self, t: float, instant: _Instant) -> None:
        def wake_up(d: WakeUp) -> None:
            if not d.at_s > t:
                raise PolicyError(f"policy {self.policy.name} asked to wake up at {d.at_s}, not after now ({t})")
            self._push(d.at_s, _WAKEUP, -1, 0)

        self.policy_calls += drive_policy(
            self.policy,
            lambda reports, finished: SchedulerView(
                t, self.state, self.queue, self.jobs, self._progress_of, reports, finished
            ),
            on_place=lambda d: self._place(d, t),
            on_undo=lambda d: self._undo(d.job_id, t, d.reason == "migration"),
            on_watch=lambda d: self._watch(d, t),
            on_wake_up=wake_up,
            reports=instant.reports,
            finished=instant.finished,
            max_calls=MAX_POLICY_CALLS_PER_INSTANT,
        )

    def _progress_of(self, job_id: int) -> JobProgress:
        run = self.runs[job_id]
        progress = run.progress
        if run.status == _RUNNING:
            progress += run.rate * (self.now_s - run.last_t)
        return JobProgress(
            epochs_done=progress,
            first_start_s=None if math.isnan(run.first_start_s) else run.first_start_s,
            placed_at_s=None if run.status != _RUNNING else run.placed_at_s,
            epochs_at_placement=run.epochs_at_placement,
        )

    # -------------------------------------------------------------- transitions
    def _enqueue(self, run: _JobRun) -> None:
        run.status = _QUEUED
        i = bisect.bisect_right(self._queue_keys, run.queue_key)
        self._queue_keys.insert(i, run.queue_key)
        self.queue.insert(i, run.job)

    def _dequeue(self, run: _JobRun) -> None:
        i = bisect.bisect_left(self._queue_keys, run.queue_key)
        if i >= len(self._queue_keys) or self._queue_keys[i] != run.queue_key:
            raise PolicyError(f"job {run.job.job_id} is not in the queue")
        del self._queue_keys[i]
        del self.queue[i]

    def _place(self, d: Place, t: float) -> None:
        run = self.runs[d.job_id]
        if run.status != _QUEUED:
            raise PolicyError(f"policy {self.policy.name} placed job {d.job_id}, which is not queued")
        gpus = tuple(d.gpus)
        self.state.place(run.job, gpus)
        self._dequeue(run)
        run.status = _RUNNING
        run.last_t = t
        run.placed_at_s = t
        run.epochs_at_placement = run.progress
        run.placements += 1
        placed_type = self.state.gpu_type[gpus[0]]
        if not run.gpu_types or run.gpu_types[-1] != placed_type:
            run.gpu_types.append(placed_type)
        run.rate = 0.0
        if math.isnan(run.first_start_s):
            run.first_start_s = t
        run.exclusive_rate = self.truth.exclusive_rate(run.job, placed_type)
        overhead = self.options.restart_overhead_s
        if run.progress > 0 and overhead > 0:  # resumed from a checkpoint
            run.restarting_until_s = t + overhead
            self._push(t + overhead, _RESUMED, run.job.job_id, 0)
        self._gpus_changed(gpus, t)

    def _undo(self, job_id: int, t: float, migration: bool = False) -> None:
        run = self.runs[job_id]
        if run.status != _RUNNING:
            raise PolicyError(f"policy {self.policy.name} undid job {job_id}, which is not running")
        self._settle(run, t)
        checkpoint = math.floor(run.progress + EPOCH_EPS)
        run.lost_epochs += max(0.0, run.progress - checkpoint)
        run.progress = float(checkpoint)
        self._leave_gpus(run, t)
        if migration:
            run.migrations += 1
            self.migrations += 1
        else:
            run.undos += 1
            self.undos += 1
        self._enqueue(run)

    def _finish(self, run: _JobRun, t: float) -> None:
        self._settle_unclamped(run, t)
        residual = abs(run.job.num_epochs - run.progress) / run.job.num_epochs
        if residual > self.max_work_residual_epochs:
            self.max_work_residual_epochs = residual
        run.progress = float(run.job.num_epochs)
        run.last_t = t
        self._leave_gpus(run, t)
        run.status = _DONE
        run.finish_s = t

    def _leave_gpus(self, run: _JobRun, t: float) -> None:
        run.run_time_s += t - run.placed_at_s
        held_type = run.gpu_types[-1]  # the type of the GPUs it leaves (one type per placement)
        self.gpu_s_by_type[held_type] = self.gpu_s_by_type.get(held_type, 0.0) + (t - run.placed_at_s) * run.job.num_gpus
        if run.restarting_until_s > t:  # undone while still restarting
            run.restart_time_s += t - run.placed_at_s
        run.restarting_until_s = -math.inf
        if not math.isnan(run.colocated_since_s):
            run.colocated_time_s += t - run.colocated_since_s
            run.colocated_since_s = math.nan
        self.meter.settle_job(run.job.job_id, t)
        gpus = self.state.remove(run.job.job_id)
        self.meter.forget_job(run.job.job_id)
        run.version += 1
        run.rate = 0.0
        run.watch_target = -1.0
        run.status = _QUEUED  # callers set the final status
        self._gpus_changed(gpus, t)

    def _watch(self, d: Watch, t: float) -> None:
        run = self.runs[d.job_id]
        if run.status != _RUNNING:
            raise PolicyError(f"policy {self.policy.name} watches job {d.job_id}, which is not running")
        if d.epochs < 1:
            raise PolicyError(f"watch of job {d.job_id} needs epochs >= 1, got {d.epochs}")
        self._settle(run, t)
        target = min(float(run.job.num_epochs), math.floor(run.progress + EPOCH_EPS) + d.epochs)
        run.watch_target = target
        run.watch_start_s = t
        run.watch_start_progress = run.progress
        if target < run.job.num_epochs and run.rate > 0:
            self._push(t + (target - run.progress) / run.rate, _WATCH, run.job.job_id, run.version)

    def _watch_report(self, run: _JobRun, t: float) -> EpochReport:
        self._settle(run, t)
        run.progress = max(run.progress, run.watch_target)  # exactly on the boundary
        window_s = t - run.watch_start_s
        window_epochs = run.progress - run.watch_start_progress
        speed = window_epochs / window_s / run.exclusive_rate if window_s > 0 else 1.0
        job_id = run.job.job_id
        neighbours: set[int] = set()
        for g in self.state.job_gpus[job_id]:
            neighbours.update(self.state.gpu_jobs[g])
        neighbours.discard(job_id)
        run.watch_target = -1.0
        return EpochReport(
            job_id=job_id,
            time_s=t,
            epochs_done=int(round(run.progress)),
            window_s=window_s,
            window_epochs=window_epochs,
            observed_speed=speed,
            co_located_with=tuple(sorted(neighbours)),
        )

    def _settle_unclamped(self, run: _JobRun, t: float) -> None:
        if t > run.last_t:
            dt = t - run.last_t
            run.progress += run.rate * dt
            run.exclusive_equiv_s += dt * run.rate / run.exclusive_rate
            run.last_t = t

    def _settle(self, run: _JobRun, t: float) -> None:
        if t > run.last_t:
            dt = t - run.last_t
            run.progress += run.rate * dt
            run.exclusive_equiv_s += dt * run.rate / run.exclusive_rate
            run.last_t = t
        if run.progress > run.job.num_epochs:
            run.progress = float(run.job.num_epochs)

    def _gpus_changed(self, gpus: tuple[int, ...], t: float) -> None:
        """The job sets on ``gpus`` changed: recompute speeds, rates, events and power."""
        state = self.state
        runs = self.runs
        truth = self.truth
        affected: dict[int, None] = {}
        for g in gpus:
            members = state.gpu_jobs[g]
            self._gpu_speeds[g] = truth.speeds([runs[j].job for j in members], state.gpu_type[g]) if members else ()
            for j in members:
                affected[j] = None
        for j in affected:
            run = runs[j]
            self._settle(run, t)
            speed = 1.0
            shared = False
            for g in state.job_gpus[j]:
                members = state.gpu_jobs[g]
                if len(members) > 1:
                    shared = True
                s = self._gpu_speeds[g][members.index(j)]
                if s < speed:
                    speed = s
            if shared and math.isnan(run.colocated_since_s):
                run.colocated_since_s = t
            elif not shared and not math.isnan(run.colocated_since_s):
                run.colocated_time_s += t - run.colocated_since_s
                run.colocated_since_s = math.nan
            run.rate = speed * run.exclusive_rate if run.restarting_until_s <= t else 0.0
            run.version += 1
            if run.rate > 0:
                self._push(t + (run.job.num_epochs - run.progress) / run.rate, _COMPLETE, j, run.version)
                if run.watch_target >= 0:
                    self._push(t + max(0.0, run.watch_target - run.progress) / run.rate, _WATCH, j, run.version)
        self.meter.gpus_changed(gpus, t)

    # ------------------------------------------------------------- invariants
    def check_invariants(self) -> None:
        """Raise AssertionError if the state is inconsistent (used by tests)."""
        state = self.state
        for g in range(state.num_gpus):
            members = state.gpu_jobs[g]
            used = sum(state.job_memory_gb[j] for j in members)
            assert all(self.jobs[j].memory_gb <= state.job_memory_gb[j] + 1e-9 for j in members), f"GPU {g}: a job holds less than it needs"
            if len(members) > 1:
                assert not any(self.jobs[j].exclusive for j in members), f"GPU {g} shares an exclusive job"
            assert used <= state.gpu_memory_gb[g] + 1e-6, f"GPU {g} holds {used} GB > {state.gpu_memory_gb[g]}"
            assert abs(used - state.gpu_memory_used_gb[g]) < 1e-6, f"GPU {g} memory bookkeeping drifted"
            for j in members:
                assert g in state.job_gpus[j], f"job {j} listed on GPU {g} but does not hold it"
        running = [r for r in self.runs if r.status == _RUNNING]
        assert len(running) == len(state.job_gpus), "running jobs and placed jobs differ"
        queued = sum(1 for r in self.runs if r.status == _QUEUED)
        assert queued == len(self.queue), "queue and queued jobs differ"
        assert self._queue_keys == sorted(self._queue_keys), "queue out of order"
        for r in running:
            assert r.rate > 0 or r.restarting_until_s > self.now_s, f"job {r.job.job_id} runs at rate {r.rate}"
            assert -1e-9 <= r.progress <= r.job.num_epochs + 1e-9
        assert state.active_nodes == sum(1 for c in state.node_job_count if c > 0)
        assert state.busy_gpus == sum(1 for js in state.gpu_jobs if js)

    # ----------------------------------------------------------------- result
    def _result(self, wall_s: float) -> SimulationResult:
        records = []
        meter = self.meter
        for run in self.runs:
            job = run.job
            records.append(
                JobRecord(
                    job_id=job.job_id,
                    job_type=job.job_type,
                    num_gpus=job.num_gpus,
                    submit_s=job.submit_time_s,
                    first_start_s=run.first_start_s,
                    finish_s=run.finish_s,
                    run_time_s=run.run_time_s,
                    colocated_time_s=run.colocated_time_s,
                    exclusive_duration_s=job.exclusive_duration_s,
                    deadline_s=job.deadline_s,
                    priority=job.priority,
                    energy_j=meter.job_energy_j(job.job_id),
                    undos=run.undos,
                    migrations=run.migrations,
                    placements=run.placements,
                    gpu_types="+".join(run.gpu_types),
                    lost_epochs=run.lost_epochs,
                    colocation_delay_s=max(0.0, run.run_time_s - run.restart_time_s - run.exclusive_equiv_s),
                    restart_s=run.restart_time_s,
                )
            )
        return SimulationResult(
            policy=self.policy.name,
            workload=self.workload.name,
            cluster=self.cluster.describe(),
            num_nodes=self.cluster.num_nodes,
            num_gpus=self.cluster.num_gpus,
            jobs=tuple(records),
            energy=meter.totals(),
            timeseries=meter.timeseries(),
            makespan_s=self.now_s,
            events=self.events_processed,
            policy_calls=self.policy_calls,
            undos=self.undos,
            migrations=self.migrations,
            max_work_residual=self.max_work_residual_epochs,
            wall_s=wall_s,
            policy_stats=dict(self.policy.decision_counts()),
            job_gpu_hours_by_type={t: self.gpu_s_by_type[t] / S_PER_H for t in sorted(self.gpu_s_by_type)},
        )
