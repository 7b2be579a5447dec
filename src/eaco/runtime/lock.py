"""One daemon per state folder: an exclusive ``flock`` on ``<state>/daemon.lock``, held for the
daemon's life. Two daemons on one store would both place and launch the same queued jobs.

The lock belongs to the open file, which Python makes non-inheritable (PEP 446): job processes
started by the daemon do not hold it, so a daemon killed with SIGKILL frees it at once while its
jobs run on, and the next daemon re-attaches them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from eaco.errors import InputError

LOCK_FILE = "daemon.lock"


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise InputError naming ``--state-dir`` and the daemon holding it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError("--state-dir", f"{self.path.parent} is already served by another daemon (pid {holder}); "
                             "stop it first or use another state folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __enter__(self) -> "StateLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
