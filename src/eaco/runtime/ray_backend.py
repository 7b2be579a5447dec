"""The runtime on a Ray cluster: the same :class:`~eaco.runtime.engine.Runtime` and policies, jobs
started on the node and GPU the policy chose (docs/runtime_ray.md).

- **Resources.** Every Ray node that EaCO may use advertises one custom resource per GPU,
  ``eaco_gpu_<node>_<index>`` with :data:`GPU_UNITS` units (:func:`node_resources` builds them for
  ``ray start --resources``). An attempt asks :data:`JOB_UNITS` of each GPU it was given, so Ray
  starts it on exactly that node, and several co-located attempts fit on one GPU. Ray's own ``GPU``
  resource is not used (it cannot pin a fractional share to one device index).
- **Discovery.** :func:`discover` reads the alive nodes' resources and builds a
  :class:`RayInventory`: the runtime's multi-node ``ClusterSpec`` and, for each of the policy's
  GPUs (numbered across nodes as ``ClusterSpec`` does), its node and local device index.
- **Attempts.** Each attempt is a named, detached Ray actor (:class:`_AttemptActor`, no CPU
  reserved) that starts :mod:`eaco.runtime.ray_worker` with the job's command as a subprocess on
  its node, with ``CUDA_VISIBLE_DEVICES`` set to the local indices. Reports, logs, the stop file
  and checkpoints live in the runtime's state folder, which must be on a file system shared by
  the daemon and every node (one host in the tests; NFS or similar across hosts).
- **Node-local files** (``state_root`` given; ``eaco serve --ray-files node``): for clusters
  without a shared file system. An attempt's report, log, stop file, ``wrapper.json`` and
  ``exit.json`` live in a folder of its own on its node (:func:`node_files_root`); the backend
  copies new report and log bytes to the daemon's files while the job runs (one read in flight
  per attempt, every ``pull_interval_s``) and everything left once it has ended, before the
  engine sees the end; an undo's stop request goes through the actor (:meth:`request_stop`). The
  default checkpoint folder (under the state folder) is then on the node too: a job moved to
  another node starts over, unless its spec's ``checkpoint_dir`` is storage every node reaches.
- **Lost nodes.** :class:`RayBackend` watches ``ray.nodes()``; an attempt whose node is gone (or
  whose actor died) ends "lost" and the engine requeues it as for a killed process.
  :class:`RayRuntime` additionally fences the GPUs of a lost node, so the policy places nothing
  there until the node comes back.
- **Daemon restart.** Attempt actors are detached and named after their attempt folder: a new
  daemon finds them with ``ray.get_actor`` and watches them again (same attempt, no relaunch); an
  attempt whose actor is gone is handled from its ``exit.json`` or requeued.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec, NodeSpec
from eaco.model.gpu import GPU_TYPES
from eaco.model.gpu import gpu_type as lookup_gpu_type
from eaco.profiler.epoch_report import REPORT_FILE_ENV
from eaco.runtime.backend import AttemptExit, LaunchRequest, ProcessHandle
from eaco.runtime.control import CONTROL_DIR_ENV, EXIT_STOPPED, request_stop
from eaco.runtime.distributed import LOOPBACK, add_job_process_env, free_port, job_process_env
from eaco.runtime.engine import Runtime
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.wrapper import EXIT_FILE, read_json_dict, write_json_atomic

log = logging.getLogger("eaco.runtime.ray")

GANG_GRACE_S = 10.0  # a job spanning nodes: how long the other ranks may take to end after one of them did
CLEAN_EXIT_CODES = (0, EXIT_STOPPED)  # a rank that ended so finished, or stopped on request
GANG_FILE = "gang.json"  # in the attempt folder of a job spanning nodes: its nodes, rank order
RESOURCE_PREFIX = "eaco_gpu_"
TYPE_PREFIX = "eaco_type_"  # optional marker resource: eaco_type_v100 = 1 names the node's GPU type
GPU_UNITS = 1000.0  # units of each per-GPU resource on its node
JOB_UNITS = 1.0  # units one attempt asks of each of its GPUs: up to 1000 co-located attempts per GPU
NAMESPACE = "eaco"
RAY_ATTEMPT_FILE = "ray.json"  # written by the attempt actor: node, pid, devices
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


# ============================================================ the attempt
class _AttemptActor:
    """Lives on the chosen node for one attempt (of a job spanning nodes: for one rank of it):
    starts the job, waits for it, stops it. ``master``: rank 0's :meth:`describe`, for the
    other ranks of a spanning job (Ray resolves it before this starts, so they start after
    rank 0 has chosen where they meet)."""

    def __init__(self, payload: dict[str, Any], master: dict[str, Any] | None = None) -> None:
        import ray

        self.attempt_dir = Path(payload["attempt_dir"])
        log_file = Path(payload["log_file"])
        job_env = dict(payload["env"])
        self.pull_files: tuple[Path, Path] | None = None
        self.control_dir: Path | None = None
        local = payload.get("node_files")
        if local:  # no shared file system: this attempt's files on this node, pulled by the daemon
            base = node_files_root(local["tag"])
            self.attempt_dir = base / local["attempt"]
            log_file = self.attempt_dir / "job.log"
            self.control_dir = self.attempt_dir / "control"
            job_env.update({REPORT_FILE_ENV: str(self.attempt_dir / "report.jsonl"), CONTROL_DIR_ENV: str(self.control_dir)})
            job_env.update({k: str(base / rel) for k, rel in local["env_under_state"].items()})
            self.pull_files = (self.attempt_dir / "report.jsonl", log_file)
        self.attempt_dir.mkdir(parents=True, exist_ok=True)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(job_env)
        devices = ",".join(str(i) for i in payload["local_devices"])
        env["CUDA_VISIBLE_DEVICES"] = devices
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA numbers the boards as NVML (the meter) does
        node_id = ray.get_runtime_context().get_node_id()
        env["EACO_RAY_NODE"] = payload["node"]
        env["EACO_RAY_NODE_ID"] = node_id
        env.setdefault("PYTHONUNBUFFERED", "1")
        rank, ranks = int(payload.get("rank", 0)), int(payload.get("ranks", 1))
        if ranks == 1:  # its processes meet on this node, at a port of this attempt's own
            meet = {"master_addr": LOOPBACK, "master_port": free_port()}
        elif rank == 0:  # the others come to this node
            meet = {"master_addr": ray.util.get_node_ip_address(), "master_port": free_port()}
        else:
            meet = {"master_addr": str((master or {})["master_addr"]), "master_port": int((master or {})["master_port"])}
        add_job_process_env(env, payload["env"], job_process_env(
            rank, ranks, len(payload["local_devices"]), meet["master_addr"], meet["master_port"]))
        gang: dict[str, Any] = dict(meet, rank=rank, ranks=ranks) if ranks > 1 else {}
        part = f" rank {rank} of {ranks}" if ranks > 1 else ""
        with open(log_file, "ab") as fh:
            fh.write(f"=== eaco runtime (ray): attempt {payload['attempt']}{part} on node {payload['node']} "
                     f"({node_id[:12]}) devices {devices} ===\n".encode())
            fh.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eaco.runtime.ray_worker", str(self.attempt_dir), "--", *payload["command"]],
                cwd=payload["working_dir"], env=env, stdin=subprocess.DEVNULL, stdout=fh,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        from eaco.runtime.procs import process_start_ticks

        self.info = {
            "pid": self.proc.pid, "start_ticks": process_start_ticks(self.proc.pid), "node": payload["node"],
            "node_id": node_id, "host": socket.gethostname(), "devices": devices, **gang,
        }
        write_json_atomic(self.attempt_dir / RAY_ATTEMPT_FILE, self.info)

    def describe(self) -> dict[str, Any]:
        return self.info

    def read(self, offsets: list[int], max_bytes: int) -> list[bytes]:
        """Node-local files only: the bytes of the report and the log from ``offsets`` on (at most
        ``max_bytes`` each)."""
        out: list[bytes] = []
        for path, offset in zip(self.pull_files or (), offsets):
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    out.append(fh.read(max_bytes))
            except FileNotFoundError:
                out.append(b"")
        return out

    def stop_at_epoch_end(self) -> None:
        """Node-local files only: the stop request (the daemon's own stop file is not seen here)."""
        if self.control_dir is not None:
            request_stop(self.control_dir)

    def wait(self) -> dict[str, Any]:
        """Blocks until the job ended; its exit code (None: it left no exit.json)."""
        self.proc.wait()
        info = read_json_dict(self.attempt_dir / EXIT_FILE)
        code = info.get("exit_code") if info else None
        return {"exit_code": int(code) if isinstance(code, int) else None}

    def terminate(self, grace_s: float) -> None:
        """SIGTERM the attempt's process group, SIGKILL it after ``grace_s``."""
        if self.proc.poll() is None:
            _killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        _killpg(self.proc.pid, signal.SIGKILL)  # what is left of the group (the job's children)


NODE_FILES_DIR = "eaco-ray-files"  # under the node's temporary folder
PULL_FILE = "pulled.json"  # daemon side, node-local files mode: where the pulled bytes go, how far
PULL_MAX_BYTES = 1 << 20


def node_files_root(tag: str) -> Path:
    """A node's folder for the attempts of one state folder (``tag``), node-local files mode."""
    return Path(tempfile.gettempdir()) / NODE_FILES_DIR / tag


@dataclass(slots=True)
class _Pull:
    """Node-local files mode: copies of an attempt's report and log kept on the daemon side."""

    targets: tuple[Path, Path]  # the daemon's report file and log file of the job (appended to)
    offsets: list[int]  # bytes of the node's report and log copied so far
    record: Path  # PULL_FILE in the daemon's attempt folder (survives a daemon restart)
    ref: Any = None  # an outstanding read
    last_s: float = -1e9
    described: Any = None  # an outstanding describe (for ray.json on the daemon side)
    described_done: bool = False

    def save(self) -> None:
        write_json_atomic(self.record, {"targets": [str(t) for t in self.targets], "offsets": self.offsets})

    @classmethod
    def load(cls, attempt_dir: Path) -> "_Pull | None":
        info = read_json_dict(Path(attempt_dir) / PULL_FILE)
        if not info:
            return None
        targets = tuple(Path(t) for t in info["targets"])
        return cls((targets[0], targets[1]), [int(o) for o in info["offsets"]], Path(attempt_dir) / PULL_FILE)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True, slots=True)
class RayHandle(ProcessHandle):
    """``pid`` is 0: the job's pid lives on a remote node (``ray.json`` of the attempt has it)."""

    key: str = ""  # the attempt actor's name


@dataclass(slots=True)
class _Attempt:
    key: str
    node: str
    actor: Any
    wait_ref: Any
    attempt_dir: Path
    terminate_at: float | None = None  # when a kill follows a terminate whose actor never started
    extra: dict[str, Any] = field(default_factory=dict)
    # a job spanning nodes: ranks 1.. (this entry is rank 0, the one the engine's handle names)
    members: list["_Attempt"] = field(default_factory=list)
    ended: AttemptExit | None = None  # a rank of a spanning job that has ended, and how

    def ranks(self) -> list["_Attempt"]:
        return [self, *self.members]


def rank_dir(attempt_dir: Path, rank: int) -> Path:
    """The folder of one rank of an attempt (its ``ray.json``, ``wrapper.json``, ``exit.json``):
    the attempt folder for rank 0 (and every job on one node), ``rank<r>`` inside it otherwise."""
    return Path(attempt_dir) if rank == 0 else Path(attempt_dir) / f"rank{rank}"


def gang_nodes(attempt_dir: Path) -> list[str]:
    """The nodes of an attempt spanning several, in rank order ([] for one on a single node)."""
    info = read_json_dict(Path(attempt_dir) / GANG_FILE) or {}
    nodes = info.get("nodes")
    return [str(n) for n in nodes] if isinstance(nodes, list) and len(nodes) > 1 else []


def actor_name(attempt_dir: Path) -> str:
    """Stable name of an attempt's actor: the attempt folder (so a restarted daemon finds it)."""
    path = str(Path(attempt_dir).resolve())
    return "eaco-attempt-" + hashlib.sha1(path.encode()).hexdigest()[:20]


class RayBackend:
    """:class:`~eaco.runtime.backend.Backend` on a Ray cluster. Connects to ``address`` unless Ray
    is initialised already (then uses that connection and leaves it open on :meth:`close`)."""

    name = "ray"

    def __init__(self, inventory: RayInventory, address: str | None = None, node_check_s: float = 1.0,
                 suspect_s: float = 10.0, state_root: Path | None = None, pull_interval_s: float = 0.5) -> None:
        """``state_root``: run in node-local files mode (the state folder is not shared with the
        nodes; module docs); None: the state folder is on a shared file system."""
        import ray

        self.state_root = Path(state_root).resolve() if state_root is not None else None
        # node-local files mode: the name of this state folder's folder on every node
        self.node_tag = hashlib.sha1(str(self.state_root).encode()).hexdigest()[:16] if self.state_root else None
        self.pull_interval_s = pull_interval_s
        self.gang_grace_s = GANG_GRACE_S

        self._ray = ray
        self._owns_connection = False
        if not ray.is_initialized():
            ray.init(address=address or "auto", namespace=NAMESPACE, log_to_driver=False)
            self._owns_connection = True
        self.inventory = inventory
        self.node_check_s = node_check_s
        self._attempts: dict[str, _Attempt] = {}
        self._actor_cls = ray.remote(_AttemptActor)
        self._alive: dict[str, set[str]] = {}
        self.last_nodes: list[Any] = []  # the last ray.nodes() read
        # node -> until when it counts as lost: an attempt actor there died unasked, which Ray often
        # reports before it marks the node dead; without this the requeued job could go right back
        self.suspect_s = suspect_s
        self._suspect: dict[str, float] = {}
        self._checked_at = -1e9
        self.refresh_nodes(force=True)

    # ------------------------------------------------------------ nodes
    def refresh_nodes(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < self.node_check_s:
            return
        self._checked_at = now
        try:
            nodes = self._ray.nodes()
            _, ids, _ = scan_nodes(nodes)
        except Exception as exc:  # GCS briefly unreachable: keep the last view
            log.warning("ray.nodes() failed: %s", exc)
            return
        self._alive = ids
        self.last_nodes = nodes

    def lost_nodes(self) -> set[str]:
        """EaCO node names of the inventory that no alive Ray node carries now."""
        self.refresh_nodes()
        now = time.monotonic()
        return {n.name for n in self.inventory.nodes
                if not self._alive.get(n.name) or self._suspect.get(n.name, -1.0) > now}

    # ----------------------------------------------------------- launch
    def launch(self, request: LaunchRequest) -> ProcessHandle:
        """Start the attempt's actor on the node of its GPUs; a job whose GPUs are on several
        nodes gets one actor per node (rank 0 on the first node in GPU order, which the others
        meet; its nodes in ``gang.json``). Returns at once: Ray starts the actors."""
        by_node: dict[str, list[int]] = {}
        for _, name, local in sorted(self.inventory.locate(g) for g in request.device_indices):
            by_node.setdefault(name, []).append(local)
        nodes = list(by_node)
        request.attempt_dir.mkdir(parents=True, exist_ok=True)
        if len(nodes) > 1:
            write_json_atomic(request.attempt_dir / GANG_FILE, {"nodes": nodes, "devices": [by_node[n] for n in nodes]})
        members: list[_Attempt] = []
        master_ref = None
        for rank, node in enumerate(nodes):
            folder = rank_dir(request.attempt_dir, rank)
            folder.mkdir(parents=True, exist_ok=True)
            key = actor_name(folder)
            payload = {
                "attempt": request.attempt, "command": list(request.command), "working_dir": str(request.working_dir),
                "env": dict(request.env), "local_devices": by_node[node], "node": node,
                "attempt_dir": str(folder), "log_file": str(request.log_file), "rank": rank, "ranks": len(nodes),
            }
            pull = None
            if self.state_root is not None:
                payload["node_files"] = self._node_files(request, rank)
                if rank == 0:  # the job's reports come from rank 0; the others' logs stay on their nodes
                    pull = _Pull((Path(request.env[REPORT_FILE_ENV]), Path(request.log_file)), [0, 0], folder / PULL_FILE)
                    pull.save()
            options = dict(
                name=key, namespace=NAMESPACE, lifetime="detached", num_cpus=0, max_concurrency=4, max_restarts=0,
                resources={gpu_resource(node, local): JOB_UNITS for local in by_node[node]},
            )
            args = (payload,) if master_ref is None else (payload, master_ref)
            try:
                actor = self._actor_cls.options(**options).remote(*args)
            except ValueError:  # a stale actor of the same name (a reused state folder): replace it
                self._kill_named(key)
                actor = self._actor_cls.options(**options).remote(*args)
            if rank == 0 and len(nodes) > 1:
                master_ref = actor.describe.remote()
            members.append(_Attempt(key, node, actor, actor.wait.remote(), folder, extra={"pull": pull} if pull else {}))
        head = members[0]
        head.members = members[1:]
        self._attempts[head.key] = head
        return RayHandle(0, None, head.key)

    def _node_files(self, request: LaunchRequest, rank: int = 0) -> dict[str, Any]:
        """Where the attempt's files go on its node (those of rank ``rank`` of a job spanning
        nodes): its folder relative to the state folder, and the environment's other paths under
        the state folder (the default checkpoint folder)."""
        assert self.state_root is not None
        root = self.state_root

        def under(path: str | Path) -> str | None:
            try:
                return str(Path(path).resolve().relative_to(root))
            except ValueError:
                return None

        attempt = under(rank_dir(request.attempt_dir, rank))
        if attempt is None:
            raise OSError(f"attempt folder {request.attempt_dir} is not under the state folder {root}")
        env_under = {k: rel for k, v in request.env.items()
                     if k not in (REPORT_FILE_ENV, CONTROL_DIR_ENV) and k.startswith("EACO_") and (rel := under(v)) is not None}
        return {"tag": self.node_tag, "attempt": attempt, "env_under_state": env_under}

    def request_stop(self, handle: ProcessHandle, control_dir: Path) -> None:
        """The stop file in ``control_dir`` (the state folder, shared with the nodes); in
        node-local files mode the job does not see that folder, and the request goes to its
        node through the attempt's actor."""
        request_stop(control_dir)
        entry = self._attempts.get(handle.key) if isinstance(handle, RayHandle) else None
        if entry is not None and self.state_root is not None:
            for member in entry.ranks():
                member.actor.stop_at_epoch_end.remote()

    def _pull(self, entry: _Attempt, final: bool = False) -> None:
        """Node-local files mode: copy what the job added to its report and log. Without
        ``final``, at most one read in flight, one every ``pull_interval_s``; ``final`` (the job
        has ended): read until nothing is left."""
        pull: _Pull | None = entry.extra.get("pull")
        if pull is None:
            return
        if not pull.described_done:
            if pull.described is None:
                pull.described = entry.actor.describe.remote()
            if self._ray.wait([pull.described], timeout=0)[0]:
                pull.described_done = True
                try:
                    write_json_atomic(entry.attempt_dir / RAY_ATTEMPT_FILE, self._ray.get(pull.described))
                except Exception:
                    pass
        if final:
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline:
                ref, pull.ref = pull.ref or entry.actor.read.remote(pull.offsets, PULL_MAX_BYTES), None
                try:
                    chunks = self._ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
                except Exception:
                    return
                if not self._append(pull, chunks):
                    return
            return
        if pull.ref is not None:
            if not self._ray.wait([pull.ref], timeout=0)[0]:
                return
            ref, pull.ref = pull.ref, None
            try:
                self._append(pull, self._ray.get(ref))
            except Exception:
                return
        now = time.monotonic()
        if now - pull.last_s >= self.pull_interval_s:
            pull.ref = entry.actor.read.remote(pull.offsets, PULL_MAX_BYTES)
            pull.last_s = now

    @staticmethod
    def _append(pull: _Pull, chunks: list[bytes]) -> bool:
        """Append the chunks to the daemon's files; whether there was anything."""
        got = False
        for i, chunk in enumerate(chunks[:2]):
            if not chunk:
                continue
            got = True
            target = pull.targets[i]
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "ab") as fh:
                fh.write(chunk)
            pull.offsets[i] += len(chunk)
        if got:
            pull.save()
        return got

    def _kill_named(self, key: str) -> None:
        try:
            self._ray.kill(self._ray.get_actor(key, namespace=NAMESPACE), no_restart=True)
        except Exception:
            pass

    # ---------------------------------------------------------- restart
    def find(self, attempt_dir: Path) -> ProcessHandle | None:
        key = actor_name(attempt_dir)
        if key in self._attempts:
            return RayHandle(0, None, key)
        nodes = gang_nodes(attempt_dir)
        head = self._reattach(Path(attempt_dir), nodes[0] if nodes else "")
        others = [self._reattach(rank_dir(attempt_dir, r), node) for r, node in enumerate(nodes) if r > 0]
        if head is None:  # rank 0 is gone: the attempt has ended (exit.json) or is lost
            for member in others:
                if member is not None:
                    self._kill(member.actor)
            return None
        for r, member in enumerate(others, start=1):
            if member is None:  # this rank's actor is gone: how it ended is in its exit.json, if anywhere
                folder = rank_dir(attempt_dir, r)
                member = _Attempt(actor_name(folder), nodes[r], None, None, folder)
                member.ended = self._from_exit_file(folder, f"rank {r}'s Ray actor on node {nodes[r]} is gone")
            head.members.append(member)
        self._attempts[key] = head
        return RayHandle(0, None, key)

    def _reattach(self, folder: Path, node: str) -> "_Attempt | None":
        """The running actor of one attempt (or rank) folder, watched again; None if it is gone."""
        key = actor_name(folder)
        try:
            actor = self._ray.get_actor(key, namespace=NAMESPACE)
        except ValueError:
            return None
        if not node:
            info = read_json_dict(folder / RAY_ATTEMPT_FILE) or {}
            node = str(info.get("node", ""))
        if not node:
            try:
                node = str(self._ray.get(actor.describe.remote(), timeout=30)["node"])
            except Exception:
                node = ""
        pull = _Pull.load(folder) if self.state_root is not None else None
        return _Attempt(key, node, actor, actor.wait.remote(), folder, extra={"pull": pull} if pull else {})

    # ------------------------------------------------------------- poll
    def poll(self, handle: ProcessHandle, attempt_dir: Path) -> AttemptExit | None:
        key = handle.key if isinstance(handle, RayHandle) and handle.key else actor_name(attempt_dir)
        entry = self._attempts.get(key)
        if entry is None:
            if self.find(attempt_dir) is None:  # no actor: the end is in exit.json, or it was lost
                return self._from_exit_file(attempt_dir)
            entry = self._attempts[key]
        self._pull(entry)
        if entry.members:
            return self._poll_gang(entry)
        ended = self._member_end(entry)
        if ended is not None:
            if ended.exit_code is not None and not entry.extra.get("died"):
                self._pull(entry, final=True)  # the last epochs' reports, before the engine sees the end
            return self._finish(entry, ended)
        return self._watch(entry)

    def _member_end(self, member: _Attempt, rank: int | None = None) -> AttemptExit | None:
        """How one attempt (or one rank of a spanning job) ended; None while it runs."""
        if member.ended is not None:
            return member.ended
        if not self._ray.wait([member.wait_ref], timeout=0)[0]:
            return None
        who = f"rank {rank}'s" if rank is not None else "the attempt's"
        try:
            code = self._ray.get(member.wait_ref)["exit_code"]
        except Exception as exc:  # the actor died: node lost, killed, or could not start
            why = f"{who} Ray actor on node {member.node or '?'} died ({type(exc).__name__})"
            log.info("attempt %s: %s", member.attempt_dir, why)
            self._suspect_node(member)
            member.ended = self._from_exit_file(member.attempt_dir, why, ranks=False)
            member.extra["died"] = True  # nothing left to read from it
            return member.ended
        if isinstance(code, int):
            member.ended = AttemptExit(code)
        else:
            # the job vanished without its exit code (its worker killed it when its actor went,
            # or it was killed): on a failing node this often comes before the actor's death
            self._suspect_node(member)
            whose = f"rank {rank} of the job" if rank is not None else "the job"
            member.ended = AttemptExit(None, f"{whose} on node {member.node or '?'} ended without writing its exit code")
        return member.ended

    def _poll_gang(self, entry: _Attempt) -> AttemptExit | None:
        """A job spanning nodes ends as its rank 0 does. Rank 0 ended cleanly (finished, or
        stopped on request: its checkpoint and reports are written): the attempt ends so once
        every rank has ended, or after ``gang_grace_s`` (the others are then stopped; a rank
        that fails on its way out, as a torn-down process group can make it, changes nothing).
        Another rank failed (an exit code other than 0 and 75, or lost): the others would wait
        for it forever in their next collective, so unless rank 0 ends cleanly within
        ``gang_grace_s`` the attempt ends as that rank did and every actor is killed."""
        ranks = entry.ranks()
        ends = [self._member_end(m, r) for r, m in enumerate(ranks)]
        head = ends[0]
        now = time.monotonic()
        if head is not None and head.exit_code not in CLEAN_EXIT_CODES:
            return self._finish(entry, head)
        if head is not None:
            if all(e is not None for e in ends) or now - entry.extra.setdefault("head_ended_s", now) >= self.gang_grace_s:
                for r, e in enumerate(ends[1:], start=1):
                    if e is None or e.exit_code not in CLEAN_EXIT_CODES:
                        why = "still running" if e is None else (e.detail or f"exit code {e.exit_code}")
                        log.info("attempt %s: rank 0 ended with code %s; rank %d: %s", entry.attempt_dir, head.exit_code, r, why)
                if not entry.extra.get("died"):
                    self._pull(entry, final=True)
                return self._finish(entry, head)
            return self._watch(entry)
        failed = next(((r, e) for r, e in enumerate(ends) if e is not None and e.exit_code not in CLEAN_EXIT_CODES), None)
        if failed is not None and now - entry.extra.setdefault("rank_failed_s", now) >= self.gang_grace_s:
            r, e = failed
            detail = e.detail or f"rank {r} on node {ranks[r].node} exited with code {e.exit_code}"
            return self._finish(entry, AttemptExit(e.exit_code, detail))
        return self._watch(entry)

    def _watch(self, entry: _Attempt) -> AttemptExit | None:
        """A running attempt: ended "lost" when a node of it is lost, or when a stop request
        went unanswered; else None."""
        lost = self.lost_nodes()
        gone = [m.node for m in entry.ranks() if m.node in lost]
        if gone:
            return self._finish(entry, self._from_exit_file(entry.attempt_dir, f"node {gone[0]} is lost"))
        if entry.terminate_at is not None and time.monotonic() >= entry.terminate_at:
            return self._finish(entry, self._from_exit_file(entry.attempt_dir, "no answer to a stop request"))
        return None

    def _suspect_node(self, entry: _Attempt) -> None:
        """An attempt ended unasked and without an exit code: count its node as lost for
        ``suspect_s`` (Ray often notices a dead node only later), so that the requeued job does
        not go right back there."""
        if entry.terminate_at is None and entry.node:
            self._suspect[entry.node] = time.monotonic() + self.suspect_s
            self.refresh_nodes(force=True)

    def _from_exit_file(self, attempt_dir: Path, why: str = "", ranks: bool = True) -> AttemptExit:
        """How an attempt whose actor is gone ended, from its ``exit.json``; with ``ranks``, for a
        job spanning nodes, from every rank's: rank 0's code if it ended cleanly (0 or 75), else
        the first failure."""
        nodes = gang_nodes(attempt_dir) if ranks else []
        codes: list[int | None] = []
        for r in range(max(1, len(nodes))):
            info = read_json_dict(rank_dir(attempt_dir, r) / EXIT_FILE)
            code = info.get("exit_code") if info else None
            codes.append(int(code) if isinstance(code, int) else None)
        head = codes[0]
        if head is not None and (len(codes) == 1 or head in CLEAN_EXIT_CODES):
            return AttemptExit(head)  # one rank, or rank 0 ended cleanly: that is how the attempt ended
        failed = next((c for c in codes if c is not None and c not in CLEAN_EXIT_CODES), None)
        if failed is not None:
            return AttemptExit(failed)
        return AttemptExit(None, why or "its actor is gone and it left no exit code")

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor, no_restart=True)  # a detached actor does not end by itself
        except Exception:
            pass

    def _finish(self, entry: _Attempt, ended: AttemptExit) -> AttemptExit:
        """Forget the attempt and kill its actors (every rank's: a rank still running goes too)."""
        self._attempts.pop(entry.key, None)
        for member in entry.ranks():
            if member.actor is not None:
                self._kill(member.actor)
        return ended

    # ------------------------------------------------------------- stop
    def terminate(self, handle: ProcessHandle, grace_s: float = 5.0) -> None:
        """Ask the attempt's actors (every rank's) to SIGTERM the job (SIGKILL after
        ``grace_s``); does not wait. An actor that has not started yet is killed."""
        key = handle.key if isinstance(handle, RayHandle) else None
        entry = self._attempts.get(key) if key else None
        if entry is None or entry.terminate_at is not None:
            return  # unknown, or asked already (the engine repeats a cancel every tick)
        give_up = time.monotonic() + grace_s + 30.0  # then give up on it
        for member in entry.ranks():
            member.terminate_at = give_up  # (an actor that ends now was asked to: its node is not suspect)
            if member.actor is None or member.ended is not None:
                continue
            ready, _ = self._ray.wait([member.actor.describe.remote()], timeout=0.5)
            if ready:
                member.actor.terminate.remote(grace_s)
            else:
                self._kill(member.actor)

    def close(self) -> None:
        """Forget the attempts without stopping them (detached actors keep the jobs running; a new
        daemon re-attaches). Disconnects from Ray if this backend connected."""
        self._attempts.clear()
        if self._owns_connection:
            self._ray.shutdown()
            self._owns_connection = False


# ========================================================= the runtime
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


NODES_FILE = "ray_nodes.json"
DEFAULT_UNMARKED_GPU_TYPE = "v100"  # the type of nodes without a marker when nothing says otherwise
LOCAL_NODE = "local"  # the node name of a Ray instance the daemon starts itself
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20


def save_inventory(state_root: Path, inventory: RayInventory, unmarked_gpu_type: str | None = None) -> None:
    """``ray_nodes.json`` in the state folder: the nodes in GPU-numbering order with their GPU
    types, and the type of nodes without a marker, for the next daemon."""
    write_json_atomic(Path(state_root) / NODES_FILE, inventory.to_json(unmarked_gpu_type))


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
    eaco_settings: Any = None,
) -> tuple[RayRuntime, Any]:
    """What ``eaco serve --backend ray`` builds: connect, discover (keeping the GPU numbering of
    this state folder's earlier daemons), and the runtime with the Ray backend. ``shared_files``
    False: the nodes do not see the state folder (node-local files mode, module docs).
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
    backend = RayBackend(inventory, address, node_check_s=node_check_s, state_root=None if shared_files else layout.root)
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
