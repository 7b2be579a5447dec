"""Scheduling policies. One implementation of each, driven by the simulator and the live runtime.

A policy is called with a read-only :class:`~eaco.policies.view.SchedulerView` and returns a list
of decisions (:mod:`eaco.policies.decisions`). It never reads a clock of its own and never sees
the simulator's ground truth: only what a real scheduler could observe (placements, epoch
reports, finished jobs) and the knowledge it was built with (e.g. a throughput profile).
"""

from eaco.policies.base import Policy
from eaco.policies.decisions import Decision, Place, Undo, WakeUp, Watch
from eaco.policies.view import EpochReport, JobProgress, SchedulerView

__all__ = [
    "Policy",
    "Decision",
    "Place",
    "Undo",
    "WakeUp",
    "Watch",
    "EpochReport",
    "JobProgress",
    "SchedulerView",
]
