"""EaCO's reservations for waiting jobs (policies/reservation.py), on hand-built scenarios.

Set-up shared by the scenarios: 1 node x 2 V100; every job takes 20 GB, so no two jobs fit on one
32 GB GPU (no co-location). Job 0 (1 GPU, 2 h) starts at t=0. Job 1 needs both GPUs (1 h) and
arrives at t=60 s: it cannot start before job 0 ends. 1-GPU jobs of 3 h keep arriving (job 2 at
t=120 s, then one an hour from t=1 h): without a reservation each takes the GPU that frees, and
job 1 waits until the stream dries up.
"""

from __future__ import annotations

import math

import pytest

from eaco.model.cluster import ClusterSpec
from eaco.model.job import Job
from eaco.policies.eaco import EacoPolicy, EacoSettings
from eaco.policies.reservation import ReservationSettings
from eaco.sim.engine import SimulationOptions, Simulator
from eaco.workloads.base import Workload

V100 = "v100"
TYPE = "resnet50"
HOUR = 3600.0


def _job(env, job_id, submit, gpus, epochs, deadline=math.inf):
    spec = env.catalog.get(TYPE)
    return Job(job_id, submit, gpus, TYPE, epochs, HOUR, 20.0, spec.util_on(V100), deadline_s=deadline)


def _stream(env, big_deadline=math.inf, backfill=False):
    """Jobs 0, 1, 2 as above; with ``backfill`` job 3 (1 GPU, 1 h) at t=121 s; then the stream."""
    jobs = [_job(env, 0, 0.0, 1, 2), _job(env, 1, 60.0, 2, 1, big_deadline), _job(env, 2, 120.0, 1, 3)]
    if backfill:
        jobs.append(_job(env, 3, 121.0, 1, 1))
    first = len(jobs)
    return jobs + [_job(env, first + k, (k + 1) * HOUR, 1, 3) for k in range(10)]


def _run(env, jobs, **settings):
    policy = EacoPolicy(env.new_predictor(), env.catalog, env.energy,
                        EacoSettings(consolidate=False, **settings))
    sim = Simulator(ClusterSpec.homogeneous(1, 2, V100), Workload("t", tuple(jobs), "hand-built"), policy,
                    env.truth, env.energy, SimulationOptions(check_invariants=True))
    result = sim.run()
    return {r.job_id: r for r in result.jobs}, policy


def test_without_a_reservation_the_big_job_waits_for_the_stream(env):
    recs, policy = _run(env, _stream(env), reserve=False)
    assert recs[2].first_start_s == pytest.approx(120.0)  # takes the free GPU at once
    assert recs[1].first_start_s >= 15 * HOUR  # after every small job got a GPU
    assert policy.reserver.stats.made == 0


def test_a_reservation_holds_the_node_that_frees_first(env):
    # reserve at once (no wait): job 1 gets the node as soon as job 0 ends at t=2 h
    recs, policy = _run(env, _stream(env), reserve_wait_s=0.0)
    assert recs[1].first_start_s == pytest.approx(2 * HOUR)
    assert recs[1].finish_s == pytest.approx(3 * HOUR)
    assert recs[2].first_start_s == pytest.approx(3 * HOUR)  # would have ended after t=2 h: waited
    stats = policy.reserver.stats  # the small jobs that wait later are reserved for in turn
    assert stats.made == stats.honoured >= 1 and stats.backfilled == stats.moved == stats.dropped == 0
    assert policy.reserver.current is None


def test_a_job_that_ends_before_the_reservation_starts_backfills(env):
    # job 3 (1 GPU, 1 h, at t=121 s) ends by t=2 h, when the reservation starts: it runs at once
    recs, policy = _run(env, _stream(env, backfill=True), reserve_wait_s=0.0)
    assert recs[3].first_start_s == pytest.approx(121.0)
    assert recs[1].first_start_s == pytest.approx(2 * HOUR)
    assert policy.reserver.stats.backfilled == 1


def test_the_wait_before_a_reservation(env):
    # by default a job without a deadline is never reserved for; with an 8 h wait, job 1 is
    # reserved for at t=60 s + 8 h, and starts when both GPUs have finished the 3 h jobs they
    # run then (no new one starts on them)
    recs, policy = _run(env, _stream(env))
    assert policy.reserver.stats.made == 0 and recs[1].first_start_s >= 15 * HOUR
    recs, policy = _run(env, _stream(env), reserve_wait_s=8 * HOUR)
    assert policy.reserver.stats.made == 1
    assert 8 * HOUR < recs[1].first_start_s <= 11 * HOUR


def test_an_urgent_job_is_reserved_for_at_once_and_meets_its_deadline(env):
    deadline = 3 * HOUR + 60.0  # 1 h of work: met only if it starts when job 0 ends
    recs, _ = _run(env, _stream(env, big_deadline=deadline), urgent_slack=3.0)
    assert recs[1].first_start_s == pytest.approx(2 * HOUR) and not recs[1].missed_deadline
    recs, _ = _run(env, _stream(env, big_deadline=deadline), reserve=False, urgent_slack=3.0)
    assert recs[1].missed_deadline


def test_a_high_priority_job_may_take_a_reserved_node_and_the_reservation_is_made_anew(env):
    # job 3 (high priority, 1 GPU, 3 h) arrives at t=1.5 h and takes the GPU that the reservation
    # for job 1 keeps free (job 2 waits for it): job 1 then waits for job 3 to end, at t=4.5 h
    spec = env.catalog.get(TYPE)
    urgent = Job(3, 1.5 * HOUR, 1, TYPE, 3, HOUR, 20.0, spec.util_on(V100), priority=1)
    jobs = [*_stream(env)[:3], urgent]
    recs, policy = _run(env, jobs, reserve_wait_s=0.0)
    assert recs[3].first_start_s == pytest.approx(1.5 * HOUR)
    assert recs[1].first_start_s == pytest.approx(4.5 * HOUR)
    stats = policy.reserver.stats
    assert stats.moved == 1 and stats.made == stats.honoured + stats.moved


def test_settings_are_checked():
    with pytest.raises(ValueError, match="wait_s"):
        ReservationSettings(wait_s=-1.0)
    with pytest.raises(ValueError, match="reserve_wait_s"):
        EacoSettings(reserve_wait_s=-1.0)
