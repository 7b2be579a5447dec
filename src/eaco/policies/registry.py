"""Policies by name, for the command line and the runtime."""

from __future__ import annotations

from typing import Callable

from eaco.policies.base import Policy, ThroughputKnowledge
from eaco.policies.fifo import FifoPolicy
from eaco.policies.fifo_packed import FifoPackedPolicy
from eaco.policies.gandiva import GandivaPolicy

BASELINES = ("fifo", "fifo-packed", "gandiva")

_FACTORIES: dict[str, Callable[[ThroughputKnowledge], Policy]] = {
    "fifo": lambda knowledge: FifoPolicy(),
    "fifo-packed": lambda knowledge: FifoPackedPolicy(knowledge),
    "gandiva": lambda knowledge: GandivaPolicy(),
}


def policy_names() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def make_policy(name: str, knowledge: ThroughputKnowledge) -> Policy:
    """A fresh policy object (policies keep state, so one per run)."""
    try:
        factory = _FACTORIES[name.strip().lower()]
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; expected one of: {', '.join(_FACTORIES)}") from None
    return factory(knowledge)
