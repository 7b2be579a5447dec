"""Runs job attempts as processes on this machine, several per GPU when co-located (time-slicing).

Each attempt runs under :mod:`eaco.runtime.wrapper` in its own session (so it outlives a killed
daemon and its whole process group can be signalled); the wrapper records its pid and the job's
exit code in the attempt folder, which is how a restarted daemon re-attaches or learns the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eaco.runtime.backend import AttemptExit, LaunchRequest, ProcessHandle
from eaco.runtime.control import request_stop
from eaco.runtime.distributed import LOOPBACK, add_job_process_env, free_port, job_process_env
from eaco.runtime.procs import process_alive, signal_group
from eaco.runtime.wrapper import WRAPPER_FILE, read_exit_code, read_json_dict


class LocalBackend:
    name = "local"
    local_pids = True  # its attempts' pids are processes of this machine (NVML's per-process memory maps to them)

    def __init__(self, wrapper_timeout_s: float = 10.0) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._wrapper_timeout_s = wrapper_timeout_s

    def launch(self, request: LaunchRequest) -> ProcessHandle:
        request.attempt_dir.mkdir(parents=True, exist_ok=True)
        request.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(request.env)
        # one node: the job's processes (torchrun's, one per GPU) meet here, at a port of their own
        add_job_process_env(env, request.env, job_process_env(0, 1, len(request.device_indices), LOOPBACK, free_port()))
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in request.device_indices)
        # number devices as NVML does (PCI bus order), which is how the runtime found them; CUDA's
        # own default order (fastest first) can differ on a machine with mixed boards
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(request.log_file, "ab") as log:
            log.write(f"=== eaco runtime: attempt {request.attempt} on devices {env['CUDA_VISIBLE_DEVICES']} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [sys.executable, "-m", "eaco.runtime.wrapper", str(request.attempt_dir), "--", *request.command],
                cwd=request.working_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        from eaco.runtime.procs import process_start_ticks

        return ProcessHandle(proc.pid, process_start_ticks(proc.pid))

    def find(self, attempt_dir: Path) -> ProcessHandle | None:
        info = read_json_dict(attempt_dir / WRAPPER_FILE)
        if not info or not isinstance(info.get("pid"), int):
            return None
        start = info.get("start_ticks")
        return ProcessHandle(int(info["pid"]), int(start) if isinstance(start, int) else None)  # type: ignore[arg-type]

    def poll(self, handle: ProcessHandle, attempt_dir: Path) -> AttemptExit | None:
        child = self._children.get(handle.pid)
        if child is not None:
            if child.poll() is None:
                return None
            del self._children[handle.pid]
        elif process_alive(handle.pid, handle.start_ticks):
            return None
        return AttemptExit(read_exit_code(attempt_dir))

    def request_stop(self, handle: ProcessHandle, control_dir: Path) -> None:
        """The stop file in ``control_dir`` (the job runs here and sees it)."""
        request_stop(control_dir)

    def terminate(self, handle: ProcessHandle, grace_s: float = 5.0) -> None:
        """SIGTERM the attempt's process group, SIGKILL it after ``grace_s``."""
        if not process_alive(handle.pid, handle.start_ticks):
            self._reap(handle.pid, 0.0)
            return
        signal_group(handle.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self._reap(handle.pid, 0.0)
            if not process_alive(handle.pid, handle.start_ticks):
                break
            time.sleep(0.05)
        else:
            signal_group(handle.pid, signal.SIGKILL)
        self._reap(handle.pid, 2.0)
        signal_group(handle.pid, signal.SIGKILL)  # the job itself may linger in the group after the wrapper

    def _reap(self, pid: int, timeout_s: float) -> None:
        child = self._children.get(pid)
        if child is None:
            return
        try:
            child.wait(timeout=timeout_s) if timeout_s > 0 else child.poll()
        except subprocess.TimeoutExpired:
            return

    def close(self) -> None:
        """Forget the children without stopping them (they keep running; a new daemon re-attaches).
        Reap those that already ended so no zombie is left."""
        for child in list(self._children.values()):
            child.poll()
        self._children.clear()
