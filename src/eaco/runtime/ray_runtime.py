"""The runtime on a Ray cluster: the engine with the Ray backend, lost-node fences and nodes that
join; what ``eaco serve --backend ray`` builds (docs/runtime_ray.md)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from eaco.errors import InputError
from eaco.model.cluster import NodeSpec
from eaco.model.gpu import GPU_TYPES
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.runtime.checkpoint_relay import SYNC_S
from eaco.runtime.engine import Runtime
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.ray_backend import RayBackend
from eaco.runtime.ray_inventory import (
    DEFAULT_UNMARKED_GPU_TYPE, NAMESPACE, NODES_FILE, RayInventory, discover, node_resources, save_inventory,
)
from eaco.runtime.wrapper import read_json_dict

log = logging.getLogger("eaco.runtime.ray")


class RayRuntime(Runtime):
    """The engine, unchanged, plus lost-node handling: before each policy call the idle GPUs of
    nodes the cluster lost are fenced (:meth:`ClusterState.set_offline`; their attempts have been
    requeued by the poll of the same tick), and unfenced when a node of that name comes back.
    Nodes that join the Ray cluster with EaCO GPUs are added as they come, whatever their GPU type
    (:meth:`ClusterState.add_nodes`; checked every ``join_check_s``); ``unmarked_gpu_type``: the
    type of a node without an ``eaco_type_<type>`` marker."""

    backend: RayBackend
    inventory: RayInventory
    unmarked_gpu_type = "v100"
    join_check_s = 2.0
    _next_join_check = 0.0
    _join_refused: str = ""

    @property
    def fenced(self) -> set[int]:
        """GPUs taken offline because their node is lost (only this runtime takes GPUs offline)."""
        return self.state.offline_gpus

    def tick(self) -> None:
        self.backend.refresh_nodes()
        self._take_new_nodes()
        super().tick()
        self._sync_fences()

    def _take_new_nodes(self) -> None:
        """Append nodes that joined the cluster since the last look: their GPUs are numbered after
        the others (the numbering of the nodes already known never changes) and kept in
        ``ray_nodes.json``. A node that cannot be taken (a GPU type the model does not know) is
        skipped, said once."""
        now = time.monotonic()
        if now < self._next_join_check or not self.backend.last_nodes:
            return
        self._next_join_check = now + self.join_check_s
        old = self.inventory
        refused: dict[str, str] = {}
        try:
            grown = discover(self.unmarked_gpu_type, [(n.name, n.num_gpus, n.gpu_type) for n in old.nodes], old.declared,
                             ray_nodes=self.backend.last_nodes, refused=refused)
            why = ""
        except InputError as exc:
            grown, why = old, str(exc)
        if refused:
            why = (f"nodes {', '.join(sorted(refused))} are marked with GPU types the model does not know "
                   f"({', '.join(sorted(set(refused.values())))}; known: {', '.join(sorted(GPU_TYPES))})" + (f"; {why}" if why else ""))
        if why and why != self._join_refused:
            log.warning("a Ray node is not taken: %s", why)
            self.store.event(None, "node-refused", why)
        self._join_refused = why
        if len(grown.nodes) == len(old.nodes):
            return
        new = grown.nodes[len(old.nodes):]
        gpus = self.state.add_nodes([NodeSpec(0, n.gpu_type, n.num_gpus) for n in new])
        self.inventory = grown
        self.backend.inventory = grown
        save_inventory(self.layout.root, grown, self.unmarked_gpu_type)
        first = gpus[0]
        firsts = []
        for n in new:
            self.store.event(None, "node-joined", f"node {n.name}: {n.num_gpus} x {n.gpu_type}, GPUs {first}-{first + n.num_gpus - 1}")
            firsts.append((n.name, n.num_gpus, first))
            first += n.num_gpus
        meter = self.accountant.gpu_meter
        if meter is not None and hasattr(meter.source, "add_nodes"):  # measure the new nodes' GPUs too
            meter.source.add_nodes(firsts)
            meter.add_devices(gpus)
        self.snapshot = self.take_snapshot()

    def _call_policy(self) -> None:
        self._sync_fences()
        super()._call_policy()

    def _sync_fences(self) -> None:
        lost = self.backend.lost_nodes()
        for i, node in enumerate(self.inventory.nodes):
            for g in self.inventory.node_gpus(i):
                if node.name in lost and g not in self.fenced and not self.state.gpu_jobs[g]:
                    self.state.set_offline((g,), True)
                    self.store.event(None, "node-lost", f"node {node.name}: GPU {g} fenced")
                elif node.name not in lost and g in self.fenced:
                    self.state.set_offline((g,), False)
                    self.store.event(None, "node-back", f"node {node.name}: GPU {g} usable again")


LOCAL_NODE = "local"  # the node name of a Ray instance the daemon starts itself
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20


def start_local_ray(gpus: GpuInventory) -> None:
    """Start a one-node Ray instance inside this process, declaring ``gpus`` as the EaCO GPUs of
    node ``local``. It lives as long as the daemon: its attempt actors (and their jobs) end with
    it, and the next daemon requeues them to resume from their checkpoints."""
    import ray

    ray.init(namespace=NAMESPACE, log_to_driver=False, include_dashboard=False,
             object_store_memory=LOCAL_OBJECT_STORE_BYTES,  # the runtime passes no data through it
             resources=node_resources(LOCAL_NODE, len(gpus.device_indices), gpus.gpu_type))


def build_ray_runtime(
    state_dir: Path, policy_name: str = "eaco", tick_s: float = 0.2, address: str | None = None,
    gpu_type: str | None = None, policy_factory: Callable[[Any], Any] | None = None, node_check_s: float = 1.0,
    local_gpus: GpuInventory | None = None, measure_gpus: bool = True, alone_first: bool = True,
    profiles: Sequence[Path] = (), shared_files: bool = True, meter_source_factory: Any = None,
    eaco_settings: Any = None, checkpoint_sync_s: float | None = SYNC_S,
) -> tuple[RayRuntime, Any]:
    """What ``eaco serve --backend ray`` builds: connect, discover (keeping the GPU numbering of
    this state folder's earlier daemons), and the runtime with the Ray backend. ``shared_files``
    False: the nodes do not see the state folder (node-local files mode, module docs); jobs'
    checkpoint folders are then relayed through the daemon (``checkpoint_sync_s``: how often a
    running job's is copied; 0: only when an attempt ends; None: no relay).
    ``meter_source_factory``: opens a node's GPUs for the meter (default NVML; tests inject one).
    ``eaco_settings``: EaCO's settings (None: the defaults)."""
    import ray

    from eaco.policies.registry import make_policy
    from eaco.runtime.accounting import measured_cpu_util
    from eaco.runtime.layout import StateLayout
    from eaco.runtime.store import Store
    from eaco.setup import load_environment

    started_here = False  # a one-node Ray instance of our own: no node can join it
    if not ray.is_initialized():
        if address is None:
            if local_gpus is None:
                raise InputError("--ray-address", "give a Ray cluster to join ('auto' or HOST:PORT), or GPUs for a local one (--gpus)")
            start_local_ray(local_gpus)
            gpu_type = local_gpus.gpu_type
            started_here = True
        else:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    layout = StateLayout(Path(state_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    nodes_file = layout.root / NODES_FILE
    previous = read_json_dict(nodes_file) or {}
    # nodes without a type marker keep the type this state folder's first daemon gave them
    if gpu_type is not None:
        try:
            gpu_type = lookup_gpu_type(gpu_type).name
        except KeyError as exc:
            raise InputError("--ray-gpu-type", str(exc.args[0])) from None
    saved = previous.get("unmarked_gpu_type", previous.get("gpu_type"))
    unmarked = str(saved or gpu_type or DEFAULT_UNMARKED_GPU_TYPE)
    if saved and gpu_type and str(saved) != gpu_type:
        log.warning("--ray-gpu-type %s ignored: this state folder's nodes without a type marker are %s "
                    "(%s); mark nodes with eaco_type_<type>, or use a new state folder", gpu_type, saved, nodes_file)
    known = [tuple(k) for k in previous.get("nodes", [])]
    inventory = discover(unmarked, known)
    save_inventory(layout.root, inventory, unmarked)
    env = load_environment(profiles=profiles)
    ctx = env.policy_context(eaco_settings)
    policy = policy_factory(ctx) if policy_factory else make_policy(policy_name, ctx)
    store = Store(layout.db)
    backend = RayBackend(inventory, address, node_check_s=node_check_s, state_root=None if shared_files else layout.root,
                         checkpoint_sync_s=checkpoint_sync_s)
    meter = None
    if measure_gpus:
        from eaco.profiler.telemetry import open_nvml
        from eaco.runtime.ray_meter import open_ray_gpu_meter

        # on a cluster nodes may join: a meter that reads nothing yet is kept for them
        meter, why = open_ray_gpu_meter(inventory, meter_source_factory or open_nvml, keep_empty=not started_here)
        if meter is None:
            log.info("GPU energy is modelled: %s", why)
        elif why:
            log.info("GPU energy is modelled until a node whose GPUs can be read joins: %s", why)
    runtime = RayRuntime(layout, store, backend, policy, inventory, env.catalog, env.energy,
                         cpu_util=measured_cpu_util(), tick_s=tick_s, gpu_meter=meter, alone_first=alone_first)
    runtime.unmarked_gpu_type = unmarked
    return runtime, env
