"""Runs one attempt of a job and records how it ended, so that a restarted daemon knows.

``python -m eaco.runtime.wrapper ATTEMPT_DIR -- COMMAND...`` (started by the local backend in a
new session): writes ``ATTEMPT_DIR/wrapper.json`` (its pid and start time) before starting the
command, and ``ATTEMPT_DIR/exit.json`` (the command's exit code) atomically when it ends. A
SIGTERM is passed on to the command. Standard library only.

A daemon killed between starting the wrapper and the wrapper writing ``wrapper.json`` leaves an
attempt with no process on record; the next daemon gives it up and requeues the job. So that the
job never runs twice, giving up and starting are a handshake on two files: the daemon creates
``ATTEMPT_DIR/abandoned`` and then looks for ``wrapper.json`` again (found: it watches that
process after all); the wrapper writes ``wrapper.json`` and then looks for ``abandoned`` (found:
it exits without starting the command). Whatever the interleaving, either the daemon watches the
wrapper or the wrapper does not run the job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

WRAPPER_FILE = "wrapper.json"
EXIT_FILE = "exit.json"
ABANDONED_FILE = "abandoned"
EXIT_ABANDONED = 75  # the wrapper's exit status when it found its attempt given up (no exit.json)


def read_json_dict(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is missing, unreadable or not an object."""
    try:
        got = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return got if isinstance(got, dict) else None


def read_exit_code(attempt_dir: Path) -> int | None:
    """The exit code an attempt's ``exit.json`` records; None when there is none."""
    info = read_json_dict(Path(attempt_dir) / EXIT_FILE)
    code = info.get("exit_code") if info else None
    return int(code) if isinstance(code, int) else None


def write_json_atomic(path: Path, payload: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, path)


def start_attempt(
    argv: list[str], usage: str, extra: dict[str, object] | None = None
) -> tuple[Path, "subprocess.Popen[bytes] | None", int]:
    """Parse ``ATTEMPT_DIR -- COMMAND...``, write ``wrapper.json``, start the command with SIGTERM
    and SIGINT passed on to it. Returns (attempt dir, the child or None, exit code if not started)."""
    if len(argv) < 3 or argv[1] != "--":
        print(f"usage: {usage} ATTEMPT_DIR -- COMMAND...", file=sys.stderr)
        return Path("."), None, 2
    attempt_dir = Path(argv[0])
    from eaco.runtime.procs import process_start_ticks

    write_json_atomic(
        attempt_dir / WRAPPER_FILE,
        {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid()), **(extra or {})},
    )
    if (attempt_dir / ABANDONED_FILE).exists():
        print("eaco runtime: this attempt was given up by a restarted daemon; not starting it", file=sys.stderr, flush=True)
        return attempt_dir, None, EXIT_ABANDONED
    try:
        child = subprocess.Popen(argv[2:])
    except OSError as exc:
        print(f"eaco runtime: cannot start {argv[2]!r}: {exc}", file=sys.stderr, flush=True)
        write_json_atomic(attempt_dir / EXIT_FILE, {"exit_code": 127, "error": str(exc)})
        return attempt_dir, None, 127

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return attempt_dir, child, 0


def main(argv: list[str]) -> int:
    attempt_dir, child, code = start_attempt(argv, "python -m eaco.runtime.wrapper")
    if child is None:
        return code
    code = child.wait()
    write_json_atomic(attempt_dir / EXIT_FILE, {"exit_code": code})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
