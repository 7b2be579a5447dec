"""Property tests: invariants that hold for any workload under every baseline policy."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eaco.model.cluster import ClusterSpec
from eaco.model.job import Job
from eaco.policies.registry import BASELINES, make_policy
from eaco.sim.engine import SimulationOptions, Simulator
from eaco.sim.metrics import compute_metrics
from eaco.setup import load_environment
from eaco.workloads.base import Workload

ENV = load_environment()

CLUSTER = ClusterSpec.homogeneous(2, 4, "v100")
TYPES = ("alexnet", "resnet18", "resnet50", "vgg16", "ResNet-18 (batch size 64)", "Transformer (batch size 32)",
         "LM (batch size 20)", "Recommendation (batch size 2048)", "A3C", "CycleGAN")


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 14))
    jobs = []
    t = 0.0
    for i in range(n):
        if i:
            t += draw(st.sampled_from([0.0, 0.0, 30.0, 200.0, 1000.0]))
        jobs.append(
            (
                t,
                draw(st.sampled_from([1, 1, 1, 2, 4, 8])),
                draw(st.sampled_from(TYPES)),
                draw(st.integers(1, 4)),
                draw(st.sampled_from([50.0, 120.0, 600.0])),
            )
        )
    return jobs


def _build(env, raw):
    jobs = []
    for i, (t, g, jt, epochs, epoch_s) in enumerate(raw):
        spec = env.catalog.get(jt)
        jobs.append(Job(i, t, g, jt, epochs, epoch_s, spec.memory_gb, spec.util_on("v100")))
    return Workload("prop", tuple(jobs), "hypothesis")


def _run(env, wl, policy):
    sim = Simulator(CLUSTER, wl, make_policy(policy, env.policy_context()), env.truth, env.energy,
                    SimulationOptions(check_invariants=True))
    return sim.run()


@settings(max_examples=25, deadline=None)
@given(raw=workloads(), policy=st.sampled_from(BASELINES))
def test_invariants_hold(raw, policy):
    env = ENV
    wl = _build(env, raw)
    res = _run(env, wl, policy)  # check_invariants: memory never exceeded, bookkeeping consistent
    # every job finishes exactly once, after it was submitted, having run at least its exclusive time
    assert len(res.jobs) == len(wl.jobs)
    for rec, job in zip(res.jobs, wl.jobs):
        assert math.isfinite(rec.finish_s) and rec.finish_s >= job.submit_time_s
        assert rec.first_start_s >= job.submit_time_s
        assert rec.run_time_s >= job.exclusive_duration_s * (1 - 1e-9) - 1e-6 or rec.colocated_time_s > 0
    # work is conserved: at each completion the integrated progress equals the job's epochs
    assert res.max_work_residual < 1e-6
    # energy never below the floor (every node asleep all the time), never above every node at max
    e = res.energy
    floor_w = CLUSTER.num_nodes * env.energy.host.low_power_w
    v100 = env.energy.gpu("v100")
    max_node_w = env.energy.host.max_power_w + env.energy.node_baseline_w + 4 * v100.max_power_w
    assert e.total_j >= floor_w * e.duration_s * (1 - 1e-9)
    assert e.total_j <= CLUSTER.num_nodes * max_node_w * e.duration_s * (1 + 1e-9)
    assert math.isclose(e.total_j, e.gpu_busy_j + e.gpu_idle_j + e.host_j + e.sleep_j, rel_tol=1e-9)
    assert e.attributed_to_jobs_j <= e.total_j * (1 + 1e-9)
    # the hourly energy (what prices and carbon intensities apply to) adds up to the total
    assert math.isclose(sum(res.timeseries.energy_per_hour_j), e.total_j, rel_tol=1e-9, abs_tol=1e-6)
    # exclusive FIFO never co-locates
    if policy == "fifo":
        assert all(r.colocated_time_s == 0 for r in res.jobs)


@settings(max_examples=8, deadline=None)
@given(raw=workloads(), policy=st.sampled_from(BASELINES))
def test_same_input_same_result(raw, policy):
    env = ENV
    wl = _build(env, raw)
    a = compute_metrics(_run(env, wl, policy)).to_dict()
    b = compute_metrics(_run(env, wl, policy)).to_dict()
    for d in (a, b):
        d.pop("wall_s"), d.pop("events_per_s")
    assert a == b


def test_generated_workload_is_deterministic_for_a_seed(env):
    from eaco.setup import load_named_workload

    w1 = load_named_workload("generated", env.catalog, seed=7, jobs=60, rate_per_h=4.0)
    w2 = load_named_workload("generated", env.catalog, seed=7, jobs=60, rate_per_h=4.0)
    w3 = load_named_workload("generated", env.catalog, seed=8, jobs=60, rate_per_h=4.0)
    assert w1.jobs == w2.jobs and w1.jobs != w3.jobs
    cluster = ClusterSpec.homogeneous(4, 8, "v100")
    runs = []
    for wl in (w1, w2):
        sim = Simulator(cluster, wl, make_policy("gandiva", env.policy_context()), env.truth, env.energy)
        runs.append([(r.finish_s, r.energy_j) for r in sim.run().jobs])
    assert runs[0] == runs[1]



# K80s (12 GB) listed first, then A100s (80 GB) and V100s (32 GB): jobs of any type and of one,
# some needing more memory than a K80 has, some exclusive (Job.exclusive: they never share a GPU)
MIXED = ClusterSpec.parse("1x4xk80,1x2xa100,1x4xv100")


@st.composite
def mixed_workloads(draw):
    raw = draw(workloads())
    return [(*job, draw(st.sampled_from([None, None, "k80", "a100", "v100"])), draw(st.sampled_from([None, 20.0, 40.0])),
             draw(st.sampled_from([False, False, True]))) for job in raw]


@settings(max_examples=25, deadline=None)
@given(raw=mixed_workloads(), policy=st.sampled_from((*BASELINES, "eaco")))
def test_invariants_hold_on_a_mixed_cluster(raw, policy):
    jobs = _mixed_jobs(raw)
    wl = Workload("prop-mixed", tuple(jobs), "hypothesis")
    sim = Simulator(MIXED, wl, make_policy(policy, ENV.policy_context()), ENV.truth, ENV.energy,
                    SimulationOptions(check_invariants=True))
    res = sim.run()  # check_invariants: memory never exceeded, bookkeeping consistent
    assert len(res.jobs) == len(jobs)
    assert res.max_work_residual < 1e-6
    assert all(math.isfinite(r.finish_s) for r in res.jobs)
    assert all(r.colocated_time_s == 0 for r, job in zip(res.jobs, jobs) if job.exclusive)  # nobody shared with them
    # the GPU time by type adds up to the jobs' GPU time, and a job ran only on types it may use
    held_h = sum(r.run_time_s * r.num_gpus for r in res.jobs) / 3600
    assert sum(res.job_gpu_hours_by_type.values()) == pytest.approx(held_h, rel=1e-9, abs=1e-9)
    for r, job in zip(res.jobs, jobs):
        assert job.gpu_type is None or set(r.gpu_types.split("+")) == {job.gpu_type}


def _mixed_jobs(raw):
    jobs = []
    for i, (t, g, jt, epochs, epoch_s, gpu_type, memory_gb, exclusive) in enumerate(raw):
        spec = ENV.catalog.get(jt)
        g = min(g, 2 if gpu_type == "a100" else 4)
        if gpu_type == "k80" or (memory_gb == 40.0 and (gpu_type == "v100" or g > 2)):
            memory_gb = None  # a job must fit some node of the cluster (40 GB: only the A100s)
        jobs.append(Job(i, t, g, jt, epochs, epoch_s, memory_gb or spec.memory_gb, spec.util_on("v100"), gpu_type=gpu_type,
                        deadline_s=t + 3 * epochs * epoch_s, exclusive=exclusive))
    return jobs


@settings(max_examples=15, deadline=None)
@given(raw=mixed_workloads(), policy=st.sampled_from((*BASELINES, "eaco")))
def test_the_order_the_cluster_is_written_in_changes_nothing(raw, policy):
    # the same nodes listed K80s first or V100s first: every job runs where and as long as before
    # (a job of any type goes to the type where it runs fastest, not to the first type listed)
    wl = Workload("prop-mixed", tuple(_mixed_jobs(raw)), "hypothesis")
    runs = []
    for cluster in (MIXED, ClusterSpec.parse("1x4xv100,1x2xa100,1x4xk80")):
        res = Simulator(cluster, wl, make_policy(policy, ENV.policy_context()), ENV.truth, ENV.energy).run()
        runs.append(([(r.first_start_s, r.finish_s, r.colocated_time_s, r.undos) for r in res.jobs], res.energy.total_j))
    assert runs[0][0] == runs[1][0]
    assert math.isclose(runs[0][1], runs[1][1], rel_tol=1e-9)
