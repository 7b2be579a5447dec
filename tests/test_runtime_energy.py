"""Measured GPU energy in the runtime: the meter's arithmetic (counter, power, gaps) and a real
runtime whose GPUs are read through an injected NVML-like source while two tiny jobs train."""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from eaco.policies.registry import make_policy
from eaco.profiler.telemetry import GpuDevice, GpuReading
from eaco.runtime.engine import Runtime
from eaco.runtime.gpu_meter import GpuMeter
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.layout import StateLayout
from eaco.runtime.local_backend import LocalBackend
from eaco.runtime.metrics import RuntimeCollector
from eaco.runtime.spec import spec_from_yaml
from eaco.runtime.store import Store
from eaco.runtime.summary import build_summary
from eaco.setup import load_environment
from runtime_helpers import kill_leftover_jobs


class ScriptedSource:
    """Readings given one call at a time (index -> (power_w, counter_j))."""

    def __init__(self, script: list[dict[int, tuple[float | None, float | None]]]) -> None:
        self.devices = (GpuDevice(0, "Tesla V100-SXM2-32GB", 32510.0), GpuDevice(3, "Tesla V100-SXM2-32GB", 32510.0))
        self.script = list(script)
        self.closed = False

    def read(self) -> tuple[GpuReading, ...]:
        step = self.script.pop(0)
        return tuple(GpuReading(i, p, c, 50.0, 1024.0) for i, (p, c) in step.items())

    def close(self) -> None:
        self.closed = True


def test_a_shared_gpus_energy_is_split_by_work_with_the_idle_part_equal() -> None:
    from eaco.energy.attribution import split_gpu_energy
    from eaco.runtime.accounting import EnergyAccountant
    from eaco.model.job import Job
    from eaco.state.cluster_state import ClusterState

    assert split_gpu_energy(100.0, 40.0, [0.5]) == [100.0]
    assert split_gpu_energy(100.0, 40.0, [0.1, 0.3]) == [pytest.approx(20 + 15), pytest.approx(20 + 45)]
    assert split_gpu_energy(100.0, 40.0, [0.0, 0.0]) == [pytest.approx(50.0)] * 2
    # a GPU that used less than the model's idle energy: nobody gets a negative share
    assert split_gpu_energy(30.0, 40.0, [0.1, 0.9]) == [pytest.approx(15.0)] * 2

    env = load_environment()
    inventory = declared_gpus("1xv100")
    state = ClusterState(inventory.cluster())
    jobs = {i: Job(i, 0.0, 1, "resnet18", 5, 10.0, 4.0, u) for i, u in ((0, 0.1), (1, 0.3))}
    for job in jobs.values():
        state.place(job, (0,))
    acc = EnergyAccountant(env.energy, env.catalog, cpu_util=lambda: 0.0)
    out = acc.step(state, jobs, 2.0)
    gpu = env.energy.gpu("v100")
    gpu_j, idle_j = gpu.power_w(0.4) * 2.0, gpu.power_w(0.0) * 2.0
    host_j = (env.energy.host.power_w(0.0) + env.energy.node_baseline_w) * 2.0
    assert out[0][2] == pytest.approx(idle_j / 2 + (gpu_j - idle_j) * 0.25 + host_j / 2)
    assert out[1][2] == pytest.approx(idle_j / 2 + (gpu_j - idle_j) * 0.75 + host_j / 2)
    assert out[0][2] + out[1][2] == pytest.approx(acc.totals.total_j)


def test_meter_uses_the_counter_then_power_and_reports_gaps() -> None:
    source = ScriptedSource([
        {0: (100.0, 1000.0), 3: (50.0, None)},
        {0: (120.0, 1110.0), 3: (70.0, None)},  # counter: 110 J; no counter: (50 + 70) / 2 x 2 s
        {0: (120.0, 5.0), 3: (None, None)},  # counter went backwards (driver reload): power; nothing read
        {3: (80.0, None)},  # GPU 0 not read at all
        {0: (100.0, 2000.0), 3: (80.0, None)},  # GPU 0 back: a new interval starts (none spans the gap)
    ])
    meter = GpuMeter(source, (0, 3))
    assert meter.read(0.0) == (None, None)  # the first reading starts the interval
    a, b = meter.read(2.0)
    assert (a.method, a.energy_j, a.power_w) == ("counter", pytest.approx(110.0), 120.0)
    assert (b.method, b.energy_j) == ("power", pytest.approx(120.0))
    assert a.util == pytest.approx(0.5) and a.memory_used_bytes == 1024.0 * 2**20
    a, b = meter.read(1.0)
    assert (a.method, a.energy_j) == ("power", pytest.approx(120.0))
    assert b is not None and b.energy_j == pytest.approx(70.0)  # the previous power reading alone
    a, b = meter.read(1.0)
    assert a is None and b is not None
    a, b = meter.read(1.0)
    assert a is None and b is not None and b.energy_j == pytest.approx(80.0)
    meter.close()
    assert source.closed
    with pytest.raises(ValueError, match="no device \\[7\\]"):
        GpuMeter(ScriptedSource([]), (0, 7))
    partial = GpuMeter(ScriptedSource([{0: (10.0, 1.0)}, {0: (10.0, 11.0)}]), (0, 7), require_all=False)
    assert partial.names == ("Tesla V100-SXM2-32GB", "") and partial.read(0.0) == (None, None)
    assert [None if r is None else r.energy_j for r in partial.read(1.0)] == [pytest.approx(10.0), None]


class ConstantPowerSource:
    """Two GPUs whose energy counters grow at a constant power (W) in real time."""

    def __init__(self, power_w: tuple[float, float]) -> None:
        self.devices = (GpuDevice(0, "Tesla V100", 32510.0), GpuDevice(1, "Tesla V100", 32510.0))
        self.power_w = power_w
        self.t0 = time.monotonic()
        self.closed = False

    def read(self) -> tuple[GpuReading, ...]:
        t = time.monotonic() - self.t0
        return tuple(GpuReading(i, p, 1e6 + p * t, 40.0, 2048.0) for i, p in enumerate(self.power_w))

    def close(self) -> None:
        self.closed = True


def job_yaml(name: str) -> str:
    return (
        f"name: {name}\n"
        f"command: {sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs 2 --steps-per-epoch 60\n"
        "epochs: 2\nexpected_epoch_s: 0.5\njob_type: resnet18\nmemory_gb: 4\ngpu_util: 0.3\n"
        "env: {OMP_NUM_THREADS: '1'}\n"
    )


def test_runtime_reports_measured_gpu_energy_and_the_model_beside_it(tmp_path: Path) -> None:
    env = load_environment()
    layout = StateLayout(tmp_path / "state")
    layout.root.mkdir()
    store = Store(layout.db)
    inventory = declared_gpus("2xv100")
    source = ConstantPowerSource((200.0, 100.0))
    runtime = Runtime(layout, store, LocalBackend(), make_policy("eaco", env.policy_context()), inventory, env.catalog,
                      env.energy, cpu_util=lambda: 0.5, tick_s=0.05, gpu_meter=GpuMeter(source, inventory.device_indices))
    for name in ("m0", "m1"):
        store.submit(name, spec_from_yaml(job_yaml(name), "job.yaml", tmp_path).model_dump_json())
    stop = threading.Event()
    guard = threading.Timer(60.0, stop.set)  # a safety net: the jobs take a few seconds
    guard.start()
    try:
        runtime.run(stop, exit_when_idle=True)  # on this thread: the store's connection is this thread's
    finally:
        guard.cancel()
        kill_leftover_jobs(layout.root)
    assert not stop.is_set(), "the runtime did not finish two tiny jobs in 60 s"
    summary = build_summary(store, runtime.accountant.totals, inventory)
    # the store kept the same energy, per hour: a daemon restarted on the folder starts from it
    kept = store.energy_totals()
    assert kept == pytest.approx(runtime.accountant.totals.parts(), rel=1e-9)
    again = Runtime(layout, store, LocalBackend(), make_policy("eaco", env.policy_context()), inventory, env.catalog,
                    env.energy, cpu_util=lambda: 0.5, tick_s=0.05)
    assert again.accountant.totals.total_j == pytest.approx(runtime.accountant.totals.total_j, rel=1e-9)
    assert again.accountant.totals.gpu_s_by_method == pytest.approx(runtime.accountant.totals.gpu_s_by_method, rel=1e-9)
    hourly = (layout.root / "energy_hourly.csv").read_text().splitlines()
    assert hourly[0].startswith("hour_start_unix,hour_start_utc,duration_s,gpu_busy_j") and len(hourly) >= 2
    store.close()
    assert summary["counts"]["finished"] == 2
    energy = summary["energy"]
    assert energy["gpu"] == "measured (NVML)" and "measured through NVML" in energy["label"]
    # every interval after the first reading was measured by the counter: 300 W over the run
    assert energy["gpu_seconds_by_method"]["model"] == 0.0 and energy["gpu_measured_share"] == 1.0
    assert energy["gpu_busy_j"] + energy["gpu_idle_j"] == pytest.approx(300.0 * energy["duration_s"], rel=0.05)
    assert energy["model_gpu_busy_j"] > 0 and energy["model_gpu_error_pct"] is not None
    assert all(j["energy_j"] > 0 for j in summary["jobs"])
    assert source.closed  # the runtime closes its meter when it stops
    # the metrics show the GPU parts as measured, host as modelled, and the model's figure beside
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in RuntimeCollector(lambda: runtime.take_snapshot(), layout.db).collect() for s in family.samples}
    assert ("eaco_energy_joules_total", (("part", "gpu_idle"), ("source", "measured"))) in samples
    assert ("eaco_energy_joules_total", (("part", "host"), ("source", "modelled"))) in samples
    assert ("eaco_energy_joules_total", (("part", "total"), ("source", "measured+modelled"))) in samples
    assert samples[("eaco_gpu_power_watts", (("gpu", "0"), ("gpu_type", "v100")))] == pytest.approx(200.0)
    assert samples[("eaco_gpu_utilisation", (("gpu", "1"), ("gpu_type", "v100")))] == pytest.approx(0.4)
    assert ("eaco_model_gpu_energy_joules_total", (("part", "gpu_busy"),)) in samples


def test_store_splits_an_interval_across_hours(tmp_path: Path) -> None:
    store = Store(tmp_path / "runtime.db")
    try:
        hour = 1_800_000_000 // 3600 * 3600
        # 60 s ending 15 s past an hour: a quarter in the new hour, three quarters in the old one
        store.add_accounting({}, {"duration_s": 60.0, "gpu_busy_j": 600.0, "host_j": 120.0, "counter_gpu_s": 60.0}, hour + 15.0)
        store.add_accounting({}, {"duration_s": 10.0, "gpu_busy_j": 100.0}, hour + 30.0)
        rows = store.energy_hours()
        assert [r["hour_start_unix"] for r in rows] == [hour - 3600, hour]
        assert rows[0]["gpu_busy_j"] == pytest.approx(450.0) and rows[0]["host_j"] == pytest.approx(90.0)
        assert rows[1]["gpu_busy_j"] == pytest.approx(250.0) and rows[1]["duration_s"] == pytest.approx(25.0)
        totals = store.energy_totals()
        assert totals["gpu_busy_j"] == pytest.approx(700.0) and totals["duration_s"] == pytest.approx(70.0)
        assert totals["counter_gpu_s"] == pytest.approx(60.0) and totals["gpu_idle_j"] == 0.0
    finally:
        store.close()


class ProcessMemorySource(ConstantPowerSource):
    """Two GPUs as above whose NVML process list shows every training process this test
    started (``python -m ...tiny_train``, not the wrapper that runs it) holding ``train_mib`` on each GPU, and this test's own process
    holding 1 GiB (in no job's session: counted for nobody)."""

    def __init__(self, train_mib: float) -> None:
        super().__init__((100.0, 100.0))
        self.train_mib = train_mib

    def read(self) -> tuple[GpuReading, ...]:
        procs = {os.getpid(): 1024.0}
        for child in psutil.Process().children(recursive=True):
            try:
                if child.cmdline()[1:3] == ["-m", "eaco.runtime.examples.tiny_train"]:  # not its wrapper
                    procs[child.pid] = self.train_mib
            except psutil.Error:
                continue
        return tuple(replace(r, process_memory_mib=dict(procs)) for r in super().read())


def test_nvml_process_memory_is_a_measured_peak(tmp_path: Path) -> None:
    """On real GPUs the runtime sees each job's memory through NVML's process list, before and
    without any epoch report: a job that declared 4 GB but holds 6 GB is sized at 6 GB."""
    env = load_environment()
    layout = StateLayout(tmp_path / "state")
    layout.root.mkdir()
    store = Store(layout.db)
    inventory = declared_gpus("2xv100")
    runtime = Runtime(layout, store, LocalBackend(), make_policy("eaco", env.policy_context()), inventory, env.catalog,
                      env.energy, cpu_util=lambda: 0.5, tick_s=0.05,
                      gpu_meter=GpuMeter(ProcessMemorySource(6 * 1024.0), inventory.device_indices))
    job_id = store.submit("m0", spec_from_yaml(job_yaml("m0"), "job.yaml", tmp_path).model_dump_json())
    stop = threading.Event()
    guard = threading.Timer(60.0, stop.set)
    guard.start()
    try:
        runtime.run(stop, exit_when_idle=True)
    finally:
        guard.cancel()
        kill_leftover_jobs(layout.root)
    assert not stop.is_set(), "the runtime did not finish a tiny job in 60 s"
    assert store.job(job_id).state == "finished"
    # the training process's 6 GiB on its GPU (not the test's own 1 GiB, not counted twice)
    assert store.memory_peak_gb(job_id) == pytest.approx(6.0)
    events = [detail for _, _, kind, detail in store.events(job_id) if kind == "memory"]
    assert any("6 GB per GPU measured through NVML" in e and "(measured; was 4 GB, declared)" in e for e in events), events
    store.close()


class _SharesMeter:
    """What the accountant reads from a meter: no energy reading (modelled), and per GPU the
    processes' shares of its kernel time."""

    measures_any = True

    def __init__(self, shares: dict[int, dict[int, float]]) -> None:
        self.process_busy_share = shares

    def read(self, dt_s: float) -> tuple[None, ...]:
        return (None,)


def test_a_shared_gpus_energy_is_split_by_measured_kernel_time_where_nvml_gives_it() -> None:
    """Two jobs on one GPU that declare the same utilisation: NVML says one ran 80% of the
    kernel time, so it gets 80% of the energy beyond idle; processes of nobody's job are left out;
    with no job among the sampled processes the declared utilisations split it."""
    from eaco.model.job import Job
    from eaco.runtime.accounting import EnergyAccountant
    from eaco.state.cluster_state import ClusterState

    env = load_environment()
    state = ClusterState(declared_gpus("1xv100").cluster())
    jobs = {i: Job(i, 0.0, 1, "resnet18", 5, 10.0, 4.0, 0.3) for i in (0, 1)}
    for job in jobs.values():
        state.place(job, (0,))
    meter = _SharesMeter({0: {100: 0.6, 101: 0.15, 102: 0.05, 999: 0.2}})
    acc = EnergyAccountant(env.energy, env.catalog, cpu_util=lambda: 0.0, gpu_meter=meter)  # type: ignore[arg-type]
    owner = {100: 0, 101: 1, 102: 1}
    acc.per_job = lambda per_gpu: {g: {j: sum(v for p, v in procs.items() if owner.get(p) == j) for j in set(owner.values())
                                       if any(owner.get(p) == j for p in procs)} for g, procs in per_gpu.items()}
    out = acc.step(state, jobs, 2.0)
    gpu = env.energy.gpu("v100")
    gpu_j, idle_j = gpu.power_w(0.6) * 2.0, gpu.power_w(0.0) * 2.0
    host_j = (env.energy.host.power_w(0.0) + env.energy.node_baseline_w) * 2.0
    assert out[0][2] == pytest.approx(idle_j / 2 + (gpu_j - idle_j) * 0.75 + host_j / 2)
    assert out[1][2] == pytest.approx(idle_j / 2 + (gpu_j - idle_j) * 0.25 + host_j / 2)
    assert acc.totals.split_s == {"measured": 2.0, "declared": 0.0}
    meter.process_busy_share = {0: {999: 1.0}}  # only somebody else's process ran kernels
    out = acc.step(state, jobs, 2.0)
    assert out[0][2] == pytest.approx(out[1][2])
    assert acc.totals.split_s == {"measured": 2.0, "declared": 2.0}
    assert acc.totals.split_measured_share == pytest.approx(0.5)
    parts = acc.totals.parts()
    assert parts["split_measured_gpu_s"] == 2.0 and parts["split_declared_gpu_s"] == 2.0
    state.remove(1)  # a job alone gets its GPU's whole energy: nothing is split
    acc.step(state, jobs, 2.0)
    assert acc.totals.split_s == {"measured": 2.0, "declared": 2.0}


class ProcessShareSource(ConstantPowerSource):
    """GPUs as above whose NVML per-process utilisation shows the training process of job ``m0``
    taking 90% of the kernel time and that of ``m1`` 10%."""

    def read(self) -> tuple[GpuReading, ...]:
        shares = {}
        for child in psutil.Process().children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if cmd[1:3] == ["-m", "eaco.runtime.examples.tiny_train"]:
                shares[child.pid] = 0.9 if "m0" in cmd else 0.1
        return tuple(replace(r, process_busy_share=dict(shares)) for r in super().read())


def test_runtime_splits_shared_gpus_by_nvmls_per_process_utilisation(tmp_path: Path) -> None:
    """Two jobs EaCO puts on one GPU: the local backend maps NVML's per-process utilisation to
    the jobs (by session), the store counts the GPU-seconds split that way, the summary says so."""
    env = load_environment()
    layout = StateLayout(tmp_path / "state")
    layout.root.mkdir()
    store = Store(layout.db)
    inventory = declared_gpus("1xv100")
    runtime = Runtime(layout, store, LocalBackend(), make_policy("eaco", env.policy_context()), inventory, env.catalog,
                      env.energy, cpu_util=lambda: 0.5, tick_s=0.05,
                      gpu_meter=GpuMeter(ProcessShareSource((200.0, 100.0)), inventory.device_indices))
    for name in ("m0", "m1"):
        store.submit(name, spec_from_yaml(job_yaml(name), "job.yaml", tmp_path).model_dump_json())
    stop = threading.Event()
    guard = threading.Timer(60.0, stop.set)
    guard.start()
    try:
        runtime.run(stop, exit_when_idle=True)
    finally:
        guard.cancel()
        kill_leftover_jobs(layout.root)
    assert not stop.is_set(), "the runtime did not finish two tiny jobs in 60 s"
    jobs = store.jobs()
    assert [j.state for j in jobs] == ["finished", "finished"] and all(j.colocated_s > 0 for j in jobs)
    kept = store.energy_totals()
    assert kept["split_measured_gpu_s"] > 0.0
    summary = build_summary(store, runtime.accountant.totals, inventory)
    split = summary["energy"]["shared_gpu_split_s"]
    assert split["measured"] == pytest.approx(kept["split_measured_gpu_s"])
    assert split["declared"] == pytest.approx(kept["split_declared_gpu_s"])
    store.close()
    from eaco.report.runtime_report import write_runtime_report
    from eaco.runtime_cli import format_summary

    write_runtime_report(layout.root, tmp_path / "report", plots=False)
    report = " ".join((tmp_path / "report" / "report.md").read_text().split())
    assert f"by the kernel time NVML measured per process for {kept['split_measured_gpu_s']:,.0f} GPU-s" in report
    assert "by the kernel time NVML measured per process" in format_summary(summary)
