"""Helpers shared by the runtime tests (bounded waits, no leaked job processes)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from eaco.runtime.wrapper import WRAPPER_FILE


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.1) -> Any:
    """Poll ``cond`` until it returns something truthy (returned) or ``timeout_s`` passes (fail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def attach_this_process(store: Any, layout: Any, job_id: int, gpus: tuple[int, ...]) -> int:
    """Record a co-located attempt of ``job_id`` on ``gpus`` whose process is alive: this test
    process stands in for it (its wrapper file names our pid), so a restarted daemon re-attaches
    it. Returns the attempt number."""
    from eaco.runtime.procs import process_start_ticks

    attempt = store.begin_attempt(job_id, gpus, True, time.time())
    wrapper = layout.attempt_dir(job_id, attempt) / WRAPPER_FILE
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(json.dumps({"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())}))
    return attempt


def kill_leftover_jobs(state: Path, info_file: str = WRAPPER_FILE) -> None:
    """Safety net: SIGKILL the process group of every attempt still alive (tests must not leak).
    ``info_file``: the attempt file holding the pid and start time (the Ray worker writes its own)."""
    from eaco.runtime.procs import process_alive

    paths = [*state.glob("jobs/*/attempts/*/" + info_file), *state.glob("jobs/*/attempts/*/rank*/" + info_file)]
    for path in paths:  # (rank*: the other ranks of a Ray job spanning nodes)
        info = json.loads(path.read_text())
        if process_alive(info["pid"], info["start_ticks"]):
            try:
                os.killpg(info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


class InThreadDaemon:
    """``serve`` in a thread of the test (so the test can reach its policy); up once its API file
    exists, stopped by :meth:`close`, which fails on any error the daemon raised."""

    def __init__(self, options: Any, policy_factory: Callable[..., Any] | None = None, *,
                 name: str = "eaco-test-daemon", start_timeout_s: float = 30.0) -> None:
        from eaco.runtime.daemon import serve

        self.state = options.state_dir
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

        def run() -> None:
            try:
                serve(options, self.stop, policy_factory)
            except BaseException as exc:  # surfaced by the test
                self.errors.append(exc)

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        wait_for(lambda: (self.state / "api.json").exists() or self.errors, start_timeout_s, "daemon API")
        assert not self.errors, self.errors

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "daemon thread did not stop"
        assert not self.errors, self.errors


def ddp_spec(name: str, epochs: int, num_gpus: int, torchrun: bool = True, steps: int = 150, extra: str = "") -> str:
    """A job spec of the data-parallel example (eaco.runtime.examples.ddp_train), started by a
    plain ``torchrun`` or, without ``torchrun``, as one process per node."""
    import sys

    launcher = f"{sys.executable} -m torch.distributed.run" if torchrun else sys.executable
    return (
        f"name: {name}\n"
        f"command: {launcher} -m eaco.runtime.examples.ddp_train --job-name {name} --epochs {epochs} --steps-per-epoch {steps}\n"
        f"epochs: {epochs}\nexpected_epoch_s: 1.0\njob_type: resnet18\nnum_gpus: {num_gpus}\n{extra}"
        "env: {OMP_NUM_THREADS: '1'}\n"
    )
