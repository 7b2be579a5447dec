"""Who runs where: jobs on GPUs, memory in use, and an index of free GPUs per node.

This is plain bookkeeping with no notion of time or speed, so the simulator and the live
runtime keep the same structure and policies read the same thing in both.
"""

from __future__ import annotations

from typing import Iterable

from eaco.errors import PolicyError
from eaco.model.cluster import ClusterSpec, NodeSpec
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.model.job import Job

MEMORY_EPS_GB = 1e-9


class ClusterState:
    """Occupancy of every GPU.

    GPUs are numbered as in :meth:`ClusterSpec.gpu_node`. For each GPU type, nodes are bucketed
    by how many of their GPUs are completely free, so finding a best-fit node is O(GPUs per node).
    """

    __slots__ = (
        "spec",
        "gpu_node",
        "gpu_type",
        "gpu_memory_gb",
        "gpu_memory_used_gb",
        "gpu_jobs",
        "node_gpus",
        "node_free_gpus",
        "node_job_count",
        "job_gpus",
        "job_memory_gb",
        "_free_buckets",
        "active_nodes",
        "active_node_set",
        "version",
        "node_version",
        "_node_log",
        "_node_log_base",
        "busy_gpus",
        "max_node_gpus",
        "solo_jobs",
        "_job_shape",
        "offline_gpus",
        "unshareable",
        "exclusive_jobs",
        "capacity_version",
    )

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.gpu_node: list[int] = spec.gpu_node()
        self.gpu_type: list[str] = [spec.nodes[n].gpu_type for n in self.gpu_node]
        self.gpu_memory_gb: list[float] = [lookup_gpu_type(t).memory_gb for t in self.gpu_type]
        self.gpu_memory_used_gb: list[float] = [0.0] * len(self.gpu_node)
        self.gpu_jobs: list[list[int]] = [[] for _ in self.gpu_node]
        self.node_gpus: list[tuple[int, ...]] = []
        g = 0
        for node in spec.nodes:
            self.node_gpus.append(tuple(range(g, g + node.num_gpus)))
            g += node.num_gpus
        self.node_free_gpus: list[set[int]] = [set(gs) for gs in self.node_gpus]
        # number of (job, GPU) slots on the node; a node is active when this is > 0
        self.node_job_count: list[int] = [0] * spec.num_nodes
        self.job_gpus: dict[int, tuple[int, ...]] = {}
        self.job_memory_gb: dict[int, float] = {}
        # gpu type -> number of free GPUs -> set of node ids
        self._free_buckets: dict[str, dict[int, set[int]]] = {}
        for node in spec.nodes:
            self._free_buckets.setdefault(node.gpu_type, {}).setdefault(node.num_gpus, set()).add(
                node.node_id
            )
        self.active_nodes = 0
        self.active_node_set: set[int] = set()
        self.version = 0  # bumped by every place/remove: lets readers cache derived data
        self.node_version: list[int] = [0] * spec.num_nodes  # bumped when a job lands on / leaves the node
        # nodes in the order their jobs changed, so readers can update only what changed
        self._node_log: list[int] = []
        self._node_log_base = 0  # entries dropped from the front of the log
        self.busy_gpus = 0
        # jobs alone on every one of their GPUs, by (num_gpus, gpu type) then job type, in
        # placement order: the packing partners of FIFO-packed and Gandiva, found without a scan
        self.solo_jobs: dict[tuple[int, str], dict[str, dict[int, None]]] = {}
        self._job_shape: dict[int, tuple[tuple[int, str], str]] = {}
        self.offline_gpus: set[int] = set()  # idle GPUs no policy may use (set_offline; do not modify)
        # bumped when GPUs appear (add_nodes) or go offline / come back (set_offline): room a
        # policy saw lacking may be there now although no job ended
        self.capacity_version = 0
        # jobs placed with shareable=False: never offered as a packing partner (do not modify)
        self.unshareable: set[int] = set()
        # jobs placed with Job.exclusive: they hold the whole memory of their GPUs, no job may
        # join them (do not modify)
        self.exclusive_jobs: set[int] = set()
        # gpu type -> the most GPUs any node of that type has
        self.max_node_gpus: dict[str, int] = {}
        for node in spec.nodes:
            self.max_node_gpus[node.gpu_type] = max(
                self.max_node_gpus.get(node.gpu_type, 0), node.num_gpus
            )

    # ----------------------------------------------------------------- queries
    @property
    def num_gpus(self) -> int:
        return len(self.gpu_node)

    def free_memory_gb(self, gpu: int) -> float:
        return self.gpu_memory_gb[gpu] - self.gpu_memory_used_gb[gpu]

    def free_gpu_count(self, gpu_type: str | None = None) -> int:
        total = 0
        for t, buckets in self._free_buckets.items():
            if gpu_type is None or t == gpu_type:
                total += sum(k * len(nodes) for k, nodes in buckets.items())
        return total

    def nodes_with_free(self, gpu_type: str, free_count: int) -> set[int]:
        """Nodes of ``gpu_type`` with exactly ``free_count`` completely free GPUs (do not modify)."""
        return self._free_buckets.get(gpu_type, {}).get(free_count, _EMPTY)

    def free_gpus_on(self, node: int) -> set[int]:
        return self.node_free_gpus[node]

    def gpu_types(self) -> tuple[str, ...]:
        return tuple(self._free_buckets)

    def max_free_on_a_node(self, gpu_type: str) -> int:
        buckets = self._free_buckets.get(gpu_type, {})
        best = 0
        for k, nodes in buckets.items():
            if nodes and k > best:
                best = k
        return best

    # --------------------------------------------------------------- mutations
    def solo_partner_groups(self, num_gpus: int, gpu_type: str) -> dict[str, dict[int, None]]:
        """Job type -> ids of jobs of that shape running alone on their GPUs (do not modify)."""
        return self.solo_jobs.get((num_gpus, gpu_type), _EMPTY_GROUPS)

    def is_solo(self, job_id: int) -> bool:
        return all(len(self.gpu_jobs[g]) == 1 for g in self.job_gpus[job_id])

    def place(self, job: Job, gpus: tuple[int, ...], shareable: bool = True) -> None:
        """Put a job on GPUs. Raise PolicyError if that breaks a rule (memory, duplicates).
        ``shareable=False``: the job is never listed as a packing partner (``solo_partner_groups``),
        e.g. the live runtime's undone job whose process is finishing its last epoch there.
        An exclusive job (``Job.exclusive``) needs idle GPUs and holds their whole memory."""
        job_id = job.job_id
        memory_gb = job.memory_gb
        self.version += 1
        if job_id in self.job_gpus:
            raise PolicyError(f"job {job_id} is already placed on GPUs {self.job_gpus[job_id]}")
        if len(set(gpus)) != len(gpus) or not gpus:
            raise PolicyError(f"job {job_id}: GPU list {gpus} is empty or repeats a GPU")
        n = len(self.gpu_node)
        offline = self.offline_gpus
        for g in gpus:
            if not 0 <= g < n:
                raise PolicyError(f"job {job_id}: GPU {g} does not exist (cluster has {n})")
            if self.gpu_jobs[g] and (job.exclusive or any(j in self.exclusive_jobs for j in self.gpu_jobs[g])):
                which = f"job {job_id} is exclusive" if job.exclusive else "it holds an exclusive job"
                raise PolicyError(f"job {job_id}: GPU {g} is not idle and {which}")
            if offline and g in offline:
                raise PolicyError(f"job {job_id}: GPU {g} is offline")
            if self.gpu_type[g] != self.gpu_type[gpus[0]]:
                raise PolicyError(f"job {job_id}: GPUs {gpus} mix GPU types")
            if job.gpu_type is not None and self.gpu_type[g] != job.gpu_type:
                raise PolicyError(
                    f"job {job_id} asks for {job.gpu_type} GPUs but GPU {g} is a {self.gpu_type[g]}"
                )
            if self.gpu_memory_used_gb[g] + memory_gb > self.gpu_memory_gb[g] + MEMORY_EPS_GB:
                raise PolicyError(
                    f"job {job_id} needs {memory_gb:.1f} GB on GPU {g}, which has "
                    f"{self.free_memory_gb(g):.1f} GB free of {self.gpu_memory_gb[g]:.0f} GB"
                )
        if job.exclusive:
            memory_gb = self.gpu_memory_gb[gpus[0]]  # all its GPUs are of one type
            self.exclusive_jobs.add(job_id)
            shareable = False
        for g in gpus:
            for other in self.gpu_jobs[g]:
                self._unmark_solo(other)
        alone = True
        for g in gpus:
            node = self.gpu_node[g]
            jobs = self.gpu_jobs[g]
            if not jobs:
                self._set_free(node, g, free=False)
                self.busy_gpus += 1
            else:
                alone = False
            jobs.append(job_id)
            self.node_version[node] += 1
            self._log_node(node)
            self.gpu_memory_used_gb[g] += memory_gb
            if self.node_job_count[node] == 0:
                self.active_nodes += 1
                self.active_node_set.add(node)
            self.node_job_count[node] += 1
        self.job_gpus[job_id] = tuple(gpus)
        self.job_memory_gb[job_id] = memory_gb
        self._job_shape[job_id] = ((len(gpus), self.gpu_type[gpus[0]]), job.job_type)
        if not shareable:
            self.unshareable.add(job_id)
        if alone:
            self._mark_solo(job_id)

    def remove(self, job_id: int) -> tuple[int, ...]:
        """Take a job off its GPUs; return the GPUs it had."""
        self.version += 1
        self._unmark_solo(job_id)
        self.unshareable.discard(job_id)
        self.exclusive_jobs.discard(job_id)
        gpus = self.job_gpus.pop(job_id)
        memory_gb = self.job_memory_gb.pop(job_id)
        del self._job_shape[job_id]
        for g in gpus:
            node = self.gpu_node[g]
            jobs = self.gpu_jobs[g]
            jobs.remove(job_id)
            self.node_version[node] += 1
            self._log_node(node)
            used = self.gpu_memory_used_gb[g] - memory_gb
            self.gpu_memory_used_gb[g] = used if jobs else 0.0
            if not jobs:
                self._set_free(node, g, free=True)
                self.busy_gpus -= 1
            self.node_job_count[node] -= 1
            if self.node_job_count[node] == 0:
                self.active_nodes -= 1
                self.active_node_set.discard(node)
        for g in gpus:
            for other in self.gpu_jobs[g]:
                if self.is_solo(other):
                    self._mark_solo(other)
        return gpus

    def touch(self, job_id: int) -> None:
        """The job's description changed, not its placement (the live runtime measured its
        exclusive epoch time): bump the versions of its nodes so readers drop what they derived."""
        self.version += 1
        for node in dict.fromkeys(self.gpu_node[g] for g in self.job_gpus[job_id]):
            self.node_version[node] += 1
            self._log_node(node)

    def set_job_memory(self, job_id: int, memory_gb: float) -> None:
        """A placed job's memory estimate changed (the live runtime lets a job that ran alone to
        measure its epoch time share its GPUs from then on). Raise PolicyError, changing nothing,
        if a GPU of the job would hold more than it has. An exclusive job keeps holding all of
        its GPUs' memory (:meth:`end_exclusive` ends that)."""
        if job_id in self.exclusive_jobs:
            return
        old = self.job_memory_gb[job_id]
        gpus = self.job_gpus[job_id]
        for g in gpus:
            if self.gpu_memory_used_gb[g] - old + memory_gb > self.gpu_memory_gb[g] + MEMORY_EPS_GB:
                raise PolicyError(f"job {job_id}: {memory_gb:.1f} GB does not fit on GPU {g}")
        for g in gpus:
            self.gpu_memory_used_gb[g] += memory_gb - old
        self.job_memory_gb[job_id] = memory_gb
        self.touch(job_id)

    def end_exclusive(self, job_id: int, memory_gb: float) -> None:
        """A placed exclusive job may share its GPUs from now on: it holds ``memory_gb`` on each
        (and becomes a packing partner when alone). Raise PolicyError, changing nothing, if that
        is more than its GPUs have. Not exclusive: only its memory changes."""
        gpus = self.job_gpus[job_id]
        if job_id not in self.exclusive_jobs:
            self.set_job_memory(job_id, memory_gb)
            return
        for g in gpus:
            if memory_gb > self.gpu_memory_gb[g] + MEMORY_EPS_GB:
                raise PolicyError(f"job {job_id}: {memory_gb:.1f} GB does not fit on GPU {g}")
        self.exclusive_jobs.discard(job_id)
        self.unshareable.discard(job_id)
        for g in gpus:
            self.gpu_memory_used_gb[g] = memory_gb
        self.job_memory_gb[job_id] = memory_gb
        if self.is_solo(job_id):
            self._mark_solo(job_id)
        self.touch(job_id)

    def set_offline(self, gpus: Iterable[int], offline: bool) -> None:
        """Take idle GPUs out of use (``offline=True``: no free slot, no free memory, so no policy
        places anything there) or bring them back. Raise ValueError, changing nothing, for a GPU
        that does not exist or, when taking it offline, holds a job. Already so: no change."""
        wanted = tuple(dict.fromkeys(gpus))
        n = len(self.gpu_node)
        for g in wanted:
            if not 0 <= g < n:
                raise ValueError(f"GPU {g} does not exist (cluster has {n})")
            if offline and self.gpu_jobs[g]:
                raise ValueError(f"GPU {g} holds jobs {self.gpu_jobs[g]}; only an idle GPU can be taken offline")
        changed = [g for g in wanted if (g in self.offline_gpus) != offline]
        for g in changed:
            node = self.gpu_node[g]
            self._set_free(node, g, free=not offline)
            self.gpu_memory_used_gb[g] = self.gpu_memory_gb[g] if offline else 0.0
            if offline:
                self.offline_gpus.add(g)
            else:
                self.offline_gpus.discard(g)
            self.node_version[node] += 1
            self._log_node(node)
        if changed:
            self.version += 1
            self.capacity_version += 1

    def add_nodes(self, nodes: Iterable[NodeSpec]) -> tuple[int, ...]:
        """Grow the cluster (a node joined the live runtime): the nodes are appended with the next
        node ids, their GPUs numbered after the existing ones, all free; readers see them as
        changed nodes. Returns the new GPUs."""
        first_gpu = len(self.gpu_node)
        added: list[NodeSpec] = []
        for node in nodes:
            spec = NodeSpec(len(self.spec.nodes) + len(added), lookup_gpu_type(node.gpu_type).name, node.num_gpus)
            if spec.num_gpus < 1:
                raise ValueError(f"a node needs at least one GPU, got {spec.num_gpus}")
            added.append(spec)
        if not added:
            return ()
        self.spec = ClusterSpec(self.spec.nodes + tuple(added), name=self.spec.name)
        for node in added:
            gpus = tuple(range(len(self.gpu_node), len(self.gpu_node) + node.num_gpus))
            memory_gb = lookup_gpu_type(node.gpu_type).memory_gb
            self.gpu_node.extend([node.node_id] * node.num_gpus)
            self.gpu_type.extend([node.gpu_type] * node.num_gpus)
            self.gpu_memory_gb.extend([memory_gb] * node.num_gpus)
            self.gpu_memory_used_gb.extend([0.0] * node.num_gpus)
            self.gpu_jobs.extend([] for _ in gpus)
            self.node_gpus.append(gpus)
            self.node_free_gpus.append(set(gpus))
            self.node_job_count.append(0)
            self.node_version.append(0)
            self._free_buckets.setdefault(node.gpu_type, {}).setdefault(node.num_gpus, set()).add(node.node_id)
            self.max_node_gpus[node.gpu_type] = max(self.max_node_gpus.get(node.gpu_type, 0), node.num_gpus)
            self._log_node(node.node_id)
        self.version += 1
        self.capacity_version += 1
        return tuple(range(first_gpu, len(self.gpu_node)))

    def _log_node(self, node: int) -> None:
        log = self._node_log
        log.append(node)
        if len(log) > 65536:  # keep the log bounded for long-lived runtimes
            del log[:32768]
            self._node_log_base += 32768

    def nodes_changed_since(self, position: int) -> tuple[list[int] | None, int]:
        """Nodes whose jobs changed since ``position`` (a value this method returned before; 0 at
        first), and the new position. None when that part of the log is gone: re-read everything."""
        end = self._node_log_base + len(self._node_log)
        if position < self._node_log_base:
            return None, end
        return self._node_log[position - self._node_log_base :], end

    def _mark_solo(self, job_id: int) -> None:
        if job_id in self.unshareable:
            return
        shape, job_type = self._job_shape[job_id]
        self.solo_jobs.setdefault(shape, {}).setdefault(job_type, {})[job_id] = None

    def _unmark_solo(self, job_id: int) -> None:
        shape, job_type = self._job_shape[job_id]
        group = self.solo_jobs.get(shape, {}).get(job_type)
        if group is not None:
            group.pop(job_id, None)
            if not group:
                del self.solo_jobs[shape][job_type]

    def _set_free(self, node: int, gpu: int, free: bool) -> None:
        free_set = self.node_free_gpus[node]
        buckets = self._free_buckets[self.spec.nodes[node].gpu_type]
        before = len(free_set)
        if free:
            free_set.add(gpu)
        else:
            free_set.discard(gpu)
        after = len(free_set)
        buckets[before].discard(node)
        buckets.setdefault(after, set()).add(node)


_EMPTY: set[int] = set()
_EMPTY_GROUPS: dict[str, dict[int, None]] = {}
