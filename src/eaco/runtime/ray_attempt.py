"""What runs on a Ray node for one attempt: a detached actor that starts the job there.

Each attempt (of a job spanning nodes: each rank of it) is a named, detached Ray actor
(:class:`AttemptActor`, no CPU reserved) that starts :mod:`eaco.runtime.ray_worker` with the job's
command as a subprocess on its node, with ``CUDA_VISIBLE_DEVICES`` set to the local indices, and
writes ``ray.json`` (node, pid, devices) in its attempt folder. Its name comes from the attempt
folder (:func:`actor_name`), so a restarted daemon finds it. In node-local files mode the
attempt's report, log and stop file live in a folder of its own on the node
(:func:`node_files_root`), read back through :meth:`AttemptActor.read`, and the job's checkpoint
folder is relayed (:mod:`eaco.runtime.checkpoint_relay`: installed from the daemon's snapshot
before the job starts, copied back through the ``checkpoint_*`` methods; docs/runtime_ray.md).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from eaco.profiler.epoch_report import REPORT_FILE_ENV
from eaco.runtime import checkpoint_relay as relay
from eaco.runtime.control import CHECKPOINT_DIR_ENV, CONTROL_DIR_ENV, request_stop
from eaco.runtime.distributed import LOOPBACK, add_job_process_env, free_port, job_process_env
from eaco.runtime.procs import process_start_ticks, signal_group
from eaco.runtime.wrapper import read_exit_code, read_json_dict, write_json_atomic

RAY_ATTEMPT_FILE = "ray.json"  # written by the attempt actor: node, pid, devices
GANG_FILE = "gang.json"  # in the attempt folder of a job spanning nodes: its nodes, rank order
NODE_FILES_DIR = "eaco-ray-files"  # under the node's temporary folder


class AttemptActor:
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
        self.checkpoint_dir: Path | None = None  # node-local files mode: the relayed checkpoint folder
        local = payload.get("node_files")
        if local:  # no shared file system: this attempt's files on this node, pulled by the daemon
            base = node_files_root(local["tag"], payload["node"])
            self.attempt_dir = base / local["attempt"]
            log_file = self.attempt_dir / "job.log"
            self.control_dir = self.attempt_dir / "control"
            job_env.update({REPORT_FILE_ENV: str(self.attempt_dir / "report.jsonl"), CONTROL_DIR_ENV: str(self.control_dir)})
            job_env.update({k: str(base / rel) for k, rel in local["env_under_state"].items()})
            self.pull_files = (self.attempt_dir / "report.jsonl", log_file)
            if CHECKPOINT_DIR_ENV in local["env_under_state"]:
                self.checkpoint_dir = Path(job_env[CHECKPOINT_DIR_ENV])
        self.attempt_dir.mkdir(parents=True, exist_ok=True)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        relayed = ""
        incoming = payload.get("checkpoint_in")
        if incoming and self.checkpoint_dir is not None:  # the daemon's snapshot, unless this node's is as new
            relayed = relay.stage_in(self.checkpoint_dir, incoming, ray.get)
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
            if relayed:
                fh.write(f"=== eaco runtime (ray): {relayed} ===\n".encode())
            fh.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "eaco.runtime.ray_worker", str(self.attempt_dir), "--", *payload["command"]],
                cwd=payload["working_dir"], env=env, stdin=subprocess.DEVNULL, stdout=fh,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
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

    def checkpoint_manifest(self) -> relay.Manifest:
        """Node-local files mode: the checkpoint folder's listing (checkpoint_relay)."""
        return relay.manifest(self.checkpoint_dir) if self.checkpoint_dir is not None else {}

    def checkpoint_read(self, expected: relay.Manifest, wanted: list[str], cursor: list[int], max_bytes: int) -> dict[str, Any]:
        """Node-local files mode: a chunk of the checkpoint folder, if it is still as listed."""
        if self.checkpoint_dir is None:
            return {"changed": True}
        return relay.read_chunks(self.checkpoint_dir, expected, wanted, cursor, max_bytes)

    def checkpoint_mark(self, seq: int) -> None:
        """Node-local files mode: this node's folder is the daemon's snapshot ``seq``."""
        if self.checkpoint_dir is not None:
            relay.write_marker(self.checkpoint_dir, {"seq": int(seq), "from": "this node"})

    def stop_at_epoch_end(self) -> None:
        """Node-local files only: the stop request (the daemon's own stop file is not seen here)."""
        if self.control_dir is not None:
            request_stop(self.control_dir)

    def wait(self) -> dict[str, Any]:
        """Blocks until the job ended; its exit code (None: it left no exit.json)."""
        self.proc.wait()
        return {"exit_code": read_exit_code(self.attempt_dir)}

    def terminate(self, grace_s: float) -> None:
        """SIGTERM the attempt's process group, SIGKILL it after ``grace_s``."""
        if self.proc.poll() is None:
            signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        signal_group(self.proc.pid, signal.SIGKILL)  # what is left of the group (the job's children)


def node_files_root(tag: str, node: str | None = None) -> Path:
    """A node's folder for the attempts of one state folder (``tag``), node-local files mode; with
    ``node``, that node's own folder in it (distinct even for several Ray nodes on one host)."""
    root = Path(tempfile.gettempdir()) / NODE_FILES_DIR / tag
    return root if node is None else root / node.replace(os.sep, "_")


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
