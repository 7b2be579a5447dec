"""The runtime's backend on a Ray cluster: jobs started on the node and GPU the policy chose, with
the same :class:`~eaco.runtime.engine.Runtime` and policies (docs/runtime_ray.md). The parts:
:mod:`eaco.runtime.ray_inventory` (resources, discovery), :mod:`eaco.runtime.ray_attempt` (the
actor on the node), this module (launch, watch, stop, re-attach) and
:mod:`eaco.runtime.ray_runtime` (lost-node fences, joining nodes, ``build_ray_runtime``).

- **Resources.** Every Ray node that EaCO may use advertises one custom resource per GPU,
  ``eaco_gpu_<node>_<index>`` with :data:`GPU_UNITS` units (:func:`~eaco.runtime.ray_inventory.node_resources` builds them for
  ``ray start --resources``). An attempt asks :data:`JOB_UNITS` of each GPU it was given, so Ray
  starts it on exactly that node, and several co-located attempts fit on one GPU. Ray's own ``GPU``
  resource is not used (it cannot pin a fractional share to one device index).
- **Discovery.** :func:`~eaco.runtime.ray_inventory.discover` reads the alive nodes' resources and builds a
  :class:`RayInventory`: the runtime's multi-node ``ClusterSpec`` and, for each of the policy's
  GPUs (numbered across nodes as ``ClusterSpec`` does), its node and local device index.
- **Attempts.** Each attempt is a named, detached Ray actor (:class:`AttemptActor`, no CPU
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
  default checkpoint folder (under the state folder) is then on the node too, and the
  **checkpoint relay** (:mod:`eaco.runtime.checkpoint_relay`) carries it: copied to the daemon
  every ``checkpoint_sync_s`` and when the attempt ends, installed on the node of the job's next
  attempt before it starts, so a job moved to another node resumes.
- **Lost nodes.** :class:`RayBackend` watches ``ray.nodes()``; an attempt whose node is gone (or
  whose actor died) ends "lost" and the engine requeues it as for a killed process.
  :class:`~eaco.runtime.ray_runtime.RayRuntime` additionally fences the GPUs of a lost node, so the policy places nothing
  there until the node comes back.
- **Daemon restart.** Attempt actors are detached and named after their attempt folder: a new
  daemon finds them with ``ray.get_actor`` and watches them again (same attempt, no relaunch); an
  attempt whose actor is gone is handled from its ``exit.json`` or requeued.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eaco.profiler.epoch_report import REPORT_FILE_ENV
from eaco.runtime.backend import AttemptExit, LaunchRequest, ProcessHandle
from eaco.runtime.checkpoint_relay import SYNC_S, CheckpointSync, snapshot_payload
from eaco.runtime.control import CHECKPOINT_DIR_ENV, CONTROL_DIR_ENV, EXIT_STOPPED, request_stop
from eaco.runtime.ray_attempt import (
    GANG_FILE, RAY_ATTEMPT_FILE, AttemptActor, actor_name, gang_nodes, rank_dir,
)
from eaco.runtime.ray_inventory import JOB_UNITS, NAMESPACE, RayInventory, gpu_resource, scan_nodes
from eaco.runtime.wrapper import read_exit_code, read_json_dict, write_json_atomic

log = logging.getLogger("eaco.runtime.ray")

GANG_GRACE_S = 10.0  # a job spanning nodes: how long the other ranks may take to end after one of them did
CLEAN_EXIT_CODES = (0, EXIT_STOPPED)  # a rank that ended so finished, or stopped on request
PULL_FILE = "pulled.json"  # daemon side, node-local files mode: where the pulled bytes go, how far
PULL_MAX_BYTES = 1 << 20
CHECKPOINT_FINAL_S = 600.0  # node-local files mode: the copy of an ended job's checkpoint, for at most this long


@dataclass(slots=True)
class _Pull:
    """Node-local files mode: copies of an attempt's report and log kept on the daemon side."""

    targets: tuple[Path, Path]  # the daemon's report file and log file of the job (appended to)
    offsets: list[int]  # bytes of the node's report and log copied so far
    record: Path  # PULL_FILE in the daemon's attempt folder (survives a daemon restart)
    snapshot: Path | None = None  # rank 0: the daemon's copy of the job's checkpoint folder (relay)
    ref: Any = None  # an outstanding read
    last_s: float = -1e9
    described: Any = None  # an outstanding describe (for ray.json on the daemon side)
    described_done: bool = False

    def save(self) -> None:
        write_json_atomic(self.record, {"targets": [str(t) for t in self.targets], "offsets": self.offsets,
                                        "snapshot": str(self.snapshot) if self.snapshot else None})

    @classmethod
    def load(cls, attempt_dir: Path) -> "_Pull | None":
        info = read_json_dict(Path(attempt_dir) / PULL_FILE)
        if not info:
            return None
        targets = tuple(Path(t) for t in info["targets"])
        snapshot = Path(info["snapshot"]) if info.get("snapshot") else None
        return cls((targets[0], targets[1]), [int(o) for o in info["offsets"]], Path(attempt_dir) / PULL_FILE, snapshot)


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


class RayBackend:
    """:class:`~eaco.runtime.backend.Backend` on a Ray cluster. Connects to ``address`` unless Ray
    is initialised already (then uses that connection and leaves it open on :meth:`close`)."""

    name = "ray"

    def __init__(self, inventory: RayInventory, address: str | None = None, node_check_s: float = 1.0,
                 suspect_s: float = 10.0, state_root: Path | None = None, pull_interval_s: float = 0.5,
                 checkpoint_sync_s: float | None = SYNC_S) -> None:
        """``state_root``: run in node-local files mode (the state folder is not shared with the
        nodes; module docs); None: the state folder is on a shared file system.
        ``checkpoint_sync_s`` (node-local files mode): copy a running job's checkpoint folder to
        the daemon this often (0: only when its attempt ends; None: no checkpoint relay)."""
        import ray

        self.checkpoint_sync_s = checkpoint_sync_s
        self.checkpoint_final_s = CHECKPOINT_FINAL_S

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
        self._actor_cls = ray.remote(AttemptActor)
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
            extra: dict[str, Any] = {}
            if self.state_root is not None:
                payload["node_files"] = self._node_files(request, rank)
                # the job's reports come from rank 0; every rank's log goes to the job's log
                report = Path(request.env[REPORT_FILE_ENV]) if rank == 0 else folder / "report.jsonl"
                pull = _Pull((report, Path(request.log_file)), [0, 0], folder / PULL_FILE)
                if rank == 0 and self.checkpoint_sync_s is not None and CHECKPOINT_DIR_ENV in payload["node_files"]["env_under_state"]:
                    pull.snapshot = Path(request.env[CHECKPOINT_DIR_ENV]).resolve()
                    incoming = snapshot_payload(pull.snapshot, self._ray.put, for_node=node)
                    if incoming is not None:
                        payload["checkpoint_in"] = incoming
                        extra["stage_in"] = incoming  # its object references live until the actor has started
                pull.save()
                extra["pull"] = pull
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
            member = _Attempt(key, node, actor, actor.wait.remote(), folder, extra=extra)
            self._add_relay(member, request.attempt)
            members.append(member)
        head = members[0]
        head.members = members[1:]
        self._attempts[head.key] = head
        return RayHandle(0, None, head.key)

    def _add_relay(self, entry: _Attempt, attempt: int) -> None:
        """Rank 0 in node-local files mode with a relayed checkpoint folder: its copier."""
        pull: _Pull | None = entry.extra.get("pull")
        if pull is None or pull.snapshot is None or entry.actor is None or self.checkpoint_sync_s is None:
            return
        actor, ray = entry.actor, self._ray
        entry.extra["relay"] = CheckpointSync(
            pull.snapshot, entry.node, attempt,
            call=lambda method, *args: getattr(actor, method).remote(*args),
            ready=lambda ref: bool(ray.wait([ref], timeout=0)[0]), get=ray.get,
        )

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
                entry.extra.pop("stage_in", None)  # the actor has started: the snapshot's parts are installed
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
                if not self._append(pull, chunks, whole_lines=False):
                    return
            return
        relay: CheckpointSync | None = entry.extra.get("relay")
        if relay is not None:
            relay.step()
            if self.checkpoint_sync_s and time.monotonic() - relay.started_s >= self.checkpoint_sync_s:
                relay.start()
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

    def _pull_ranks(self, entry: _Attempt, final: bool = False) -> None:
        """:meth:`_pull` for every rank of the attempt whose actor can still answer."""
        for member in entry.ranks():
            if member.actor is not None and not member.extra.get("died"):
                self._pull(member, final=final)

    def _copy_at_end(self, entry: _Attempt) -> bool:
        """The attempt has ended (before the engine sees it): every rank's last report and log
        bytes, once, then its checkpoint (:meth:`_relay_final`). False: poll again."""
        if not entry.extra.get("pulled_final"):
            self._pull_ranks(entry, final=True)
            entry.extra["pulled_final"] = True
        return self._relay_final(entry)

    def _relay_final(self, entry: _Attempt) -> bool:
        """The job has ended on a node that answers: its checkpoint folder copied to the daemon
        once more (checkpoint relay). True when done (or given up after ``checkpoint_final_s``);
        False: poll again (the daemon is never blocked)."""
        relay: CheckpointSync | None = entry.extra.get("relay")
        if relay is None or entry.extra.get("died"):
            return True
        since = entry.extra.setdefault("relay_final_s", time.monotonic())
        if relay.final_step():
            return True
        if time.monotonic() - since >= self.checkpoint_final_s:
            log.warning("attempt %s: the checkpoint was not copied to the daemon within %.0f s", entry.attempt_dir, self.checkpoint_final_s)
            return True
        return False

    @staticmethod
    def _append(pull: _Pull, chunks: list[bytes], whole_lines: bool = True) -> bool:
        """Append the chunks to the daemon's files; whether there was anything. With
        ``whole_lines``, a line still being written is left for the next read (several ranks may
        write to one job log: their lines are not cut)."""
        got = False
        for i, chunk in enumerate(chunks[:2]):
            if whole_lines and len(chunk) < PULL_MAX_BYTES:
                chunk = chunk[:chunk.rfind(b"\n") + 1]
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

    # ------------------------------------------------ processes on the nodes
    def session_leaders(self) -> dict[tuple[str, int], str]:
        """(node, pid) of each running attempt's process on its node (of each rank of a job
        spanning nodes), which leads a session there that the job's processes share -> the
        attempt's key (its :class:`RayHandle`). The node meters key NVML's per-process figures by
        session, so the daemon can tell which job holds what on a node's GPUs. Asks each actor
        once, without waiting: an attempt whose actor has not answered yet is not in it."""
        out: dict[tuple[str, int], str] = {}
        for head in self._attempts.values():
            for member in head.ranks():
                info = self._described(member)
                if info and info.get("pid"):
                    out[(member.node, int(info["pid"]))] = head.key
        return out

    def _described(self, entry: _Attempt) -> dict[str, Any] | None:
        """The actor's :meth:`AttemptActor.describe`, once it has answered ({} if it cannot)."""
        info = entry.extra.get("info")
        if info is not None:
            return info
        if entry.actor is None or entry.extra.get("died"):
            entry.extra["info"] = {}
            return {}
        ref = entry.extra.get("describe_ref")
        if ref is None:
            ref = entry.extra["describe_ref"] = entry.actor.describe.remote()
        if not self._ray.wait([ref], timeout=0)[0]:
            return None
        try:
            info = dict(self._ray.get(ref))
        except Exception:  # the actor died before it answered
            info = {}
        entry.extra["info"] = info
        return info

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
        entry = _Attempt(key, node, actor, actor.wait.remote(), folder, extra={"pull": pull} if pull else {})
        self._add_relay(entry, _attempt_number(folder))
        return entry

    # ------------------------------------------------------------- poll
    def poll(self, handle: ProcessHandle, attempt_dir: Path) -> AttemptExit | None:
        key = handle.key if isinstance(handle, RayHandle) and handle.key else actor_name(attempt_dir)
        entry = self._attempts.get(key)
        if entry is None:
            if self.find(attempt_dir) is None:  # no actor: the end is in exit.json, or it was lost
                return self._from_exit_file(attempt_dir)
            entry = self._attempts[key]
        if not entry.extra.get("pulled_final"):  # (once the end was seen, only the final copies are left)
            self._pull_ranks(entry)
        if entry.members:
            return self._poll_gang(entry)
        ended = self._member_end(entry)
        if ended is not None:
            if ended.exit_code is not None and not entry.extra.get("died") and not self._copy_at_end(entry):
                return None
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
                if not self._copy_at_end(entry):
                    return None
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
        codes = [read_exit_code(rank_dir(attempt_dir, r)) for r in range(max(1, len(nodes)))]
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


def _attempt_number(folder: Path) -> int:
    """The attempt number of an attempt folder (``.../attempts/<n>``, or its ``rank<r>``); 0 if unknown."""
    for part in (Path(folder).name, Path(folder).parent.name):
        if part.isdigit():
            return int(part)
    return 0
