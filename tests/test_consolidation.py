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


def test_a_shared_gpus_set_moves_member_by_member_onto_one_held_gpu():
    """move_shared: jobs 1 and 2 share GPU 0 (node 0), job 3 runs alone on GPU 2 (node 1). Node 0
    is drained: each member is undone at its own epoch end and placed on node 1's free GPU 3,
    which is held for the set (no other job may join it) until the set is whole again."""
    from eaco.policies.consolidation import Consolidator
    from eaco.policies.view import JobProgress, SchedulerView
    from eaco.state.cluster_state import ClusterState

    spec = ClusterSpec.homogeneous(2, 2, V100)
    state = ClusterState(spec)
    jobs = {j: Job(j, 0.0, 1, TYPE, 10, HOUR, 8.0, 0.4) for j in (1, 2, 3)}
    state.place(jobs[1], (0,))
    state.place(jobs[2], (0,))
    state.place(jobs[3], (2,))
    held_nodes: list[int] = []
    speeds = {1: 0.8, 2: 0.7, 3: 1.0}
    consolidator = Consolidator(
        ConsolidationSettings(interval_s=0.0, min_remaining_s=0.0, move_shared=True),
        remaining_s=lambda view, job, gpu_type: job.num_epochs * job.epoch_duration_s,
        movable=lambda job_id: True,
        speed=lambda view, job_id: speeds[job_id],
        on_hold_change=held_nodes.append,
    )

    def view(now_s, queued=()):
        progress = lambda j: JobProgress(0.0, 0.0, None if j in queued else 0.0, 0.0)  # noqa: E731
        return SchedulerView(now_s, state, [jobs[j] for j in queued], jobs, progress)

    assert consolidator.maybe_start(view(0.0)) == [Watch(1, 1), Watch(2, 1)]
    assert consolidator.draining_nodes == {0}
    # job 1's epoch ends first: undone, then placed on node 1's free GPU, which becomes held
    assert consolidator.on_reports(view(HOUR), {1}) == [Undo(1, reason="migration")]
    state.remove(1)
    assert consolidator.place_moving(view(HOUR, queued=(1,))) == [Place(1, (3,))]
    state.place(jobs[1], (3,))
    assert consolidator.held_gpus == {3} and held_nodes == [1]
    # job 2 follows at its epoch end: onto the same GPU, re-forming the set; the hold ends
    assert consolidator.on_reports(view(1.25 * HOUR), {2}) == [Undo(2, reason="migration")]
    state.remove(2)
    assert consolidator.place_moving(view(1.25 * HOUR, queued=(2,))) == [Place(2, (3,))]
    state.place(jobs[2], (3,))
    assert consolidator.held_gpus == frozenset() and held_nodes == [1, 1]
    assert consolidator.draining_nodes == frozenset()
    stats = consolidator.stats
    assert (stats.drains_started, stats.drains_completed, stats.drains_called_off, stats.moves) == (1, 1, 0, 2)
    # without move_shared the node with a shared GPU is never drained (node 1's lone job moves instead)
    plain = Consolidator(ConsolidationSettings(interval_s=0.0, min_remaining_s=0.0),
                         remaining_s=lambda view, job, gpu_type: job.num_epochs * job.epoch_duration_s,
                         movable=lambda job_id: True, speed=lambda view, job_id: 1.0)
    state.remove(1)
    state.remove(2)
    state.place(jobs[1], (0,))
    state.place(jobs[2], (0,))
    assert plain.maybe_start(view(2 * HOUR)) == [Watch(3, 1)] and plain.draining_nodes == {1}


def test_a_set_member_that_would_miss_its_deadline_keeps_the_node(env):
    """A set's member is checked at its speed in the set: 10 h of work alone at 0.5 is 20 h."""
    from eaco.policies.consolidation import Consolidator
    from eaco.policies.view import JobProgress, SchedulerView
    from eaco.state.cluster_state import ClusterState

    state = ClusterState(ClusterSpec.homogeneous(2, 2, V100))
    jobs = {1: Job(1, 0.0, 1, TYPE, 10, HOUR, 8.0, 0.4, deadline_s=15 * HOUR), 2: Job(2, 0.0, 1, TYPE, 10, HOUR, 8.0, 0.4),
            3: Job(3, 0.0, 1, TYPE, 10, HOUR, 8.0, 0.4)}
    for j, g in ((1, 0), (2, 0), (3, 2)):
        state.place(jobs[j], (g,))
    consolidator = Consolidator(
        ConsolidationSettings(interval_s=0.0, min_remaining_s=0.0, move_shared=True),
        remaining_s=lambda view, job, gpu_type: job.num_epochs * job.epoch_duration_s,
        movable=lambda job_id: True, speed=lambda view, job_id: 0.5,
    )
    view = SchedulerView(0.0, state, [], jobs, lambda j: JobProgress(0.0, 0.0, 0.0, 0.0))
    # node 0 cannot go (job 1 would finish at 20 h > 15 h); node 1's lone job 3 may move instead
    assert consolidator.maybe_start(view) == [Watch(3, 1)]
    assert consolidator.draining_nodes == {1}
