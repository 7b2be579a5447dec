"""A deep-learning training job as the scheduler sees it (immutable specification)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Job:
    """One training job.

    Work is ``num_epochs`` epochs; each takes ``epoch_duration_s`` when the job runs alone
    (exclusively) on GPUs of the reference type (V100). Speed on other GPU types and when
    sharing GPUs comes from :mod:`eaco.colocation`.

    ``memory_gb`` is the peak GPU memory the job needs on each of its GPUs.
    ``gpu_util`` is its GPU utilisation (0..1) when running alone.
    ``deadline_s`` is an absolute time (same clock as ``submit_time_s``); ``math.inf`` = no SLO.
    ``priority`` > 0 marks a high-priority job.
    ``gpu_type`` None means any GPU type will do.
    ``exclusive`` True: the job never shares a GPU: it holds the whole memory of its GPUs, no
    policy co-locates it or onto it (the live runtime's jobs that run alone to measure their
    epoch time, or that crashed while co-located).
    """

    job_id: int
    submit_time_s: float
    num_gpus: int
    job_type: str
    num_epochs: int
    epoch_duration_s: float
    memory_gb: float
    gpu_util: float
    gpu_type: str | None = None
    deadline_s: float = math.inf
    priority: int = 0
    exclusive: bool = False

    def __post_init__(self) -> None:
        if self.num_gpus < 1:
            raise ValueError(f"job {self.job_id}: num_gpus must be >= 1, got {self.num_gpus}")
        if self.num_epochs < 1:
            raise ValueError(f"job {self.job_id}: num_epochs must be >= 1, got {self.num_epochs}")
        if not self.epoch_duration_s > 0:
            raise ValueError(
                f"job {self.job_id}: epoch_duration_s must be > 0, got {self.epoch_duration_s}"
            )
        if self.memory_gb < 0:
            raise ValueError(f"job {self.job_id}: memory_gb must be >= 0, got {self.memory_gb}")
        if not 0.0 <= self.gpu_util <= 1.0:
            raise ValueError(f"job {self.job_id}: gpu_util must be in [0, 1], got {self.gpu_util}")

    @property
    def exclusive_duration_s(self) -> float:
        """Run time when alone on reference GPUs."""
        return self.num_epochs * self.epoch_duration_s

    @property
    def has_deadline(self) -> bool:
        return math.isfinite(self.deadline_s)

    @property
    def is_high_priority(self) -> bool:
        return self.priority > 0


# A job placed again after an undo or a move restarts from its checkpoint: it holds its new GPUs
# this long before it makes progress (process start, checkpoint load, input pipeline warm-up).
# An assumption (not measured): what the simulator charges and what EaCO plans with by default.
DEFAULT_RESTART_OVERHEAD_S = 60.0

# Philly-style traces give a total duration, not epochs. We split it into epochs of at most
# MAX_EPOCH_S seconds, and at most MAX_EPOCHS epochs (the paper's ImageNet jobs ran 90 epochs).
MAX_EPOCH_S = 3600.0
MAX_EPOCHS = 100


def epochs_for_duration(duration_s: float) -> tuple[int, float]:
    """Split a total exclusive duration into (num_epochs, epoch_duration_s).

    Rule: ``num_epochs = clamp(ceil(duration_s / 3600), 1, 100)``; epochs are equal length.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    n = min(MAX_EPOCHS, max(1, math.ceil(duration_s / MAX_EPOCH_S)))
    return n, duration_s / n
