"""Baseline policies on hand-built scenarios."""

import pytest

from eaco.model.cluster import ClusterSpec, NodeSpec
from eaco.model.job import Job
from eaco.policies.registry import make_policy
from eaco.sim.engine import SimulationOptions, Simulator
from eaco.workloads.base import Workload

GOOD = ("ResNet-18 (batch size 16)", "ResNet-18 (batch size 32)")  # Gavel V100 pair: throughput 2.0
BAD = ("Recommendation (batch size 512)", "ResNet-50 (batch size 16)")  # Gavel V100 pair: 0.38


def _jobs(env, specs):
    out = []
    for i, (t, gpus, jt, epochs, epoch_s) in enumerate(specs):
        spec = env.catalog.get(jt)
        out.append(Job(i, t, gpus, jt, epochs, epoch_s, spec.memory_gb, spec.util_on("v100")))
    return tuple(out)


def _run(env, policy, jobs, cluster):
    sim = Simulator(cluster, Workload("t", jobs, "hand-built"), make_policy(policy, env.policy_context()),
                    env.truth, env.energy, SimulationOptions(check_invariants=True))
    return {r.job_id: r for r in sim.run().jobs}, sim


def test_pairs_used_below_are_what_the_data_says(env):
    assert env.colocation.normalised_throughput(GOOD, "v100") > 1.5
    assert env.colocation.normalised_throughput(BAD, "v100") < 1.0


def test_fifo_blocks_behind_the_head(env):
    # one node of 4 GPUs: a 3-GPU job runs, a 4-GPU job waits; a 1-GPU job behind it waits too,
    # although one GPU is free all along (head-of-line blocking)
    jobs = _jobs(env, [(0, 3, "resnet50", 1, 100.0), (10, 4, "resnet50", 1, 100.0), (20, 1, "resnet18", 1, 10.0)])
    recs, _ = _run(env, "fifo", jobs, ClusterSpec.homogeneous(1, 4, "v100"))
    assert recs[1].first_start_s == pytest.approx(100.0)
    assert recs[2].first_start_s == pytest.approx(200.0)
    assert all(r.colocated_time_s == 0 for r in recs.values())
    # Gandiva backfills the small job onto the free GPU at once
    recs, _ = _run(env, "gandiva", jobs, ClusterSpec.homogeneous(1, 4, "v100"))
    assert recs[2].first_start_s == pytest.approx(20.0)


def test_fifo_consolidates_small_jobs_onto_one_node(env):
    jobs = _jobs(env, [(0, 1, "resnet18", 1, 100.0), (0, 1, "resnet18", 1, 100.0), (0, 2, "resnet18", 1, 100.0)])
    _, sim = _run(env, "fifo", jobs, ClusterSpec.homogeneous(3, 4, "v100"))
    assert sim.meter.active_integral == pytest.approx(100.0)  # one node active for 100 s


def test_fifo_packed_packs_a_good_pair_only_when_the_head_is_blocked(env):
    cluster = ClusterSpec.homogeneous(1, 1, "v100")
    jobs = _jobs(env, [(0, 1, GOOD[0], 2, 100.0), (10, 1, GOOD[1], 1, 100.0)])
    recs, _ = _run(env, "fifo-packed", jobs, cluster)
    assert recs[1].first_start_s == pytest.approx(10.0) and recs[1].colocated_time_s > 0
    jobs = _jobs(env, [(0, 1, BAD[0], 2, 100.0), (10, 1, BAD[1], 1, 100.0)])
    recs, _ = _run(env, "fifo-packed", jobs, cluster)
    assert recs[1].first_start_s == pytest.approx(200.0) and recs[1].colocated_time_s == 0
    # with a free GPU no packing happens at all
    jobs = _jobs(env, [(0, 1, GOOD[0], 2, 100.0), (10, 1, GOOD[1], 1, 100.0)])
    recs, _ = _run(env, "fifo-packed", jobs, ClusterSpec.homogeneous(1, 2, "v100"))
    assert all(r.colocated_time_s == 0 for r in recs.values())


def test_fifo_packed_needs_equal_gpu_counts(env):
    jobs = _jobs(env, [(0, 2, GOOD[0], 2, 100.0), (10, 1, GOOD[1], 1, 100.0)])
    recs, _ = _run(env, "fifo-packed", jobs, ClusterSpec.homogeneous(1, 2, "v100"))
    assert recs[1].first_start_s == pytest.approx(200.0)


def test_gandiva_keeps_a_good_pair_and_drops_a_bad_one(env):
    cluster = ClusterSpec.homogeneous(1, 1, "v100")
    jobs = _jobs(env, [(0, 1, GOOD[0], 3, 100.0), (10, 1, GOOD[1], 3, 100.0)])
    recs, sim = _run(env, "gandiva", jobs, cluster)
    assert sim.undos == 0 and recs[1].first_start_s == pytest.approx(10.0)
    jobs = _jobs(env, [(0, 1, BAD[0], 3, 100.0), (10, 1, BAD[1], 3, 100.0)])
    recs, sim = _run(env, "gandiva", jobs, cluster)
    assert sim.undos == 1
    assert recs[1].undos == 1 and recs[1].placements == 2  # requeued, ran again once the GPU freed up
    assert recs[0].undos == 0


@pytest.mark.parametrize("policy", ["fifo", "fifo-packed", "gandiva", "eaco"])
def test_a_job_goes_only_to_gpu_types_with_its_memory(env, policy):
    # a K80 node (12 GB) listed first and an A100 node (80 GB); two 40 GB jobs and a 5 GB one.
    # The 40 GB jobs must never take the K80 (such a placement used to fail the run); the 5 GB
    # one takes the K80 at once, the A100 being busy
    cluster = ClusterSpec((NodeSpec(0, "k80", 1), NodeSpec(1, "a100", 1)), name="mixed")
    jobs = (Job(0, 0.0, 1, "resnet18", 2, 100.0, 40.0, 0.5), Job(1, 1.0, 1, "resnet18", 2, 100.0, 5.0, 0.5),
            Job(2, 2.0, 1, "resnet18", 1, 100.0, 40.0, 0.5))
    recs, sim = _run(env, policy, jobs, cluster)
    assert set(recs) == {0, 1, 2}
    assert recs[0].first_start_s == 0.0 and recs[1].first_start_s == 1.0
    if policy == "fifo":  # exclusive: the second 40 GB job waits for the A100
        assert recs[2].first_start_s == pytest.approx(recs[0].finish_s)


@pytest.mark.parametrize("policy", ["fifo", "fifo-packed", "gandiva", "eaco"])
@pytest.mark.parametrize("k80_first", [True, False])
def test_a_job_of_any_type_takes_the_fastest_free_type(env, policy, k80_first):
    # one K80 node and one A100 node, written in either order: a ResNet-50 job that takes any
    # type runs on the A100 (catalogue speed 1.32 x V100 there, 0.14 on a K80), whichever node
    # the cluster lists first
    spec = env.catalog.get("ResNet-50 (batch size 128)")
    nodes = (NodeSpec(0, "k80", 1), NodeSpec(1, "a100", 1))
    if not k80_first:
        nodes = (NodeSpec(0, "a100", 1), NodeSpec(1, "k80", 1))
    jobs = _jobs(env, [(0, 1, spec.name, 2, 100.0)])
    recs, _ = _run(env, policy, jobs, ClusterSpec(nodes, name="mixed"))
    assert recs[0].run_time_s == pytest.approx(200.0 / spec.speed_on("a100")) and recs[0].gpu_types == "a100"
