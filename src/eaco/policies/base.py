"""The interface every scheduling policy implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Iterable, Protocol, Sequence

from eaco.policies.decisions import Decision
from eaco.policies.view import SchedulerView

if TYPE_CHECKING:
    from eaco.predictor.history import LearnedSpeed


class ThroughputKnowledge(Protocol):
    """What a packing policy knows about co-location (a profile; not the simulator's truth)."""

    def normalised_throughput(self, job_types: tuple[str, ...], gpu_type: str) -> float: ...

    def feasible(self, job_types: tuple[str, ...], gpu_type: str) -> bool: ...


class Policy(ABC):
    """A scheduling policy.

    ``schedule`` is called whenever something happened (arrival, completion, epoch report,
    requested wake-up) and returns decisions. It must not mutate the view.
    """

    name: str = "policy"
    # Whether the policy puts nodes with no job into their low-power state (EaCO does; the
    # baselines, as published, leave empty nodes idle). The simulator's ``sleep`` option can
    # override this for every policy ("all" / "none").
    manages_node_power: bool = False
    _capacity_seen = 0  # the view's capacity_version at the last capacity_changed() call

    @abstractmethod
    def schedule(self, view: SchedulerView) -> list[Decision]:
        """Return the decisions to carry out now, in order."""

    def capacity_changed(self, view: SchedulerView) -> bool:
        """Whether GPUs joined, went offline or came back since the last call (the live runtime
        on a Ray cluster): like a job's end, a reason to look again at jobs that could not be
        placed."""
        if view.capacity_version == self._capacity_seen:
            return False
        self._capacity_seen = view.capacity_version
        return True

    def describe(self) -> str:
        return self.name

    def decision_counts(self) -> dict[str, int]:
        """What the policy did so far, counted by kind (reports show it); policies that keep no
        counts return nothing. The simulator counts placements, undos and moves itself."""
        return {}

    def learned(self) -> Sequence["LearnedSpeed"]:
        """What the policy learnt online so far, oldest first (a live runtime persists it).
        Policies that learn nothing return nothing."""
        return ()

    def restore_learned(self, items: Iterable["LearnedSpeed"]) -> int:
        """Learn again what a previous instance learnt (after a daemon restart); returns how many
        items were taken. Appends them to :meth:`learned`, in order."""
        return 0
