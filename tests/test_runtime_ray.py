"""The runtime on a Ray cluster (ray.cluster_utils.Cluster: several raylets on this host, fake GPUs
declared as EaCO's per-GPU custom resources, tiny CPU jobs). One cluster for the whole module.

`import ray` failing fails this module: ray is a test dependency."""

from __future__ import annotations

import json
from dataclasses import replace
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import ray  # noqa: F401  (a hard requirement: no skip)
from ray.cluster_utils import Cluster

from eaco.runtime.backend import LaunchRequest
from eaco.runtime.procs import process_alive
from eaco.runtime.ray_attempt import RAY_ATTEMPT_FILE
from eaco.runtime.ray_backend import RayBackend
from eaco.runtime.ray_inventory import discover, node_resources
from eaco.runtime.ray_runtime import RayRuntime, build_ray_runtime
from eaco.runtime.spec import spec_from_yaml
from runtime_helpers import ddp_spec, kill_leftover_jobs, wait_for

OBJECT_STORE = 80 * 1024 * 1024
NODE_ARGS: dict[str, Any] = dict(num_cpus=1, object_store_memory=OBJECT_STORE, include_dashboard=False)
# node death is noticed in about 5 s instead of the default ~30 s. Not faster: a raylet of this
# 2-core host busy for a second must not be declared dead (that killed healthy jobs in the
# lost-node test); the backend suspects a node at once when an attempt there dies unasked.
SYSTEM_CONFIG = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 5}




@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    c = Cluster(initialize_head=True, head_node_args=dict(
        NODE_ARGS, resources=node_resources("n0", 2), _system_config=SYSTEM_CONFIG,
    ))
    try:
        n1 = c.add_node(**NODE_ARGS, resources=node_resources("n1", 2))
        ray.init(address=c.address, namespace="eaco", log_to_driver=False)
        c.wait_for_nodes()
        yield {"cluster": c, "n0": c.head_node, "n1": n1}
    finally:
        try:
            ray.shutdown()
        finally:
            c.shutdown()




@pytest.fixture()
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    kill_leftover_jobs(state, RAY_ATTEMPT_FILE)


def tiny_spec(name: str, epochs: int = 3, steps: int = 30, expected_epoch_s: float = 0.5, num_gpus: int = 1) -> str:
    return (
        f"name: {name}\n"
        f"command: {sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs {epochs} --steps-per-epoch {steps}\n"
        f"epochs: {epochs}\nexpected_epoch_s: {expected_epoch_s}\njob_type: resnet18\nnum_gpus: {num_gpus}\n"
        "env: {OMP_NUM_THREADS: '1'}\n"
    )


def submit(runtime: RayRuntime, text: str) -> int:
    spec = spec_from_yaml(text)
    return runtime.store.submit(spec.name, spec.model_dump_json())


def run_until(runtime: RayRuntime, cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runtime.tick()
        if cond():
            return
        time.sleep(runtime.tick_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}: {states(runtime)}")


def close_runtime(runtime: RayRuntime) -> None:
    """End of a test: the backend and store closed (attempts left running are the state folder's
    to reap); in node-local files mode the nodes' files of this state folder removed."""
    from eaco.runtime.ray_attempt import node_files_root

    runtime.backend.close()
    runtime.store.close()
    if runtime.backend.node_tag:
        shutil.rmtree(node_files_root(runtime.backend.node_tag), ignore_errors=True)


def states(runtime: RayRuntime) -> dict[int, str]:
    return {r.job_id: r.state for r in runtime.store.jobs()}


def node_id_of(node: Any) -> str:
    return str(node.node_id)


# ------------------------------------------------------------------ discovery
def test_discovery_builds_two_nodes_of_two_gpus(cluster: dict[str, Any]) -> None:
    inv = discover("v100")
    assert [(n.name, n.num_gpus) for n in inv.nodes] == [("n0", 2), ("n1", 2)]
    spec = inv.cluster()
    assert spec.num_nodes == 2 and spec.num_gpus == 4 and spec.gpu_node() == [0, 0, 1, 1]
    assert inv.device_indices == (0, 1, 2, 3) and inv.gpu_type == "v100"
    assert [inv.locate(g) for g in range(4)] == [(0, "n0", 0), (0, "n0", 1), (1, "n1", 0), (1, "n1", 1)]
    # a daemon restarted on the same state folder keeps its numbering, even if nodes sort otherwise
    again = discover("v100", known=[("n1", 2)])
    assert [n.name for n in again.nodes] == ["n1", "n0"]


# ------------------------------------------------------------------ GPU energy on Ray nodes
class NodeFakeGpus:
    """Stands in for NVML on a node (made there by the meter actor): constant power per device,
    an energy counter growing in real time, and the Ray node id in the device name."""

    def __init__(self, indices: list[int]) -> None:
        import ray as ray_on_node

        from eaco.profiler.telemetry import GpuDevice

        node_id = ray_on_node.get_runtime_context().get_node_id()
        self.devices = tuple(GpuDevice(i, f"fake V100 on {node_id}", 32510.0) for i in indices)
        self.t0 = time.monotonic()

    def read(self):  # type: ignore[no-untyped-def]
        from eaco.profiler.telemetry import GpuReading

        t = time.monotonic() - self.t0
        return tuple(GpuReading(d.index, 50.0 + 10 * d.index, 1e5 + (50.0 + 10 * d.index) * t, 25.0, 100.0) for d in self.devices)

    def close(self) -> None:
        pass


def fake_nvml(indices):  # type: ignore[no-untyped-def]
    return NodeFakeGpus(list(indices)), ""


def fake_nvml_on_a100_nodes(indices):  # type: ignore[no-untyped-def]
    """Fake GPUs on nodes marked as A100 nodes (named "t..." in these tests), none elsewhere. Runs
    in the node's meter actor, which holds a share of that node's first EaCO GPU resource."""
    import ray

    if any("_t" in name for name in ray.get_runtime_context().get_assigned_resources()):
        return NodeFakeGpus(list(indices)), ""
    return None, "no NVML on this node"


def test_a_meter_actor_on_each_node_reads_its_gpus(cluster: dict[str, Any]) -> None:
    from ray import cloudpickle

    from eaco.runtime.ray_meter import RayGpuSource, open_ray_gpu_meter

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fake travels to the nodes
    inv = discover("v100")
    # the default (NVML) finds nothing on these fake GPUs: every GPU stays modelled
    meter, why = open_ray_gpu_meter(inv)
    assert meter is None and "n0" in why and "n1" in why
    # a node this state folder knew that is gone now (GPU 0) is left out at once, not waited for
    inv = discover("v100", known=[("gone", 1)])
    t0 = time.monotonic()
    meter, why = open_ray_gpu_meter(inv, fake_nvml)
    assert meter is not None and why == "" and time.monotonic() - t0 < 20
    try:
        source = meter.source
        assert isinstance(source, RayGpuSource)
        assert source.unmeasured == {"gone": "not in the Ray cluster now"}
        # each node's devices were opened on that node, numbered as the policy's global GPUs
        assert [d.index for d in source.devices] == [1, 2, 3, 4]
        assert [d.name for d in source.devices] == [f"fake V100 on {node_id_of(cluster[n])}" for n in ("n0", "n0", "n1", "n1")]
        assert meter.read(0.0) == (None,) * 5
        time.sleep(0.5)
        got = meter.read(0.5)
        assert got[0] is None and all(r is not None and r.method == "counter" for r in got[1:])
        # local device 1 of each node draws 60 W, device 0 50 W
        assert [r.power_w for r in got[1:]] == [50.0, 60.0, 50.0, 60.0]  # type: ignore[union-attr]
        assert got[2].energy_j > got[1].energy_j > 0  # type: ignore[union-attr]
    finally:
        meter.close()


# ------------------------------------------------------------------ placement
def test_placement_runs_on_the_chosen_node_and_gpu(cluster: dict[str, Any], state_dir: Path) -> None:
    inv = discover("v100")
    backend = RayBackend(inv)
    try:
        handles = {}
        for gpu in (3, 0):  # n1 device 1, then n0 device 0
            attempt_dir = state_dir / f"g{gpu}" / "attempts" / "1"
            request = LaunchRequest(
                job_id=gpu, attempt=1,
                command=(sys.executable, "-c", "import os; print('saw', os.environ['CUDA_VISIBLE_DEVICES'], os.environ['EACO_RAY_NODE_ID'])"),
                working_dir=state_dir.parent, env={"OMP_NUM_THREADS": "1"}, device_indices=(gpu,),
                attempt_dir=attempt_dir, log_file=state_dir / f"g{gpu}" / "job.log",
            )
            handles[gpu] = (backend.launch(request), attempt_dir)
        for gpu, (handle, attempt_dir) in handles.items():
            ended = wait_for(lambda: backend.poll(handle, attempt_dir), 60, f"job on GPU {gpu}")
            assert ended.exit_code == 0
        for gpu, node, local in ((3, "n1", 1), (0, "n0", 0)):
            info = json.loads((state_dir / f"g{gpu}" / "attempts" / "1" / RAY_ATTEMPT_FILE).read_text())
            expected_id = node_id_of(cluster[node])
            assert (info["node"], info["node_id"], info["devices"]) == (node, expected_id, str(local))
            text = (state_dir / f"g{gpu}" / "job.log").read_text()
            assert f"saw {local} {expected_id}" in text, text
    finally:
        backend.close()


# ---------------------------------------------------------------- end to end
def test_four_jobs_under_eaco_on_two_nodes_colocate_and_finish(cluster: dict[str, Any], state_dir: Path) -> None:
    runtime, _ = build_ray_runtime(state_dir, policy_name="eaco", tick_s=0.1)
    try:
        ids = [submit(runtime, tiny_spec(f"job{i}", epochs=3, steps=30)) for i in range(4)]
        runtime.recover()
        run_until(runtime, lambda: all(s in ("finished", "failed") for s in states(runtime).values()), 75, "4 jobs")
        assert set(states(runtime).values()) == {"finished"}
        attempts = runtime.store.attempts()
        gpus_of = {a.job_id: a.gpus for a in attempts}
        shared = [g for g in range(4) if sum(1 for gs in gpus_of.values() if g in gs) >= 2]
        assert shared, f"no GPU was shared: {gpus_of}"
        assert sorted(gpus_of) == ids and all(a.outcome == "finished" for a in attempts)
        # each job ran where the store says: the node of its GPU, as seen by the attempt actor
        for a in attempts:
            info = json.loads((runtime.layout.attempt_dir(a.job_id, a.attempt) / RAY_ATTEMPT_FILE).read_text())
            _, node, local = runtime.inventory.locate(a.gpus[0])
            assert (info["node"], info["devices"]) == (node, str(local))
            assert info["node_id"] == node_id_of(cluster[node])
        runtime.write_summary()
        summary = json.loads(runtime.layout.summary_file.read_text())
        assert summary["counts"]["finished"] == 4 and summary["colocated_jobs"] >= 2
        assert summary["mean_jct_s"] > 0 and summary["energy"]["total_j"] > 0
        assert "ray 2 nodes" in summary["gpus"]
    finally:
        close_runtime(runtime)


class NodeProcessGpus(NodeFakeGpus):
    """Fake GPUs of one node (as :class:`NodeFakeGpus`) whose NVML process lists show the tiny
    training processes started on this node on their device: 1.5 GiB each, and a share of the
    kernel time of 3 parts for job ``big`` and 1 for the others. All nodes of the test cluster
    share this host: a process is this node's if its environment names this node's Ray id."""

    def read(self):  # type: ignore[no-untyped-def]
        import psutil
        import ray as ray_on_node

        here = ray_on_node.get_runtime_context().get_node_id()
        memory: dict[int, dict[int, float]] = {}
        weight: dict[int, dict[int, float]] = {}
        for proc in psutil.process_iter():
            try:
                cmd = proc.cmdline()
                if cmd[1:3] != ["-m", "eaco.runtime.examples.tiny_train"]:  # not the ray_worker running it
                    continue
                env = proc.environ()
            except psutil.Error:
                continue
            if env.get("EACO_RAY_NODE_ID") != here:
                continue
            device = int(env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0])
            memory.setdefault(device, {})[proc.pid] = 1536.0
            weight.setdefault(device, {})[proc.pid] = 3.0 if "big" in cmd else 1.0
        out = []
        for r in super().read():
            w = weight.get(r.index, {})
            total = sum(w.values())
            out.append(replace(r, process_memory_mib=memory.get(r.index, {}),
                               process_busy_share={pid: x / total for pid, x in w.items()} if total else {}))
        return tuple(out)


def fake_nvml_with_processes(indices):  # type: ignore[no-untyped-def]
    return NodeProcessGpus(list(indices)), ""


def test_nvml_process_figures_on_ray_nodes_count_for_their_jobs(cluster: dict[str, Any], state_dir: Path) -> None:
    """On Ray nodes with NVML the node's meter keys each process's memory and kernel time by
    session, the backend knows which attempt leads which session on which node: a job's memory is
    measured (1.5 GB, not its declared figure) and shared GPUs' energy is split by kernel time."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fake GPUs travel to the nodes
    runtime, _ = build_ray_runtime(state_dir, policy_name="eaco", tick_s=0.1, meter_source_factory=fake_nvml_with_processes)
    try:
        ids = [submit(runtime, tiny_spec(name, epochs=4, steps=60)) for name in ("big", "small1", "small2", "small3")]
        runtime.recover()
        run_until(runtime, lambda: all(s in ("finished", "failed") for s in states(runtime).values()), 90, "4 jobs")
        assert set(states(runtime).values()) == {"finished"}
        for job_id in ids:
            assert runtime.store.memory_peak_gb(job_id) == pytest.approx(1.5)
            events = [d for _, _, kind, d in runtime.store.events(job_id) if kind == "memory"]
            assert any("1.5 GB per GPU measured through NVML" in e for e in events), events
        assert any(a.colocated for a in runtime.store.attempts())
        assert runtime.store.energy_totals()["split_measured_gpu_s"] > 0.0
    finally:
        close_runtime(runtime)


# ------------------------------------------------------ jobs spanning nodes
def test_a_job_spanning_two_nodes_runs_a_rank_on_each_and_a_failing_rank_ends_it(cluster: dict[str, Any], state_dir: Path) -> None:
    """GPUs 1 (n0) and 2 (n1): one actor per node, each told its rank and where to meet (rank
    0's node and port); rank 1 fails, so the attempt ends with its code and rank 0 is stopped."""
    from eaco.runtime.ray_attempt import GANG_FILE, rank_dir

    inv = discover("v100")
    backend = RayBackend(inv)
    backend.gang_grace_s = 1.0  # rank 0 (sleeping) would never end cleanly: do not wait 10 s for it
    try:
        attempt_dir = state_dir / "gang" / "attempts" / "1"
        script = ("import os, sys, time; e = os.environ; "
                  "print('rank', e['EACO_NODE_RANK'], 'of', e['EACO_NUM_NODES'], 'at', e['MASTER_ADDR'], e['MASTER_PORT'], "
                  "'pet', e['PET_NNODES'], e['PET_NODE_RANK'], e['PET_NPROC_PER_NODE'], 'dev', e['CUDA_VISIBLE_DEVICES'], flush=True); "
                  "time.sleep(1.5) if e['EACO_NODE_RANK'] == '1' else time.sleep(120); sys.exit(3)")
        request = LaunchRequest(
            job_id=1, attempt=1, command=(sys.executable, "-c", script), working_dir=state_dir.parent,
            env={"OMP_NUM_THREADS": "1"}, device_indices=(1, 2), attempt_dir=attempt_dir, log_file=state_dir / "gang" / "job.log",
        )
        handle = backend.launch(request)
        assert json.loads((attempt_dir / GANG_FILE).read_text())["nodes"] == ["n0", "n1"]
        ended = wait_for(lambda: backend.poll(handle, attempt_dir), 60, "the failing rank to end the attempt")
        assert ended.exit_code == 3 and "rank 1 on node n1 exited with code 3" in ended.detail
        infos = [json.loads((rank_dir(attempt_dir, r) / RAY_ATTEMPT_FILE).read_text()) for r in (0, 1)]
        assert [(i["node"], i["devices"], i["rank"], i["ranks"]) for i in infos] == [("n0", "1", 0, 2), ("n1", "0", 1, 2)]
        assert infos[0]["master_port"] == infos[1]["master_port"] and infos[0]["master_addr"] == infos[1]["master_addr"]
        text = (state_dir / "gang" / "job.log").read_text()
        where = f"at {infos[0]['master_addr']} {infos[0]['master_port']}"
        for r, dev in ((0, 1), (1, 0)):
            assert f"rank {r} of 2 {where} pet 2 {r} 1 dev {dev}" in text, text
        # rank 0 (sleeping 120 s) did not outlive the attempt
        wait_for(lambda: not process_alive(infos[0]["pid"], infos[0]["start_ticks"]), 15, "rank 0 to be stopped")
    finally:
        backend.close()


def test_a_rank_failing_on_its_way_out_does_not_fail_a_job_whose_rank_0_ended_cleanly(cluster: dict[str, Any], state_dir: Path) -> None:
    """Rank 1 aborts (as a torn-down process group can make it at exit) just after or just
    before rank 0 exits 0: the attempt ends as rank 0 did."""
    inv = discover("v100")
    backend = RayBackend(inv)
    backend.gang_grace_s = 5.0
    try:
        for name, rank0_s, rank1_s in (("after", 1.0, 2.0), ("before", 2.5, 1.0)):
            attempt_dir = state_dir / name / "attempts" / "1"
            script = ("import os, time; r = os.environ['EACO_NODE_RANK']; "
                      f"time.sleep({rank0_s} if r == '0' else {rank1_s}); os._exit(0) if r == '0' else os.abort()")
            request = LaunchRequest(
                job_id=3, attempt=1, command=(sys.executable, "-c", script), working_dir=state_dir.parent,
                env={"OMP_NUM_THREADS": "1"}, device_indices=(1, 2), attempt_dir=attempt_dir, log_file=state_dir / name / "job.log",
            )
            handle = backend.launch(request)
            ended = wait_for(lambda: backend.poll(handle, attempt_dir), 60, f"the attempt ({name})")
            assert ended.exit_code == 0, (name, ended)
    finally:
        backend.close()


def test_a_new_backend_finds_every_rank_of_a_spanning_job_and_terminates_them(cluster: dict[str, Any], state_dir: Path) -> None:
    """A daemon restart: the next backend finds rank 0's and rank 1's actors by name (from
    gang.json), watches both, and a terminate reaches both processes."""
    from eaco.runtime.ray_attempt import rank_dir

    inv = discover("v100")
    first = RayBackend(inv)
    attempt_dir = state_dir / "gang2" / "attempts" / "1"
    request = LaunchRequest(
        job_id=2, attempt=1, command=(sys.executable, "-c", "import time; time.sleep(120)"), working_dir=state_dir.parent,
        env={"OMP_NUM_THREADS": "1"}, device_indices=(0, 3), attempt_dir=attempt_dir, log_file=state_dir / "gang2" / "job.log",
    )
    first.launch(request)
    files = [rank_dir(attempt_dir, r) / RAY_ATTEMPT_FILE for r in (0, 1)]
    wait_for(lambda: all(f.exists() for f in files), 60, "both ranks to start")
    first.close()  # the daemon goes; the detached actors stay
    second = RayBackend(inv)
    try:
        handle = second.find(attempt_dir)
        assert handle is not None and second.poll(handle, attempt_dir) is None
        entry = second._attempts[handle.key]
        assert [m.node for m in entry.ranks()] == ["n0", "n1"]
        infos = [json.loads(f.read_text()) for f in files]
        second.terminate(handle, grace_s=1.0)
        ended = wait_for(lambda: second.poll(handle, attempt_dir), 30, "the terminated attempt to end")
        assert ended.exit_code != 0
        wait_for(lambda: not any(process_alive(i["pid"], i["start_ticks"]) for i in infos), 15, "both ranks to be gone")
    finally:
        second.close()


def test_a_torchrun_job_across_two_nodes_stops_at_an_epoch_end_resumes_and_finishes(cluster: dict[str, Any], state_dir: Path) -> None:
    """A 4-GPU data-parallel job on two 2-GPU nodes, started by a plain ``torchrun`` (the runtime
    gives it nodes, node rank, processes per node and meeting point): rank 0 alone reports
    epochs; an undo stops every process after the same epoch (torchrun turns their code 75 into
    its 1; the job's "stopped" record says what happened); it is requeued, resumes from its
    checkpoint and finishes with each epoch reported once."""
    from eaco.runtime.ray_attempt import GANG_FILE, rank_dir

    runtime, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1)
    try:
        job = submit(runtime, ddp_spec("ddp", epochs=6, num_gpus=4))
        runtime.recover()
        run_until(runtime, lambda: runtime.store.job(job).epochs_done >= 1, 90, "the first epoch")
        assert runtime.store.job(job).gpus == (0, 1, 2, 3)
        runtime._undo(job)
        run_until(runtime, lambda: runtime.store.job(job).attempts >= 2, 60, "the stop and the relaunch")
        first = runtime.store.attempt(job, 1)
        assert first.outcome == "stopped" and first.exit_code != 0, first
        assert any(kind == "stopped" for _, _, kind, _ in runtime.store.events(job))
        attempt_dir = runtime.layout.attempt_dir(job, 1)
        assert json.loads((attempt_dir / GANG_FILE).read_text())["nodes"] == ["n0", "n1"]
        assert [json.loads((rank_dir(attempt_dir, r) / RAY_ATTEMPT_FILE).read_text())["node"] for r in (0, 1)] == ["n0", "n1"]
        run_until(runtime, lambda: states(runtime)[job] == "finished", 120, "the job to finish")
        records = [json.loads(line) for line in runtime.layout.report_file(job).read_text().splitlines()]
        epochs = [r["epoch"] for r in records if r["event"] == "epoch"]
        assert epochs == list(range(6)), epochs  # rank 0 only, none twice across the stop
        assert [r["event"] for r in records].count("stopped") == 1
        assert runtime.store.job(job).epochs_done == 6
        log_text = runtime.layout.log_file(job).read_text()
        assert "rank 0 of 2" in log_text and "rank 1 of 2" in log_text and "resumed at epoch" in log_text
    finally:
        close_runtime(runtime)


# ------------------------------------------------------------ daemon restart
def test_a_restarted_daemon_reattaches_and_cancels(cluster: dict[str, Any], state_dir: Path) -> None:
    first, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1)
    try:
        keep = submit(first, tiny_spec("keep", epochs=12, steps=300))
        stop = submit(first, tiny_spec("stop", epochs=200, steps=300))
        first.recover()
        run_until(first, lambda: all(first.store.job(j).epochs_done >= 1 for j in (keep, stop)), 60, "both jobs running")
    finally:
        first.backend.close()  # the daemon goes away; its detached attempt actors keep the jobs running
        first.store.close()
    warnings: list[str] = []  # (a handler of its own: the daemon's logging set-up may stop propagation)
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("eaco.runtime.ray").addHandler(handler)
    try:  # unmarked nodes stay what the state folder says
        second, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1, gpu_type="a100")
    finally:
        logging.getLogger("eaco.runtime.ray").removeHandler(handler)
    assert any("--ray-gpu-type a100 ignored" in w for w in warnings) and second.unmarked_gpu_type == "v100"
    try:
        assert second.inventory.gpu_type == "v100"
        second.recover()
        assert set(second.live) == {keep, stop}
        assert second.store.request_cancel(stop) == "running"
        run_until(second, lambda: states(second) == {keep: "finished", stop: "cancelled"}, 60, "finish and cancel")
        assert [a.outcome for a in second.store.attempts(keep)] == ["finished"]  # re-attached, never relaunched
        assert [a.outcome for a in second.store.attempts(stop)] == ["cancelled"]
        assert any(kind == "recover" and "watching it again" in detail for _, _, kind, detail in second.store.events(keep))
    finally:
        close_runtime(second)


# ------------------------------------------------------------------ lost node
def test_a_lost_node_requeues_its_jobs_and_they_finish_elsewhere(cluster: dict[str, Any], state_dir: Path) -> None:
    c: Cluster = cluster["cluster"]
    # "a1" sorts before n0 and n1: it is the policy's node 0, where FIFO places first
    doomed = c.add_node(**NODE_ARGS, resources=node_resources("a1", 2))
    c.wait_for_nodes()
    runtime, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1, node_check_s=0.2)
    try:
        assert [n.name for n in runtime.inventory.nodes] == ["a1", "n0", "n1"]
        ids = [submit(runtime, tiny_spec(f"long{i}", epochs=30, steps=300)) for i in range(2)]
        runtime.recover()
        # both start on a1 and report an epoch there
        run_until(runtime, lambda: all(runtime.store.job(j).epochs_done >= 1 for j in ids), 60, "first epochs on a1")
        assert {runtime.store.job(j).gpus for j in ids} == {(0,), (1,)}, (
            [(a.job_id, a.attempt, a.gpus, a.outcome, a.exit_code) for a in runtime.store.attempts()], runtime.store.events())
        pids = [json.loads((runtime.layout.attempt_dir(j, 1) / RAY_ATTEMPT_FILE).read_text())["pid"] for j in ids]
        c.remove_node(doomed, allow_graceful=False)
        run_until(runtime, lambda: all(runtime.store.job(j).attempts >= 2 for j in ids), 30, "requeue and relaunch")
        for j in ids:
            first = runtime.store.attempt(j, 1)
            assert first.outcome == "lost", first
            assert all(g >= 2 for g in runtime.store.attempt(j, 2).gpus), (  # on n0 or n1, not a1
                [(a.attempt, a.gpus, a.outcome) for a in runtime.store.attempts(j)], runtime.store.events(None)[-20:],
                [runtime.store.events(k) for k in ids])
        # the old processes did not survive their node (the worker kills its job when its actor dies)
        wait_for(lambda: not any(process_alive(p, None) for p in pids), 10, "jobs of the lost node to die")
        assert runtime.fenced == {0, 1}
        # speed up: the jobs resume from their checkpoints; let them finish
        run_until(runtime, lambda: all(runtime.store.job(j).state == "finished" for j in ids), 120, "requeued jobs to finish")
        for j in ids:
            info = json.loads((runtime.layout.attempt_dir(j, 2) / RAY_ATTEMPT_FILE).read_text())
            assert info["node"] in ("n0", "n1")
            assert "resumed from" in runtime.layout.log_file(j).read_text()
    finally:
        close_runtime(runtime)


# ------------------------------------------------------- node-local files
def test_node_local_files_mode_needs_no_shared_state_folder(cluster: dict[str, Any], state_dir: Path) -> None:
    """--ray-files node: the jobs write their reports, logs and exit codes on their node; the
    daemon copies reports and logs through Ray, and an undo's stop request goes through the actor."""
    from eaco.runtime.control import EXIT_STOPPED
    from eaco.runtime.ray_attempt import node_files_root
    from eaco.runtime.ray_backend import PULL_FILE

    runtime, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1, shared_files=False)
    try:
        ids = [submit(runtime, tiny_spec(f"nf{i}", epochs=3, steps=30)) for i in range(2)]
        runtime.recover()
        run_until(runtime, lambda: all(s in ("finished", "failed") for s in states(runtime).values()), 75, "2 jobs")
        assert set(states(runtime).values()) == {"finished"}
        tag = runtime.backend.node_tag
        assert tag is not None
        for job_id in ids:
            # every epoch reached the engine, and the log is here, copied from the node
            assert runtime.store.job(job_id).epochs_done == 3
            assert "epoch 2 loss" in runtime.layout.log_file(job_id).read_text()
            assert len(runtime.layout.report_file(job_id).read_text().splitlines()) >= 3
            attempt_dir = runtime.layout.attempt_dir(job_id, 1)
            assert not (attempt_dir / "exit.json").exists() and (attempt_dir / PULL_FILE).exists()
            node = json.loads((attempt_dir / RAY_ATTEMPT_FILE).read_text())["node"]
            assert node in ("n0", "n1")
            on_node = node_files_root(tag, node) / "jobs" / str(job_id) / "attempts" / "1"
            assert (on_node / "exit.json").exists() and (on_node / "report.jsonl").read_bytes() == runtime.layout.report_file(job_id).read_bytes()
        # a stop request reaches a job that cannot see the daemon's stop file
        long_job = submit(runtime, tiny_spec("nf-long", epochs=50, steps=300))
        run_until(runtime, lambda: runtime.store.job(long_job).epochs_done >= 1, 60, "the long job's first epoch")
        runtime._undo(long_job)
        run_until(runtime, lambda: states(runtime)[long_job] != "stopping", 60, "the long job to stop at an epoch end")
        stopped = runtime.store.attempts(long_job)[0]
        assert stopped.exit_code == EXIT_STOPPED and runtime.store.job(long_job).epochs_done < 50
        runtime.store.request_cancel(long_job)
        run_until(runtime, lambda: states(runtime)[long_job] == "cancelled", 60, "the long job cancelled")
    finally:
        close_runtime(runtime)


def test_node_local_files_mode_runs_a_job_spanning_nodes_and_stops_every_rank(cluster: dict[str, Any], state_dir: Path) -> None:
    """--ray-files node with a job on both nodes, one process per node (no torchrun): rank 0's
    reports and both ranks' logs are copied to the daemon, the undo's stop request goes to the ranks' nodes through
    their actors and both stop, and the job resumes from rank 0's checkpoint (read on its node,
    broadcast to rank 1) and finishes with each epoch reported once."""
    runtime, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1, shared_files=False)
    try:
        job = submit(runtime, ddp_spec("ddp-nf", epochs=5, num_gpus=4, torchrun=False))
        runtime.recover()
        run_until(runtime, lambda: runtime.store.job(job).epochs_done >= 1, 90, "the first epoch")
        runtime._undo(job)
        run_until(runtime, lambda: runtime.store.job(job).attempts >= 2, 60, "the stop and the relaunch")
        assert runtime.store.attempt(job, 1).outcome == "stopped"
        run_until(runtime, lambda: states(runtime)[job] == "finished", 120, "the job to finish")
        records = [json.loads(line) for line in runtime.layout.report_file(job).read_text().splitlines()]
        assert [r["epoch"] for r in records if r["event"] == "epoch"] == list(range(5))
        text = runtime.layout.log_file(job).read_text()
        assert "rank 0: resumed at epoch" in text
        # rank 1's log lines came from its node too, whole lines among rank 0's
        assert "rank 1: resumed at epoch" in text and "rank 1/2 epoch 4 loss" in text
        assert all(line.startswith(("rank 0", "rank 1", "===")) or "epoch" not in line for line in text.splitlines())
    finally:
        close_runtime(runtime)


def test_node_local_files_mode_relays_the_checkpoint_to_the_next_node(cluster: dict[str, Any], state_dir: Path) -> None:
    """--ray-files node: a job undone on one node resumes on the other from its checkpoint: the
    daemon copied the node's checkpoint folder when the attempt stopped (and every 0.5 s before)
    and installed it on the other node before the job started there. The nodes' folders are
    distinct although one host holds both. FIFO places ``mover`` beside ``other``; a 2-GPU job
    fills the other node; an urgent (priority) job takes the GPU the undo frees, so ``mover``
    waits for the 2-GPU job to finish and resumes on that node."""
    from eaco.runtime.checkpoint_relay import marker_seq, read_marker
    from eaco.runtime.ray_attempt import node_files_root

    runtime, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1, shared_files=False, checkpoint_sync_s=0.5)

    def node_of(job_id: int, attempt: int) -> str:  # (the daemon's copy of ray.json comes as the loop runs)
        path = runtime.layout.attempt_dir(job_id, attempt) / RAY_ATTEMPT_FILE
        run_until(runtime, path.exists, 30, f"job {job_id}'s attempt {attempt} ray.json")
        return str(json.loads(path.read_text())["node"])

    try:
        wide = submit(runtime, tiny_spec("wide", epochs=16, steps=300, num_gpus=2))
        # mover has epochs enough that the stop (through its node's actor) surely comes before its
        # last one on a loaded host; the long jobs outlast the test (they are cancelled at its end)
        mover = submit(runtime, tiny_spec("mover", epochs=24, steps=300))
        other = submit(runtime, tiny_spec("other", epochs=4000, steps=300))
        runtime.recover()
        run_until(runtime, lambda: set(states(runtime).values()) == {"running"}, 30, "three running")
        first = node_of(mover, 1)
        assert node_of(other, 1) == first and node_of(wide, 1) != first
        run_until(runtime, lambda: runtime.store.job(mover).epochs_done >= 2, 60, "mover's second epoch")
        urgent = submit(runtime, tiny_spec("urgent", epochs=4000, steps=300) + "priority: 1\n")
        runtime._undo(mover)
        run_until(runtime, lambda: runtime.store.job(mover).attempts >= 2, 90, "mover relaunched once the 2-GPU job finished")
        assert runtime.store.attempt(mover, 1).outcome == "stopped" and states(runtime)[wide] == "finished"
        second = node_of(mover, 2)
        assert second != first and node_of(urgent, 1) == first
        run_until(runtime, lambda: states(runtime)[mover] == "finished", 60, "mover to finish")
        records = [json.loads(line) for line in runtime.layout.report_file(mover).read_text().splitlines()]
        assert [r["epoch"] for r in records if r["event"] == "epoch"] == list(range(24))  # none run twice
        text = runtime.layout.log_file(mover).read_text()
        assert "checkpoint copied from the daemon: 1 file(s)" in text and f"on node {first})" in text
        resumed = [line for line in text.splitlines() if line.startswith("resumed from")]
        assert len(resumed) == 1 and int(resumed[0].rsplit(" ", 1)[1]) >= 3
        # the daemon's snapshot: the last copy, from the second node once the job finished there
        snapshot = runtime.layout.default_checkpoint_dir(mover)
        record = read_marker(snapshot)
        assert record["node"] == second and record["attempt"] == 2 and (snapshot / "mover.pt").exists()
        on_second = node_files_root(runtime.backend.node_tag, second) / snapshot.relative_to(runtime.layout.root)
        assert marker_seq(on_second) == record["seq"] and (on_second / "mover.pt").read_bytes() == (snapshot / "mover.pt").read_bytes()
        for job_id in (other, urgent):
            runtime.store.request_cancel(job_id)
        run_until(runtime, lambda: states(runtime)[other] == states(runtime)[urgent] == "cancelled", 60, "the long jobs cancelled")
    finally:
        close_runtime(runtime)


# ------------------------------------------------------------- a node joins
def test_a_node_joining_the_cluster_is_used_at_once(cluster: dict[str, Any], state_dir: Path) -> None:
    """Both nodes busy with 2-GPU jobs, a third waits. An A100 node of one GPU joins: it is taken
    (GPU 4) but too small for the waiting job; a node marked with a GPU type the model does not
    know is refused; node n2 joins (GPUs 5 and 6) and the waiting job runs there. A job that asks
    for an A100 then runs on the A100 node: one runtime drives nodes of several GPU types."""
    from eaco.runtime.ray_inventory import NODES_FILE, TYPE_PREFIX

    c: Cluster = cluster["cluster"]
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fake GPUs travel to the nodes
    # no GPU of n0 and n1 can be read: the daemon keeps a meter for nodes that join later
    runtime, _ = build_ray_runtime(state_dir, policy_name="fifo", tick_s=0.1, node_check_s=0.2,
                                   meter_source_factory=fake_nvml_on_a100_nodes)
    runtime.join_check_s = 0.2
    meter = runtime.accountant.gpu_meter
    assert meter is not None and not meter.measures_any and runtime.accountant.totals.gpu_source == "modelled"
    joined: list[Any] = []
    try:
        assert [n.name for n in runtime.inventory.nodes] == ["n0", "n1"]
        ids = [submit(runtime, tiny_spec(f"wide{i}", epochs=400, steps=300, num_gpus=2)) for i in range(3)]
        runtime.recover()
        run_until(runtime, lambda: sorted(states(runtime).values()) == ["queued", "running", "running"], 30, "two running")
        a100 = c.add_node(**NODE_ARGS, resources=node_resources("t9", 1, "a100"))
        joined.append(a100)
        run_until(runtime, lambda: len(runtime.inventory.nodes) == 3, 30, "the A100 node taken")
        assert runtime.state.gpu_type[4] == "a100" and runtime.inventory.gpu_type == "v100"
        assert any(kind == "node-joined" and "node t9: 1 x a100, GPUs 4-4" in detail for _, _, kind, detail in runtime.store.events())
        # the joined node's GPU is measured, once its meter actor answers (the loop never waits for
        # it); the energy is then partly measured
        run_until(runtime, lambda: len(runtime.accountant.totals.gpu_measured) == 5 and runtime.accountant.totals.gpu_measured[4] is not None,
                  30, "GPU 4 measured")
        assert meter.names[4].startswith("fake V100 on") and not any(runtime.accountant.totals.gpu_measured[:4])
        assert runtime.accountant.totals.gpu_source == "measured (NVML)" and runtime.take_snapshot().gpu_energy_source == "measured"
        assert 0.0 < runtime.accountant.totals.measured_share < 1.0
        unknown = c.add_node(**NODE_ARGS, resources={**node_resources("u9", 1), TYPE_PREFIX + "tpu9": 1.0})
        joined.append(unknown)
        run_until(runtime, lambda: any(kind == "node-refused" and "tpu9" in detail for _, _, kind, detail in runtime.store.events()),
                  30, "the node of an unknown type refused")
        n2 = c.add_node(**NODE_ARGS, resources=node_resources("n2", 2))
        joined.append(n2)
        waiting = next(j for j, st in states(runtime).items() if st == "queued")
        run_until(runtime, lambda: states(runtime)[waiting] == "running", 60, "the waiting job on the new node")
        assert [n.name for n in runtime.inventory.nodes] == ["n0", "n1", "t9", "n2"]
        assert runtime.state.spec.num_gpus == 7 and runtime.store.job(waiting).gpus == (5, 6)
        assert json.loads((state_dir / NODES_FILE).read_text())["nodes"] == [
            ["n0", 2, "v100"], ["n1", 2, "v100"], ["t9", 1, "a100"], ["n2", 2, "v100"]]
        assert any(kind == "node-joined" and "node n2: 2 x v100, GPUs 5-6" in detail for _, _, kind, detail in runtime.store.events())
        info = wait_for(lambda: json.loads(p.read_text()) if (p := runtime.layout.attempt_dir(waiting, 1) / RAY_ATTEMPT_FILE).exists() else None,
                        30, "the attempt's ray.json")
        assert info["node"] == "n2" and info["node_id"] == node_id_of(n2)
        on_a100 = submit(runtime, tiny_spec("a100job", epochs=400, steps=300) + "gpu_type: a100\n")
        ids.append(on_a100)
        run_until(runtime, lambda: states(runtime)[on_a100] == "running", 30, "the A100 job running")
        assert runtime.store.job(on_a100).gpus == (4,)
        info = wait_for(lambda: json.loads(p.read_text()) if (p := runtime.layout.attempt_dir(on_a100, 1) / RAY_ATTEMPT_FILE).exists() else None,
                        30, "the A100 attempt's ray.json")
        assert info["node"] == "t9" and info["node_id"] == node_id_of(a100)
        for job_id in ids:
            runtime.store.request_cancel(job_id)
        run_until(runtime, lambda: all(st == "cancelled" for st in states(runtime).values()), 60, "all cancelled")
    finally:
        if meter is not None:
            meter.close()
        runtime.backend.close()
        runtime.store.close()
        for node in joined:
            c.remove_node(node)
