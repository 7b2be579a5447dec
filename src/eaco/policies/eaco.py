"""EaCO: energy-aware co-location with deadline checks, early-stage observation and undo.

The paper's Algorithms 1 and 2 (arXiv 2412.08294), in the form this project implements:

- Jobs are taken from the queue by priority, then arrival (the view's queue order), with
  backfill: a job that cannot be placed now waits and the next one is tried.
- **High-priority jobs** get free GPUs exclusively, at once; they never share.
- **FindCandidates(j)**: GPU sets of j's type and count made of busy GPUs (1 to
  ``max_jobs_per_gpu - 1`` jobs on them) where every GPU is under the utilisation threshold
  (predicted utilisation of its current set) and under the memory threshold (memory in use /
  memory), and free memory (total minus the peak memory of the jobs there, minus
  ``memory_margin_gb``) covers j's memory. One candidate per node: its most-utilised eligible
  GPUs; jobs larger than a node take the most-utilised fully eligible nodes. GPUs whose
  co-location is still being observed are not candidates.
- Candidates are tried most-utilised first. **PredictJCT**: for j and every job already on the
  candidate GPUs, the predicted finish time with the history H's speed estimates (taken
  ``confidence_z`` standard deviations below the estimate). A candidate is feasible only if
  every finite deadline holds. Free GPUs (exclusive placement) are an option too when j's own
  deadline holds there.
- Among the feasible options (at most ``max_candidates`` co-locations + the exclusive one), the
  paper's objective picks: ``alpha x energy + (1 - alpha) x time per epoch``, each normalised
  (energy by j's exclusive energy, time per epoch by the affected jobs' current time per epoch).
  ``alpha = 1`` minimises energy, ``alpha = 0`` time.
- No feasible option: j waits, unless free GPUs exist: then it takes them (a deadline that
  cannot be met anywhere is met as closely as possible rather than by waiting).
- **Early-stage observation**: after a co-location every job in the new set is watched until it
  has finished ``observation_epochs`` epochs since the allocation. Their observed speeds (from
  the real system; never from the predictor) are recorded in H. Then every job of the set is
  re-estimated; if a deadline would be missed, the co-location is **undone** at that epoch
  boundary: the new job goes back to the queue (its progress up to the epoch is kept) and that
  GPU set is excluded for it, so it tries the remaining candidates.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from eaco.colocation.catalog import JobCatalog
from eaco.energy.node_power import EnergyModel
from eaco.model.job import Job
from eaco.policies.base import Policy
from eaco.policies.candidates import CandidateFinder
from eaco.policies.consolidation import ConsolidationSettings, Consolidator
from eaco.policies.decisions import Decision, Place, Undo, WakeUp, Watch
from eaco.policies.eaco_settings import EacoSettings
from eaco.policies.placement import candidate_gpu_types, find_free_gpus, types_fastest_first
from eaco.policies.reservation import ReservationSettings, Reserver
from eaco.policies.view import EpochReport, SchedulerView
from eaco.predictor.history import CoLocationPredictor, LearnedSpeed

__all__ = ["EacoPolicy", "EacoSettings", "EacoStats"]


@dataclass(slots=True)
class _Observation:
    """A co-location under early-stage observation."""

    new_job: int
    gpus: tuple[int, ...]
    gpu_type: str
    members: tuple[int, ...]  # every job on the GPUs, the new one included
    # the jobs sharing each GPU of the co-location (a multi-GPU job may meet different jobs on
    # different GPUs): GPU -> job ids, and the same as job types
    gpu_sets: dict[int, tuple[int, ...]] = field(default_factory=dict)
    gpu_set_types: dict[int, tuple[str, ...]] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    # each member's speed over its window, where the jobs around it stayed the same
    observed: dict[int, float] = field(default_factory=dict)

    def sets_of(self, job_id: int) -> list[tuple[int, ...]]:
        """The distinct job sets ``job_id`` shares a GPU with in this co-location."""
        return list({self.gpu_sets[g]: None for g in self.gpus if job_id in self.gpu_sets[g]})


@dataclass(slots=True)
class _Option:
    gpus: tuple[int, ...]
    colocated: bool
    energy_j: float
    slowdown: float
    feasible: bool


@dataclass(slots=True)
class EacoStats:
    colocations: int = 0
    exclusive_placements: int = 0
    observations_completed: int = 0
    undos: int = 0
    undo_job_ids: list[int] = field(default_factory=list)
    waits_for_faster_type: int = 0  # jobs that waited for a faster GPU type rather than start on a slower one


class EacoPolicy(Policy):
    name = "eaco"
    manages_node_power = True

    def __init__(
        self,
        predictor: CoLocationPredictor,
        catalog: JobCatalog,
        energy: EnergyModel,
        settings: EacoSettings | None = None,
    ) -> None:
        self.predictor = predictor
        self.catalog = catalog
        self.energy = energy
        self.settings = settings or EacoSettings()
        self.stats = EacoStats()
        self._observing: dict[int, _Observation] = {}  # new job id -> observation
        # FindCandidates, with the GPUs locked for observed co-locations and the GPU sets undone
        # for each job (finder.excluded)
        self.finder = CandidateFinder(self.settings, predictor, catalog, lambda: self.consolidator.held_gpus)
        self._undo_at_epoch: dict[int, tuple[int, ...]] = {}  # job to undo at its next epoch end -> GPUs locked
        self._blocked: set[int] = set()
        self._transitions: list[tuple[float, int]] = []  # (time, waiting job whose checks change then)
        self._wake_at_s = math.inf  # the wake-up asked for, if any
        self._noted: set[tuple[float, int]] = set()  # what _transitions holds
        self._node_end: dict[int, tuple[tuple[int, int], tuple[float, ...]]] = {}
        # within one call (one view, one time, nothing applied yet): (job, GPU type) -> _left
        self._left_now: dict[tuple[int, str], tuple[float, float]] = {}
        # (GPU count, GPU type, draining, reserved) -> _free_gpus, for one cluster state version
        self._free_memo: dict[tuple[object, ...], tuple[int, ...] | None] = {}
        self._free_version = -1
        self._host_per_gpu_w: dict[str, float] = {}
        # job waiting for a faster GPU type -> (nodes it waits for, GPUs per node, predicted end
        # there) (_better_to_wait)
        self._claims: dict[int, tuple[frozenset[int], int, float]] = {}
        self._waited_for_faster: set[int] = set()
        st = self.settings
        self.reserver = Reserver(
            ReservationSettings(enabled=st.reserve, wait_s=st.reserve_wait_s),
            room_at_s=self._room_at_s,
            remaining_s=self._remaining_alone_s,
        )
        self.consolidator = Consolidator(
            ConsolidationSettings(enabled=st.consolidate, min_remaining_s=st.consolidate_min_remaining_s,
                                  restart_overhead_s=st.restart_overhead_s, move_shared=st.consolidate_shared),
            remaining_s=self._remaining_alone_s,
            movable=self._movable,
            reserved=self.reserver.reserved_nodes,
            speed=self._job_speed,
            on_hold_change=self.finder.node_changed,
        )

    def _movable(self, job_id: int) -> bool:
        """Whether consolidation may move the job: not in a co-location under observation, no
        undo pending."""
        if job_id in self._undo_at_epoch:
            return False
        return not any(job_id in obs.members for obs in self._observing.values())

    def decision_counts(self) -> dict[str, int]:
        st, rs, cs = self.stats, self.reserver.stats, self.consolidator.stats
        return {
            "colocations": st.colocations,
            "exclusive_placements": st.exclusive_placements,
            "observations_completed": st.observations_completed,
            "undos": st.undos,
            "waits_for_faster_type": st.waits_for_faster_type,
            "reservations_made": rs.made,
            "reservations_honoured": rs.honoured,
            "reservation_backfills": rs.backfilled,
            "drains_started": cs.drains_started,
            "drains_completed": cs.drains_completed,
            "drains_called_off": cs.drains_called_off,
            "consolidation_moves": cs.moves,
        }

    # ======================================================= learnt history
    def learned(self) -> Sequence[LearnedSpeed]:
        return self.predictor.learned

    def restore_learned(self, items: Iterable[LearnedSpeed]) -> int:
        taken = self.predictor.restore(items)
        self.finder.history_restored()
        return taken

    # ================================================================== entry
    def schedule(self, view: SchedulerView) -> list[Decision]:
        self._left_now.clear()
        if self.capacity_changed(view):  # GPUs joined or came back
            self._blocked.clear()
        if view.finished:
            self._blocked.clear()
            for job_id in view.finished:
                self.finder.excluded.pop(job_id, None)
                if job_id in self._undo_at_epoch:
                    self._release_undo_lock(job_id)
                self._job_left(job_id)
                self.consolidator.job_finished(job_id)
        now = view.now_s
        while self._transitions and self._transitions[0][0] <= now:
            entry = heapq.heappop(self._transitions)
            self._noted.discard(entry)
            self._blocked.discard(entry[1])
        if self._wake_at_s <= now:
            self._wake_at_s = math.inf
        decisions = self._handle_reports(view)
        if view.reports:
            decisions += self.consolidator.on_reports(view, {r.job_id for r in view.reports})
        if not decisions:
            decisions = self.consolidator.place_moving(view)
        if not decisions:
            decisions = self._place_next(view)
        if not decisions:
            decisions = self.consolidator.maybe_start(view)
        if self._transitions and self._transitions[0][0] < self._wake_at_s:
            self._wake_at_s = self._transitions[0][0]
            decisions.append(WakeUp(self._wake_at_s))
        return decisions

    def _note_transitions(self, view: SchedulerView, job: Job) -> None:
        """A waiting job's own checks change with time alone: it becomes urgent (slack below
        ``urgent_slack``) and later late (its deadline lost even alone). Nothing else may happen
        then, so a blocked job is looked at again at those times (a wake-up). So does the end of
        its wait for a reservation."""
        st = self.settings
        times = [self.reserver.next_wait_end_s(job)]
        for gpu_type in candidate_gpu_types(view, job) if job.has_deadline else ():
            alone_s = self._remaining_s(view, job, gpu_type, 1.0)
            if st.urgent_slack > 0:
                times.append(job.deadline_s - (1.0 + st.urgent_slack) * alone_s)
            if st.late_jobs_best_effort:
                times.append(job.deadline_s - alone_s)
        for t in times:
            entry = (t + 1.0, job.job_id)  # a second past the bound, so the check has flipped
            if view.now_s < t < math.inf and entry not in self._noted:
                self._noted.add(entry)
                heapq.heappush(self._transitions, entry)

    # ============================================================ observation
    def _handle_reports(self, view: SchedulerView) -> list[Decision]:
        decisions: list[Decision] = []
        reported = {r.job_id for r in view.reports}
        for report in view.reports:
            for obs in list(self._observing.values()):
                if report.job_id in obs.pending:
                    self._record(obs, report, view)
        # an undo decided earlier waits for the new job's own epoch boundary (its checkpoint)
        for job_id in list(self._undo_at_epoch):
            if job_id in reported:
                self._release_undo_lock(job_id)
                if view.is_running(job_id):
                    decisions.append(Undo(job_id))
        for new_job, obs in list(self._observing.items()):
            if obs.pending:
                continue
            self._end_observation(new_job)
            self._blocked.clear()  # GPUs unlocked and H updated: waiting jobs may fit now
            self.stats.observations_completed += 1
            if view.is_running(new_job) and self._would_miss_a_deadline(view, obs):
                self.finder.excluded.setdefault(new_job, set()).add(obs.gpus)
                self.stats.undos += 1
                self.stats.undo_job_ids.append(new_job)
                if new_job in reported:
                    decisions.append(Undo(new_job))  # at its epoch boundary right now
                else:
                    # the last report came from another member: undo at the new job's next
                    # epoch end so that no work past its checkpoint is lost
                    # its GPUs stay locked until then
                    self._undo_at_epoch[new_job] = obs.gpus
                    self.finder.keep_locked(obs.gpus, new_job)
                    decisions.append(Watch(new_job, 1))
        return decisions

    def _record(self, obs: _Observation, report: EpochReport, view: SchedulerView) -> None:
        obs.pending.discard(report.job_id)
        sets = obs.sets_of(report.job_id)
        expected = tuple(sorted({m for members in sets for m in members} - {report.job_id}))
        if report.co_located_with == expected:
            obs.observed[report.job_id] = report.observed_speed
        if report.co_located_with != expected or len(sets) != 1 or not report.speed_calibrated:
            # the jobs around it changed during the window, or it met different jobs on its
            # different GPUs (its speed is the slowest of them): not an observation of one set;
            # or its exclusive epoch time is unknown (a default): not a speed H can learn from
            return
        g = next(g for g in obs.gpus if obs.gpu_sets[g] == sets[0])
        types = obs.gpu_set_types[g]
        self.predictor.record_member(types, obs.gpu_type, view.job(report.job_id).job_type, report.observed_speed)
        self.finder.set_learnt(types, obs.gpu_type)

    def _would_miss_a_deadline(self, view: SchedulerView, obs: _Observation) -> bool:
        z = self.settings.confidence_z
        speeds: dict[int, float] = {}
        for g in obs.gpus:
            members = obs.gpu_sets[g]
            for job_id, est in zip(members, self.predictor.estimate(obs.gpu_set_types[g], obs.gpu_type)):
                speeds[job_id] = min(speeds.get(job_id, 1.0), est.conservative(z))
        # a speed seen in the window counts even where H learnt nothing from it (a multi-GPU job
        # that met different jobs on its GPUs, a member also slowed on GPUs outside the set)
        for job_id, seen in obs.observed.items():
            if job_id in speeds:
                speeds[job_id] = min(speeds[job_id], seen)
        for job_id, speed in speeds.items():
            if not view.is_running(job_id):
                continue
            job = view.job(job_id)
            if self._deadline_binds(view, job, obs.gpu_type) and view.now_s + self._remaining_s(view, job, obs.gpu_type, speed) > job.deadline_s:
                return True
        return False

    def _job_left(self, job_id: int) -> None:
        """A job finished: observations waiting on it stop waiting."""
        self._waited_for_faster.discard(job_id)
        self._claims.pop(job_id, None)
        if job_id in self._observing:
            self._end_observation(job_id)
        for obs in self._observing.values():
            obs.pending.discard(job_id)

    def _release_undo_lock(self, job_id: int) -> None:
        self.finder.unlock(self._undo_at_epoch.pop(job_id), job_id)

    def _end_observation(self, new_job: int) -> None:
        obs = self._observing.pop(new_job)
        self.finder.unlock(obs.gpus, new_job)

    # ============================================================== placement
    def _place_next(self, view: SchedulerView) -> list[Decision]:
        if self.reserver.check_holder(view):
            self._blocked.clear()  # the reserved nodes are open to every job again
        examined = 0
        waiting: list[Job] = []  # the jobs that could not be placed, in queue order
        window = self.settings.queue_window
        for job in view.queue:
            if examined >= window:
                break
            if self.consolidator.holds(job.job_id):
                continue
            if job.job_id in self._blocked:
                if len(waiting) < window:
                    waiting.append(job)
                continue
            examined += 1
            decisions = self._place(view, job)
            if decisions:
                self._claims.pop(job.job_id, None)
                place = decisions[0]
                assert isinstance(place, Place)
                if self.reserver.placed(view, job, place.gpus):
                    self._blocked.clear()
                return decisions
            self._blocked.add(job.job_id)
            self._note_transitions(view, job)
            waiting.append(job)
        self.reserver.consider(view, waiting, urgent=lambda j: self._is_urgent(view, j),
                               gpu_types=lambda j: self._types_fastest_first(view, j))
        return []

    def _place(self, view: SchedulerView, job: Job) -> list[Decision]:
        types = self._types_fastest_first(view, job)
        draining = self.consolidator.draining_nodes
        if job.is_high_priority:
            for t in types:
                gpus = self._free_gpus(view, job.num_gpus, t, draining, self.reserver.avoid_for(view, job, t, sharing=False))
                if gpus is None:
                    gpus = find_free_gpus(view, job.num_gpus, t)  # high priority: a reserved node if need be
                if gpus is not None:
                    self.stats.exclusive_placements += 1
                    self._blocked.clear()
                    return self._placing(view, Place(job.job_id, gpus))
            return []
        if not types:
            return []
        # Options on different GPU types are compared on one scale: energy over the job's energy
        # alone on its fastest type, time per epoch over its time per epoch there (a slower type
        # costs time even when the job runs alone on it).
        jt = self.catalog.get(job.job_type)
        fastest_speed = jt.speed_on(types[0])
        norm_j = self._reference_energy_j(view, job, types[0])
        # late (its deadline lost even alone) is judged on the fastest type: on a slower type
        # every deadline looks lost, which would let the job go there best-effort
        binds = self._deadline_binds(view, job, types[0])
        options: list[_Option] = []
        fallback: _Option | None = None
        for t in types:
            type_factor = fastest_speed / jt.speed_on(t)
            found = 0
            min_speed = self._min_speed(view, job, t)
            avoid = draining | self.reserver.avoid_for(view, job, t, sharing=True)
            for gpus in () if job.exclusive else self.finder.candidates(view, job, t, min_speed):
                if avoid and any(view.gpu_node(g) in avoid for g in gpus):
                    continue  # being emptied, or held for a waiting job
                opt = self._evaluate_colocation(view, job, gpus, t, min_speed, norm_j, type_factor, binds)
                if opt.feasible:
                    options.append(opt)
                    found += 1
                    if found >= self.settings.max_candidates:
                        break
            free = self._free_gpus(view, job.num_gpus, t, draining, self.reserver.avoid_for(view, job, t, sharing=False))
            if free is not None:
                opt = self._evaluate_exclusive(view, job, free, t, norm_j, type_factor, binds)
                if opt.feasible:
                    options.append(opt)
                elif fallback is None:
                    fallback = opt  # the fastest type with free GPUs: the deadline is missed least there
        if not options:
            if fallback is None:
                return []
            options.append(fallback)
        best = min(options, key=lambda o: (self._objective(o.energy_j, o.slowdown), not o.colocated))
        if self.settings.wait_for_faster_type and self._better_to_wait(view, job, types, best, norm_j, binds):
            return []
        if not best.colocated:
            self.stats.exclusive_placements += 1
            self._blocked.clear()  # newly busy GPUs are new co-location candidates
            return self._placing(view, Place(job.job_id, best.gpus))
        return self._colocate(view, job, best.gpus)

    def _objective(self, energy: float, slowdown: float) -> float:
        """The paper's objective (docs/eaco.md, section 5), both terms normalised: smaller is better."""
        alpha = self.settings.alpha
        return alpha * energy + (1 - alpha) * slowdown

    def _better_to_wait(
        self, view: SchedulerView, job: Job, types: tuple[str, ...], best: _Option, norm_j: float, binds: bool,
    ) -> bool:
        """Whether ``job`` should rather wait for GPUs of a faster type than take ``best`` on a
        slower one now (a mixed cluster: a long job started on a K80 may run for weeks where an
        A100 frees in an hour). Waiting for type T is scored like running alone there, started
        when T is predicted to have room for the job (:meth:`Reserver.earliest_room`, from
        EaCO's estimate of when each GPU's jobs end, less the GPUs that other waiting jobs
        claimed): energy as alone on T, time the wait plus the run, over the run on the fastest
        type; it must meet a deadline that binds. A job that waits claims its GPUs there."""
        self._claims.pop(job.job_id, None)
        jt = self.catalog.get(job.job_type)
        best_speed = jt.speed_on(view.gpu_type(best.gpus[0]))
        fastest_s = self._remaining_s(view, job, types[0], 1.0)
        if fastest_s <= 0 or jt.speed_on(types[0]) <= best_speed:
            return False
        best_score = self._objective(best.energy_j, best.slowdown)
        claimed: dict[int, tuple[int, float]] = {}
        for nodes, count, until_s in self._claims.values():
            for n in nodes:
                gpus, last_s = claimed.get(n, (0, -math.inf))
                claimed[n] = (gpus + count, max(last_s, until_s))
        avoid = self.consolidator.draining_nodes | self.reserver.reserved_nodes()
        for t in types:
            if jt.speed_on(t) <= best_speed:
                break
            room = self.reserver.earliest_room(view, job, t, avoid, claimed)
            if room is None:
                continue
            start_s, nodes = room
            run_s = self._remaining_s(view, job, t, 1.0)
            end_s = max(start_s, view.now_s) + run_s
            if binds and end_s > job.deadline_s:
                continue
            energy_j = self._alone_energy_j(view, job, t, run_s, {n: end_s for n in nodes})
            if self._objective(energy_j / norm_j, (end_s - view.now_s) / fastest_s) < best_score:
                per_node = job.num_gpus if len(nodes) == 1 else view.max_gpus_per_node(t)
                self._claims[job.job_id] = (nodes, per_node, end_s)
                if job.job_id not in self._waited_for_faster:
                    self._waited_for_faster.add(job.job_id)
                    self.stats.waits_for_faster_type += 1
                return True
        return False

    def _free_gpus(self, view: SchedulerView, num_gpus: int, gpu_type: str, draining: frozenset[int],
                   reserved: frozenset[int]) -> tuple[int, ...] | None:
        """Free GPUs off ``reserved`` nodes (held for another job), and off the nodes being
        drained if possible. The same for every queued job of that size until the cluster
        changes: kept for the cluster state version."""
        if self._free_version != view.state_version:
            self._free_version = view.state_version
            self._free_memo.clear()
        key = (num_gpus, gpu_type, draining, reserved)
        if key in self._free_memo:
            return self._free_memo[key]
        gpus = find_free_gpus(view, num_gpus, gpu_type, avoid=draining | reserved) if draining else None
        if gpus is None:
            gpus = find_free_gpus(view, num_gpus, gpu_type, avoid=reserved)
        self._free_memo[key] = gpus
        return gpus

    def _placing(self, view: SchedulerView, place: Place) -> list[Decision]:
        """A placement on a node being drained calls that drain off (there was no other room)."""
        if self.consolidator.draining_nodes:
            self.consolidator.placing_on({view.gpu_node(g) for g in place.gpus})
        return [place]

    def _types_fastest_first(self, view: SchedulerView, job: Job) -> tuple[str, ...]:
        return types_fastest_first(view, job, self.catalog)

    def _colocate(self, view: SchedulerView, job: Job, gpus: tuple[int, ...]) -> list[Decision]:
        members: dict[int, None] = {}
        gpu_sets: dict[int, tuple[int, ...]] = {}
        for g in gpus:
            on_gpu = (*view.gpu_jobs(g), job.job_id)
            gpu_sets[g] = on_gpu
            for j in on_gpu:
                members[j] = None
        member_ids = tuple(members)
        obs = _Observation(
            new_job=job.job_id,
            gpus=gpus,
            gpu_type=view.gpu_type(gpus[0]),
            members=member_ids,
            gpu_sets=gpu_sets,
            gpu_set_types={g: tuple(view.job(j).job_type for j in js) for g, js in gpu_sets.items()},
            pending=set(member_ids),
        )
        self._observing[job.job_id] = obs
        self.finder.lock(view, gpus, job.job_id)
        self.stats.colocations += 1
        epochs = self.settings.observation_epochs
        return [Place(job.job_id, gpus), *(Watch(j, epochs) for j in member_ids)]

    # ========================================================= FindCandidates
    def _find_candidates(
        self, view: SchedulerView, job: Job, gpu_type: str, min_speed: float = 0.0
    ) -> list[tuple[int, ...]]:
        """Every candidate GPU set for ``job``, most utilised first (see
        :meth:`CandidateFinder.search`); with the default ``min_speed`` of 0, FindCandidates as
        the paper defines it."""
        return list(self.finder.candidates(view, job, gpu_type, min_speed))

    # ============================================================ PredictJCT
    def _left(self, view: SchedulerView, job: Job, gpu_type: str) -> tuple[float, float]:
        """The job's remaining epochs, and the seconds they take alone on ``gpu_type`` (kept for
        the rest of this call: the view does not change within it)."""
        key = (job.job_id, gpu_type)
        got = self._left_now.get(key)
        if got is None:
            remaining_epochs = max(0.0, job.num_epochs - view.progress(job.job_id).epochs_done)
            rate = self.catalog.get(job.job_type).speed_on(gpu_type) / job.epoch_duration_s
            got = self._left_now[key] = (remaining_epochs, remaining_epochs / rate)
        return got

    def _remaining_s(self, view: SchedulerView, job: Job, gpu_type: str, speed: float) -> float:
        return self._left(view, job, gpu_type)[1] / speed

    def _remaining_alone_s(self, view: SchedulerView, job: Job, gpu_type: str) -> float:
        return self._left(view, job, gpu_type)[1]

    def _deadline_binds(self, view: SchedulerView, job: Job, gpu_type: str, alone_s: float | None = None) -> bool:
        """Whether ``job``'s deadline constrains a decision: it has one, and (with
        ``late_jobs_best_effort``) it could still meet it by running alone from now on
        (``alone_s``: its remaining time alone, if already known)."""
        if not job.has_deadline:
            return False
        if not self.settings.late_jobs_best_effort:
            return True
        if alone_s is None:
            alone_s = self._remaining_s(view, job, gpu_type, 1.0)
        return view.now_s + alone_s <= job.deadline_s

    def _min_speed(self, view: SchedulerView, job: Job, gpu_type: str) -> float:
        st = self.settings
        if st.urgent_slack <= 0:
            return st.min_speed
        return min(st.min_speed, st.urgent_min_speed) if self._slack(view, job, gpu_type) < st.urgent_slack else st.min_speed

    def _slack(self, view: SchedulerView, job: Job, gpu_type: str) -> float:
        """(deadline - now - remaining time alone) / remaining time alone; inf without a deadline."""
        if not job.has_deadline:
            return math.inf
        t = self._remaining_s(view, job, gpu_type, 1.0)
        return (job.deadline_s - view.now_s - t) / t if t > 0 else math.inf

    def _is_urgent(self, view: SchedulerView, job: Job) -> bool:
        """Its slack on its fastest type is below ``urgent_slack`` but not yet lost (a late job
        is best-effort: it gets no reservation before it has waited ``reserve_wait_s``)."""
        types = self._types_fastest_first(view, job)
        return bool(types) and 0.0 <= self._slack(view, job, types[0]) < self.settings.urgent_slack

    def _evaluate_colocation(
        self, view: SchedulerView, job: Job, gpus: tuple[int, ...], gpu_type: str, min_speed: float,
        norm_j: float, type_factor: float, binds: bool,
    ) -> _Option:
        """Co-locating ``job`` on ``gpus``: feasible if every member keeps ``min_speed`` and every
        finite deadline holds; its energy is the extra energy it causes over ``norm_j``, its time
        the mean slowdown of the affected jobs, the new job's times ``type_factor`` (its time per
        epoch alone on ``gpu_type`` over that on its fastest type). ``binds``: whether the new
        job's deadline constrains the choice (see :meth:`_place`)."""
        st = self.settings
        now = view.now_s
        gpu_model = self.energy.gpu(gpu_type)
        host_w = self._host_share_w(gpu_type)
        # per job: (remaining epochs, remaining seconds alone on this GPU type), read once
        left: dict[int, tuple[float, float]] = {job.job_id: self._left(view, job, gpu_type)}

        def z(j: int) -> float:
            return max(st.confidence_z, st.unobserved_z) if left[j][0] <= st.observation_epochs else st.confidence_z

        new_speed = 1.0
        speeds: dict[int, float] = {}
        old_speeds: dict[int, float] = {}
        delta_power_w = 0.0
        new_power_on: dict[int, float] = {}
        # GPUs with the same jobs (those of a multi-GPU job) give the same figures: computed once
        per_set: dict[tuple[int, ...], tuple[float, float]] = {}  # jobs there -> (extra W, new W per job)
        for g in gpus:
            others = view.gpu_jobs(g)
            got = per_set.get(others)
            if got is None:
                types = tuple(view.job(j).job_type for j in others)
                old = self.predictor.estimate(types, gpu_type)
                new = self.predictor.estimate((*types, job.job_type), gpu_type)
                if min(e.speed for e in new) < min_speed:
                    return _Option(gpus, True, math.inf, math.inf, False)
                for j, o, n in zip(others, old, new[:-1]):
                    if j not in left:
                        left[j] = self._left(view, view.job(j), gpu_type)
                    speeds[j] = min(speeds.get(j, 1.0), n.conservative(z(j)))
                    old_speeds[j] = min(old_speeds.get(j, 1.0), o.speed)
                new_speed = min(new_speed, new[-1].conservative(z(job.job_id)))
                util_old = self.finder.gpu_util(view, g)
                util_new = self.finder.set_util((*types, job.job_type), gpu_type)
                p_new = gpu_model.power_w(util_new)
                got = per_set[others] = (p_new - gpu_model.power_w(util_old), p_new / (len(others) + 1) + host_w)
            delta_power_w += got[0]
            new_power_on[g] = got[1]
        alone_new = left[job.job_id][1]
        t_new = alone_new / new_speed
        if binds and now + t_new > job.deadline_s:
            return _Option(gpus, True, math.inf, math.inf, False)
        extra_energy_j = delta_power_w * t_new
        slowdowns = [type_factor / new_speed]
        node_end = {view.gpu_node(g): now + t_new for g in gpus}
        for j, s_new in speeds.items():
            other = view.job(j)
            alone = left[j][1]
            t_other = alone / s_new
            if self._deadline_binds(view, other, gpu_type, alone) and now + t_other > other.deadline_s:
                return _Option(gpus, True, math.inf, math.inf, False)
            t_before = alone / old_speeds[j]
            share_w = sum(new_power_on[g] for g in view.job_gpus(j) if g in new_power_on)
            extra_energy_j += share_w * max(0.0, t_other - t_before)
            slowdowns.append(old_speeds[j] / s_new)
            for g in view.job_gpus(j):
                node = view.gpu_node(g)
                if node in node_end:
                    node_end[node] = max(node_end[node], now + t_other)
        extra_energy_j += self._awake_extension_j(view, node_end, gpu_type)
        return _Option(gpus, True, extra_energy_j / norm_j, sum(slowdowns) / len(slowdowns), True)

    def _evaluate_exclusive(
        self, view: SchedulerView, job: Job, gpus: tuple[int, ...], gpu_type: str,
        norm_j: float, type_factor: float, binds: bool,
    ) -> _Option:
        """``job`` alone on the free ``gpus``, on the scale of :meth:`_evaluate_colocation`."""
        t = self._remaining_s(view, job, gpu_type, 1.0)
        feasible = not binds or view.now_s + t <= job.deadline_s
        energy_j = self._alone_energy_j(view, job, gpu_type, t, {view.gpu_node(g): view.now_s + t for g in gpus})
        return _Option(gpus, False, energy_j / norm_j, type_factor, feasible)

    def _alone_energy_j(self, view: SchedulerView, job: Job, gpu_type: str, run_s: float,
                        node_end_s: dict[int, float]) -> float:
        """Energy of ``job`` running alone on ``gpu_type`` for ``run_s``: its GPUs' draw above
        idle, plus keeping its nodes awake until ``node_end_s`` (node -> when it would end there)."""
        gpu_model = self.energy.gpu(gpu_type)
        util = self.catalog.get(job.job_type).util_on(gpu_type)
        energy_j = job.num_gpus * (gpu_model.power_w(util) - gpu_model.idle_power_w) * run_s
        return energy_j + self._awake_extension_j(view, node_end_s, gpu_type)

    def _awake_extension_j(self, view: SchedulerView, new_end_s: dict[int, float], gpu_type: str) -> float:
        """Energy of keeping nodes awake past the time their current jobs would end (waking a
        sleeping node is the extreme case): awake idle power minus low-power draw, times the
        extension."""
        total = 0.0
        for node, end_s in new_end_s.items():
            extension_s = end_s - self._node_end_s(view, node)
            if extension_s > 0:
                n = len(view.node_gpus(node))
                cost_w = self.energy.awake_idle_node_power_w(gpu_type, n) - self.energy.empty_node_power_w(gpu_type, n)
                total += cost_w * extension_s
        return total

    def _node_end_s(self, view: SchedulerView, node: int) -> float:
        """When the node's current jobs are predicted to be done (now if it has none)."""
        ends = self._gpu_ends_s(view, node)
        last = next((e for e in reversed(ends) if e != math.inf), -math.inf)  # offline GPUs: inf
        return max(view.now_s, last)

    def _room_at_s(self, view: SchedulerView, node: int, num_gpus: int) -> float:
        """When ``num_gpus`` GPUs of the node are predicted to be free (now if they are)."""
        return max(view.now_s, self._gpu_ends_s(view, node)[num_gpus - 1])

    def _gpu_ends_s(self, view: SchedulerView, node: int) -> tuple[float, ...]:
        """Per GPU of the node, when its current jobs are predicted to be done (-inf: free; inf:
        offline, it frees for nobody), earliest first; H's speed estimates for jobs that share
        a GPU."""
        key = (view.node_version(node), self.finder.util_version)
        got = self._node_end.get(node)
        if got is None or got[0] != key:
            ends: dict[int, float] = {}  # job -> predicted end
            per_gpu: list[float] = []
            for g in view.node_gpus(node):
                gpu_end = math.inf if view.is_offline(g) else -math.inf
                for j in view.gpu_jobs(g):
                    end_s = ends.get(j)
                    if end_s is None:
                        end_s = ends[j] = view.now_s + self._remaining_s(view, view.job(j), view.gpu_type(g), self._job_speed(view, j))
                    gpu_end = max(gpu_end, end_s)
                per_gpu.append(gpu_end)
            got = (key, tuple(sorted(per_gpu)))
            self._node_end[node] = got
        return got[1]

    def _job_speed(self, view: SchedulerView, job_id: int) -> float:
        """H's predicted speed of a running job: the slowest of its GPUs' sets (1 alone)."""
        speed = 1.0
        for h in view.job_gpus(job_id):
            members = view.gpu_jobs(h)
            if len(members) > 1:
                ests = self.predictor.estimate(tuple(view.job(m).job_type for m in members), view.gpu_type(h))
                speed = min(speed, ests[members.index(job_id)].speed)
        return speed

    def _reference_energy_j(self, view: SchedulerView, job: Job, gpu_type: str) -> float:
        """Energy of the job alone on an awake node (GPU + its share of host): the normaliser."""
        gpu_model = self.energy.gpu(gpu_type)
        util = self.catalog.get(job.job_type).util_on(gpu_type)
        power_w = job.num_gpus * (gpu_model.power_w(util) + self._host_share_w(gpu_type))
        return power_w * self._remaining_s(view, job, gpu_type, 1.0)

    def _host_share_w(self, gpu_type: str) -> float:
        """Awake host power per GPU (host idle + baseline over an 8-GPU node)."""
        got = self._host_per_gpu_w.get(gpu_type)
        if got is None:
            got = (self.energy.host.idle_power_w + self.energy.node_baseline_w) / 8.0
            self._host_per_gpu_w[gpu_type] = got
        return got
