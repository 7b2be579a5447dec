"""Calling a policy and carrying out its decisions: the loop the simulator and the runtime share.

The policy is called with a fresh view; its decisions are handed, in order, to the caller's
handlers. If it placed or undid a job it is called again (with no new reports or finished jobs)
until it returns nothing that changes placements.
"""

from __future__ import annotations

from typing import Callable, Sequence

from eaco.errors import PolicyError
from eaco.policies.base import Policy
from eaco.policies.decisions import Place, Undo, WakeUp, Watch
from eaco.policies.view import EpochReport, SchedulerView


def drive_policy(
    policy: Policy,
    make_view: Callable[[Sequence[EpochReport], Sequence[int]], SchedulerView],
    on_place: Callable[[Place], None],
    on_undo: Callable[[Undo], None],
    on_watch: Callable[[Watch], None],
    on_wake_up: Callable[[WakeUp], None],
    reports: Sequence[EpochReport],
    finished: Sequence[int],
    max_calls: int,
) -> int:
    """Run the loop; return how many times the policy was called. Raise PolicyError for an unknown
    decision or a policy that keeps changing placements for ``max_calls`` calls."""
    for calls in range(1, max_calls + 1):
        decisions = policy.schedule(make_view(reports, finished))
        changed = False
        for d in decisions:
            if isinstance(d, Place):
                on_place(d)
                changed = True
            elif isinstance(d, Undo):
                on_undo(d)
                changed = True
            elif isinstance(d, Watch):
                on_watch(d)
            elif isinstance(d, WakeUp):
                on_wake_up(d)
            else:
                raise PolicyError(f"policy {policy.name} returned an unknown decision {d!r}")
        if not changed:
            return calls
        reports, finished = (), ()
    raise PolicyError(f"policy {policy.name} kept changing placements for {max_calls} calls")
