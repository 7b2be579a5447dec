"""Consolidation by migration: empty a lightly loaded node so that it can sleep.

EaCO packs work onto few nodes when it places a job, but jobs end at random times and leave
nodes running one or two long jobs each. A :class:`Consolidator` looks, at most every
``interval_s`` per GPU type, for the least-loaded awake node whose every job could move to free
GPUs of *other awake* nodes, and *drains* it:

1. each of its jobs is watched to its next epoch end (its checkpoint);
2. there, if free GPUs on another awake node (not draining) still take it, it is undone
   (:class:`~eaco.policies.decisions.Undo`: it keeps its progress) and, once back in the queue,
   placed on them before any other job; otherwise the drain is called off;
3. when its last job has left, the node is empty and sleeps.

A node is drained only if every job on it is single-node, alone on its GPUs, not high-priority,
not under observation, has not migrated ``max_moves_per_job`` times already, and keeps its
deadline with the restart it will pay (``restart_overhead_s``); and only if the work on it lasts
long enough (``min_remaining_s``, the longest remaining job) to pay for the moves. Nodes held for
a waiting job (``reserved``) take no moved job. While a node
drains, other jobs are not placed on it unless there is no other room (the drain is then
called off). A drain that has not finished by ``timeout_s`` after the longest epoch of its jobs
is called off too.

The consolidator never reads a clock: it sees the same read-only view as the policy, so it works
in the simulator and in the live runtime alike (where an undo stops the job at its next epoch
end and it is placed anew once its process has exited).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from eaco.model.job import DEFAULT_RESTART_OVERHEAD_S, Job
from eaco.policies.decisions import Decision, Place, Undo, Watch
from eaco.policies.placement import best_fit_node
from eaco.policies.view import SchedulerView

DEFAULT_MIN_REMAINING_S = 3 * 3600.0


@dataclass(frozen=True, slots=True)
class ConsolidationSettings:
    enabled: bool = True
    interval_s: float = 600.0  # least time between two searches for a node to drain, per GPU type
    min_remaining_s: float = DEFAULT_MIN_REMAINING_S  # the node's longest remaining job must last this long
    restart_overhead_s: float = DEFAULT_RESTART_OVERHEAD_S  # what a move costs a job (checked against its deadline)
    max_moves_per_job: int = 2
    nodes_examined: int = 3  # least-loaded nodes tried per search
    # also drain nodes whose GPUs are shared: each shared GPU's jobs (all single-GPU) move one by
    # one at their epoch ends onto one free GPU elsewhere, held for them until the set is whole
    move_shared: bool = False
    timeout_s: float = 3600.0  # extra time, past the longest epoch, before a drain is called off

    def __post_init__(self) -> None:
        for name in ("interval_s", "min_remaining_s", "restart_overhead_s", "timeout_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"ConsolidationSettings.{name} must be >= 0")
        if self.max_moves_per_job < 1 or self.nodes_examined < 1:
            raise ValueError("ConsolidationSettings: max_moves_per_job and nodes_examined must be >= 1")


@dataclass(slots=True)
class _Drain:
    node: int
    gpu_type: str
    waiting: set[int]  # jobs still on the node, watched to their next epoch end
    moving: set[int] = field(default_factory=set)  # undone, to be placed elsewhere
    give_up_at_s: float = math.inf
    # jobs that share a GPU move as a set: job -> its set; set -> the GPU it is re-formed on
    # (chosen when its first member is placed, held for the others until all are there)
    sets: dict[int, tuple[int, ...]] = field(default_factory=dict)
    set_gpu: dict[tuple[int, ...], int] = field(default_factory=dict)
    set_left: dict[tuple[int, ...], set[int]] = field(default_factory=dict)  # members not yet placed there
    set_node: dict[tuple[int, ...], int] = field(default_factory=dict)  # the node of set_gpu
    speeds: dict[int, float] = field(default_factory=dict)  # a set member's predicted speed in its set


@dataclass(slots=True)
class ConsolidationStats:
    drains_started: int = 0
    drains_completed: int = 0
    drains_called_off: int = 0
    moves: int = 0


# (view, job, gpu type) -> seconds the job still needs alone on that type
RemainingFn = Callable[[SchedulerView, Job, str], float]
# job id -> whether the policy lets it move now (not under observation, no undo pending, ...)
MovableFn = Callable[[int], bool]
# the nodes held for a waiting job (policies/reservation.py): never a move's target
ReservedFn = Callable[[], frozenset[int]]
# (view, job id) -> the job's predicted speed where it runs now (1 alone)
SpeedFn = Callable[[SchedulerView, int], float]


class Consolidator:
    """Drains lightly loaded nodes by moving their jobs at epoch boundaries (see module docs)."""

    def __init__(self, settings: ConsolidationSettings, remaining_s: RemainingFn, movable: MovableFn,
                 reserved: ReservedFn = frozenset, speed: SpeedFn | None = None,
                 on_hold_change: Callable[[int], None] = lambda node: None) -> None:
        """``speed``: a running job's predicted speed (needed for ``move_shared``);
        ``on_hold_change``: told the node of each GPU that starts or stops being held for a
        moving set."""
        self.settings = settings
        self._speed = speed
        self._on_hold_change = on_hold_change
        self._held: set[int] = set()  # GPUs held for a set being re-formed (see held_gpus)
        self.stats = ConsolidationStats()
        self._remaining_s = remaining_s
        self._movable = movable
        self._reserved = reserved
        self._drains: dict[int, _Drain] = {}  # node -> drain
        self._drain_of_job: dict[int, _Drain] = {}
        self._moves: dict[int, int] = {}  # job -> times moved
        self._next_search_s: dict[str, float] = {}

    # ------------------------------------------------------------------ queries
    @property
    def draining_nodes(self) -> frozenset[int]:
        return frozenset(self._drains)

    def holds(self, job_id: int) -> bool:
        """Whether the job is part of a drain (watched for its move, or moving)."""
        return job_id in self._drain_of_job

    @property
    def held_gpus(self) -> set[int]:
        """GPUs on which a moving set is being re-formed: no other job may join them (do not modify)."""
        return self._held

    # ------------------------------------------------------------------- events
    def job_finished(self, job_id: int) -> None:
        self._moves.pop(job_id, None)
        drain = self._drain_of_job.pop(job_id, None)
        if drain is not None:
            drain.waiting.discard(job_id)
            drain.moving.discard(job_id)
            group = drain.sets.get(job_id)
            if group is not None:
                self._set_member_gone(drain, group, job_id)
            self._maybe_done(drain)

    def on_reports(self, view: SchedulerView, reported: set[int]) -> list[Decision]:
        """Undo each watched job that reached its epoch end, if it still has somewhere to go."""
        out: list[Decision] = []
        for drain in list(self._drains.values()):
            if view.now_s >= drain.give_up_at_s:
                self._call_off(drain)
                continue
            for job_id in sorted(drain.waiting & reported):
                if not view.is_running(job_id):
                    continue
                job = view.job(job_id)
                if (self._target_for(view, drain, job) is None
                        or not self._deadline_ok(view, job, drain.gpu_type, drain.speeds.get(job_id, 1.0))):
                    self._call_off(drain)
                    break
                drain.waiting.discard(job_id)
                drain.moving.add(job_id)
                out.append(Undo(job_id, reason="migration"))
        return out

    def place_moving(self, view: SchedulerView) -> list[Decision]:
        """Place the undone jobs of drains that are back in the queue, before any other job."""
        for drain in list(self._drains.values()):
            for job_id in sorted(drain.moving):
                if view.is_running(job_id):
                    continue  # in the runtime: still checkpointing and exiting
                job = view.job(job_id)
                gpus = self._target_for(view, drain, job)
                if gpus is None:
                    self._call_off(drain)  # it will be placed like any queued job
                    break
                group = drain.sets.get(job_id)
                if group is not None:
                    if group not in drain.set_gpu:
                        drain.set_gpu[group] = gpus[0]
                        drain.set_node[group] = view.gpu_node(gpus[0])
                        self._held.add(gpus[0])
                        self._on_hold_change(drain.set_node[group])
                    self._set_member_gone(drain, group, job_id)
                drain.moving.discard(job_id)
                del self._drain_of_job[job_id]
                self._moves[job_id] = self._moves.get(job_id, 0) + 1
                self.stats.moves += 1
                self._maybe_done(drain)
                return [Place(job_id, gpus)]  # one at a time: the view changes with each
        return []

    def placing_on(self, nodes: set[int]) -> None:
        """Another job is being placed on ``nodes``: drains there are called off."""
        for node in nodes:
            drain = self._drains.get(node)
            if drain is not None:
                self._call_off(drain)

    # ------------------------------------------------------------------- search
    def maybe_start(self, view: SchedulerView) -> list[Decision]:
        """At most every ``interval_s`` per GPU type, start draining one node if one qualifies."""
        if not self.settings.enabled:
            return []
        now = view.now_s
        for gpu_type in view.gpu_types():
            if now < self._next_search_s.get(gpu_type, -math.inf):
                continue
            if any(d.gpu_type == gpu_type for d in self._drains.values()):
                continue  # one drain at a time per GPU type
            self._next_search_s[gpu_type] = now + self.settings.interval_s
            decisions = self._start_one(view, gpu_type)
            if decisions:
                return decisions
        return []

    def _start_one(self, view: SchedulerView, gpu_type: str) -> list[Decision]:
        st = self.settings
        partly_free: list[tuple[int, int]] = []  # (busy GPUs, node) of awake nodes with a free GPU
        free_on: dict[int, int] = {}
        for k in range(1, view.max_gpus_per_node(gpu_type) + 1):
            for node in view.nodes_with_free(gpu_type, k):
                busy = len(view.node_gpus(node)) - k
                if busy > 0:
                    partly_free.append((busy, node))
                    free_on[node] = k
        if len(partly_free) < 2:
            return []
        partly_free.sort()
        for _busy, node in partly_free[: st.nodes_examined]:
            found = self._movable_jobs(view, node, gpu_type)
            if found is None:
                continue
            jobs, sets = found
            reserved = self._reserved()
            room = {n: k for n, k in free_on.items() if n != node and n not in self._drains and n not in reserved}
            units = [j.num_gpus for j in jobs if j.job_id not in sets] + [1] * len(set(sets.values()))
            if not self._fits(units, room):
                continue
            longest = max(self._remaining_s(view, j, gpu_type) / self._job_speed(view, j.job_id, sets) for j in jobs)
            if longest < st.min_remaining_s:
                continue
            longest_epoch_s = max(j.epoch_duration_s / self._job_speed(view, j.job_id, sets) for j in jobs)
            drain = _Drain(node, gpu_type, {j.job_id for j in jobs},
                           give_up_at_s=view.now_s + longest_epoch_s * 2 + st.timeout_s,
                           sets=dict(sets), set_left={g: set(g) for g in set(sets.values())},
                           speeds={j: self._job_speed(view, j, sets) for j in sets})
            self._drains[node] = drain
            for j in jobs:
                self._drain_of_job[j.job_id] = drain
            self.stats.drains_started += 1
            return [Watch(j.job_id, 1) for j in jobs]
        return []

    def _movable_jobs(self, view: SchedulerView, node: int, gpu_type: str) -> tuple[list[Job], dict[int, tuple[int, ...]]] | None:
        """The jobs on ``node`` if every one of them may move (else None), and the sets that
        share a GPU (job -> its GPU's jobs; only with ``move_shared``, and only of single-GPU
        jobs)."""
        node_gpus = set(view.node_gpus(node))
        seen: dict[int, Job] = {}
        sets: dict[int, tuple[int, ...]] = {}
        for g in node_gpus:
            members = view.gpu_jobs(g)
            if len(members) > 1:
                if not self.settings.move_shared or self._speed is None:
                    return None  # a shared GPU: its set stays together (not moved)
                group = tuple(sorted(members))
                for j in group:
                    if view.job(j).num_gpus != 1:
                        return None  # a multi-GPU job meets other jobs on its other GPUs
                    sets[j] = group
            for j in members:
                if j in seen:
                    continue
                job = view.job(j)
                if (job.is_high_priority or not self._movable(j) or j in self._drain_of_job
                        or self._moves.get(j, 0) >= self.settings.max_moves_per_job
                        or not set(view.job_gpus(j)) <= node_gpus
                        or not self._deadline_ok(view, job, gpu_type, self._job_speed(view, j, sets))):
                    return None
                seen[j] = job
        if not seen:
            return None
        return sorted(seen.values(), key=lambda x: (-x.num_gpus, x.job_id)), sets

    def _job_speed(self, view: SchedulerView, job_id: int, sets: dict[int, tuple[int, ...]]) -> float:
        """Predicted speed of a job that shares its GPU (it keeps it after the move: the same set
        is re-formed); 1 for a job alone."""
        if job_id not in sets or self._speed is None:
            return 1.0
        return max(1e-3, self._speed(view, job_id))

    def _deadline_ok(self, view: SchedulerView, job: Job, gpu_type: str, speed: float = 1.0) -> bool:
        """Moved at an epoch end, it loses no work, only the restart: it must still finish in time
        at its speed where it runs now (alone: 1; a shared set keeps its speed) (a job already
        late is not delayed further)."""
        if not job.has_deadline:
            return True
        finish_s = view.now_s + self._remaining_s(view, job, gpu_type) / speed + self.settings.restart_overhead_s
        return finish_s <= job.deadline_s

    @staticmethod
    def _fits(units: list[int], room: dict[int, int]) -> bool:
        """Best-fit of GPU counts (each on one node; largest first) into the free GPUs of other nodes."""
        room = dict(room)
        for need in sorted(units, reverse=True):
            fitting = [(k, n) for n, k in room.items() if k >= need]
            if not fitting:
                return False
            _, node = min(fitting)
            room[node] -= need
        return True

    def _target_for(self, view: SchedulerView, drain: _Drain, job: Job) -> tuple[int, ...] | None:
        """Where a drained job goes: a member of a set whose GPU is chosen goes there (if that GPU
        holds nothing but the set's members); any other job to free GPUs (:meth:`_target`)."""
        group = drain.sets.get(job.job_id)
        if group is None or group not in drain.set_gpu:
            return self._target(view, job, drain.gpu_type)
        gpu, node = drain.set_gpu[group], drain.set_node[group]
        if node in self._drains or node in self._reserved() or not set(view.gpu_jobs(gpu)) <= set(group):
            return None
        return (gpu,)

    def _set_member_gone(self, drain: _Drain, group: tuple[int, ...], job_id: int) -> None:
        """A set's member was placed on its GPU (or finished): once none is left, the GPU is free
        for others again."""
        left = drain.set_left.get(group)
        if left is None:
            return
        left.discard(job_id)
        if not left:
            self._release_hold(drain, group)

    def _target(self, view: SchedulerView, job: Job, gpu_type: str) -> tuple[int, ...] | None:
        """Free GPUs for ``job`` on the awake node (not draining) with the fewest that suffice; an
        asleep or empty node is no target (moving there saves nothing)."""
        node = best_fit_node(view, job.num_gpus, gpu_type, avoid=self._drains.keys() | self._reserved(), awake_only=True)
        return None if node is None else view.free_gpus_on(node)[: job.num_gpus]

    # ------------------------------------------------------------------ endings
    def _maybe_done(self, drain: _Drain) -> None:
        if not drain.waiting and not drain.moving and self._drains.get(drain.node) is drain:
            del self._drains[drain.node]
            self._release_holds(drain)
            self.stats.drains_completed += 1

    def _call_off(self, drain: _Drain) -> None:
        if self._drains.get(drain.node) is not drain:
            return
        del self._drains[drain.node]
        self._release_holds(drain)
        for j in drain.waiting | drain.moving:
            self._drain_of_job.pop(j, None)
        self.stats.drains_called_off += 1

    def _release_holds(self, drain: _Drain) -> None:
        """The drain is over: GPUs still held for its sets are free for others (a set called off
        half-way runs split, each part on its own GPU)."""
        for group in list(drain.set_left):
            self._release_hold(drain, group)

    def _release_hold(self, drain: _Drain, group: tuple[int, ...]) -> None:
        """The set is whole again (or will not be): its GPU, if chosen, is free for others."""
        del drain.set_left[group]
        if group in drain.set_gpu:
            self._held.discard(drain.set_gpu[group])
            self._on_hold_change(drain.set_node[group])
