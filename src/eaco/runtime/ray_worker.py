"""Runs one attempt of a job on a Ray node, under the attempt's Ray actor, and records how it ended.

``python -m eaco.runtime.ray_worker ATTEMPT_DIR -- COMMAND...`` is started by the attempt actor of
:mod:`eaco.runtime.ray_attempt` in a new session (so the actor can signal the whole group). Like
:mod:`eaco.runtime.wrapper` it writes ``ATTEMPT_DIR/wrapper.json`` (its pid and start time) before
starting the command and ``ATTEMPT_DIR/exit.json`` (the command's exit code) when it ends, and
passes SIGTERM/SIGINT on to the command. In addition it watches its parent: when the actor that
started it dies (its node was lost, or the actor was killed) the job must not go on running
unseen, so it kills its own process group without writing ``exit.json`` (the attempt is then
"lost" and the runtime requeues the job). Standard library and :mod:`eaco.runtime.wrapper` only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from eaco.runtime.wrapper import EXIT_FILE, start_attempt, write_json_atomic

PARENT_CHECK_S = 0.5
EXIT_ORPHANED = 137


def main(argv: list[str]) -> int:
    parent = os.getppid()
    attempt_dir, child, code = start_attempt(
        argv, "python -m eaco.runtime.ray_worker", extra={"host": socket.gethostname()}
    )
    if child is None:
        return code
    while True:
        try:
            code = child.wait(timeout=PARENT_CHECK_S)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:  # the attempt actor is gone: nobody would see this job end
                print("eaco runtime: the Ray actor of this attempt is gone; killing the job", file=sys.stderr, flush=True)
                child.kill()
                try:
                    os.killpg(os.getpgid(0), signal.SIGKILL)  # the job's own children too (and us)
                except OSError:
                    pass
                return EXIT_ORPHANED
    write_json_atomic(attempt_dir / EXIT_FILE, {"exit_code": code})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
