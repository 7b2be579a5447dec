"""EaCO's consolidation by migration (policies/consolidation.py), on hand-built scenarios.

Set-up shared by the scenarios: 2 nodes x 2 V100. Every job takes 20 GB, so no two jobs ever fit
on one 32 GB GPU (no co-location). At t=0 a long job (10 epochs of 1 h) and a short one (1 epoch)
go to node 0 (best fit), another long and short pair to node 1. At t=3600 the short jobs end:
each node runs one long job on one GPU. One node can be emptied into the other's free GPU.
"""

from __future__ import annotations

import math

import pytest

from eaco.model.cluster import ClusterSpec
from eaco.model.job import Job
from eaco.policies.consolidation import ConsolidationSettings
from eaco.policies.decisions import Place, Undo, Watch
from eaco.policies.eaco import EacoPolicy, EacoSettings
from eaco.sim.engine import DEFAULT_RESTART_OVERHEAD_S, SimulationOptions, Simulator
from eaco.workloads.base import Workload

V100 = "v100"
TYPE = "resnet50"
HOUR = 3600.0


def _job(env, job_id, epochs, deadline=math.inf, submit=0.0):
    spec = env.catalog.get(TYPE)
    return Job(job_id, submit, 1, TYPE, epochs, HOUR, 20.0, spec.util_on(V100), deadline_s=deadline)


def _run(env, jobs, **settings):
    policy = EacoPolicy(env.new_predictor(), env.catalog, env.energy, EacoSettings(**settings))
    log: list[tuple[float, object]] = []
    inner = policy.schedule

    def schedule(view):
        out = inner(view)
        log.extend((view.now_s, d) for d in out)
        return out

    policy.schedule = schedule  # type: ignore[method-assign]
    sim = Simulator(ClusterSpec.homogeneous(2, 2, V100), Workload("t", tuple(jobs), "hand-built"), policy,
                    env.truth, env.energy, SimulationOptions(check_invariants=True))
    result = sim.run()
    return {r.job_id: r for r in result.jobs}, result, policy, log


def _fragmented(env, deadlines=(math.inf, math.inf)):
    # ids in submit order: long 0 and short 1 fill node 0, long 2 and short 3 fill node 1
    return [_job(env, 0, 10, deadlines[0]), _job(env, 1, 1), _job(env, 2, 10, deadlines[1]), _job(env, 3, 1)]


def test_a_lightly_loaded_node_is_emptied_at_an_epoch_end(env):
    recs, result, policy, log = _run(env, _fragmented(env))
    places = [(t, d.job_id, d.gpus) for t, d in log if isinstance(d, Place)]
    assert places[:4] == [(0.0, 0, (0,)), (0.0, 1, (1,)), (0.0, 2, (2,)), (0.0, 3, (3,))]
    # t=3600: the short jobs end; node 0 (lowest id of the equally loaded) is drained: job 0 is
    # watched to its next epoch end (t=7200), undone there and placed on node 1's free GPU
    assert (HOUR, Watch(0, 1)) in log
    assert (2 * HOUR, Undo(0, reason="migration")) in log
    assert places[4:] == [(2 * HOUR, 0, (3,))]
    assert recs[0].migrations == 1 and recs[0].undos == 0 and recs[0].placements == 2
    assert recs[0].restart_s == pytest.approx(DEFAULT_RESTART_OVERHEAD_S)
    assert recs[0].finish_s == pytest.approx(10 * HOUR + DEFAULT_RESTART_OVERHEAD_S)
    assert recs[0].lost_epochs == 0.0
    assert recs[2].finish_s == pytest.approx(10 * HOUR)
    assert result.migrations == 1 and result.undos == 0
    stats = policy.consolidator.stats
    assert (stats.drains_started, stats.drains_completed, stats.drains_called_off, stats.moves) == (1, 1, 0, 1)
    # node 0 slept from t=7200 instead of running to t=36000: less energy than without the move
    _, without, _, _ = _run(env, _fragmented(env), consolidate=False)
    assert without.migrations == 0
    assert result.energy.total_j < without.energy.total_j


def test_no_move_that_would_break_a_deadline(env):
    # both long jobs have just enough time to finish alone, not with a 60 s restart: no drain
    tight = 10 * HOUR + DEFAULT_RESTART_OVERHEAD_S / 2
    recs, result, policy, log = _run(env, _fragmented(env, deadlines=(tight, tight)))
    assert result.migrations == 0 and not any(isinstance(d, Undo) for _, d in log)
    assert policy.consolidator.stats.drains_started == 0
    assert not recs[0].missed_deadline and not recs[2].missed_deadline
    # only node 0's job is tight: node 1 is drained instead (its job moves to node 0)
    recs, result, _, log = _run(env, _fragmented(env, deadlines=(tight, math.inf)))
    assert [(t, d.job_id, d.gpus) for t, d in log if isinstance(d, Place)][4:] == [(2 * HOUR, 2, (1,))]
    assert recs[2].migrations == 1 and not recs[0].missed_deadline


def test_short_remaining_work_is_not_worth_a_move(env):
    # the long jobs have 5 h of work: at t=3600 4 h are left, under a 5 h minimum
    jobs = [_job(env, 0, 5), _job(env, 1, 1), _job(env, 2, 5), _job(env, 3, 1)]
    _, result, policy, _ = _run(env, jobs, consolidate_min_remaining_s=5 * HOUR)
    assert result.migrations == 0 and policy.consolidator.stats.drains_started == 0
    _, result, _, _ = _run(env, jobs, consolidate_min_remaining_s=3 * HOUR)
    assert result.migrations == 1


def test_a_job_arriving_during_a_drain_goes_elsewhere_or_calls_it_off(env):
    # at t=5400 (node 0 draining, its job not yet at its epoch end) a 1-GPU job arrives: the only
    # free GPUs are node 0's (GPU 1) and node 1's (GPU 3); it avoids the draining node
    jobs = [*_fragmented(env), _job(env, 4, 10, submit=1.5 * HOUR)]
    recs, result, policy, log = _run(env, jobs)
    places = {d.job_id: d.gpus for _, d in log if isinstance(d, Place)}
    assert places[4] == (3,)
    # node 1 is now full: job 0 has nowhere to go at its epoch end, so the drain is called off
    assert recs[0].migrations == 0
    assert policy.consolidator.stats.drains_called_off == 1
    # and a job that needs the draining node's GPU takes it, calling the drain off at once
    jobs = [*_fragmented(env), _job(env, 4, 10, submit=1.5 * HOUR), _job(env, 5, 10, submit=1.5 * HOUR)]
    recs, result, policy, log = _run(env, jobs)
    places = {d.job_id: d.gpus for _, d in log if isinstance(d, Place)}
    assert sorted((places[4], places[5])) == [(1,), (3,)]
    assert result.migrations == 0 and policy.consolidator.stats.drains_called_off == 1


def test_settings_are_checked():
    with pytest.raises(ValueError, match="interval_s"):
        ConsolidationSettings(interval_s=-1)
    with pytest.raises(ValueError, match="max_moves_per_job"):
        ConsolidationSettings(max_moves_per_job=0)
    with pytest.raises(ValueError, match="consolidate_min_remaining_s"):
        EacoSettings(consolidate_min_remaining_s=-1)
    with pytest.raises(ValueError, match="reason"):
        Undo(1, reason="whim")
