"""Policies by name, for the command line, the simulator and the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from eaco.colocation.catalog import JobCatalog
from eaco.energy.node_power import EnergyModel
from eaco.policies.base import Policy, ThroughputKnowledge
from eaco.policies.custom import is_custom, load_custom_policy
from eaco.policies.eaco import EacoPolicy, EacoSettings
from eaco.policies.fifo import FifoPolicy
from eaco.policies.fifo_packed import FifoPackedPolicy
from eaco.policies.gandiva import GandivaPolicy
from eaco.predictor.history import CoLocationPredictor

BASELINES = ("fifo", "fifo-packed", "gandiva")


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What policies may know: a throughput profile (packing baselines), the job-type catalogue,
    the power model, and a factory for EaCO's history H (a fresh one per run: H learns)."""

    throughput: ThroughputKnowledge
    catalog: JobCatalog
    energy: EnergyModel
    new_predictor: Callable[[], CoLocationPredictor]
    eaco_settings: EacoSettings = EacoSettings()


_FACTORIES: dict[str, Callable[[PolicyContext], Policy]] = {
    "fifo": lambda ctx: FifoPolicy(catalog=ctx.catalog),
    "fifo-packed": lambda ctx: FifoPackedPolicy(ctx.throughput, catalog=ctx.catalog),
    "gandiva": lambda ctx: GandivaPolicy(catalog=ctx.catalog),
    "eaco": lambda ctx: EacoPolicy(ctx.new_predictor(), ctx.catalog, ctx.energy, ctx.eaco_settings),
}


_MANAGES_NODE_POWER = {"fifo": FifoPolicy, "fifo-packed": FifoPackedPolicy, "gandiva": GandivaPolicy, "eaco": EacoPolicy}


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown policy {name!r}; expected one of: {', '.join(_FACTORIES)}, or FILE.py:Class "
                    "for a policy of your own (docs/policies.md)")


def policy_manages_node_power(name: str) -> bool:
    """Whether the named policy puts empty nodes into their low-power state."""
    if is_custom(name):
        return load_custom_policy(name).manages_node_power
    try:
        return _MANAGES_NODE_POWER[name.strip().lower()].manages_node_power
    except KeyError:
        raise _unknown(name) from None


def policy_names() -> tuple[str, ...]:
    """The built-in policies (besides, ``FILE.py:Class`` names one of your own)."""
    return tuple(_FACTORIES)


def policy_label(name: str) -> str:
    """How a policy is named in tables and file names: a built-in's name, or for a policy of
    your own its class's ``name`` (else the class name). Raises :class:`~eaco.errors.InputError`
    for a reference that cannot be loaded and ``KeyError`` for an unknown name."""
    if is_custom(name):
        return load_custom_policy(name).label
    key = name.strip().lower()
    if key not in _FACTORIES:
        raise _unknown(name)
    return key


def make_policy(name: str, ctx: PolicyContext) -> Policy:
    """A fresh policy object (policies keep state, so one per run): a built-in by name, or
    ``FILE.py:Class`` / ``module:Class`` (:mod:`eaco.policies.custom`)."""
    if is_custom(name):
        return load_custom_policy(name).build(ctx)
    try:
        factory = _FACTORIES[name.strip().lower()]
    except KeyError:
        raise _unknown(name) from None
    return factory(ctx)
