"""How much of a GPU's memory a job holds, in the runtime: declared, measured, or guessed.

EaCO's FindCandidates counts a GPU's free memory as its total minus the peak memory of the jobs
there (paper, Algorithm 1). The runtime learns each job's peak from its own epoch reports
(``peak_gpu_memory_mib``: the most PyTorch's allocator reserved on one GPU, filled in by
:func:`eaco.profiler.epoch_report.timed_epochs` and the profiler's job zoo) plus
:data:`CUDA_CONTEXT_GB` for the CUDA context, which the allocator does not count. The memory a
job holds on each of its GPUs, best source first:

1. ``measured``: the largest peak this job has reported (any attempt, alone or co-located);
2. ``history``: the largest peak an earlier job of the same workload reported
   (:func:`eaco.runtime.baselines.workload_key`);
3. ``declared``: the spec's ``memory_gb``;
4. ``catalogue``: the peak memory of the spec's ``job_type`` in the job catalogue (a guess).

A measurement replaces the catalogue's guess in both directions, but only ever raises a
declared figure: a user may declare more than the job has shown so far (an evaluation pass, a
larger batch later), never less than it really uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from eaco.runtime.spec import JobSpec

# Memory the CUDA context of one process takes on a GPU besides what PyTorch's allocator reserves.
# An assumption, not a measurement of this repo: recent CUDA and PyTorch builds take roughly
# 0.3-0.6 GiB per process for context and kernels; the larger end is counted so that a GPU is
# not over-filled.
CUDA_CONTEXT_GB = 0.5
MIB_PER_GB = 1024.0  # GPU memory in this project is in GiB, as GPU sizes are quoted (16, 32, 80 GB)
SOURCES = ("measured", "history", "declared", "catalogue")


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """The memory a job holds on each of its GPUs and where the figure comes from."""

    memory_gb: float
    source: str  # one of SOURCES


def peak_to_gb(peak_gpu_memory_mib: float) -> float:
    """A reported allocator peak as the memory the process holds on that GPU."""
    return peak_gpu_memory_mib / MIB_PER_GB + CUDA_CONTEXT_GB


def choose_memory(spec: JobSpec, catalogue_gb: float, own_peak_gb: float | None,
                  history_peak_gb: float | None) -> MemoryEstimate:
    """The best estimate from this job's measured peak, earlier jobs' peaks, the spec and the
    catalogue (peaks already include the CUDA context, :func:`peak_to_gb`)."""
    for peak, source in ((own_peak_gb, "measured"), (history_peak_gb, "history")):
        if peak is not None:
            if spec.memory_gb is not None and spec.memory_gb >= peak:
                return MemoryEstimate(spec.memory_gb, "declared")
            return MemoryEstimate(peak, source)
    if spec.memory_gb is not None:
        return MemoryEstimate(spec.memory_gb, "declared")
    return MemoryEstimate(catalogue_gb, "catalogue")
