"""EaCO's settings: the knobs of :class:`~eaco.policies.eaco.EacoPolicy`, with our defaults.

The paper leaves them open; docs/eaco.md gives the reasons for each default.
"""

from __future__ import annotations

from dataclasses import dataclass

from eaco.policies.consolidation import DEFAULT_MIN_REMAINING_S
from eaco.model.job import DEFAULT_RESTART_OVERHEAD_S
from eaco.policies.reservation import DEFAULT_RESERVE_WAIT_S


@dataclass(frozen=True, slots=True)
class EacoSettings:
    """EaCO's knobs. The paper leaves them open; these defaults are ours (docs/eaco.md)."""

    util_threshold: float = 0.9  # a GPU whose predicted utilisation is at or above this takes no more jobs
    memory_threshold: float = 0.9  # ... nor one whose memory in use / memory is at or above this
    memory_margin_gb: float = 1.0  # kept free on every GPU beyond the jobs' peak memory
    max_jobs_per_gpu: int = 4
    observation_epochs: int = 1
    alpha: float = 0.75  # objective weight: 1 = energy only, 0 = time per epoch only
    confidence_z: float = 1.0  # deadline checks use speed estimate - z x uncertainty
    # ... and this z for a job that finishes within the observation window (e.g. a single-epoch
    # job): no undo can save its deadline, so the plan alone must (docs/eaco.md: on the Philly
    # trace 1 miss caused by sharing instead of 4)
    unobserved_z: float = 2.0
    min_speed: float = 0.85  # a co-location is considered only if every member keeps at least this predicted speed
    max_candidates: int = 4  # feasible co-location options compared per job
    queue_window: int = 64  # queued jobs examined per scheduling pass (backfill depth)
    # a job whose deadline is already lost (it would miss it even running alone from now) is
    # placed best-effort: its own deadline no longer blocks a co-location (the others' still do)
    late_jobs_best_effort: bool = True
    # a job with little slack left (deadline - now - remaining exclusive time, relative to that
    # time, below urgent_slack) may share down to urgent_min_speed: waiting would cost it its
    # deadline, and every member's deadline is still checked
    urgent_slack: float = 1.0
    urgent_min_speed: float = 0.7
    # beyond the paper: empty lightly loaded nodes by moving their jobs, at epoch ends, to free
    # GPUs of other awake nodes, so that they sleep (policies/consolidation.py); a node is
    # drained only if its longest job has at least consolidate_min_remaining_s left
    consolidate: bool = True
    consolidate_min_remaining_s: float = DEFAULT_MIN_REMAINING_S
    # ... also nodes whose GPUs are shared: each shared GPU's jobs move as a set, one by one at
    # their epoch ends, to one free GPU held for them until the set is whole again
    consolidate_shared: bool = False
    restart_overhead_s: float = DEFAULT_RESTART_OVERHEAD_S  # what EaCO assumes a move costs a job (its deadline check)
    # beyond the paper: a job that could not be placed and whose deadline is urgent (slack below
    # urgent_slack), or that has been in the system for reserve_wait_s (default: never), gets the
    # node that frees first held for it; others may use that node only if they finish before
    # (policies/reservation.py). Keeps big jobs from missing deadlines behind small ones.
    reserve: bool = True
    reserve_wait_s: float = DEFAULT_RESERVE_WAIT_S
    # beyond the paper, on a mixed cluster: a job waits for GPUs of a faster type rather than
    # start on a slower one when, by the objective above, waiting for the room predicted there
    # and running is better (a K80 may take 10x as long as an A100 that frees soon)
    wait_for_faster_type: bool = True

    def __post_init__(self) -> None:
        checks = [
            (0.0 < self.util_threshold <= 1.0, "util_threshold must be in (0, 1]"),
            (0.0 < self.memory_threshold <= 1.0, "memory_threshold must be in (0, 1]"),
            (self.memory_margin_gb >= 0.0, "memory_margin_gb must be >= 0"),
            (self.max_jobs_per_gpu >= 1, "max_jobs_per_gpu must be >= 1"),
            (self.observation_epochs >= 1, "observation_epochs must be >= 1"),
            (0.0 <= self.alpha <= 1.0, "alpha must be in [0, 1]"),
            (self.confidence_z >= 0.0, "confidence_z must be >= 0"),
            (self.unobserved_z >= 0.0, "unobserved_z must be >= 0"),
            (0.0 <= self.min_speed <= 1.0, "min_speed must be in [0, 1]"),
            (self.max_candidates >= 1, "max_candidates must be >= 1"),
            (self.queue_window >= 1, "queue_window must be >= 1"),
            (self.urgent_slack >= 0.0, "urgent_slack must be >= 0 (0: off)"),
            (0.0 <= self.urgent_min_speed <= 1.0, "urgent_min_speed must be in [0, 1]"),
            (self.consolidate_min_remaining_s >= 0.0, "consolidate_min_remaining_s must be >= 0"),
            (self.restart_overhead_s >= 0.0, "restart_overhead_s must be >= 0"),
            (self.reserve_wait_s >= 0.0, "reserve_wait_s must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"EacoSettings: {message}")
