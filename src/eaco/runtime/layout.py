"""Where the runtime keeps its files under its state folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class StateLayout:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "runtime.db"

    @property
    def api_file(self) -> Path:
        return self.root / "api.json"  # {"host", "port", "pid"} or {"socket", "pid"} of the running daemon

    @property
    def api_socket(self) -> Path:
        return self.root / "api.sock"  # the API's Unix domain socket (``eaco serve --api unix``), mode 0600

    @property
    def token_file(self) -> Path:
        return self.root / "api.token"  # bearer token, mode 0600

    @property
    def gpus_file(self) -> Path:
        return self.root / "local_gpus.json"  # the local backend's GPUs at its last start (type, devices)

    @property
    def summary_file(self) -> Path:
        return self.root / "summary.json"

    def job_dir(self, job_id: int) -> Path:
        return self.root / "jobs" / str(job_id)

    def log_file(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "job.log"

    def report_file(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "report.jsonl"

    def control_dir(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "control"

    def default_checkpoint_dir(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "checkpoints"

    def attempt_dir(self, job_id: int, attempt: int) -> Path:
        return self.job_dir(job_id) / "attempts" / str(attempt)
