"""EaCO on hand-built scenarios with exact expectations.

Everything runs on the real models: the job-type catalogue, the co-location ground truth (what the
simulated cluster really does) and the history H seeded from the bundled measurements (what EaCO
believes). The pairs used below, on V100:

- ``R32`` + ``R16`` (Gavel measured pair, in H and in the truth): both run at full speed. H says
  speed 1.0 with std 0.02 (one record: the floor ``OBSERVATION_STD``), so with ``confidence_z=1``
  every deadline check plans with speed 0.98.
- ``LM80`` + ``ALEX``: never measured, so H estimates it by regression (speed 1.0 each, wide
  uncertainty); the truth (fitted model) gives 0.957 each.
- ``VGG`` + ``R50`` (ResNet-50 batch 16): never measured; the truth makes R50 crawl (0.43 of its
  exclusive speed) while VGG keeps ~0.89. Tests that need EaCO to be wrong record a misleading
  "measurement" (0.99, 0.99) of this pair into H before the run: EaCO then co-locates, observes the
  real speed one epoch later, and must undo.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from eaco.model.cluster import ClusterSpec
from eaco.model.job import Job
from eaco.policies.base import Policy
from eaco.policies.decisions import Place, Undo, Watch
from eaco.policies.eaco import EacoPolicy, EacoSettings
from eaco.policies.view import EpochReport, JobProgress, SchedulerView
from eaco.sim.engine import DEFAULT_RESTART_OVERHEAD_S, SimulationOptions, Simulator
from eaco.state.cluster_state import ClusterState
from eaco.workloads.base import Workload

V100 = "v100"
R16 = "ResNet-18 (batch size 16)"  # util 0.02 on V100
R32 = "ResNet-18 (batch size 32)"  # util 0.335
LM80 = "LM (batch size 80)"  # util 0.59
ALEX = "alexnet"
VGG = "vgg16"  # util 0.48
R50 = "ResNet-50 (batch size 16)"  # util 1.0: a GPU running it alone is never a candidate

CHECK = SimulationOptions(check_invariants=True)


# ----------------------------------------------------------------------------- helpers
def _job(env, job_id, job_type, epochs=10, epoch_s=100.0, submit=0.0, deadline=math.inf, priority=0, gpus=1,
         memory_gb=None):
    spec = env.catalog.get(job_type)
    mem = spec.memory_gb if memory_gb is None else memory_gb
    return Job(job_id, submit, gpus, job_type, epochs, epoch_s, mem, spec.util_on(V100),
               deadline_s=deadline, priority=priority)


class Recorder(Policy):
    """Wraps EaCO and logs every decision it returns, with the time."""

    manages_node_power = True

    def __init__(self, inner: EacoPolicy) -> None:
        self.inner = inner
        self.name = inner.name
        self.log: list[tuple[float, object]] = []

    def schedule(self, view):
        out = self.inner.schedule(view)
        self.log.extend((view.now_s, d) for d in out)
        return out

    def places(self, job_id):
        return [(t, d.gpus) for t, d in self.log if isinstance(d, Place) and d.job_id == job_id]

    def of(self, kind):
        return [(t, d) for t, d in self.log if isinstance(d, kind)]


def _run(env, jobs, cluster, predictor=None, **settings):
    predictor = predictor if predictor is not None else env.new_predictor()
    policy = Recorder(EacoPolicy(predictor, env.catalog, env.energy, EacoSettings(**settings)))
    sim = Simulator(cluster, Workload("t", tuple(jobs), "hand-built"), policy, env.truth, env.energy, CHECK)
    result = sim.run()
    return {r.job_id: r for r in result.jobs}, result, policy


def _one_by(gpus):
    return ClusterSpec.homogeneous(1, gpus, V100)


class Board:
    """A ClusterState filled by hand and SchedulerViews over it (for FindCandidates)."""

    def __init__(self, env, nodes, gpus_per_node):
        self.env = env
        self.state = ClusterState(ClusterSpec.homogeneous(nodes, gpus_per_node, V100))
        self.jobs: dict[int, Job] = {}
        self.epochs_done: dict[int, float] = {}

    def job(self, job_type, **kw) -> Job:
        j = _job(self.env, len(self.jobs), job_type, **kw)
        self.jobs[j.job_id] = j
        return j

    def run(self, job_type, gpus, **kw) -> Job:
        j = self.job(job_type, gpus=len(gpus), **kw)
        self.state.place(j, tuple(gpus))
        return j

    def view(self, queue=(), reports=(), finished=(), now=0.0) -> SchedulerView:
        def progress(job_id):
            return JobProgress(self.epochs_done.get(job_id, 0.0), 0.0, 0.0, 0.0)

        return SchedulerView(now, self.state, list(queue), self.jobs, progress, reports, finished)


@pytest.fixture(scope="module")
def h(env):
    """H as loaded, for tests that only read it."""
    return env.new_predictor()


def _policy(env, h, **settings):
    return EacoPolicy(h, env.catalog, env.energy, EacoSettings(**settings))


def test_the_pairs_used_here_are_what_truth_and_history_say(env, h):
    assert env.colocation.speeds((R32, R16), V100) == (1.0, 1.0)
    assert [(e.speed, e.std, e.source) for e in h.estimate((R32, R16), V100)] == [(1.0, 0.02, "history")] * 2
    assert not h.has_seen((LM80, ALEX), V100)
    assert all(e.speed == 1.0 and e.source == "regression" for e in h.estimate((LM80, ALEX), V100))
    assert env.colocation.speeds((LM80, ALEX), V100) == pytest.approx((0.957, 0.957))
    assert not h.has_seen((VGG, R50), V100)
    s_vgg, s_r50 = env.colocation.speeds((VGG, R50), V100)
    assert s_r50 < 0.5 < 0.85 < s_vgg < 0.95


# ======================================================================= FindCandidates
def test_a_busy_gpu_under_the_thresholds_is_a_candidate_and_an_idle_one_is_not(env, h):
    b = Board(env, 1, 4)
    b.run(VGG, (2,))
    new = b.job(R16)
    assert _policy(env, h)._find_candidates(b.view(), new, V100) == [(2,)]
    # nothing busy: no candidate at all (free GPUs are the exclusive option, not a co-location)
    assert _policy(env, h)._find_candidates(Board(env, 1, 4).view(), new, V100) == []


def test_utilisation_threshold_is_exclusive_at_the_bound(env, h):
    u = env.catalog.get(VGG).util_on(V100)
    b = Board(env, 1, 1)
    b.run(VGG, (0,))
    new = b.job(R16)
    assert _policy(env, h, util_threshold=u)._find_candidates(b.view(), new, V100) == []
    assert _policy(env, h, util_threshold=math.nextafter(u, 1.0))._find_candidates(b.view(), new, V100) == [(0,)]
    # a GPU already at 100 % utilisation never takes another job under the default threshold
    b = Board(env, 1, 1)
    b.run(R50, (0,))
    assert _policy(env, h)._find_candidates(b.view(), b.job(R16), V100) == []


def test_memory_threshold_is_exclusive_at_the_bound(env, h):
    b = Board(env, 1, 1)
    b.run(R32, (0,), memory_gb=16.0)  # 16 of 32 GB in use: exactly 0.5
    new = b.job(R16)
    assert _policy(env, h, memory_threshold=0.5)._find_candidates(b.view(), new, V100) == []
    assert _policy(env, h, memory_threshold=0.51)._find_candidates(b.view(), new, V100) == [(0,)]


def test_free_memory_must_cover_the_job_plus_the_margin(env, h):
    b = Board(env, 1, 1)
    b.run(R32, (0,), memory_gb=20.0)  # 12 GB free, 62.5 % in use (under the memory threshold)
    fits = b.job(R16, memory_gb=11.0)  # 11 + 1.0 margin = 12: just fits
    too_big = b.job(R16, memory_gb=11.5)
    assert _policy(env, h)._find_candidates(b.view(), fits, V100) == [(0,)]
    assert _policy(env, h)._find_candidates(b.view(), too_big, V100) == []
    assert _policy(env, h, memory_margin_gb=0.5)._find_candidates(b.view(), too_big, V100) == [(0,)]


def test_a_gpu_at_max_jobs_per_gpu_is_not_a_candidate(env, h):
    b = Board(env, 1, 1)
    b.run(R32, (0,))
    b.run(R16, (0,))
    new = b.job(R16)
    assert _policy(env, h, max_jobs_per_gpu=2)._find_candidates(b.view(), new, V100) == []
    assert _policy(env, h, max_jobs_per_gpu=3)._find_candidates(b.view(), new, V100) == [(0,)]
    b = Board(env, 1, 1)
    b.run(R32, (0,))
    assert _policy(env, h, max_jobs_per_gpu=1)._find_candidates(b.view(), b.job(R16), V100) == []


def test_most_utilised_candidate_first_one_per_node(env, h):
    b = Board(env, 3, 2)
    b.run(R32, (0,))  # node 0: util 0.335 and 0.48: offers its most utilised GPU, 1
    b.run(VGG, (1,))
    b.run(LM80, (2,))  # node 1: 0.59
    b.run(R32, (4,))  # node 2: 0.335
    new = b.job(R16)
    assert _policy(env, h)._find_candidates(b.view(), new, V100) == [(2,), (1,), (4,)]


def test_an_infeasible_best_candidate_does_not_hide_a_feasible_one(env):
    """Candidates are tried most utilised first until ``max_candidates`` feasible ones are found:
    a first candidate that fails its checks does not use up the budget."""
    h = env.new_predictor()
    h.record((LM80, R16), V100, (0.5, 0.5))  # GPU 0 (most utilised) would crawl: below min_speed
    b = Board(env, 2, 1)
    b.run(LM80, (0,))
    b.run(R32, (1,))
    new = b.job(R16)
    policy = _policy(env, h, max_candidates=1)
    assert policy._find_candidates(b.view(), new, V100) == [(0,), (1,)]
    decisions = policy.schedule(b.view(queue=[new]))
    assert decisions[0] == Place(new.job_id, (1,))


def test_a_two_gpu_job_gets_two_busy_gpus_of_one_node(env, h):
    b = Board(env, 2, 4)
    b.run(VGG, (0,))  # node 0: one busy GPU only
    b.run(R32, (4,))  # node 1: two busy GPUs
    b.run(R32, (5,))
    new = b.job(R16, gpus=2)
    assert _policy(env, h)._find_candidates(b.view(), new, V100) == [(4, 5)]
    b.run(LM80, (1,))  # node 0 now has two busy GPUs, more utilised than node 1's
    assert _policy(env, h)._find_candidates(b.view(), new, V100) == [(0, 1), (4, 5)]
    # one busy GPU on each of two nodes: never a cross-node set for a job that fits on one node
    b = Board(env, 2, 4)
    b.run(VGG, (0,))
    b.run(VGG, (4,))
    assert _policy(env, h)._find_candidates(b.view(), b.job(R16, gpus=2), V100) == []


def test_gpus_under_observation_are_locked_until_every_member_reports(env):
    h = env.new_predictor()
    b = Board(env, 1, 2)
    e0 = b.run(R32, (0,))
    b.run(R32, (1,))
    n1 = b.job(R16)
    policy = _policy(env, h, alpha=1.0)
    decisions = policy.schedule(b.view(queue=[n1]))
    assert decisions == [Place(n1.job_id, (0,)), Watch(e0.job_id, 1), Watch(n1.job_id, 1)]
    b.state.place(n1, (0,))
    n2 = b.job(R16)
    assert policy._find_candidates(b.view(), n2, V100) == [(1,)]  # GPU 0 is locked
    # one member reports: still locked
    r0 = EpochReport(e0.job_id, 100.0, 1, 100.0, 1.0, 1.0, (n1.job_id,))
    assert policy.schedule(b.view(reports=[r0], now=100.0)) == []
    assert policy._find_candidates(b.view(), n2, V100) == [(1,)]
    # the last one reports (truth as predicted): no undo, GPU 0 is unlocked and, as the node's
    # most utilised GPU (R32 + R16 > R32 alone), it is the node's candidate again
    r1 = EpochReport(n1.job_id, 100.0, 1, 100.0, 1.0, 1.0, (e0.job_id,))
    assert policy.schedule(b.view(reports=[r1], now=100.0)) == []
    assert policy._find_candidates(b.view(), n2, V100) == [(0,)]
    assert h.observations == 2
    assert policy.stats.observations_completed == 1 and policy.stats.undos == 0


def test_a_speed_seen_in_the_window_counts_where_h_learns_nothing(env):
    """A 2-GPU job meets a different VGG job on each GPU: its report is no measurement of one
    set, so H (misled: R50 + VGG at 0.99) learns nothing from it. Its speed seen in the window
    (the truth, ~0.43) still decides: its deadline would be missed, so it is undone."""
    h = env.new_predictor()
    h.record((R50, VGG), V100, (0.99, 0.99))
    b = Board(env, 1, 2)
    v0 = b.run(VGG, (0,))
    v1 = b.run(VGG, (1,))
    new = b.job(R50, gpus=2, deadline=2000.0)
    policy = _policy(env, h)
    assert policy.schedule(b.view(queue=[new]))[0] == Place(new.job_id, (0, 1))
    b.state.place(new, (0, 1))
    s_vgg, s_new = env.colocation.speeds((VGG, R50), V100)
    t = 100.0 / s_new
    assert 10.0 / 0.98 * 100.0 < 2000.0 < 100.0 + 900.0 / s_new  # H's plan holds, the truth does not
    b.epochs_done = {v0.job_id: t * s_vgg / 100.0, v1.job_id: t * s_vgg / 100.0, new.job_id: 1.0}
    reports = [
        EpochReport(v0.job_id, 100.0 / s_vgg, 1, 100.0 / s_vgg, 1.0, s_vgg, (new.job_id,)),
        EpochReport(v1.job_id, 100.0 / s_vgg, 1, 100.0 / s_vgg, 1.0, s_vgg, (new.job_id,)),
        EpochReport(new.job_id, t, 1, t, 1.0, s_new, (v0.job_id, v1.job_id)),
    ]
    before = h.estimate((VGG, R50), V100)[1].speed
    assert policy.schedule(b.view(reports=reports, now=t)) == [Undo(new.job_id)]
    assert h.estimate((VGG, R50), V100)[1].speed == before  # H learnt nothing about R50 here


def test_an_uncalibrated_speed_decides_the_undo_but_teaches_h_nothing(env):
    """The live runtime knew no exclusive epoch time of the jobs (a default): their reports say
    how fast they really go (the undo follows them) but not how much the co-location slowed them,
    so H learns nothing. The same reports calibrated are learnt."""
    for calibrated in (False, True):
        h = env.new_predictor()
        h.record((R50, VGG), V100, (0.99, 0.99))  # misleading: the co-location looks harmless
        b = Board(env, 1, 1)
        vgg = b.run(VGG, (0,))
        new = b.job(R50, deadline=2000.0)
        policy = _policy(env, h)
        assert policy.schedule(b.view(queue=[new]))[0] == Place(new.job_id, (0,))
        b.state.place(new, (0,))
        s_vgg, s_new = env.colocation.speeds((VGG, R50), V100)
        t = 100.0 / s_new
        b.epochs_done = {vgg.job_id: 1.0, new.job_id: 1.0}
        reports = [
            EpochReport(vgg.job_id, 100.0 / s_vgg, 1, 100.0 / s_vgg, 1.0, s_vgg, (new.job_id,), speed_calibrated=calibrated),
            EpochReport(new.job_id, t, 1, t, 1.0, s_new, (vgg.job_id,), speed_calibrated=calibrated),
        ]
        observations = h.observations
        assert policy.schedule(b.view(reports=reports, now=t)) == [Undo(new.job_id)]
        assert h.observations == observations + (2 if calibrated else 0), calibrated
        assert policy.learned() if calibrated else not policy.learned()


def test_a_gpu_set_undone_for_a_job_is_excluded_for_that_job_only(env):
    h = env.new_predictor()
    h.record((R50, VGG), V100, (0.99, 0.99))  # misleading: see the module docstring
    b = Board(env, 2, 1)
    vgg = b.run(VGG, (0,))
    b.run(R32, (1,))
    new = b.job(R50, deadline=2000.0)
    policy = _policy(env, h, max_candidates=1)
    assert policy.schedule(b.view(queue=[new])) == [Place(new.job_id, (0,)), Watch(vgg.job_id, 1), Watch(new.job_id, 1)]
    b.state.place(new, (0,))
    s_vgg, s_new = env.colocation.speeds((VGG, R50), V100)
    t = 100.0 / s_new
    b.epochs_done = {vgg.job_id: 1.0, new.job_id: 1.0}
    reports = [
        EpochReport(vgg.job_id, 100.0 / s_vgg, 1, 100.0 / s_vgg, 1.0, s_vgg, (new.job_id,)),
        EpochReport(new.job_id, t, 1, t, 1.0, s_new, (vgg.job_id,)),
    ]
    assert policy.schedule(b.view(reports=reports, now=t)) == [Undo(new.job_id)]
    b.state.remove(new.job_id)
    assert policy._find_candidates(b.view(), new, V100) == [(1,)]
    other = b.job(R50)
    # for another job GPU 0 is still the best candidate
    assert policy._find_candidates(b.view(), other, V100) == [(0,), (1,)]


# ======================================================================= deadlines (PredictJCT)
# Job 0 (R32, 10 x 100 s) runs from t=0 on GPU 0; job 1 (R16, 5 x 100 s) arrives at t=10. With
# alpha=1 EaCO co-locates them whenever the deadlines allow (first test). Co-located, H plans with
# speed 1.0 - 1 x 0.02 = 0.98: job 0 would finish at 10 + 990 / 0.98 = 1020.2 s, job 1 at
# 10 + 500 / 0.98 = 520.2 s.
def _pair(env, d0=math.inf, d1=math.inf, p1=0, p0=0):
    return [_job(env, 0, R32, 10, 100.0, deadline=d0, priority=p0),
            _job(env, 1, R16, 5, 100.0, submit=10.0, deadline=d1, priority=p1)]


def test_generous_deadlines_are_co_located(env):
    recs, result, policy = _run(env, _pair(env, d0=1021.0, d1=521.0), _one_by(2), alpha=1.0)
    assert policy.places(1) == [(10.0, (0,))]
    assert recs[0].colocated_time_s == pytest.approx(500.0)
    assert result.undos == 0 and not any(r.missed_deadline for r in recs.values())


def test_colocation_that_breaks_an_existing_jobs_deadline_is_refused(env):
    recs, _, policy = _run(env, _pair(env, d0=1020.0), _one_by(2), alpha=1.0)
    assert policy.places(1) == [(10.0, (1,))]  # exclusive on the free GPU
    assert recs[0].colocated_time_s == 0 and recs[0].finish_s == pytest.approx(1000.0)
    # no free GPU: job 1 waits for job 0 to finish rather than endanger it
    recs, _, policy = _run(env, _pair(env, d0=1020.0), _one_by(1), alpha=1.0)
    assert policy.places(1) == [(1000.0, (0,))]
    assert not recs[0].missed_deadline and recs[0].colocated_time_s == 0


def test_colocation_that_breaks_the_new_jobs_deadline_is_refused(env):
    recs, _, policy = _run(env, _pair(env, d1=520.0), _one_by(2), alpha=1.0)
    assert policy.places(1) == [(10.0, (1,))]
    assert recs[1].finish_s == pytest.approx(510.0) and not recs[1].missed_deadline


def test_jobs_without_deadline_never_block(env):
    # even a planner so pessimistic that every co-located speed is taken as 0.2 co-locates jobs
    # without deadline; the same pessimism refuses once one of them has a (generous) deadline
    recs, _, policy = _run(env, _pair(env), _one_by(1), confidence_z=40.0)
    assert policy.places(1) == [(10.0, (0,))] and recs[1].colocated_time_s == pytest.approx(500.0)
    recs, _, policy = _run(env, _pair(env, d0=2000.0), _one_by(1), confidence_z=40.0)
    assert policy.places(1) == [(1000.0, (0,))]


def test_a_high_priority_job_gets_free_gpus_exclusively(env):
    recs, _, policy = _run(env, _pair(env, p1=1), _one_by(2), alpha=1.0)
    assert policy.places(1) == [(10.0, (1,))]  # where a normal job is co-located (tests above)
    assert policy.inner.stats.colocations == 0
    # no free GPU: it waits for one rather than share
    recs, _, policy = _run(env, _pair(env, p1=1), _one_by(1), alpha=1.0)
    assert policy.places(1) == [(1000.0, (0,))] and recs[1].colocated_time_s == 0


def test_nobody_is_co_located_onto_a_high_priority_job(env):
    recs, _, policy = _run(env, _pair(env, p0=1), _one_by(2), alpha=1.0)
    assert policy.places(1) == [(10.0, (1,))]
    assert recs[0].colocated_time_s == 0


# ================================================== clusters of several GPU types
T4 = "t4"
T4_THEN_V100 = "1x2xt4,1x1xv100"  # the slower type first in the cluster's order: GPUs 0-1 T4, GPU 2 V100


def test_options_on_a_slower_gpu_type_count_its_slowdown(env):
    # vgg16 alone on a T4 takes 1/0.61 of its V100 time: with time only in the objective the free
    # V100 wins, though the T4 comes first in the cluster (both options are exclusive, slowdown 1.0
    # each if the type were ignored)
    assert env.catalog.get(VGG).speed_on(T4) < 0.7
    job = _job(env, 0, VGG, 10, 100.0)
    recs, _, policy = _run(env, [job], ClusterSpec.parse(T4_THEN_V100), alpha=0.0)
    assert policy.places(0) == [(0.0, (2,))]
    # a high-priority job takes the fastest type with free GPUs too
    recs, _, policy = _run(env, [replace(job, priority=1)], ClusterSpec.parse(T4_THEN_V100))
    assert policy.places(0) == [(0.0, (2,))]


def test_a_deadline_met_only_on_the_fast_type_is_not_given_up_on_the_slow_one(env):
    # job 0 pins the T4 node awake for long; job 1 (any type) meets its deadline alone on the V100
    # (10 + 1000 s <= 1300 s) but not on a T4 (1000 / 0.61 s). Judged late on the T4 alone, it
    # would go there best-effort (the cheapest option: no node to wake); judged on its fastest
    # type it is not late, so it goes to the V100 and meets the deadline.
    jobs = [replace(_job(env, 0, R32, 50, 100.0), gpu_type=T4),
            _job(env, 1, VGG, 10, 100.0, submit=10.0, deadline=1300.0)]
    recs, _, policy = _run(env, jobs, ClusterSpec.parse(T4_THEN_V100), alpha=1.0)
    assert policy.places(1) == [(10.0, (2,))]
    assert not recs[1].missed_deadline


K80_AND_A100 = "1x1xk80,1x1xa100"  # GPU 0 a K80, GPU 1 an A100


def _a100_busy_then(env, epochs0, *later):
    """Job 0 (ResNet-50, never a co-location candidate) holds the A100 for ``epochs0`` x 100 s of
    V100 work; ``later``: (job id, submit time, deadline) of LM jobs of 10 x 100 s that may run
    on any type (alone: 762 s on the A100, 4,673 s on the K80)."""
    jobs = [replace(_job(env, 0, R50, epochs0, 100.0), gpu_type="a100")]
    jobs += [_job(env, j, LM80, 10, 100.0, submit=t, deadline=d) for j, t, d in later]
    return jobs


def test_a_job_waits_for_a_faster_type_that_frees_soon(env):
    lm = env.catalog.get(LM80)
    assert lm.speed_on("k80") < 0.25 < 1.0 < lm.speed_on("a100")
    jobs = _a100_busy_then(env, 10, (1, 10.0, math.inf))
    recs, _, policy = _run(env, jobs, ClusterSpec.parse(K80_AND_A100))
    a100_free = recs[0].finish_s
    assert policy.places(1) == [(a100_free, (1,))] and recs[1].gpu_types == "a100"
    assert recs[1].finish_s == pytest.approx(a100_free + 1000.0 / lm.speed_on("a100"))
    assert policy.inner.stats.waits_for_faster_type == 1
    # without the rule it starts on the free K80 at once and ends ~3,300 s later
    recs_k80, result, policy = _run(env, jobs, ClusterSpec.parse(K80_AND_A100), wait_for_faster_type=False)
    assert policy.places(1) == [(10.0, (0,))] and recs_k80[1].gpu_types == "k80"
    assert result.job_gpu_hours_by_type == pytest.approx({"a100": recs_k80[0].run_time_s / 3600, "k80": recs_k80[1].run_time_s / 3600})
    assert recs_k80[1].finish_s > recs[1].finish_s + 3000.0
    assert policy.inner.stats.waits_for_faster_type == 0


def test_waiting_jobs_queue_behind_the_claims_of_those_ahead(env):
    # job 2 sees the A100 claimed by job 1 until job 1 is predicted to end: it waits for that
    # (ends ~2,120 s) rather than take the K80 (~4,690 s)
    jobs = _a100_busy_then(env, 10, (1, 10.0, math.inf), (2, 20.0, math.inf))
    recs, _, policy = _run(env, jobs, ClusterSpec.parse(K80_AND_A100))
    assert policy.places(2) == [(pytest.approx(recs[1].finish_s), (1,))]
    # with time alone in the objective, jobs queue for the A100 while the wait plus the run
    # (762 s more per job ahead) beats 4,673 s on the K80: jobs 1-5 do, job 6 takes the K80
    jobs = _a100_busy_then(env, 10, *[(j, 10.0 * j, math.inf) for j in range(1, 7)])
    recs, _, policy = _run(env, jobs, ClusterSpec.parse(K80_AND_A100), alpha=0.0)
    for j in range(1, 6):
        assert policy.places(j) == [(pytest.approx(recs[j - 1].finish_s), (1,))]
    assert policy.places(6) == [(60.0, (0,))]


def test_waiting_for_a_faster_type_never_costs_a_deadline_or_ignores_alpha(env):
    # the A100 frees at ~5,960 s: waiting would end at ~6,720 s
    wait_end = _a100_busy_then(env, 100)[0].exclusive_duration_s / env.catalog.get(R50).speed_on("a100") + 762.0
    assert wait_end > 6000.0
    # ... past a 6,000 s deadline that the K80 meets (4,684 s): the K80
    recs, _, policy = _run(env, _a100_busy_then(env, 100, (1, 10.0, 6000.0)), ClusterSpec.parse(K80_AND_A100))
    assert policy.places(1) == [(10.0, (0,))] and not recs[1].missed_deadline
    # no deadline: with time alone in the objective the K80 ends first; with energy in it (the
    # default alpha) the A100 costs far less energy and is worth the wait
    recs, _, policy = _run(env, _a100_busy_then(env, 100, (1, 10.0, math.inf)), ClusterSpec.parse(K80_AND_A100),
                           alpha=0.0)
    assert policy.places(1) == [(10.0, (0,))]
    recs, _, policy = _run(env, _a100_busy_then(env, 100, (1, 10.0, math.inf)), ClusterSpec.parse(K80_AND_A100))
    assert recs[1].gpu_types == "a100"


def test_an_offline_faster_gpu_is_not_waited_for(env, h):
    # the live runtime fences the idle GPUs of a lost Ray node: the A100 frees for nobody, so the
    # job takes the K80 now instead of waiting for it for ever
    state = ClusterState(ClusterSpec.parse(K80_AND_A100))
    job = _job(env, 0, LM80, 10, 100.0)
    view = SchedulerView(0.0, state, [job], {0: job}, lambda j: JobProgress(0.0, 0.0, 0.0, 0.0), (), ())
    assert _policy(env, h).schedule(view) == [Place(0, (1,))]  # the A100, free
    state.set_offline((1,), True)
    assert _policy(env, h).schedule(view) == [Place(0, (0,))]


# ================================================== beyond the paper: late and urgent jobs
def test_a_job_whose_deadline_is_lost_is_placed_best_effort(env):
    # job 1 cannot meet its deadline even alone (10 + 500 s > 400 s): under the paper's rules it
    # waits for job 0's GPU to be free; ours co-locates it at once (running late beats waiting)
    recs, _, policy = _run(env, _pair(env, d1=400.0), _one_by(1), late_jobs_best_effort=False)
    assert policy.places(1) == [(1000.0, (0,))]
    recs, _, policy = _run(env, _pair(env, d1=400.0), _one_by(1))
    assert policy.places(1) == [(10.0, (0,))] and recs[1].finish_s < 1000.0
    # ... but never at the expense of a job that can still meet its deadline
    recs, _, policy = _run(env, _pair(env, d0=1020.0, d1=400.0), _one_by(1))
    assert policy.places(1) == [(1000.0, (0,))] and not recs[0].missed_deadline


def test_an_urgent_job_may_share_below_min_speed_if_every_deadline_holds(env):
    # H believes the pair runs at ~0.75 each (below min_speed 0.85, above urgent_min_speed 0.7)
    h = env.new_predictor()
    for _ in range(20):
        h.record((R32, R16), V100, (0.75, 0.75))
    est = h.estimate((R32, R16), V100)[1]
    assert 0.7 < est.speed < 0.85 and 10.0 + 500.0 / est.conservative(1.0) <= 900.0
    # job 1: slack (900 - 10 - 500) / 500 = 0.78 < urgent_slack 1.0 -> urgent; its deadline holds
    # at the conservative speed, so it shares job 0's GPU at once instead of waiting (and missing)
    recs, _, policy = _run(env, _pair(env, d1=900.0), _one_by(1), predictor=h)
    assert policy.places(1) == [(10.0, (0,))] and not recs[1].missed_deadline
    h_again = env.new_predictor()
    for _ in range(20):
        h_again.record((R32, R16), V100, (0.75, 0.75))
    recs, _, policy = _run(env, _pair(env, d1=900.0), _one_by(1), predictor=h_again, urgent_slack=0.0)
    assert policy.places(1) == [(1000.0, (0,))] and recs[1].missed_deadline
    # a job with slack to spare is not urgent: min_speed holds
    h_third = env.new_predictor()
    for _ in range(20):
        h_third.record((R32, R16), V100, (0.75, 0.75))
    _, _, policy = _run(env, _pair(env, d1=2000.0), _one_by(1), predictor=h_third)
    assert policy.places(1) == [(1000.0, (0,))]


def test_a_job_an_undo_cannot_save_is_planned_with_unobserved_z(env, h):
    """LM80 + ALEX is unseen: H says speed 1.0 with std 0.27. A 100-s job with its deadline at
    150 s holds at one standard deviation (100 / 0.73 = 136 s) but not at two (214 s). Split into
    two epochs, an undo after the first could still save it: it shares. In one epoch, nothing
    could: it waits for a free GPU."""
    std = h.estimate((LM80, ALEX), V100)[1].std
    assert 100.0 / (1.0 - std) <= 150.0 < 100.0 / (1.0 - 2.0 * std)
    for epochs, shares in ((2, True), (1, False)):
        b = Board(env, 1, 1)
        b.run(LM80, (0,))
        new = b.job(ALEX, epochs=epochs, epoch_s=100.0 / epochs, deadline=150.0)
        decisions = _policy(env, h).schedule(b.view(queue=[new]))
        assert (decisions[:1] == [Place(new.job_id, (0,))]) is shares
    b = Board(env, 1, 1)
    b.run(LM80, (0,))
    new = b.job(ALEX, epochs=1, epoch_s=100.0, deadline=150.0)
    assert _policy(env, h, unobserved_z=1.0).schedule(b.view(queue=[new]))[:1] == [Place(new.job_id, (0,))]


def test_a_waiting_job_is_looked_at_again_when_it_becomes_urgent(env):
    """Job 1 (500 s alone, deadline 1,600 s) is not urgent on arrival, and H's 0.75 for the pair is
    below min_speed: it waits. Nothing happens until job 0 ends at 1,000 s, but at 600 s its slack
    falls below its remaining time: a wake-up one second later finds it urgent, and the
    co-location (at H's conservative 0.73: done by 1,287 s) is taken then."""
    def h():
        pred = env.new_predictor()
        for _ in range(20):
            pred.record((R32, R16), V100, (0.75, 0.75))
        return pred

    _, _, policy = _run(env, _pair(env, d1=1600.0), _one_by(1), predictor=h())
    assert policy.places(1) == [(pytest.approx(601.0), (0,))]
    _, _, policy = _run(env, _pair(env, d1=1600.0), _one_by(1), predictor=h(), urgent_slack=0.0)
    assert policy.places(1) == [(1000.0, (0,))]


# ======================================================================= objective (alpha)
def test_alpha_one_prefers_sharing_and_alpha_zero_prefers_a_free_gpu(env):
    _, _, policy = _run(env, _pair(env), _one_by(2), alpha=1.0)
    assert policy.places(1) == [(10.0, (0,))]
    _, _, policy = _run(env, _pair(env), _one_by(2), alpha=0.0)
    assert policy.places(1) == [(10.0, (1,))]


def test_alpha_moves_eaco_along_the_energy_time_trade_off(env):
    """Three Philly-like workloads (300 jobs at 4 per hour, seeds 0-2) on 12 x 8 V100.

    The objective is greedy, per decision, so on a single workload alpha's effect can go either
    way; summed over workloads, alpha=1 (energy only) uses less energy and alpha=0 (time only)
    gives shorter runtimes. Measured when written: energy 13,817 vs 15,013 kWh, runtime
    309,761 vs 305,277 s (alpha 1 vs 0, sums over the three workloads)."""
    from eaco.sim.runner import simulate
    from eaco.workloads import generate_workload
    from eaco.workloads.slo import assign_slos

    cluster = ClusterSpec.homogeneous(12, 8, V100)
    energy = {0.0: 0.0, 1.0: 0.0}
    runtime = {0.0: 0.0, 1.0: 0.0}
    for seed in (0, 1, 2):
        wl = assign_slos(generate_workload(300, 4.0, catalog=env.catalog, seed=seed, job_type_rule="philly_util"))
        for alpha in (0.0, 1.0):
            # consolidation (beyond the paper) off: this is the paper's objective weight alone
            settings = EacoSettings(alpha=alpha, consolidate=False)
            _, metrics = simulate(cluster, wl, "eaco", env, eaco_settings=settings)
            energy[alpha] += metrics.energy_kwh
            runtime[alpha] += metrics.run_time_s.mean
    assert energy[1.0] < energy[0.0]
    assert runtime[0.0] < runtime[1.0]


# ======================================================================= observation and undo
def test_every_member_is_watched_and_the_observed_speed_goes_into_history(env):
    h = env.new_predictor()
    jobs = [_job(env, 0, LM80, 10, 100.0, deadline=5000.0), _job(env, 1, ALEX, 5, 100.0, submit=10.0, deadline=5000.0)]
    recs, result, policy = _run(env, jobs, _one_by(1), predictor=h)
    assert [(t, d) for t, d in policy.of(Watch)] == [(10.0, Watch(0, 1)), (10.0, Watch(1, 1))]
    truth = env.colocation.speeds((LM80, ALEX), V100)
    assert h.observations == 2
    est = h.estimate((LM80, ALEX), V100)
    assert [e.source for e in est] == ["history", "history"]
    assert [e.speed for e in est] == pytest.approx(truth)  # one epoch observed at the true speed
    assert result.undos == 0 and policy.inner.stats.undos == 0
    assert policy.inner.stats.observations_completed == 1
    assert recs[1].finish_s == pytest.approx(10.0 + 500.0 / truth[1])


def test_observation_epochs_sets_the_watch_window(env):
    h = env.new_predictor()
    jobs = [_job(env, 0, LM80, 10, 100.0), _job(env, 1, ALEX, 5, 100.0, submit=10.0)]
    _, _, policy = _run(env, jobs, _one_by(1), predictor=h, observation_epochs=3)
    assert [d for _, d in policy.of(Watch)] == [Watch(0, 3), Watch(1, 3)]
    assert h.observations == 2 and policy.inner.stats.observations_completed == 1


def test_a_multi_gpu_colocation_is_recorded_per_gpu(env):
    # R32 alone on GPU 0 and on GPU 1; a 2-GPU R16 job joins both (alpha=0: no free GPU left, so
    # sharing is the only option). Each GPU runs the pair (R32, R16); no GPU ever runs 3 jobs.
    h = env.new_predictor()
    jobs = [_job(env, 0, R32), _job(env, 1, R32), _job(env, 2, R16, 5, submit=10.0, gpus=2)]
    _, _, policy = _run(env, jobs, _one_by(2), predictor=h, alpha=0.0)
    assert policy.places(2) == [(10.0, (0, 1))]
    assert not h.has_seen((R32, R32, R16), V100)
    assert h.observations >= 2  # the R32 jobs' observations of the pair are kept


def _misled(env):
    h = env.new_predictor()
    h.record((R50, VGG), V100, (0.99, 0.99))  # see module docstring: truth says R50 runs at 0.43
    return h


def test_a_colocation_that_turns_out_slow_is_undone_at_the_epoch_boundary(env):
    # 1 GPU: VGG (5 x 100 s) from t=0; R50 (10 x 100 s, deadline 2010) arrives at t=10. H says the
    # pair runs at 0.99 (conservative 0.97: R50 would finish by 1041), so EaCO co-locates. After
    # one epoch of R50 the observed 0.43 goes into H; re-estimated, R50 would miss its deadline:
    # undone right at its epoch boundary, it waits for the GPU and runs alone, meeting its deadline.
    h = _misled(env)
    s_vgg, s_r50 = env.colocation.speeds((VGG, R50), V100)
    jobs = [_job(env, 0, VGG, 5, 100.0), _job(env, 1, R50, 10, 100.0, submit=10.0, deadline=2010.0)]
    recs, result, policy = _run(env, jobs, _one_by(1), predictor=h)
    t_undo = 10.0 + 100.0 / s_r50
    assert [(t, d) for t, d in policy.of(Undo)] == [(pytest.approx(t_undo), Undo(1))]
    assert recs[1].undos == 1 and recs[1].lost_epochs == 0.0
    assert result.undos == 1 and policy.inner.stats.undos == 1 and policy.inner.stats.undo_job_ids == [1]
    # VGG finishes alone (its 5 epochs: ~1.04 shared, the rest alone), then R50 resumes from epoch 1
    # (after the engine's restart overhead)
    vgg_done = t_undo + (5.0 - (t_undo - 10.0) * s_vgg / 100.0 - 0.1) * 100.0
    assert recs[0].finish_s == pytest.approx(vgg_done)
    assert policy.places(1) == [(10.0, (0,)), (pytest.approx(vgg_done), (0,))]
    assert recs[1].finish_s == pytest.approx(vgg_done + DEFAULT_RESTART_OVERHEAD_S + 900.0)
    assert not recs[1].missed_deadline
    # H learnt: R50's estimate in this pair is now the mean of the misleading 0.99 and the truth
    est = dict(zip((VGG, R50), h.estimate((VGG, R50), V100)))
    assert est[R50].speed == pytest.approx((0.99 + s_r50) / 2)


def test_an_undone_job_tries_the_remaining_candidates(env):
    # 2 nodes x 1 GPU: VGG on GPU 0 and a big-memory R16 on GPU 1 (27 GB: nothing fits next to
    # the VGG). R50 arrives, max_candidates=1, so only the most utilised GPU (VGG's) is tried;
    # once undone from it, R50 goes to the other candidate at the same instant.
    h = _misled(env)
    s_r50 = env.colocation.speeds((VGG, R50), V100)[1]
    jobs = [_job(env, 0, VGG, 5, 100.0), _job(env, 1, R16, 20, 100.0, memory_gb=27.0),
            _job(env, 2, R50, 10, 100.0, submit=10.0, deadline=2010.0)]
    recs, result, policy = _run(env, jobs, ClusterSpec.homogeneous(2, 1, V100), predictor=h, max_candidates=1)
    t_undo = 10.0 + 100.0 / s_r50
    assert policy.places(1) == [(0.0, (1,))]
    assert policy.places(2) == [(10.0, (0,)), (pytest.approx(t_undo), (1,))]
    assert result.undos == 1 and recs[2].lost_epochs == 0.0
    # R16 + R50 really run at full speed together: no second undo, deadline met
    assert recs[2].finish_s == pytest.approx(t_undo + DEFAULT_RESTART_OVERHEAD_S + 900.0)
    assert not recs[2].missed_deadline


def test_undo_loses_no_work_when_an_existing_member_reports_last(env):
    # as above, but VGG's epochs are 1000 s: R50 reports at t~244, VGG at t~1123, when R50 is
    # 0.75 into its fifth epoch; the undo then throws that 0.75 epoch away
    h = _misled(env)
    jobs = [_job(env, 0, VGG, 3, 1000.0), _job(env, 1, R50, 10, 100.0, submit=10.0, deadline=2010.0)]
    recs, result, _ = _run(env, jobs, _one_by(1), predictor=h)
    assert result.undos == 1
    assert recs[1].lost_epochs == 0.0


# ======================================================================= settings
@pytest.mark.parametrize(
    "field, value",
    [
        ("util_threshold", 0.0), ("util_threshold", 1.5), ("memory_threshold", 0.0), ("memory_threshold", 1.01),
        ("memory_margin_gb", -0.1), ("max_jobs_per_gpu", 0), ("observation_epochs", 0), ("alpha", -0.1),
        ("alpha", 1.1), ("confidence_z", -1.0), ("min_speed", 1.5), ("max_candidates", 0), ("queue_window", 0),
        ("urgent_slack", -0.5), ("urgent_min_speed", 1.2),
    ],
)
def test_settings_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        EacoSettings(**{field: value})


def test_default_settings_are_valid_and_bounds_inclusive():
    s = EacoSettings()
    edge = replace(s, util_threshold=1.0, memory_threshold=1.0, alpha=0.0, min_speed=0.0, confidence_z=0.0,
                   memory_margin_gb=0.0)
    assert edge.alpha == 0.0 and replace(s, alpha=1.0, min_speed=1.0, max_jobs_per_gpu=1).alpha == 1.0
