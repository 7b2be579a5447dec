"""What a policy can ask for. The engine (simulator or runtime) carries decisions out in order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Place:
    """Start (or resume) a queued job on these GPUs. Other jobs may already be on them."""

    job_id: int
    gpus: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Undo:
    """Take a running job off its GPUs and put it back in the queue.

    The job resumes later from its last checkpoint (its last completed epoch); work past that
    epoch is lost. Issued at an epoch boundary (from an epoch report), nothing is lost.
    ``reason``: ``"colocation"`` (a co-location undone, counted as an undo) or ``"migration"``
    (the job is moved elsewhere, e.g. to empty its node; counted as a migration).
    """

    job_id: int
    reason: str = "colocation"

    def __post_init__(self) -> None:
        if self.reason not in UNDO_REASONS:
            raise ValueError(f"Undo.reason must be one of {UNDO_REASONS}, got {self.reason!r}")


UNDO_REASONS = ("colocation", "migration")


@dataclass(frozen=True, slots=True)
class Watch:
    """Report back (an :class:`~eaco.policies.view.EpochReport`) when the running job has
    completed ``epochs`` more whole epochs from now."""

    job_id: int
    epochs: int = 1


@dataclass(frozen=True, slots=True)
class WakeUp:
    """Call the policy again at ``at_s`` even if nothing else happens."""

    at_s: float


Decision = Place | Undo | Watch | WakeUp
