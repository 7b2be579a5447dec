"""How the runtime starts and watches job processes. :class:`Backend` is the interface (a Ray
backend can implement it later); :class:`~eaco.runtime.local_backend.LocalBackend` runs them here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """One attempt of one job on some GPUs."""

    job_id: int
    attempt: int
    command: tuple[str, ...]
    working_dir: Path
    env: Mapping[str, str]  # the spec's environment plus the runtime's EACO_* variables
    device_indices: tuple[int, ...]  # for CUDA_VISIBLE_DEVICES
    attempt_dir: Path  # the backend's files for this attempt (wrapper.json, exit.json)
    log_file: Path  # stdout and stderr, appended over attempts


@dataclass(frozen=True, slots=True)
class ProcessHandle:
    """Enough to find the attempt's process again after a daemon restart."""

    pid: int
    start_ticks: int | None


@dataclass(frozen=True, slots=True)
class AttemptExit:
    """How an attempt ended. ``exit_code`` None: the process vanished without saying (killed);
    ``detail``: what the backend saw, for the job's events (e.g. which node was lost)."""

    exit_code: int | None
    detail: str = ""

    @property
    def lost(self) -> bool:
        return self.exit_code is None


class Backend(Protocol):
    def launch(self, request: LaunchRequest) -> ProcessHandle: ...

    def find(self, attempt_dir: Path) -> ProcessHandle | None:
        """The handle of an attempt launched before (after a daemon restart), if it left one."""
        ...

    def poll(self, handle: ProcessHandle, attempt_dir: Path) -> AttemptExit | None:
        """None while it runs."""
        ...

    def request_stop(self, handle: ProcessHandle, control_dir: Path) -> None:
        """Ask the attempt's job to stop at its next epoch end (an undo or a move): the stop file
        in ``control_dir``, or wherever the job sees it."""
        ...

    def terminate(self, handle: ProcessHandle, grace_s: float) -> None: ...

    def close(self) -> None: ...
