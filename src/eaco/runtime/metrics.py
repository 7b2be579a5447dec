"""The daemon's Prometheus endpoint (``eaco serve --metrics-port``), on 127.0.0.1 only.

Two sources, read at every scrape:

- a :class:`RuntimeSnapshot` the daemon loop publishes at the end of every tick (one reference
  assignment; the scrape thread never touches the loop's dictionaries): modelled power and
  energy, queue, running / stopping / co-located jobs, per-GPU jobs, memory and utilisation;
- the store (its own read-only SQLite connection per scrape): jobs per state and the
  cumulative counters (finished, failed, cancelled jobs, undos, migrations, attempts), which survive a
  daemon restart.

Metrics live in a dedicated :class:`~prometheus_client.CollectorRegistry` (not the process-wide
default one), so several daemons in one process (tests) do not collide. The ``source`` label says
how each power and energy figure was obtained: GPU parts are ``measured`` when the daemon reads
the GPUs through NVML (``modelled`` on declared GPUs), host power is always ``modelled`` (host
model at the measured CPU utilisation), and the total is ``measured+modelled`` when it mixes them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from eaco.runtime.gpu_meter import GpuInterval
from eaco.runtime.layout import StateLayout

METRICS_HOST = "127.0.0.1"
JOB_STATES = ("queued", "running", "stopping", "finished", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    gpu: int
    gpu_type: str
    job_ids: tuple[int, ...]  # the jobs on it, in placement order
    memory_reserved_gb: float  # what the policy's accounting holds on it (the jobs' declared peaks)
    memory_gb: float  # the GPU's memory
    util_estimate: float  # sum of its jobs' exclusive utilisation, capped at 1 (as the energy model)
    measured: GpuInterval | None = None  # the latest NVML interval (None: not measured)

    @property
    def jobs(self) -> int:
        return len(self.job_ids)


@dataclass(frozen=True, slots=True)
class RuntimeSnapshot:
    """The daemon's state at the end of one tick (immutable: handed to the scrape thread)."""

    time_unix: float
    queue_length: int
    running_jobs: int  # state running (a process that trains)
    stopping_jobs: int  # undone, process finishing its epoch
    colocated_jobs: int  # jobs with at least one GPU shared with another job
    power_w: dict[str, float]  # over the last tick: gpu_busy, gpu_idle, host
    energy_j: dict[str, float]  # over the state folder's life (kept in the store across restarts): gpu_busy, gpu_idle, host
    accounted_s: float  # seconds integrated into energy_j
    policy_calls: int
    gpus: tuple[GpuSnapshot, ...]
    gpu_energy_source: str = "modelled"  # of the gpu_* parts: "measured" (NVML) or "modelled"
    model_gpu_energy_j: dict[str, float] | None = None  # the energy model's gpu_busy / gpu_idle figures
    policy_decisions: dict[str, int] | None = None  # Policy.decision_counts() since this daemon started

    def source(self, part: str) -> str:
        if part.startswith("gpu"):
            return self.gpu_energy_source
        if part == "host":
            return "modelled"
        return "modelled" if self.gpu_energy_source == "modelled" else "measured+modelled"


def store_counts(db_path: Path) -> tuple[dict[str, int], int, int, int]:
    """Jobs per state, total undos, total moves (migrations) and total attempts, read with a
    read-only connection."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5.0)
    try:
        per_state = {s: 0 for s in JOB_STATES}
        undos = migrations = attempts = 0
        query = "SELECT state, COUNT(*), SUM(undos), SUM(migrations), SUM(attempts) FROM jobs GROUP BY state"
        for state, count, u, m, a in db.execute(query):
            per_state[state] = int(count)
            undos += int(u or 0)
            migrations += int(m or 0)
            attempts += int(a or 0)
        return per_state, undos, migrations, attempts
    finally:
        db.close()


def _by_part(family: Any, snap: RuntimeSnapshot, values: dict[str, float]) -> Any:
    """One sample per part and the total, each labelled with how it was obtained."""
    for part, v in values.items():
        family.add_metric([part, snap.source(part)], v)
    family.add_metric(["total", snap.source("total")], sum(values.values()))
    return family


class RuntimeCollector:
    """A custom collector: builds every metric family from the latest snapshot and the store."""

    def __init__(self, snapshot: Callable[[], RuntimeSnapshot | None], db_path: Path) -> None:
        self._snapshot = snapshot
        self._db_path = db_path

    def describe(self) -> list[object]:
        return []  # families are built per scrape; nothing to check at registration

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self._snapshot()
        if snap is not None:
            yield _by_part(GaugeMetricFamily("eaco_power_watts", "Cluster power over the last tick, by part "
                                             "(source: measured through NVML or modelled)", labels=["part", "source"]),
                           snap, snap.power_w)
            yield _by_part(CounterMetricFamily("eaco_energy_joules", "Cluster energy over the state folder's life (kept across daemon restarts), by part "
                                               "(source: measured through NVML or modelled)", labels=["part", "source"]),
                           snap, snap.energy_j)
            if snap.gpu_energy_source == "measured" and snap.model_gpu_energy_j is not None:
                model = CounterMetricFamily(
                    "eaco_model_gpu_energy_joules",
                    "What the calibrated energy model predicts for the measured GPU energy (compare with eaco_energy_joules_total)",
                    labels=["part"],
                )
                for part, j in snap.model_gpu_energy_j.items():
                    model.add_metric([part], j)
                yield model
            yield CounterMetricFamily("eaco_accounted_seconds", "Seconds of energy integration over the state folder's life", value=snap.accounted_s)
            yield GaugeMetricFamily("eaco_queue_length", "Jobs waiting to be placed", value=snap.queue_length)
            yield GaugeMetricFamily("eaco_running_jobs", "Jobs whose process is training (state running)", value=snap.running_jobs)
            yield GaugeMetricFamily("eaco_stopping_jobs", "Undone jobs whose process finishes its epoch", value=snap.stopping_jobs)
            yield GaugeMetricFamily("eaco_colocated_jobs", "Jobs sharing at least one GPU with another job", value=snap.colocated_jobs)
            yield CounterMetricFamily("eaco_policy_calls", "Calls of the scheduling policy since this daemon started", value=snap.policy_calls)
            if snap.policy_decisions:
                decisions = CounterMetricFamily(
                    "eaco_policy_decisions",
                    "Decisions of the policy since this daemon started, by kind (co-locations, observations, "
                    "waits for a faster GPU type, reservations, drains; docs/eaco.md)",
                    labels=["kind"],
                )
                for kind, count in snap.policy_decisions.items():
                    decisions.add_metric([kind], count)
                yield decisions
            jobs = GaugeMetricFamily("eaco_gpu_jobs", "Jobs on each GPU", labels=["gpu", "gpu_type"])
            util = GaugeMetricFamily(
                "eaco_gpu_utilisation_estimate",
                "Predicted GPU utilisation: sum of its jobs' exclusive utilisation, capped at 1 (modelled)",
                labels=["gpu", "gpu_type"],
            )
            memory = GaugeMetricFamily(
                "eaco_gpu_memory_reserved_bytes", "GPU memory the scheduler counts as in use (the jobs' declared peak)",
                labels=["gpu", "gpu_type"],
            )
            gpu_power = GaugeMetricFamily("eaco_gpu_power_watts", "Measured GPU power (NVML)", labels=["gpu", "gpu_type"])
            gpu_util = GaugeMetricFamily("eaco_gpu_utilisation", "Measured GPU utilisation, 0..1 (NVML)", labels=["gpu", "gpu_type"])
            gpu_mem = GaugeMetricFamily("eaco_gpu_memory_used_bytes", "Measured GPU memory in use (NVML)", labels=["gpu", "gpu_type"])
            for g in snap.gpus:
                labels = [str(g.gpu), g.gpu_type]
                jobs.add_metric(labels, g.jobs)
                util.add_metric(labels, g.util_estimate)
                memory.add_metric(labels, g.memory_reserved_gb * 1e9)
                m = g.measured
                if m is not None:
                    gpu_power.add_metric(labels, m.power_w)
                    if m.util is not None:
                        gpu_util.add_metric(labels, m.util)
                    if m.memory_used_bytes is not None:
                        gpu_mem.add_metric(labels, m.memory_used_bytes)
            yield jobs
            yield util
            yield memory
            for family in (gpu_power, gpu_util, gpu_mem):
                if family.samples:
                    yield family
        try:
            per_state, undos, migrations, attempts = store_counts(self._db_path)
        except sqlite3.Error:
            return  # no store yet (or it is busy beyond the timeout): the snapshot metrics still count
        states = GaugeMetricFamily("eaco_jobs", "Jobs in the store by state", labels=["state"])
        for state, count in per_state.items():
            states.add_metric([state], count)
        yield states
        yield CounterMetricFamily("eaco_jobs_finished", "Jobs that finished (all daemons on this state folder)", value=per_state["finished"])
        yield CounterMetricFamily("eaco_jobs_failed", "Jobs that failed (all daemons on this state folder)", value=per_state["failed"])
        yield CounterMetricFamily("eaco_jobs_cancelled", "Jobs that were cancelled", value=per_state["cancelled"])
        yield CounterMetricFamily("eaco_undos", "Co-locations undone (jobs asked to stop and move)", value=undos)
        yield CounterMetricFamily("eaco_migrations", "Jobs moved to other GPUs so that a node empties", value=migrations)
        yield CounterMetricFamily("eaco_attempts", "Processes started for jobs (attempts)", value=attempts)


class MetricsServer:
    """Serves ``/metrics`` on 127.0.0.1:``port`` (0: a free port) from a dedicated registry and
    writes its address to ``<state>/metrics.json``."""

    def __init__(self, layout: StateLayout, snapshot: Callable[[], RuntimeSnapshot | None], port: int = 0) -> None:
        from prometheus_client import CollectorRegistry

        self.layout = layout
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RuntimeCollector(snapshot, layout.db))  # type: ignore[arg-type]
        self.requested_port = port
        self.port: int | None = None
        self._httpd: object | None = None
        self._thread: threading.Thread | None = None

    @property
    def address_file(self) -> Path:
        return self.layout.root / "metrics.json"

    def start(self) -> int:
        from prometheus_client import start_http_server

        httpd, thread = start_http_server(self.requested_port, addr=METRICS_HOST, registry=self.registry)
        self._httpd, self._thread = httpd, thread
        self.port = int(httpd.server_address[1])
        tmp = self.address_file.with_name(self.address_file.name + ".tmp")
        tmp.write_text(json.dumps({"host": METRICS_HOST, "port": self.port, "pid": os.getpid(), "path": "/metrics"}), encoding="utf-8")
        os.replace(tmp, self.address_file)
        return self.port

    def stop(self) -> None:
        self.address_file.unlink(missing_ok=True)
        httpd = self._httpd
        if httpd is not None:
            httpd.shutdown()  # type: ignore[attr-defined]
            httpd.server_close()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None
