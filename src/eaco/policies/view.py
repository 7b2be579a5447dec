"""The read-only view of the cluster and queue that a policy is called with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

from eaco.model.job import Job
from eaco.state.cluster_state import ClusterState


@dataclass(frozen=True, slots=True)
class JobProgress:
    """What a scheduler can know about a job's progress (from its epoch reports)."""

    epochs_done: float
    first_start_s: float | None  # None: never started
    placed_at_s: float | None  # start of its current placement; None when queued
    epochs_at_placement: float


@dataclass(frozen=True, slots=True)
class EpochReport:
    """A watched job finished the epochs it was watched for.

    ``observed_speed`` is its measured progress rate over the watch window divided by its
    exclusive rate on the same GPUs (1.0 = as fast as alone). ``co_located_with`` lists the jobs
    that shared any of its GPUs at the end of the window. ``speed_calibrated`` is False when the
    exclusive rate is only a default (the live runtime knows no epoch time of the job alone): the
    speed then still gives the job's real rate with the job's declared epoch time, but says
    nothing about the co-location, and no history should learn from it.
    """

    job_id: int
    time_s: float
    epochs_done: int
    window_s: float
    window_epochs: float
    observed_speed: float
    co_located_with: tuple[int, ...]
    speed_calibrated: bool = True


class ReadOnlyQueue(Sequence[Job]):
    """The engine's queue, readable but not changeable by a policy (no copy is made)."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Job]) -> None:
        self._items = items

    def __getitem__(self, index):  # type: ignore[no-untyped-def, override]
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Job]:
        return iter(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


class SchedulerView:
    """Read-only access for policies: query methods only; what they return is a copy or a
    read-only wrapper, so a policy cannot change the cluster except through its decisions."""

    __slots__ = ("now_s", "_state", "_queue", "_jobs", "_progress", "reports", "finished")

    def __init__(
        self,
        now_s: float,
        state: ClusterState,
        queue: Sequence[Job],
        jobs: Mapping[int, Job],
        progress: Callable[[int], JobProgress],
        reports: Sequence[EpochReport] = (),
        finished: Sequence[int] = (),
    ) -> None:
        self.now_s = now_s
        self._state = state
        self._queue = ReadOnlyQueue(queue)
        self._jobs = jobs
        self._progress = progress
        self.reports = tuple(reports)
        self.finished = tuple(finished)

    # queue and jobs
    @property
    def queue(self) -> Sequence[Job]:
        """Queued jobs, high priority first, then by submit time. Do not modify."""
        return self._queue

    def job(self, job_id: int) -> Job:
        return self._jobs[job_id]

    def progress(self, job_id: int) -> JobProgress:
        return self._progress(job_id)

    def is_running(self, job_id: int) -> bool:
        return job_id in self._state.job_gpus

    def running_job_ids(self) -> list[int]:
        return list(self._state.job_gpus)

    def job_gpus(self, job_id: int) -> tuple[int, ...]:
        return self._state.job_gpus[job_id]

    # GPUs and nodes
    @property
    def num_gpus(self) -> int:
        return self._state.num_gpus

    @property
    def capacity_version(self) -> int:
        """Changes when GPUs join the cluster or go offline / come back (the live runtime on a
        Ray cluster): a policy that remembers a job could not be placed should look again."""
        return self._state.capacity_version

    @property
    def num_nodes(self) -> int:
        return len(self._state.node_gpus)

    def gpu_jobs(self, gpu: int) -> tuple[int, ...]:
        return tuple(self._state.gpu_jobs[gpu])

    def gpu_job_count(self, gpu: int) -> int:
        return len(self._state.gpu_jobs[gpu])

    def gpu_type(self, gpu: int) -> str:
        return self._state.gpu_type[gpu]

    def is_offline(self, gpu: int) -> bool:
        """Taken out of use (the live runtime: its Ray node is lost); it frees for nobody."""
        return gpu in self._state.offline_gpus

    def gpu_node(self, gpu: int) -> int:
        return self._state.gpu_node[gpu]

    def gpu_memory_gb(self, gpu: int) -> float:
        return self._state.gpu_memory_gb[gpu]

    def free_memory_gb(self, gpu: int) -> float:
        return self._state.free_memory_gb(gpu)

    def node_gpus(self, node: int) -> tuple[int, ...]:
        return self._state.node_gpus[node]

    def free_gpus_on(self, node: int) -> tuple[int, ...]:
        return tuple(sorted(self._state.node_free_gpus[node]))

    def nodes_with_free(self, gpu_type: str, free_count: int) -> tuple[int, ...]:
        """Nodes of a GPU type with exactly ``free_count`` idle GPUs, in node order."""
        return tuple(sorted(self._state.nodes_with_free(gpu_type, free_count)))

    def first_node_with_free(self, gpu_type: str, free_count: int) -> int | None:
        nodes = self._state.nodes_with_free(gpu_type, free_count)
        return min(nodes) if nodes else None

    def free_gpu_count(self, gpu_type: str | None = None) -> int:
        return self._state.free_gpu_count(gpu_type)

    def gpu_types(self) -> tuple[str, ...]:
        return self._state.gpu_types()

    def max_gpus_per_node(self, gpu_type: str) -> int:
        return self._state.max_node_gpus.get(gpu_type, 0)

    def solo_jobs_by_type(self, num_gpus: int, gpu_type: str) -> dict[str, tuple[int, ...]]:
        """Job type -> running jobs with ``num_gpus`` GPUs of ``gpu_type`` alone on their GPUs."""
        groups = self._state.solo_partner_groups(num_gpus, gpu_type)
        return {t: tuple(ids) for t, ids in groups.items()}

    def first_solo_job(self, num_gpus: int, gpu_type: str, job_type: str, min_free_memory_gb: float,
                       skip: frozenset[int] | set[int] = frozenset()) -> int | None:
        """The earliest-placed solo job of that shape and type whose GPUs all have the memory free."""
        group = self._state.solo_partner_groups(num_gpus, gpu_type).get(job_type)
        if not group:
            return None
        state = self._state
        for job_id in group:
            if job_id in skip:
                continue
            if all(state.free_memory_gb(g) >= min_free_memory_gb for g in state.job_gpus[job_id]):
                return job_id
        return None

    def solo_job_types(self, num_gpus: int, gpu_type: str) -> tuple[str, ...]:
        return tuple(self._state.solo_partner_groups(num_gpus, gpu_type))

    @property
    def state_version(self) -> int:
        """Changes whenever any job is placed or removed (for caching derived data)."""
        return self._state.version

    def nodes_changed_since(self, position: int) -> tuple[list[int] | None, int]:
        """Nodes whose jobs changed since ``position`` (0 at first) and the new position; None
        when the change log no longer reaches back that far (re-read every node)."""
        changed, end = self._state.nodes_changed_since(position)
        return (None if changed is None else list(changed)), end

    def node_version(self, node: int) -> int:
        """Changes whenever a job is placed on or removed from the node."""
        return self._state.node_version[node]

    def active_node_ids(self) -> tuple[int, ...]:
        """Nodes with at least one job, in node order."""
        return tuple(sorted(self._state.active_node_set))

    def node_gpu_type(self, node: int) -> str:
        return self._state.spec.nodes[node].gpu_type

    def gpu_memory_used_gb(self, gpu: int) -> float:
        return self._state.gpu_memory_used_gb[gpu]

    @property
    def active_nodes(self) -> int:
        return self._state.active_nodes
