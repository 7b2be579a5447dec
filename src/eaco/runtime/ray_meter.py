"""GPU energy on a Ray cluster: one small meter actor per node reads that node's GPUs through NVML.

Each node of the :class:`~eaco.runtime.ray_inventory.RayInventory` gets a ``_NodeMeterActor``
pinned to it (it asks a thousandth of a unit of the node's first EaCO GPU resource, so Ray puts it
there and it never blocks a job). The daemon's :class:`RayGpuSource` asks every actor for a
reading once per tick and waits at most ``timeout_s``; a node that does not answer (lost, busy)
simply has no reading that tick, and :class:`~eaco.runtime.gpu_meter.GpuMeter` models its GPUs for
that interval and restarts their interval at the next reading. Nodes without NVML (no GPU, no
driver: the fake GPUs of a test cluster) are left out: their GPUs stay modelled.

``source_factory`` opens the node's GPUs (``open_nvml`` by default, run on the node); tests pass
one that returns an injected source.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Callable, Sequence

from eaco.profiler.telemetry import GpuDevice, GpuReading, GpuSource, open_nvml
from eaco.runtime.gpu_meter import GpuMeter
from eaco.runtime.procs import session_of

log = logging.getLogger("eaco.runtime")

METER_UNITS = 0.001  # of the node's first GPU resource (GPU_UNITS = 1000 per GPU): never blocks a job
SourceFactory = Callable[[Sequence[int]], "tuple[GpuSource | None, str]"]


class _NodeMeterActor:
    """Lives on one node; reads its GPUs (local CUDA indices 0..n-1)."""

    def __init__(self, node: str, num_gpus: int, source_factory: SourceFactory) -> None:
        self.node = node
        try:
            self.source, self.why = source_factory(list(range(num_gpus)))
        except Exception as exc:  # a broken driver must not take the daemon down
            self.source, self.why = None, f"{type(exc).__name__}: {exc}"

    def status(self) -> dict[str, Any]:
        devices = [] if self.source is None else list(self.source.devices)
        return {"node": self.node, "devices": devices, "why": self.why}

    def read(self) -> tuple[GpuReading, ...]:
        """The node's readings, per-process figures keyed by session (:func:`by_session`)."""
        return () if self.source is None else tuple(by_session(r) for r in self.source.read())

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None


def by_session(reading: GpuReading) -> GpuReading:
    """``reading`` with its per-process memory and kernel-time shares summed per session and keyed
    by the session's id (its leader's pid), on the node where the processes live: an attempt's
    process leads a session its job's processes share (:meth:`RayBackend.session_leaders`), and a
    pid means nothing off its node. Processes whose session cannot be read are left out."""
    if not reading.process_memory_mib and not reading.process_busy_share:
        return reading
    sessions: dict[int, int | None] = {}

    def regroup(per_pid: Any) -> dict[int, float]:
        out: dict[int, float] = {}
        for pid, value in per_pid.items():
            if pid not in sessions:
                sessions[pid] = session_of(pid)
            sid = sessions[pid]
            if sid is not None:
                out[sid] = out.get(sid, 0.0) + value
        return out

    return replace(reading, process_memory_mib=regroup(reading.process_memory_mib),
                   process_busy_share=regroup(reading.process_busy_share))


class RayGpuSource:
    """A :class:`~eaco.profiler.telemetry.GpuSource` over the meter actors of a Ray inventory.
    Device ``index`` = the policy's global GPU id (the inventory's ``device_indices``)."""

    def __init__(self, inventory: Any, source_factory: SourceFactory = open_nvml, timeout_s: float = 1.0,
                 start_timeout_s: float = 30.0) -> None:
        import ray

        from eaco.runtime.ray_inventory import scan_nodes

        self._ray = ray
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self._source_factory = source_factory
        self._cls = ray.remote(_NodeMeterActor)
        self._actors: list[tuple[int, Any]] = []  # (global id of the node's first GPU, actor)
        # meters of nodes that joined later, not answered yet: status ref -> (node, first GPU id, actor, give up at)
        self._starting: dict[Any, tuple[str, int, Any, float]] = {}
        self.unmeasured: dict[str, str] = {}  # node -> why its GPUs are modelled
        self.devices: tuple[GpuDevice, ...] = ()
        alive, _, _ = scan_nodes(ray.nodes())
        pending: dict[Any, tuple[str, int, Any]] = {}  # status ref -> (node, first GPU id, actor)
        for i, node in enumerate(inventory.nodes):
            if node.name not in alive:  # a known node missing now (lost): its actor could never start
                self.unmeasured[node.name] = "not in the Ray cluster now"
                continue
            actor = self._new_actor(node.name, node.num_gpus)
            pending[actor.status.remote()] = (node.name, inventory.node_gpus(i)[0], actor)
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=start_timeout_s) if pending else ([], [])
        for ref in late:
            name, _, actor = pending[ref]
            self.unmeasured[name] = f"its meter did not start within {start_timeout_s:g} s"
            ray.kill(actor)
        for ref in ready:
            self._accept(ref, *pending[ref])

    def _new_actor(self, node: str, num_gpus: int) -> Any:
        from eaco.runtime.ray_inventory import NAMESPACE, gpu_resource

        return self._cls.options(num_cpus=0, resources={gpu_resource(node, 0): METER_UNITS}, namespace=NAMESPACE,
                                 max_restarts=-1).remote(node, num_gpus, self._source_factory)

    def _accept(self, ref: Any, name: str, first: int, actor: Any) -> None:
        """A meter answered its status call: keep it if it found GPUs (numbered from ``first``)."""
        try:
            st = self._ray.get(ref)
        except Exception as exc:  # the actor died while starting
            self.unmeasured[name] = f"its meter failed: {exc}"
            return
        if not st["devices"]:
            self.unmeasured[name] = st["why"] or "no GPU"
            self._ray.kill(actor)
            return
        self._actors.append((first, actor))
        added = [replace(d, index=first + d.index) for d in st["devices"]]
        self.devices = tuple(sorted((*self.devices, *added), key=lambda d: d.index))

    def add_nodes(self, nodes: Sequence[tuple[str, int, int]]) -> None:
        """Start meters on nodes that joined: (name, GPU count, global id of its first GPU). Their
        GPUs are measured once their meter has answered (checked at each :meth:`read`, never
        waited for: the daemon's loop goes on), modelled until then, and for good if it does not
        answer within ``start_timeout_s``."""
        give_up = time.monotonic() + self.start_timeout_s
        for name, num_gpus, first in nodes:
            actor = self._new_actor(name, num_gpus)
            self._starting[actor.status.remote()] = (name, first, actor, give_up)

    def _check_starting(self) -> None:
        ready, _ = self._ray.wait(list(self._starting), num_returns=len(self._starting), timeout=0)
        for ref in ready:
            name, first, actor, _ = self._starting.pop(ref)
            self._accept(ref, name, first, actor)
        now = time.monotonic()
        for ref, (name, _, actor, give_up) in list(self._starting.items()):
            if now >= give_up:
                del self._starting[ref]
                self.unmeasured[name] = f"its meter did not start within {self.start_timeout_s:g} s"
                self._ray.kill(actor)

    def read(self) -> tuple[GpuReading, ...]:
        if self._starting:
            self._check_starting()
        if not self._actors:
            return ()
        refs = {actor.read.remote(): first for first, actor in self._actors}
        ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=self.timeout_s)
        out: list[GpuReading] = []
        for ref in ready:
            try:
                rows = self._ray.get(ref)
            except Exception:  # the node's actor died (node lost): no reading for its GPUs
                continue
            first = refs[ref]
            out += [replace(r, index=first + r.index) for r in rows]
        return tuple(out)

    def close(self) -> None:
        for _, _, actor, _ in self._starting.values():
            try:
                self._ray.kill(actor)
            except Exception:
                pass
        self._starting = {}
        for _, actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:
                pass
        self._actors = []


def open_ray_gpu_meter(inventory: Any, source_factory: SourceFactory = open_nvml,
                       keep_empty: bool = False) -> tuple[GpuMeter | None, str]:
    """A meter over every Ray node whose GPUs can be read, or ``(None, why)`` when none can. With
    ``keep_empty`` (a cluster that nodes may join) a meter that reads nothing yet is kept, with
    ``why``: nodes that join later are measured as their meters answer."""
    try:
        source = RayGpuSource(inventory, source_factory)
    except Exception as exc:  # actors could not start in time: model everything
        return None, f"the meter actors did not start: {exc}"
    if not source.devices:
        why = "; ".join(f"{n}: {reason}" for n, reason in source.unmeasured.items()) or "no node"
        if keep_empty:
            return GpuMeter(source, inventory.device_indices, require_all=False), why
        source.close()
        return None, why
    if source.unmeasured:
        log.warning("GPU energy modelled on Ray nodes %s", ", ".join(sorted(source.unmeasured)))
    return GpuMeter(source, inventory.device_indices, require_all=False), ""
