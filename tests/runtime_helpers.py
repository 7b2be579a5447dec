"""Helpers shared by the runtime tests (bounded waits, no leaked job processes)."""

from __future__ import annotations

import json
import os
import signal
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


def kill_leftover_jobs(state: Path, info_file: str = WRAPPER_FILE) -> None:
    """Safety net: SIGKILL the process group of every attempt still alive (tests must not leak).
    ``info_file``: the attempt file holding the pid and start time (the Ray worker writes its own)."""
    from eaco.runtime.procs import process_alive

    for path in state.glob("jobs/*/attempts/*/" + info_file):
        info = json.loads(path.read_text())
        if process_alive(info["pid"], info["start_ticks"]):
            try:
                os.killpg(info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
