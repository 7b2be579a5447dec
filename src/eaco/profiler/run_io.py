"""One finished profiling run on disk (``runs/<run id>/outcome.json``), so that an interrupted
experiment goes on where it stopped (``eaco profile --resume``) instead of starting again.

The file holds the run's epoch reports, telemetry samples and summary, and the *fingerprint* of
what produced it: the members (each job's command, with every zoo setting, working folder,
environment and epochs), the GPUs (name and UUID), the sampling rate and the host power model. A run is kept on resume only when its fingerprint equals the one the
current command would produce; anything else (another setting, another GPU, an unreadable or
older file) is run again, and the reason is said.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from eaco.energy.host_power import HostPowerModel
from eaco.profiler.epoch_report import EpochRecord
from eaco.profiler.experiment import JobOutcome, ProfilerError, RunOutcome
from eaco.profiler.members import Member
from eaco.profiler.summary import TelemetrySummary
from eaco.profiler.telemetry import GpuDevice, GpuReading, GpuSample, HostSample

RUN_FILE = "outcome.json"
RUN_FORMAT = 2  # 2: members are whole job definitions (own jobs as well as zoo models)


def run_fingerprint(
    members: Sequence[Member],
    devices: Sequence[GpuDevice],
    sample_hz: float,
    host_model: HostPowerModel,
    gpus: Sequence[int],
) -> dict[str, Any]:
    """What a run's result depends on: equal fingerprints, interchangeable runs. A member's
    command holds every zoo setting (batch size, epochs, image size, ...)."""
    return {
        "format": RUN_FORMAT,
        "members": [m.fingerprint() for m in members],
        "devices": [[d.name, d.uuid] for d in devices],
        "sample_hz": sample_hz,
        "host_model": asdict(host_model),
        "gpus": list(gpus),
    }


def _reading_to_json(r: GpuReading) -> dict[str, Any]:
    out = asdict(r)
    out["process_memory_mib"] = {str(pid): mib for pid, mib in r.process_memory_mib.items()}
    out["process_busy_share"] = {str(pid): share for pid, share in r.process_busy_share.items()}
    return out


def _reading_from_json(d: dict[str, Any]) -> GpuReading:
    return GpuReading(**{**d, "process_memory_mib": {int(pid): float(mib) for pid, mib in d["process_memory_mib"].items()},
                          # runs saved before the per-process shares were read have none
                          "process_busy_share": {int(pid): float(x) for pid, x in d.get("process_busy_share", {}).items()}})


def outcome_to_json(outcome: RunOutcome) -> dict[str, Any]:
    telemetry = asdict(outcome.telemetry)
    telemetry["process_memory_mib_peak"] = {str(pid): mib for pid, mib in outcome.telemetry.process_memory_mib_peak.items()}
    telemetry["process_util_mean"] = {str(pid): u for pid, u in outcome.telemetry.process_util_mean.items()}
    return {
        "run_id": outcome.run_id,
        "models": list(outcome.models),
        "jobs": [{
            "job_name": j.job_name, "model": j.model, "pid": j.pid, "launch_s": j.launch_s, "exit_s": j.exit_s,
            "return_code": j.return_code, "epochs": [asdict(e) for e in j.epochs], "log_path": str(j.log_path),
        } for j in outcome.jobs],
        "start_time_s": outcome.start_time_s,
        "duration_s": outcome.duration_s,
        "telemetry": telemetry,
        "gpu_samples": [[s.time_s, [_reading_to_json(r) for r in s.readings]] for s in outcome.gpu_samples],
        "host_samples": [[s.time_s, s.cpu_util, s.host_power_w] for s in outcome.host_samples],
        "sampler_errors": list(outcome.sampler_errors),
    }


def outcome_from_json(d: dict[str, Any]) -> RunOutcome:
    telemetry = dict(d["telemetry"])
    telemetry["process_memory_mib_peak"] = {int(pid): float(mib) for pid, mib in telemetry["process_memory_mib_peak"].items()}
    # runs saved before the per-process utilisation was summarised have none
    telemetry["process_util_mean"] = {int(pid): float(u) for pid, u in telemetry.get("process_util_mean", {}).items()}
    return RunOutcome(
        run_id=d["run_id"],
        models=tuple(d["models"]),
        jobs=tuple(JobOutcome(
            job_name=j["job_name"], model=j["model"], pid=int(j["pid"]), launch_s=float(j["launch_s"]),
            exit_s=float(j["exit_s"]), return_code=int(j["return_code"]),
            epochs=tuple(EpochRecord(**e) for e in j["epochs"]), log_path=Path(j["log_path"]),
        ) for j in d["jobs"]),
        start_time_s=float(d["start_time_s"]),
        duration_s=float(d["duration_s"]),
        telemetry=TelemetrySummary(**telemetry),
        gpu_samples=tuple(GpuSample(float(t), tuple(_reading_from_json(r) for r in rs)) for t, rs in d["gpu_samples"]),
        host_samples=tuple(HostSample(float(t), float(u), float(p)) for t, u, p in d["host_samples"]),
        sampler_errors=tuple(d["sampler_errors"]),
    )


def save_run(run_dir: Path, outcome: RunOutcome, fingerprint: dict[str, Any]) -> Path:
    """Write the run's file (atomically: a run stopped while writing leaves no half file)."""
    path = run_dir / RUN_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "outcome": outcome_to_json(outcome)}), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_run(run_dir: Path, fingerprint: dict[str, Any]) -> tuple[RunOutcome | None, str]:
    """The run saved in ``run_dir`` if it was made as ``fingerprint`` says, else (None, why)."""
    if not (run_dir / RUN_FILE).exists():
        return None, "not run yet"
    try:
        saved, outcome = _read(run_dir)
    except ProfilerError as exc:
        return None, str(exc)
    if saved != fingerprint:
        changed = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        return None, f"made with other {', '.join(changed)}"
    return outcome, ""


def read_run(run_dir: Path) -> RunOutcome:
    """The run saved in ``run_dir``, whatever made it (rebuilding a report); ProfilerError naming
    the file when it is missing or unreadable."""
    return _read(run_dir)[1]


def _read(run_dir: Path) -> tuple[dict[str, Any], RunOutcome]:
    """The saved fingerprint and run; ProfilerError naming the file when it cannot be read."""
    path = run_dir / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data["fingerprint"], outcome_from_json(data["outcome"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProfilerError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
