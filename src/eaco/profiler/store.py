"""Build profile-store rows (:mod:`eaco.colocation.profiles`) from the profiler's runs.

Epoch times:

- exclusive ``epoch_s``: mean duration of the job's epochs, epoch 0 left out when there are more
  (it holds one-off start-up costs: cuDNN autotuning, allocator growth, worker start).
- co-located ``member_epoch_s``: mean duration of the member's epochs that ran entirely while every
  other member was training (between the other's first epoch start and last epoch end), epoch 0
  left out when others qualify. A member that finishes first leaves the others running alone;
  those epochs are not co-located and are not counted. If no epoch qualifies (very uneven jobs),
  all of the member's steady epochs are used and ``member_overlap_epochs`` is 0 for it.
- ``speed`` = exclusive ``epoch_s`` / co-located ``member_epoch_s`` (1.0: as fast as alone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from eaco.colocation.profiles import ColocatedProfile, ExclusiveProfile, ProfileStore, Provenance
from eaco.profiler.epoch_report import EpochRecord
from eaco.profiler.experiment import JobOutcome, RunOutcome

def job_type_for(model: str) -> str:
    """Catalogue name of a profiled job. The zoo's names were chosen to match: the paper's four
    (alexnet, resnet18, resnet50, vgg16) are the catalogue's names; the other zoo models and own jobs
    (by their spec's name) become new job types (see docs/profiler.md). Kept as a function: the one
    place to change if a mapping is ever needed."""
    return model


def _steady(epochs: Sequence[EpochRecord]) -> list[EpochRecord]:
    return list(epochs[1:]) if len(epochs) > 1 else list(epochs)


def steady_epoch_s(epochs: Sequence[EpochRecord]) -> float:
    if not epochs:
        raise ValueError("no epochs reported")
    steady = _steady(epochs)
    return sum(e.duration_s for e in steady) / len(steady)


def _window(job: JobOutcome) -> tuple[float, float]:
    first, last = job.epochs[0], job.epochs[-1]
    return first.end_time_s - first.duration_s, last.end_time_s


def overlapped_epochs(job: JobOutcome, others: Sequence[JobOutcome]) -> list[EpochRecord]:
    """The job's epochs that ran while every other job was inside its training window (epoch 0 dropped if others remain)."""
    windows = [_window(o) for o in others]
    inside = [
        e for e in job.epochs
        if all(lo <= e.end_time_s - e.duration_s and e.end_time_s <= hi for lo, hi in windows)
    ]
    first = job.epochs[0].epoch
    later = [e for e in inside if e.epoch != first]
    return later or inside


@dataclass(frozen=True, slots=True)
class MemberTiming:
    epoch_s: float
    overlap_epochs: int  # epochs used; 0 = no fully co-located epoch, fell back to all steady epochs


def member_timing(job: JobOutcome, others: Sequence[JobOutcome]) -> MemberTiming:
    used = overlapped_epochs(job, others)
    if not used:
        return MemberTiming(steady_epoch_s(job.epochs), 0)
    return MemberTiming(sum(e.duration_s for e in used) / len(used), len(used))


def _job_memory(job: JobOutcome, run: RunOutcome) -> float | None:
    per_pid = run.telemetry.process_memory_mib_peak.get(job.pid)
    if per_pid is not None:
        return per_pid
    reported = [e.peak_memory_mib for e in job.epochs if e.peak_memory_mib is not None]
    return max(reported) if reported else None


def exclusive_profile(run: RunOutcome, batch_size: int | None, gpu_type: str, num_gpus: int) -> ExclusiveProfile:
    if len(run.jobs) != 1:
        raise ValueError(f"{run.run_id}: an exclusive run has one job, got {len(run.jobs)}")
    job = run.jobs[0]
    t = run.telemetry
    steady = _steady(job.epochs)
    samples = sum(e.samples for e in steady)
    busy_s = sum(e.duration_s for e in steady)
    return ExclusiveProfile(
        job_type=job_type_for(job.model), model=job.model, batch_size=batch_size, gpu_type=gpu_type,
        num_gpus=num_gpus, epochs=len(job.epochs), epoch_s=steady_epoch_s(job.epochs), jct_s=job.jct_s,
        throughput_samples_per_s=samples / busy_s if busy_s > 0 else 0.0,
        gpu_util_mean=t.gpu_util_mean, gpu_util_max=t.gpu_util_max,
        memory_util_mean=t.memory_util_mean, memory_util_max=t.memory_util_max,
        gpu_memory_mib_peak=t.gpu_memory_mib_peak, job_memory_mib_peak=_job_memory(job, run),
        avg_power_w=t.avg_power_w, energy_j=t.energy_j, gpu_energy_j=t.gpu_energy_j,
        host_energy_j=t.host_energy_j, host_cpu_util_mean=t.host_cpu_util_mean, duration_s=t.duration_s,
    )


def colocated_profile(run: RunOutcome, alone: dict[str, ExclusiveProfile], gpu_type: str,
                      num_gpus: int) -> tuple[ColocatedProfile, tuple[int, ...]]:
    """The set's row (members sorted by job type) and, aligned with it, the epochs used per member."""
    jobs = sorted(run.jobs, key=lambda j: job_type_for(j.model))
    timings = [member_timing(j, [o for o in jobs if o is not j]) for j in jobs]
    members = tuple(job_type_for(j.model) for j in jobs)
    missing = [m for m in members if m not in alone]
    if missing:
        raise ValueError(f"{run.run_id}: no exclusive run of {missing} to compare with")
    t = run.telemetry
    alone_j = sum(alone[m].energy_j for m in members)
    saved = alone_j - t.energy_j
    row = ColocatedProfile(
        members=members, gpu_type=gpu_type, num_gpus=num_gpus,
        member_epoch_s=tuple(x.epoch_s for x in timings), member_jct_s=tuple(j.jct_s for j in jobs),
        speeds=tuple(alone[m].epoch_s / x.epoch_s for m, x in zip(members, timings)),
        gpu_util_mean=t.gpu_util_mean, gpu_util_max=t.gpu_util_max,
        memory_util_mean=t.memory_util_mean, memory_util_max=t.memory_util_max,
        gpu_memory_mib_peak=t.gpu_memory_mib_peak, avg_power_w=t.avg_power_w, energy_j=t.energy_j,
        gpu_energy_j=t.gpu_energy_j, host_energy_j=t.host_energy_j, host_cpu_util_mean=t.host_cpu_util_mean,
        duration_s=t.duration_s, members_alone_energy_j=alone_j, energy_saved_j=saved,
        energy_saved_frac=saved / alone_j if alone_j > 0 else 0.0,
        member_gpu_util=_member_utils(jobs, run),
    )
    return row, tuple(x.overlap_epochs for x in timings)


def _member_utils(jobs: Sequence[JobOutcome], run: RunOutcome) -> tuple[float, ...] | None:
    """Each member's mean GPU utilisation in the set (its process's, :mod:`eaco.profiler.summary`),
    when NVML gave per-process shares (a member whose process never ran a kernel: 0); else None."""
    per_pid = run.telemetry.process_util_mean
    if not per_pid:
        return None
    return tuple(min(1.0, per_pid.get(j.pid, 0.0)) for j in jobs)


def build_store(provenance: Provenance, exclusive_runs: Sequence[RunOutcome], set_runs: Sequence[RunOutcome],
                batch_sizes: Mapping[str, int | None], num_gpus: int) -> ProfileStore:
    """``batch_sizes``: per job name (None: not known, an own job)."""
    gpu = provenance.gpu_type
    exclusive = [exclusive_profile(r, batch_sizes.get(r.jobs[0].model), gpu, num_gpus) for r in exclusive_runs]
    alone = {e.job_type: e for e in exclusive}
    colocated = [colocated_profile(r, alone, gpu, num_gpus)[0] for r in set_runs]
    return ProfileStore(provenance, tuple(exclusive), tuple(colocated))
