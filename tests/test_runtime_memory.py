"""The runtime sizes each job's share of a GPU from the GPU memory peaks its epochs report
(eaco.runtime.memory): a measured peak replaces the catalogue's guess, only ever raises a
declared figure, carries over to later jobs of the same workload, and never makes the daemon
refuse to re-attach jobs that already run together."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from eaco.profiler.epoch_report import EpochRecord, EpochReporter, read_report, timed_epochs, torch_peak_gpu_memory_mib
from eaco.runtime.daemon import ServeOptions, build_runtime
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.memory import CUDA_CONTEXT_GB, MemoryEstimate, choose_memory, peak_to_gb
from eaco.runtime.spec import spec_from_yaml
from eaco.runtime.store import Store
from runtime_helpers import attach_this_process

GIB_MIB = 1024.0


def spec_text(name: str, memory: str = "memory_gb: 4\n") -> str:
    return (f"name: {name}\ncommand: {sys.executable} -c pass\nepochs: 8\njob_type: resnet18\n"
            f"expected_epoch_s: 1\n{memory}")


# ------------------------------------------------------------------ the rules
def test_memory_sources_best_first() -> None:
    declared = spec_from_yaml(spec_text("a"))
    undeclared = spec_from_yaml(spec_text("a", memory=""))
    assert choose_memory(undeclared, 3.0, None, None) == MemoryEstimate(3.0, "catalogue")
    assert choose_memory(declared, 3.0, None, None) == MemoryEstimate(4.0, "declared")
    # a measurement replaces the catalogue's guess, down as well as up
    assert choose_memory(undeclared, 3.0, 1.5, None) == MemoryEstimate(1.5, "measured")
    assert choose_memory(undeclared, 3.0, 7.0, 2.0) == MemoryEstimate(7.0, "measured")
    assert choose_memory(undeclared, 3.0, None, 2.0) == MemoryEstimate(2.0, "history")
    # ... but only ever raises a declared figure
    assert choose_memory(declared, 3.0, 1.5, None) == MemoryEstimate(4.0, "declared")
    assert choose_memory(declared, 3.0, 6.0, None) == MemoryEstimate(6.0, "measured")
    assert choose_memory(declared, 3.0, None, 5.0) == MemoryEstimate(5.0, "history")
    assert peak_to_gb(2 * GIB_MIB) == pytest.approx(2.0 + CUDA_CONTEXT_GB)


def test_store_keeps_each_jobs_largest_peak_and_the_workloads(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        assert store.add_memory_peak(1, "k", 3.0) and not store.add_memory_peak(1, "k", 2.0)
        assert store.add_memory_peak(1, "k", 5.0) and store.memory_peak_gb(1) == 5.0
        assert store.add_memory_peak(2, "k", 4.0) and store.add_memory_peak(3, "other", 9.0)
        assert store.workload_memory_peak_gb("k") == 5.0
        assert store.workload_memory_peak_gb("k", except_job=1) == 4.0
        assert store.workload_memory_peak_gb("none") is None and store.memory_peak_gb(7) is None
    finally:
        store.close()


def test_timed_epochs_reports_pytorchs_gpu_peak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without torch loaded, or with torch on CPU, nothing is reported; with CUDA in use, the
    largest allocator peak over the visible GPUs (a stand-in torch module: no GPU here)."""
    monkeypatch.setitem(sys.modules, "torch", None)
    assert torch_peak_gpu_memory_mib() is None
    reserved = {0: 3 * 2**30, 1: 5 * 2**30}
    cuda = types.SimpleNamespace(is_initialized=lambda: True, device_count=lambda: 2,
                                 max_memory_reserved=lambda i: reserved[i])
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert torch_peak_gpu_memory_mib() == pytest.approx(5 * GIB_MIB)
    path = tmp_path / "r.jsonl"
    reporter = EpochReporter.to_file("j", path)
    for epoch, tick in timed_epochs(reporter, range(2)):
        tick.samples = 1
        if epoch == 1:
            tick.peak_gpu_memory_mib = 123.0  # a loop that measures its own
    reporter.close()
    assert [e.peak_gpu_memory_mib for e in read_report(path).epochs] == [pytest.approx(5 * GIB_MIB), 123.0]
    cuda.is_initialized = lambda: False  # torch imported, CUDA never used
    assert torch_peak_gpu_memory_mib() is None


# ---------------------------------------------------- the engine, step by step
def _report(runtime, job_id: int, epoch: int, peak_gb: float) -> None:
    path = runtime.layout.report_file(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    reporter = EpochReporter.to_file("x", path)
    reporter.epoch(EpochRecord("x", epoch, 1.0, 10, 10, 10.0, time.time(), peak_gpu_memory_mib=peak_gb * GIB_MIB))
    reporter.close()
    runtime._read_reports(time.time(), only=job_id)


def test_engine_follows_measured_peaks(tmp_path: Path) -> None:
    """Two jobs declare 4 GB on one 32 GB V100. The first reports 6 GB: it holds 6.5 (context
    included); then 30 GB: only 28 GB are left beside the other, so the GPU is full for the
    policy. A later job of the workload starts from the measured peak; one that declares nothing
    and reports less than the catalogue guessed holds what it measured."""
    runtime, _ = build_runtime(ServeOptions(tmp_path / "state", declared_gpus("1xv100"), "eaco"))
    try:
        store, state = runtime.store, runtime.state
        a = store.submit("a", spec_from_yaml(spec_text("a")).model_dump_json())
        b = store.submit("b", spec_from_yaml(spec_text("b")).model_dump_json())
        for j in (a, b):
            runtime._load_job(j)
            state.place(runtime.jobs[j], (0,))
            runtime.status[j] = "running"
        assert state.gpu_memory_used_gb[0] == pytest.approx(8.0)
        _report(runtime, a, 0, 6.0)
        assert runtime.memory[a] == MemoryEstimate(6.0 + CUDA_CONTEXT_GB, "measured")
        assert state.job_memory_gb[a] == pytest.approx(6.5) and state.gpu_memory_used_gb[0] == pytest.approx(10.5)
        assert runtime.jobs[a].memory_gb == pytest.approx(6.5)
        _report(runtime, a, 1, 5.0)  # not a new largest: nothing changes
        assert state.job_memory_gb[a] == pytest.approx(6.5)
        _report(runtime, a, 2, 30.0)
        assert state.job_memory_gb[a] == pytest.approx(28.0) and state.gpu_memory_used_gb[0] == pytest.approx(32.0)
        assert runtime.jobs[a].memory_gb == pytest.approx(30.5)  # where it is placed next
        notes = [detail for _, _, kind, detail in store.events(a) if kind == "memory"]
        assert len(notes) == 2 and "4 GB, declared" in notes[0] and "its GPUs are full for the policy" in notes[1]
        # a later job of the same workload (same command, environment, GPU count and type)
        c = store.submit("a", spec_from_yaml(spec_text("a")).model_dump_json())
        runtime._load_job(c)
        assert runtime.memory[c] == MemoryEstimate(30.5, "history") and runtime.jobs[c].memory_gb == pytest.approx(30.5)
        # declares nothing: the catalogue's resnet18 guess, replaced by a smaller measured peak
        d = store.submit("d", spec_from_yaml(spec_text("d", memory="env: {X: '1'}\n")).model_dump_json())
        runtime._load_job(d)
        assert runtime.memory[d].source == "catalogue"
        guess = runtime.jobs[d].memory_gb
        state.remove(a)
        state.place(runtime.jobs[d], (0,))
        runtime.status[d] = "running"
        _report(runtime, d, 0, 0.5)
        assert runtime.memory[d] == MemoryEstimate(1.0, "measured") and 1.0 < guess
        assert state.job_memory_gb[d] == pytest.approx(1.0)
    finally:
        runtime.store.close()


def test_recovery_reattaches_jobs_whose_peaks_outgrew_their_gpu(tmp_path: Path) -> None:
    """Two jobs share a V100 and have measured 20 GB peaks each (more than it holds together:
    the figures overstate, the processes run): a restarted daemon re-attaches both; the GPU is
    full for the policy."""
    state_dir = tmp_path / "state"
    first, _ = build_runtime(ServeOptions(state_dir, declared_gpus("1xv100"), "eaco"))
    try:
        ids = [first.store.submit(n, spec_from_yaml(spec_text(n)).model_dump_json()) for n in ("a", "b")]
        for j in ids:
            attach_this_process(first.store, first.layout, j, (0,))
            first.store.add_memory_peak(j, "whatever", 20.0)
    finally:
        first.store.close()
    runtime, _ = build_runtime(ServeOptions(state_dir, declared_gpus("1xv100"), "eaco"))
    try:
        runtime.recover()
        assert set(runtime.live) == set(ids) and runtime.state.gpu_jobs[0] == ids
        assert runtime.state.gpu_memory_used_gb[0] == pytest.approx(32.0)
        assert all(runtime.memory[j] == MemoryEstimate(20.0, "measured") for j in ids)
    finally:
        runtime.store.close()
