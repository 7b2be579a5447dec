"""EaCO's GPUs on a Ray cluster: the custom resources nodes declare, and their discovery.

Every Ray node that EaCO may use advertises one custom resource per GPU,
``eaco_gpu_<node>_<index>`` with :data:`GPU_UNITS` units (:func:`node_resources` builds them for
``ray start --resources``), and optionally a marker ``eaco_type_<type>`` naming its GPU type. An
attempt asks :data:`JOB_UNITS` of each GPU it was given, so Ray starts it on exactly that node,
and several co-located attempts fit on one GPU. Ray's own ``GPU`` resource is not used (it cannot
pin a fractional share to one device index). :func:`discover` reads the alive nodes' resources
and builds a :class:`RayInventory`: the runtime's multi-node ``ClusterSpec`` and, for each of the
policy's GPUs (numbered across nodes as ``ClusterSpec`` does), its node and local device index
(docs/runtime_ray.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec, NodeSpec
from eaco.model.gpu import GPU_TYPES
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.wrapper import write_json_atomic

RESOURCE_PREFIX = "eaco_gpu_"
TYPE_PREFIX = "eaco_type_"  # optional marker resource: eaco_type_v100 = 1 names the node's GPU type
GPU_UNITS = 1000.0  # units of each per-GPU resource on its node
JOB_UNITS = 1.0  # units one attempt asks of each of its GPUs: up to 1000 co-located attempts per GPU
NAMESPACE = "eaco"
NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_RESOURCE = re.compile(r"^" + RESOURCE_PREFIX + r"([A-Za-z0-9][A-Za-z0-9-]*)_(\d+)$")


def gpu_resource(node: str, index: int) -> str:
    return f"{RESOURCE_PREFIX}{node}_{index}"


def node_resources(node: str, num_gpus: int, gpu_type: str | None = None) -> dict[str, float]:
    """The custom resources a Ray node declares for EaCO (``ray start --resources '<json>'``)."""
    if not NODE_NAME.match(node):
        raise InputError("node", f"node name {node!r}: use letters, digits and '-' (no '_')")
    if num_gpus < 1:
        raise InputError("num_gpus", f"expected at least one GPU, got {num_gpus}")
    out = {gpu_resource(node, i): GPU_UNITS for i in range(num_gpus)}
    if gpu_type is not None:
        out[TYPE_PREFIX + lookup_gpu_type(gpu_type).name] = 1.0
    return out


# ============================================================== discovery
@dataclass(frozen=True, slots=True)
class RayNode:
    name: str  # the name in its resources (eaco_gpu_<name>_<i>)
    num_gpus: int
    gpu_type: str  # its GPUs' type (its eaco_type_<type> marker, else the runtime's default)


@dataclass(frozen=True, slots=True)
class RayInventory(GpuInventory):
    """GPUs of several Ray nodes, each node of one GPU type (nodes may differ). ``gpu_type`` is
    the main type: the first node's. ``device_indices`` are the policy's global GPU ids 0..N-1
    (what the engine passes in ``LaunchRequest.device_indices``); :meth:`locate` turns one into
    its node and local device index."""

    nodes: tuple[RayNode, ...] = ()

    def cluster(self) -> ClusterSpec:
        return ClusterSpec(tuple(NodeSpec(i, n.gpu_type, n.num_gpus) for i, n in enumerate(self.nodes)),
                           name=self.describe())

    def describe(self) -> str:
        declared = " (declared)" if self.declared else ""
        if all(n.gpu_type == self.gpu_type for n in self.nodes):
            per_node = "+".join(str(n.num_gpus) for n in self.nodes)
            return f"ray {len(self.nodes)} nodes ({per_node})x{self.gpu_type}" + declared
        return f"ray {len(self.nodes)} nodes " + "+".join(f"{n.num_gpus}x{n.gpu_type}" for n in self.nodes) + declared

    def spans_nodes(self) -> bool:
        """A job may get GPUs of several nodes: one process group per node (module docs)."""
        return True

    def locate(self, gpu: int) -> tuple[int, str, int]:
        """(node index, node name, local device index) of the policy's GPU ``gpu``."""
        for i, node in enumerate(self.nodes):
            if gpu < node.num_gpus:
                return i, node.name, gpu
            gpu -= node.num_gpus
        raise IndexError(f"GPU {gpu} is not in {self.describe()}")

    def node_name(self, gpu: int) -> str:
        return self.locate(gpu)[1]

    def node_gpus(self, node_index: int) -> tuple[int, ...]:
        start = sum(n.num_gpus for n in self.nodes[:node_index])
        return tuple(range(start, start + self.nodes[node_index].num_gpus))

    def to_json(self, unmarked_gpu_type: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"gpu_type": self.gpu_type, "nodes": [[n.name, n.num_gpus, n.gpu_type] for n in self.nodes]}
        if unmarked_gpu_type is not None:
            out["unmarked_gpu_type"] = unmarked_gpu_type
        return out


def _natural_key(name: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def scan_nodes(ray_nodes: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, set[str]], dict[str, str]]:
    """From ``ray.nodes()``: EaCO node name -> GPU count, -> alive Ray node ids, -> GPU type (if marked)."""
    counts: dict[str, int] = {}
    ids: dict[str, set[str]] = {}
    types: dict[str, str] = {}
    for rn in ray_nodes:
        if not rn.get("Alive", rn.get("alive", False)):
            continue
        resources = rn.get("Resources") or {}
        indices: dict[str, set[int]] = {}
        marked = [k[len(TYPE_PREFIX):] for k in resources if k.startswith(TYPE_PREFIX)]
        for key in resources:
            m = _RESOURCE.match(key)
            if m:
                indices.setdefault(m.group(1), set()).add(int(m.group(2)))
        for name, idx in indices.items():
            if idx != set(range(len(idx))):
                raise InputError("ray", f"node {name}: GPU resources must be numbered 0..n-1, got {sorted(idx)}")
            if name in counts and counts[name] != len(idx):
                raise InputError("ray", f"node name {name} is used by two Ray nodes with different GPU counts")
            counts[name] = len(idx)
            ids.setdefault(name, set()).add(str(rn.get("NodeID")))
            if marked:
                types[name] = marked[0]
    return counts, ids, types


def discover(gpu_type: str = "v100", known: Iterable[tuple[str, int] | tuple[str, int, str]] = (), declared: bool = True,
             ray_nodes: Iterable[Mapping[str, Any]] | None = None, refused: dict[str, str] | None = None) -> RayInventory:
    """The EaCO GPUs of the connected Ray cluster. Nodes come in ``known`` order first (a restarted
    daemon keeps its GPU numbering; a known node missing now stays in, and is treated as lost),
    then new nodes in natural name order. A node's GPU type is its ``eaco_type_<type>`` marker,
    else ``gpu_type``; nodes may differ. ``known``: (name, GPU count[, GPU type]) as a daemon
    saved them (without a type: ``gpu_type``). ``refused``: instead of an error, new nodes
    marked with a type the model does not know are left out and put there (name -> marker)."""
    if ray_nodes is None:
        import ray

        ray_nodes = ray.nodes()
    counts, _, markers = scan_nodes(ray_nodes)
    try:
        default = lookup_gpu_type(gpu_type).name
    except KeyError as exc:
        raise InputError("--ray-gpu-type", str(exc.args[0])) from None
    known_list = [(str(k[0]), int(k[1]), str(k[2]) if len(k) > 2 else default) for k in known]
    known_names = {name for name, _, _ in known_list}
    types: dict[str, str] = {}
    for name in list(counts):
        marked = markers.get(name)
        kind = GPU_TYPES.get(marked.strip().lower()) if marked is not None else None
        if marked is not None and kind is None:
            if refused is not None and name not in known_names:
                refused[name] = str(marked)
                del counts[name]
                continue
            raise InputError("ray", f"node {name}: unknown GPU type {marked!r} in its {TYPE_PREFIX}<type> marker "
                                    f"(known: {', '.join(sorted(GPU_TYPES))})")
        types[name] = default if kind is None else kind.name
    nodes: list[RayNode] = []
    for name, n, t in known_list:
        if name in counts and counts[name] != n:
            raise InputError("ray", f"node {name} had {n} GPUs and has {counts[name]} now; use a new state folder or node name")
        if name in types and types[name] != t:
            raise InputError("ray", f"node {name} had {t} GPUs and has {types[name]} now; use a new state folder or node name")
        nodes.append(RayNode(name, n, t))
    for name in sorted(set(counts) - known_names, key=_natural_key):
        nodes.append(RayNode(name, counts[name], types[name]))
    if not nodes:
        raise InputError("ray", f"no Ray node declares EaCO GPUs (resources {RESOURCE_PREFIX}<node>_<index>)")
    total = sum(n.num_gpus for n in nodes)
    return RayInventory(nodes[0].gpu_type, tuple(range(total)), declared, tuple(nodes))


NODES_FILE = "ray_nodes.json"
DEFAULT_UNMARKED_GPU_TYPE = "v100"  # the type of nodes without a marker when nothing says otherwise
def save_inventory(state_root: Path, inventory: RayInventory, unmarked_gpu_type: str | None = None) -> None:
    """``ray_nodes.json`` in the state folder: the nodes in GPU-numbering order with their GPU
    types, and the type of nodes without a marker, for the next daemon."""
    write_json_atomic(Path(state_root) / NODES_FILE, inventory.to_json(unmarked_gpu_type))
