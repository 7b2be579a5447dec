"""The runtime measures each job's exclusive epoch time itself (eaco.runtime.baselines): epochs a
job ran alone on its GPUs set the baseline of its observed speeds, and of the epoch time EaCO
plans with; earlier jobs of the same workload give a new job its baseline; a default one gives
speeds H must not learn from. The real-process test runs a tiny job that declares no epoch time."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import pytest

from eaco.model.cluster import ClusterSpec
from eaco.model.job import Job
from eaco.profiler.epoch_report import EpochRecord, EpochReporter
from eaco.runtime.baselines import AloneTracker, EpochBaseline, choose_baseline, workload_key
from eaco.runtime.client import RuntimeClient
from eaco.runtime.daemon import ServeOptions, build_runtime
from eaco.runtime.engine import _Watch
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.spec import DEFAULT_EXPECTED_EPOCH_S, spec_from_yaml
from eaco.runtime.store import Store
from eaco.state.cluster_state import ClusterState
from runtime_helpers import InThreadDaemon, attach_this_process, kill_leftover_jobs, wait_for


def spec_text(name: str = "a", epochs: int = 4, steps: int = 40, extra: str = "") -> str:
    return (f"name: {name}\n"
            f"command: {sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs {epochs} --steps-per-epoch {steps}\n"
            f"epochs: {epochs}\njob_type: resnet18\nmemory_gb: 4\nenv: {{OMP_NUM_THREADS: '1'}}\n{extra}")


# ------------------------------------------------------------------ the rules
def _v100(*durations_s: float) -> list[tuple[float, str]]:
    return [(d, "v100") for d in durations_s]


def test_baseline_sources_best_first(env) -> None:  # type: ignore[no-untyped-def]
    kind = env.catalog.get("resnet18")
    declared = spec_from_yaml(spec_text(extra="expected_epoch_s: 7\n"))
    bare = spec_from_yaml(spec_text())
    assert choose_baseline(_v100(3.0, 1.0, 2.0), _v100(9.0), declared, kind, "v100") == EpochBaseline(2.0, "measured", 3, "v100")
    assert choose_baseline([], _v100(9.0, 5.0), declared, kind, "v100") == EpochBaseline(7.0, "history", 2, "v100")
    assert choose_baseline([], [], declared, kind, "a100") == EpochBaseline(7.0, "declared", 0, "a100")
    got = choose_baseline([], [], bare, kind, "v100")
    assert got == EpochBaseline(DEFAULT_EXPECTED_EPOCH_S, "default", 0, "v100") and not got.calibrated
    assert all(choose_baseline(o, h, declared, kind, "v100").calibrated for o, h in (([(1.0, "v100")], []), ([], [(1.0, "v100")]), ([], [])))
    # only the most recent epochs count
    assert choose_baseline(_v100(*[100.0] * 5 + [1.0] * 20), [], bare, kind, "v100").epoch_s == 1.0


def test_baseline_median_of_history_is_of_the_history(env) -> None:  # type: ignore[no-untyped-def]
    assert choose_baseline([], _v100(9.0, 5.0, 1.0), spec_from_yaml(spec_text()), env.catalog.get("resnet18"), "v100").epoch_s == 5.0


def test_baseline_on_several_gpu_types(env) -> None:  # type: ignore[no-untyped-def]
    """Alone epochs on another type than the latest count converted by the catalogue's relative
    speeds of the job's type; the baseline converts to any type the same way."""
    kind = env.catalog.get("resnet50")
    ratio = kind.speed_on("a100") / kind.speed_on("v100")  # an A100 epoch is this many times shorter
    assert ratio > 1.1
    spec = spec_from_yaml(spec_text().replace("resnet18", "resnet50"))
    got = choose_baseline([(10.0 * ratio, "v100"), (10.0 * ratio, "v100"), (11.0, "a100")], [], spec, kind, "v100")
    assert got.source == "measured" and got.gpu_type == "a100" and got.epochs == 3
    assert got.epoch_s == pytest.approx(10.0)  # median of 10, 10, 11 on the A100
    assert got.on("a100", kind) == got.epoch_s and got.on("v100", kind) == pytest.approx(10.0 * ratio)
    assert got.reference_s(kind) == pytest.approx(10.0 * ratio)  # the reference GPU is the V100


def test_workload_key_is_the_work_not_the_submission() -> None:
    base = spec_from_yaml(spec_text())
    assert workload_key(base, "v100") == workload_key(spec_from_yaml(spec_text(extra="deadline_s: 99\npriority: 1\n")), "v100")
    assert workload_key(base, "v100") != workload_key(base, "a100")
    assert workload_key(base, "v100") != workload_key(spec_from_yaml(spec_text(steps=41)), "v100")
    assert workload_key(base, "v100") != workload_key(spec_from_yaml(spec_text(extra="num_gpus: 2\n")), "v100")
    assert workload_key(base, "v100") != workload_key(spec_from_yaml(spec_text().replace("'1'", "'2'")), "v100")


def _job(job_id: int) -> Job:
    return Job(job_id=job_id, submit_time_s=0.0, num_gpus=1, job_type="resnet18", num_epochs=5,
               epoch_duration_s=10.0, memory_gb=4.0, gpu_util=0.3)


def test_alone_spans_err_on_the_side_of_sharing() -> None:
    state = ClusterState(ClusterSpec.homogeneous(1, 2, "v100"))
    tracker = AloneTracker()
    state.place(_job(1), (0,))
    tracker.update(state, [1], changed_unix=0.0, now_unix=1.0)  # placed during the tick 0..1
    assert not tracker.was_alone(1, 0.5, 1.5)  # began before the span is known to have begun
    assert tracker.was_alone(1, 1.0, 2.5)
    state.place(_job(2), (0,))
    tracker.update(state, [1, 2], changed_unix=3.0, now_unix=4.0)  # job 2 joined during 3..4
    assert tracker.was_alone(1, 1.5, 3.0) and not tracker.was_alone(1, 2.5, 3.5)
    assert not tracker.was_alone(2, 3.5, 5.0) and not tracker.was_alone(1, 4.0, 5.0)
    state.remove(2)
    tracker.update(state, [1], changed_unix=5.0, now_unix=6.0)
    assert not tracker.was_alone(1, 5.5, 7.0) and tracker.was_alone(1, 6.0, 7.0)
    assert tracker.was_alone(1, 1.5, 2.5)  # the earlier span is kept
    # a job on another GPU of the node does not share its GPU: still alone
    state.place(_job(3), (1,))
    tracker.update(state, [1, 3], changed_unix=8.0, now_unix=9.0)
    assert tracker.was_alone(1, 6.0, 10.0) and tracker.was_alone(3, 9.0, 10.0)
    # a job not running (queued, stopping) is not alone, whatever the state says
    tracker.update(state, [3], changed_unix=11.0, now_unix=12.0)
    assert not tracker.was_alone(1, 11.5, 13.0) and tracker.was_alone(1, 9.0, 11.0)
    tracker.forget(1)
    assert not tracker.was_alone(1, 9.0, 11.0)


def test_store_keeps_alone_epochs_per_job_and_per_workload(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    for i, (job, key, d) in enumerate([(1, "k", 1.0), (1, "k", 2.0), (2, "k", 3.0), (3, "other", 9.0), (1, "k", 4.0)]):
        store.add_exclusive_epoch(job, key, i, d, 100.0 + i, "a100" if d == 4.0 else "v100")
    assert store.exclusive_epochs(1, 10) == [*_v100(1.0, 2.0), (4.0, "a100")] and store.exclusive_epochs(1, 2) == [(2.0, "v100"), (4.0, "a100")]
    assert store.workload_exclusive_epochs("k", 10) == [*_v100(1.0, 2.0, 3.0), (4.0, "a100")]
    assert store.workload_exclusive_epochs("k", 10, except_job=1) == _v100(3.0)
    assert store.exclusive_epochs_by_job(2) == {1: [(2.0, "v100"), (4.0, "a100")], 2: _v100(3.0), 3: _v100(9.0)}
    store.close()


# ---------------------------------------------------- the engine, step by step
def _write_epoch(path: Path, epoch: int, duration_s: float, end_unix: float) -> None:
    reporter = EpochReporter.to_file("a", path)
    reporter.epoch(EpochRecord("a", epoch, duration_s, 10, 640, 640 / duration_s, end_unix))
    reporter.close()


def test_engine_measures_alone_epochs_and_observes_speeds_against_them(tmp_path: Path) -> None:
    """A job that declares no epoch time (default 60 s) asks for its whole GPU until it has
    measured one; it runs 2 s epochs alone: the baseline moves to what it measured (the attempt's
    first epoch left out), the job EaCO sees follows and asks for its declared memory again, and
    a co-located epoch of 4 s is a calibrated speed of 0.5 (not 60 / 4)."""
    runtime, _ = build_runtime(ServeOptions(tmp_path / "state", declared_gpus("1xv100"), "eaco"))
    try:
        store, layout = runtime.store, runtime.layout
        spec = spec_from_yaml(spec_text(epochs=8))
        a = store.submit("a", spec.model_dump_json())
        b = store.submit("b", spec_from_yaml(spec_text("b", extra="expected_epoch_s: 1\n")).model_dump_json())
        runtime._load_job(a)
        runtime._load_job(b)
        assert runtime.baselines[a] == EpochBaseline(DEFAULT_EXPECTED_EPOCH_S, "default", 0, "v100")
        assert runtime.jobs[a].epoch_duration_s == pytest.approx(DEFAULT_EXPECTED_EPOCH_S)  # resnet18: speed 1 on a V100
        assert runtime.unmeasured == {a} and runtime.jobs[a].exclusive and runtime.jobs[a].memory_gb == 4
        assert not runtime.jobs[b].exclusive and runtime.jobs[b].memory_gb == 4
        assert any(kind == "baseline" and "runs alone until" in detail for _, _, kind, detail in store.events(a))
        t0 = time.time() - 100.0
        runtime.state.place(runtime.jobs[a], (0,))
        assert runtime.state.gpu_memory_used_gb[0] == runtime.state.gpu_memory_gb[0]  # it holds the whole GPU
        runtime.status[a] = "running"
        runtime.placed[a] = (t0, 0)
        runtime.alone.update(runtime.state, [a], t0 - 0.1, t0)
        report = layout.report_file(a)
        report.parent.mkdir(parents=True, exist_ok=True)
        version = runtime.state.node_version[0]
        for epoch, d in enumerate((5.0, 2.0, 2.2, 1.8)):  # the first pays for start-up
            _write_epoch(report, epoch, d, t0 + 1.0 + 2.0 * (epoch + 1))
        runtime._read_reports(t0 + 10.0, only=a)
        assert store.exclusive_epochs(a, 10) == _v100(2.0, 2.2, 1.8)
        assert runtime.baselines[a] == EpochBaseline(2.0, "measured", 3, "v100")
        assert runtime.jobs[a].epoch_duration_s == pytest.approx(2.0)
        assert runtime.state.node_version[0] > version  # caches of the node's end time are dropped
        # measured: it may share its GPU now
        assert runtime.unmeasured == set() and runtime.jobs[a].memory_gb == 4 and not runtime.jobs[a].exclusive
        assert runtime.state.gpu_memory_used_gb[0] == pytest.approx(4.0)
        assert any(kind == "baseline" and "others may now share" in detail for _, _, kind, detail in store.events(a))
        assert any(kind == "baseline" and "was 60 s, default" in detail for _, j, kind, detail in store.events(a))
        # b joins a's GPU; a is watched for one epoch: 4 s next to b is half its measured speed
        t1 = t0 + 20.0
        runtime.state.place(runtime.jobs[b], (0,))
        runtime.status[b] = "running"
        runtime.placed[b] = (t1, 0)
        runtime.alone.update(runtime.state, [a, b], t1 - 0.1, t1)
        runtime.watches[a] = _Watch(t1, 1)
        _write_epoch(report, 4, 4.0, t1 + 4.5)  # not alone: no new baseline epoch
        runtime._read_reports(t1 + 5.0, only=a)
        assert store.exclusive_epochs(a, 10) == _v100(2.0, 2.2, 1.8)
        (got,) = runtime.reports_pending
        assert got.job_id == a and got.observed_speed == pytest.approx(0.5) and got.speed_calibrated
        assert got.co_located_with == (b,)
        # a later job of the same workload starts from this one's measurements
        c = store.submit("a", spec.model_dump_json())
        runtime._load_job(c)
        assert runtime.baselines[c] == EpochBaseline(2.0, "history", 3, "v100")
        assert runtime.jobs[c].epoch_duration_s == pytest.approx(2.0)
    finally:
        runtime.store.close()


def test_a_default_baseline_gives_an_uncalibrated_speed(tmp_path: Path) -> None:
    # --share-unmeasured: jobs that know no epoch time share at once (their speeds mean nothing)
    runtime, _ = build_runtime(ServeOptions(tmp_path / "state", declared_gpus("1xv100"), "eaco", alone_first=False))
    try:
        a = runtime.store.submit("a", spec_from_yaml(spec_text()).model_dump_json())
        b = runtime.store.submit("b", spec_from_yaml(spec_text("b")).model_dump_json())
        for j in (a, b):
            runtime._load_job(j)
            runtime.state.place(runtime.jobs[j], (0,))
            runtime.status[j] = "running"
        t = time.time() - 50.0
        runtime.placed[a] = (t, 0)
        runtime.alone.update(runtime.state, [a, b], t - 0.1, t)
        runtime.watches[a] = _Watch(t, 1)
        report = runtime.layout.report_file(a)
        report.parent.mkdir(parents=True, exist_ok=True)
        _write_epoch(report, 0, 3.0, t + 4.0)
        runtime._read_reports(t + 5.0, only=a)
        (got,) = runtime.reports_pending
        assert got.observed_speed == pytest.approx(DEFAULT_EXPECTED_EPOCH_S / 3.0) and not got.speed_calibrated
    finally:
        runtime.store.close()


@pytest.mark.parametrize("alone_first", [True, False])
def test_a_job_with_no_known_epoch_time_is_not_co_located_until_measured(tmp_path: Path, alone_first: bool) -> None:
    """EaCO, one V100 running a job that declares its epoch time: a job that declares none waits
    for a GPU of its own (--alone-first, the default) or joins the busy one (--share-unmeasured)."""
    from eaco.policies.decisions import Place
    from eaco.policies.view import SchedulerView

    runtime, _ = build_runtime(ServeOptions(tmp_path / "state", declared_gpus("1xv100"), "eaco", alone_first=alone_first))
    try:
        b = runtime.store.submit("b", spec_from_yaml(spec_text("b", extra="expected_epoch_s: 1\n")).model_dump_json())
        a = runtime.store.submit("a", spec_from_yaml(spec_text("a")).model_dump_json())
        runtime._load_job(b)
        runtime._load_job(a)
        runtime.state.place(runtime.jobs[b], (0,))
        runtime.status[b] = "running"
        runtime.status[a] = "queued"
        view = SchedulerView(runtime.now_s(), runtime.state, runtime._queue(), runtime.jobs, runtime._progress, [], [])
        placed = [d for d in runtime.policy.schedule(view) if isinstance(d, Place)]
        assert placed == ([] if alone_first else [Place(a, (0,))])
    finally:
        runtime.store.close()


def test_recovery_keeps_jobs_that_already_share_a_gpu_sharing(tmp_path: Path) -> None:
    """A state folder where a job with no known epoch time already shares its GPU (run with
    --share-unmeasured, or by an older daemon): a daemon with --alone-first re-attaches both
    instead of refusing to put the whole-GPU job next to the other."""
    state = tmp_path / "state"
    first, _ = build_runtime(ServeOptions(state, declared_gpus("1xv100"), "eaco", alone_first=False))
    try:
        a = first.store.submit("a", spec_from_yaml(spec_text("a")).model_dump_json())
        b = first.store.submit("b", spec_from_yaml(spec_text("b")).model_dump_json())
        for j in (a, b):
            attach_this_process(first.store, first.layout, j, (0,))  # their processes are alive
    finally:
        first.store.close()
    runtime, _ = build_runtime(ServeOptions(state, declared_gpus("1xv100"), "eaco"))
    try:
        runtime.recover()
        assert set(runtime.live) == {a, b} and runtime.state.gpu_jobs[0] == [a, b]
        assert runtime.unmeasured == set() and runtime.jobs[a].memory_gb == 4 and not runtime.jobs[a].exclusive
    finally:
        runtime.store.close()


# ------------------------------------------------------------ real processes
def test_a_real_job_alone_measures_its_epoch_time(state_dir: Path, tmp_path: Path) -> None:
    daemon = InThreadDaemon(ServeOptions(state_dir, declared_gpus("1xv100"), "fifo", tick_s=0.05))
    try:
        path = tmp_path / "a.yaml"
        path.write_text(spec_text(epochs=4, steps=60))
        a = RuntimeClient(state_dir).submit(path)

        def done() -> bool:
            store = Store(state_dir / "runtime.db")
            try:
                return store.job(a).state == "finished"
            finally:
                store.close()

        wait_for(done, 60, "the job to finish")
    finally:
        daemon.close()
        kill_leftover_jobs(state_dir)
    records = [json.loads(line) for line in (state_dir / "jobs" / str(a) / "report.jsonl").read_text().splitlines() if line.strip()]
    durations = {r["epoch"]: r["duration_s"] for r in records if r["event"] == "epoch"}
    store = Store(state_dir / "runtime.db")
    try:
        measured = store.exclusive_epochs(a, 100)
        events = store.events(a)
    finally:
        store.close()
    # every epoch but the first ran alone on the one GPU
    assert measured == _v100(durations[1], durations[2], durations[3])
    assert any(kind == "baseline" for _, _, kind, _ in events)
    summary = json.loads((state_dir / "summary.json").read_text())
    (job,) = summary["jobs"]
    assert job["exclusive_epoch_s"] == pytest.approx(statistics.median([durations[1], durations[2], durations[3]])) and job["alone_epochs_measured"] == 3
    assert job["exclusive_epoch_gpu_type"] == "v100"


def test_on_a_mixed_cluster_speeds_are_relative_to_the_baseline_on_the_gpu_type_they_ran_on(tmp_path: Path) -> None:
    """A Ray inventory of a V100 node and an A100 node (the engine is the same for either
    backend). A ResNet-50 measures 2 s epochs alone on the V100; it then shares the A100 with
    another job and takes 1.5 s an epoch there. Alone on an A100 it would take 2 s / ratio
    (the catalogue's A100 speed over V100 of its type), so its observed speed is that over 1.5 s."""
    from eaco.runtime.ray_inventory import RayInventory, RayNode
    inventory = RayInventory("v100", (0, 1), True, (RayNode("n0", 1, "v100"), RayNode("n1", 1, "a100")))
    runtime, _ = build_runtime(ServeOptions(tmp_path / "state", inventory, "eaco"))
    try:
        store, layout = runtime.store, runtime.layout
        kind = runtime.catalog.get("resnet50")
        ratio = kind.speed_on("a100") / kind.speed_on("v100")
        a = store.submit("a", spec_from_yaml(spec_text(epochs=20).replace("resnet18", "resnet50")).model_dump_json())
        b = store.submit("b", spec_from_yaml(spec_text("b", extra="expected_epoch_s: 1\n")).model_dump_json())
        runtime._load_job(a)
        runtime._load_job(b)
        t0 = time.time() - 100.0
        runtime.state.place(runtime.jobs[a], (0,))
        runtime.status[a] = "running"
        runtime.placed[a] = (t0, 0)
        runtime.alone.update(runtime.state, [a], t0 - 0.1, t0)
        report = layout.report_file(a)
        report.parent.mkdir(parents=True, exist_ok=True)
        for epoch, d in enumerate((5.0, 2.0, 2.0, 2.0)):
            _write_epoch(report, epoch, d, t0 + 1.0 + 2.0 * (epoch + 1))
        runtime._read_reports(t0 + 10.0, only=a)
        assert runtime.baselines[a] == EpochBaseline(2.0, "measured", 3, "v100")
        assert any("exclusive epoch 2 s on v100 measured alone" in detail for _, _, kind_, detail in store.events(a))
        # moved to the A100, next to b
        t1 = t0 + 20.0
        runtime.state.remove(a)
        runtime.state.place(runtime.jobs[a], (1,))
        runtime.placed[a] = (t1, 4)
        runtime.state.place(runtime.jobs[b], (1,))
        runtime.status[b] = "running"
        runtime.alone.update(runtime.state, [a, b], t1 - 0.1, t1)
        runtime.watches[a] = _Watch(t1, 1)
        _write_epoch(report, 4, 5.0, t1 + 5.0)  # the attempt's first epoch: not a baseline epoch either way
        _write_epoch(report, 5, 1.5, t1 + 6.5)
        runtime._read_reports(t1 + 7.0, only=a)
        assert store.exclusive_epochs(a, 10) == _v100(2.0, 2.0, 2.0)  # sharing: nothing new alone
        (got,) = runtime.reports_pending
        assert got.observed_speed == pytest.approx((2.0 / ratio) / ((5.0 + 1.5) / 2)) and got.speed_calibrated
    finally:
        runtime.store.close()
