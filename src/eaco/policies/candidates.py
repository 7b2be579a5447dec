"""FindCandidates (the paper's Algorithm 1) for EaCO, with what it keeps between calls.

A :class:`CandidateFinder` answers "which busy GPU sets could this job join?": GPU sets of the
job's type and count made of busy GPUs (1 to ``max_jobs_per_gpu - 1`` jobs on them) where every
GPU is under the utilisation threshold (H's predicted utilisation of its current set) and the
memory threshold, has free memory for the job (total minus the peak memory of the jobs there,
minus ``memory_margin_gb``), is not locked (a co-location under observation, an undo pending) or
held (a set being moved), and runs no high-priority or exclusive job. One candidate per node:
its most-utilised eligible GPUs; a job larger than a node takes the most-utilised fully eligible
nodes. Candidates come most-utilised first.

With a long queue the same question is asked for hundreds of jobs per scheduling pass, so the
finder keeps, per GPU type, each node's eligible GPUs (recomputed only for nodes whose jobs,
locks or holds changed, and for every node after H is refitted), what each node offers a job of
a given shape, and the candidates of a shape until the cluster or H changes. None of this changes
which candidates are found: it is the same search, done once.
"""

from __future__ import annotations

import bisect
from typing import AbstractSet, Callable, Iterable, Iterator

from eaco.colocation.catalog import JobCatalog
from eaco.model.job import Job
from eaco.policies.eaco_settings import EacoSettings
from eaco.policies.view import SchedulerView
from eaco.predictor.history import CoLocationPredictor

OFFER_CACHE_MAX = 512  # job shapes whose per-node offers _search keeps (then it starts afresh)
CANDIDATE_MEMO_MAX = 256  # job shapes whose candidates are kept per cluster state

# an eligible GPU: (predicted utilisation, GPU, free memory in GB, sorted job types on it)
Eligible = tuple[float, int, float, tuple[str, ...]]


class _Replay:
    """A generator's items, kept: a later reader replays them before drawing more."""

    __slots__ = ("_source", "_items")

    def __init__(self, source: Iterator[tuple[int, ...]]) -> None:
        self._source = source
        self._items: list[tuple[int, ...]] = []

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        i = 0
        while True:
            if i == len(self._items):
                nxt = next(self._source, None)
                if nxt is None:
                    return
                self._items.append(nxt)
            yield self._items[i]
            i += 1


class CandidateFinder:
    """FindCandidates and H's view of each GPU's set (utilisation, the speed of a set once a job
    joins it), for one :class:`~eaco.policies.eaco.EacoPolicy`.

    ``locked``: GPU -> the job whose co-location (or pending undo) keeps it out of every
    candidate; change it only through :meth:`lock` and :meth:`unlock`. ``excluded``: job -> GPU
    sets undone for it, never offered to it again. ``held_gpus``: GPUs held for a set being
    moved (the consolidator's); call :meth:`node_changed` when they change."""

    def __init__(
        self,
        settings: EacoSettings,
        predictor: CoLocationPredictor,
        catalog: JobCatalog,
        held_gpus: Callable[[], AbstractSet[int]],
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.catalog = catalog
        self._held_gpus = held_gpus
        self.locked: dict[int, int] = {}
        self.excluded: dict[int, set[tuple[int, ...]]] = {}
        self.lock_epoch = 0  # bumped whenever a GPU is locked, unlocked, held or let go
        self._gpu_node_of: dict[int, int] = {}
        self._util_cache: dict[tuple[tuple[str, ...], str], float] = {}
        # (sorted job types of a set, GPU type) -> H's predicted speed of its slowest member
        self._set_min_speed: dict[tuple[tuple[str, ...], str], float] = {}
        self._candidate_memo: dict[tuple[object, ...], _Replay] = {}
        # (GPU type, job type, memory needed, GPUs, min speed) -> node -> (the node's eligible
        # list it was computed from, the GPU set it offers or None) (search)
        self._offers: dict[tuple[object, ...], dict[int, tuple[list[Eligible], tuple[int, ...] | None]]] = {}
        # GPU type -> node -> (eligible GPUs, all eligible), for nodes with an eligible GPU.
        # The belief about a GPU's utilisation is refreshed when its jobs change, when it is
        # locked or unlocked, and after every refit of H.
        self._eligible: dict[str, dict[int, tuple[list[Eligible], bool]]] = {}
        self._node_order: dict[str, list[tuple[float, int]]] = {}  # GPU type -> sorted (-best util, node)
        self._log_position: dict[str, int] = {}
        self._dirty_nodes: dict[str, set[int]] = {}
        self.util_version = -1  # H's refit version the cached beliefs are from

    # ================================================================ locks
    def lock(self, view: SchedulerView, gpus: Iterable[int], job_id: int) -> None:
        """A co-location of ``job_id`` is observed on ``gpus``: no candidate until unlocked."""
        self.lock_epoch += 1
        for g in gpus:
            self.locked[g] = job_id
            self._gpu_node_of[g] = view.gpu_node(g)
            self.mark_dirty(view.gpu_node(g))

    def keep_locked(self, gpus: Iterable[int], job_id: int) -> None:
        """An undo of ``job_id`` waits for its epoch end: its GPUs (locked for it before) stay
        out of every candidate, those not locked for another job now locked for it."""
        self.lock_epoch += 1
        for g in gpus:
            self.locked.setdefault(g, job_id)
            self.mark_dirty(self._gpu_node_of[g])

    def unlock(self, gpus: Iterable[int], job_id: int) -> None:
        """The GPUs locked for ``job_id`` are candidates again."""
        self.lock_epoch += 1
        for g in gpus:
            if self.locked.get(g) == job_id:
                del self.locked[g]
                self.mark_dirty(self._gpu_node_of[g])

    def node_changed(self, node: int) -> None:
        """A GPU of ``node`` started or stopped being held for a moving set."""
        self.lock_epoch += 1
        self.mark_dirty(node)

    def mark_dirty(self, node: int) -> None:
        """A node's eligibility changed for a reason the cluster state does not show (a lock)."""
        for dirty in (self._dirty_nodes.setdefault(t, set()) for t in self._eligible):
            dirty.add(node)

    def set_learnt(self, types: tuple[str, ...], gpu_type: str) -> None:
        """H learnt a speed of the set ``types`` on ``gpu_type``: forget what was derived from it."""
        key = (tuple(sorted(types)), gpu_type)
        self._util_cache.pop(key, None)
        self._set_min_speed.pop(key, None)
        # a job of a type in that set may now be let in, or kept out, of GPUs running the rest of it
        members = set(types)
        for shape in [k for k in self._offers if k[0] == gpu_type and k[1] in members]:
            del self._offers[shape]

    def history_restored(self) -> None:
        """H was given speeds learnt elsewhere (a restart): every cached belief is stale."""
        self._util_cache.clear()

    # ============================================================ candidates
    def candidates(self, view: SchedulerView, job: Job, gpu_type: str, min_speed: float) -> Iterable[tuple[int, ...]]:
        """:meth:`search`, shared by the queued jobs of one shape and type until the cluster or H
        changes (each reader draws only as far as it needs)."""
        if job.job_id in self.excluded:
            return self.search(view, job, gpu_type, min_speed)
        p = self.predictor
        key = (view.state_version, self.lock_epoch, p.refit_version, p.observations, gpu_type, job.num_gpus,
               job.memory_gb, job.job_type, min_speed)
        got = self._candidate_memo.get(key)
        if got is None:
            if len(self._candidate_memo) > CANDIDATE_MEMO_MAX:
                self._candidate_memo.clear()
            got = self._candidate_memo[key] = _Replay(self.search(view, job, gpu_type, min_speed))
        return got

    def search(self, view: SchedulerView, job: Job, gpu_type: str, min_speed: float) -> Iterator[tuple[int, ...]]:
        """Candidate GPU sets for ``job``, most utilised first, generated lazily (the caller stops
        after ``max_candidates`` feasible ones): per node, its ``num_gpus`` most-utilised
        eligible GPUs that have memory for the job and that it may join (every member keeps
        ``min_speed`` by H's point estimate); a job larger than a node takes the most-utilised
        nodes whose GPUs all qualify. Sets undone for this job before are skipped."""
        excluded = self.excluded.get(job.job_id, ())
        need_gb = job.memory_gb + self.settings.memory_margin_gb
        per_node = view.max_gpus_per_node(gpu_type)
        n = job.num_gpus
        nodes = self.eligible_by_node(view, gpu_type)

        may_join: dict[tuple[str, ...], bool] = {}  # a GPU's job types -> the job may join them

        def qualifies(free_gb: float, types: tuple[str, ...]) -> bool:
            if free_gb < need_gb:
                return False
            ok = may_join.get(types)
            if ok is None:
                ok = may_join[types] = self.joined_min_speed(types, job.job_type, gpu_type) >= min_speed
            return ok

        if n <= per_node:
            # nodes in the order of their most-utilised eligible GPU (whether or not this job
            # may join that one), each offering its most-utilised GPUs that qualify. What a node
            # offers a job of this shape is kept while the node's eligible list is the same
            # object (it is rebuilt whenever the node's jobs, locks or H change): with a long
            # queue most nodes offer nothing to most jobs, and are not scanned again.
            if len(self._offers) > OFFER_CACHE_MAX:
                self._offers.clear()
            offers = self._offers.setdefault((gpu_type, job.job_type, need_gb, n, min_speed), {})
            for node, eligible, _ in nodes:
                got = offers.get(node)
                if got is not None and got[0] is eligible:
                    gpus = got[1]
                else:
                    chosen: list[int] = []
                    gpus = None
                    for _u, g, free, types in eligible:
                        if qualifies(free, types):
                            chosen.append(g)
                            if len(chosen) == n:
                                gpus = tuple(sorted(chosen))
                                break
                    offers[node] = (eligible, gpus)
                if gpus is not None and gpus not in excluded:
                    yield gpus
            return
        whole_nodes: list[tuple[float, int, tuple[int, ...]]] = []  # (-mean utilisation, node, GPUs)
        for node, eligible, all_eligible in nodes:
            if all_eligible and all(qualifies(free, types) for _, _, free, types in eligible):
                whole_nodes.append((-sum(e[0] for e in eligible) / len(eligible), node, tuple(e[1] for e in eligible)))
        whole_nodes.sort()
        picked: list[int] = []
        for _, _node, gpus in whole_nodes:
            picked.extend(gpus)
            if len(picked) >= n:
                cand = tuple(sorted(picked[:n]))
                if cand not in excluded:
                    yield cand
                return

    def eligible_by_node(self, view: SchedulerView, gpu_type: str) -> Iterator[tuple[int, list[Eligible], bool]]:
        """Per active node of ``gpu_type`` with an eligible GPU, nodes ordered by their
        most-utilised eligible GPU (then by id): its GPUs that may take one more job whatever the
        job (busy, under both thresholds, not locked, no high-priority job), as (predicted
        utilisation, GPU, free memory in GB, sorted job types on it), most utilised first; and
        whether every GPU of the node is eligible. Kept across calls and recomputed only for
        nodes whose jobs or locks changed (every node after H is refitted)."""
        if self.util_version != self.predictor.refit_version:
            self.util_version = self.predictor.refit_version
            self._util_cache.clear()
            self._set_min_speed.clear()
            self._eligible.clear()
        per_type = self._eligible.get(gpu_type)
        changed, self._log_position[gpu_type] = view.nodes_changed_since(self._log_position.get(gpu_type, 0))
        if per_type is None or changed is None:
            per_type = {}
            self._eligible[gpu_type] = per_type
            self._dirty_nodes.pop(gpu_type, None)
            todo: Iterable[int] = view.active_node_ids()
            self._node_order[gpu_type] = order = []
        else:
            todo = set(changed) | self._dirty_nodes.pop(gpu_type, set())
            order = self._node_order[gpu_type]
        for node in todo:
            old = per_type.pop(node, None)
            if old is not None:
                del order[bisect.bisect_left(order, (-old[0][0][0], node))]
            if view.node_gpu_type(node) != gpu_type:
                continue
            eligible, all_eligible = self._node_eligibility(view, node)
            if eligible:
                per_type[node] = (eligible, all_eligible)
                bisect.insort(order, (-eligible[0][0], node))
        return ((node, *per_type[node]) for _, node in order.copy())

    def _node_eligibility(self, view: SchedulerView, node: int) -> tuple[list[Eligible], bool]:
        s = self.settings
        node_gpus = view.node_gpus(node)
        eligible: list[Eligible] = []
        held = self._held_gpus()
        for g in node_gpus:
            count = view.gpu_job_count(g)
            if count == 0 or count >= s.max_jobs_per_gpu or g in self.locked or g in held:
                continue
            if any(view.job(j).is_high_priority or view.job(j).exclusive for j in view.gpu_jobs(g)):
                continue  # high-priority and exclusive jobs keep their GPUs to themselves
            total = view.gpu_memory_gb(g)
            used = view.gpu_memory_used_gb(g)
            if used / total >= s.memory_threshold:
                continue
            types = gpu_job_types(view, g)
            util = self.types_util(types, view.gpu_type(g))
            if util >= s.util_threshold:
                continue
            eligible.append((util, g, total - used, types))
        eligible.sort(key=lambda x: (-x[0], x[1]))
        return eligible, len(eligible) == len(node_gpus)

    # ======================================================= H's set beliefs
    def gpu_util(self, view: SchedulerView, gpu: int) -> float:
        """Predicted utilisation of a GPU's current job set (EaCO's belief, from H)."""
        return self.types_util(gpu_job_types(view, gpu), view.gpu_type(gpu))

    def types_util(self, types: tuple[str, ...], gpu_type: str) -> float:
        key = (types, gpu_type)
        got = self._util_cache.get(key)
        if got is None:
            got = self.set_util(types, gpu_type)
            self._util_cache[key] = got
        return got

    def joined_min_speed(self, types: tuple[str, ...], job_type: str, gpu_type: str) -> float:
        """H's predicted speed of the slowest member once ``job_type`` joins a GPU running
        ``types``: the first, cheap test of a candidate (against ``min_speed``)."""
        key = (tuple(sorted((*types, job_type))), gpu_type)
        got = self._set_min_speed.get(key)
        if got is None:
            got = min(e.speed for e in self.predictor.estimate(key[0], gpu_type))
            self._set_min_speed[key] = got
        return got

    def set_util(self, types: tuple[str, ...], gpu_type: str) -> float:
        """Predicted utilisation of a GPU running ``types``: each member's utilisation alone
        times H's speed of it in the set, capped at 1."""
        ests = self.predictor.estimate(types, gpu_type)
        return min(1.0, sum(self.catalog.get(t).util_on(gpu_type) * e.speed for t, e in zip(types, ests)))


def gpu_job_types(view: SchedulerView, gpu: int) -> tuple[str, ...]:
    """The sorted job types on a GPU now."""
    return tuple(sorted(view.job(j).job_type for j in view.gpu_jobs(gpu)))
