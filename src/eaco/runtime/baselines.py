"""Exclusive epoch times the runtime measures itself: the baseline of every observed speed.

EaCO's early-stage observation turns a co-located job's epoch times into a speed, ``exclusive
epoch time / epoch time next to the others``, and records it in its history H. A declared
``expected_epoch_s`` is a guess (and without one the runtime has only a default), so the runtime
measures the exclusive epoch time of every job whenever the job has its GPUs to itself. The
baseline of a job, best source first:

1. ``measured``: the median of this job's epochs that ran while it was alone on all its GPUs
   (the first epoch of each attempt left out: it pays for start-up, data-loader workers and
   autotuning); the last :data:`MAX_BASELINE_EPOCHS` count.
2. ``history``: the same over earlier jobs of the same workload (same command, working folder,
   environment and GPU count on the same runtime: :func:`workload_key`).
3. ``declared``: the spec's ``expected_epoch_s`` (on the GPU type the job asks for, else on the
   runtime's main type).
4. ``default``: :data:`~eaco.runtime.spec.DEFAULT_EXPECTED_EPOCH_S`. A speed relative to it means
   nothing, so H learns nothing from it (the policy still uses the epoch times it saw).

The job the policy sees carries the baseline as its exclusive epoch time, so its predicted
remaining time follows the measured one.

GPU types. Every alone epoch is stored with the type of the GPUs it ran on. A baseline is on the
type of its latest epoch; on a runtime with several GPU types (a Ray cluster of V100 and A100
nodes) the epochs on other types, and the baseline itself where the job runs on another type, are
converted with the catalogue's relative speeds of the job's type (:func:`convert_epoch_s`): an
estimate, until the job has run alone on the type it is on.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

from eaco.colocation.catalog import JobTypeSpec
from eaco.runtime.spec import DEFAULT_EXPECTED_EPOCH_S, JobSpec
from eaco.state.cluster_state import ClusterState

MAX_BASELINE_EPOCHS = 20  # the most recent alone epochs a baseline rests on
MAX_ALONE_SPANS = 32  # closed spans kept per job (older epochs are read long before)
SOURCES = ("measured", "history", "declared", "default")


AloneEpoch = tuple[float, str]  # an epoch a job ran alone: (duration in s, the GPU type it ran on)


@dataclass(frozen=True, slots=True)
class EpochBaseline:
    """A job's exclusive epoch time on GPUs of ``gpu_type`` and where it comes from."""

    epoch_s: float
    source: str  # one of SOURCES
    epochs: int  # measured epochs it rests on (0 when declared or default)
    gpu_type: str  # the GPU type epoch_s is on

    @property
    def calibrated(self) -> bool:
        """Whether speeds relative to it mean something (anything but the default)."""
        return self.source != "default"

    def on(self, gpu_type: str, kind: JobTypeSpec) -> float:
        """The exclusive epoch time on ``gpu_type``: the same, or converted with the catalogue's
        relative speeds of the job's type (``kind``) when it rests on another type."""
        return self.epoch_s if gpu_type == self.gpu_type else convert_epoch_s(self.epoch_s, self.gpu_type, gpu_type, kind)

    def reference_s(self, kind: JobTypeSpec) -> float:
        """The exclusive epoch time on the reference GPU that policies plan with."""
        return self.epoch_s * kind.speed_on(self.gpu_type)


def convert_epoch_s(epoch_s: float, from_type: str, to_type: str, kind: JobTypeSpec) -> float:
    """An epoch time on ``from_type`` as one on ``to_type`` (x speed there / speed here)."""
    return epoch_s * kind.speed_on(from_type) / kind.speed_on(to_type)


def workload_key(spec: JobSpec, gpu_type: str) -> str:
    """Jobs with the same key run the same work on the same runtime (``gpu_type``: its main GPU
    type): what one of them measured alone is the others' baseline until they measure their own."""
    text = json.dumps([list(spec.command), spec.working_dir, sorted(spec.env.items()), spec.num_gpus, gpu_type])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def measured_epoch_s(epochs: Sequence[AloneEpoch], kind: JobTypeSpec) -> tuple[float, int, str]:
    """The exclusive epoch time that alone epochs measure: the median of the last
    :data:`MAX_BASELINE_EPOCHS`, on the GPU type of the latest (epochs on other types converted,
    :func:`convert_epoch_s`); how many it rests on; that GPU type."""
    recent = list(epochs)[-MAX_BASELINE_EPOCHS:]
    gpu_type = recent[-1][1]
    durations_s = [d if t == gpu_type else convert_epoch_s(d, t, gpu_type, kind) for d, t in recent]
    return statistics.median(durations_s), len(recent), gpu_type


def choose_baseline(own: Sequence[AloneEpoch], history: Sequence[AloneEpoch], spec: JobSpec, kind: JobTypeSpec,
                    declared_gpu_type: str) -> EpochBaseline:
    """The best baseline from this job's alone epochs, earlier jobs' ones and the spec (whose
    ``expected_epoch_s`` is on ``declared_gpu_type``: the type the job asks for, else the
    runtime's main type)."""
    for epochs, source in ((own, "measured"), (history, "history")):
        if epochs:
            epoch_s, count, gpu_type = measured_epoch_s(epochs, kind)
            return EpochBaseline(epoch_s, source, count, gpu_type)
    if spec.expected_epoch_s is not None:
        return EpochBaseline(spec.expected_epoch_s, "declared", 0, declared_gpu_type)
    return EpochBaseline(DEFAULT_EXPECTED_EPOCH_S, "default", 0, declared_gpu_type)


class AloneTracker:
    """When each running job had all its GPUs to itself (Unix-time spans).

    :meth:`update` is called once per tick after everything the tick changed: a job that shares
    a GPU now closes its open span at ``changed_unix`` (the start of the tick, before which
    nothing of this tick happened); a job alone now opens a span at ``now_unix`` (the end of the
    tick, by when whatever made it alone had happened). Both err on the side of "not alone"."""

    def __init__(self) -> None:
        self._since: dict[int, float] = {}
        self._spans: dict[int, list[tuple[float, float]]] = {}

    def update(self, state: ClusterState, running: Iterable[int], changed_unix: float, now_unix: float) -> None:
        alone = {j for j in running if j in state.job_gpus and state.is_solo(j)}
        for job_id in [j for j in self._since if j not in alone]:
            start = self._since.pop(job_id)
            if changed_unix > start:
                spans = self._spans.setdefault(job_id, [])
                spans.append((start, changed_unix))
                del spans[:-MAX_ALONE_SPANS]
        for job_id in alone:
            self._since.setdefault(job_id, now_unix)

    def was_alone(self, job_id: int, start_unix: float, end_unix: float) -> bool:
        """Whether the job was alone on its GPUs from ``start_unix`` to ``end_unix``."""
        since = self._since.get(job_id)
        if since is not None and start_unix >= since:
            return True
        return any(s <= start_unix and end_unix <= e for s, e in self._spans.get(job_id, ()))

    def forget(self, job_id: int) -> None:
        self._since.pop(job_id, None)
        self._spans.pop(job_id, None)
