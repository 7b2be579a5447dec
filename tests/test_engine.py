"""Hand-computed scenarios for the event-driven engine."""

import math

import pytest

from eaco.errors import PolicyError
from eaco.model.cluster import ClusterSpec
from eaco.model.job import Job
from eaco.policies.base import Policy
from eaco.policies.decisions import Place, Undo, Watch
from eaco.sim.engine import DEFAULT_RESTART_OVERHEAD_S, SimulationOptions, Simulator
from eaco.sim.metrics import compute_metrics
from eaco.workloads.base import Workload

CHECK = SimulationOptions(check_invariants=True)


class ScriptedPolicy(Policy):
    """Test policy: places every queued job on fixed GPUs, optionally watches and undoes."""

    name = "scripted"

    def __init__(self, gpus_for: dict[int, tuple[int, ...]], watch: tuple[int, ...] = (), undo_on_report: bool = False):
        self.gpus_for = gpus_for
        self.watch = watch
        self.undo_on_report = undo_on_report
        self.reports = []

    def schedule(self, view):
        self.reports.extend(view.reports)
        if self.undo_on_report:
            for r in view.reports:
                self.undo_on_report = False
                return [Undo(r.job_id)]
        for job in view.queue:
            gpus = self.gpus_for[job.job_id]
            if all(view.free_memory_gb(g) >= job.memory_gb for g in gpus):
                out = [Place(job.job_id, gpus)]
                if job.job_id in self.watch:
                    out.append(Watch(job.job_id, 1))
                return out
        return []


def _job(env, job_id, job_type, epochs, epoch_s, submit=0.0, gpus=1):
    spec = env.catalog.get(job_type)
    return Job(job_id, submit, gpus, job_type, epochs, epoch_s, spec.memory_gb, spec.util_on("v100"))


def _sim(env, jobs, policy, cluster=None, options=CHECK):
    cluster = cluster or ClusterSpec.homogeneous(1, 1, "v100")
    wl = Workload("test", tuple(jobs), "hand-built")
    return Simulator(cluster, wl, policy, env.truth, env.energy, options)


def _node_power(env, jobs, util, cpu_jobs):
    cpu = sum(env.catalog.get(j.job_type).cpu_util_per_gpu for j in cpu_jobs)
    return env.energy.host.power_w(min(1.0, cpu)) + env.energy.node_baseline_w + env.energy.gpu("v100").power_w(util)


def test_single_job_alone_exact_jct_and_energy(env):
    job = _job(env, 0, "resnet50", 3, 100.0)
    res = _sim(env, [job], ScriptedPolicy({0: (0,)})).run()
    rec = res.jobs[0]
    assert rec.finish_s == pytest.approx(300.0)
    assert rec.jct_s == pytest.approx(300.0) and rec.waiting_s == pytest.approx(0.0)
    p = _node_power(env, [job], job.gpu_util, [job])
    assert res.energy.total_j == pytest.approx(p * 300.0)
    assert res.energy.attributed_to_jobs_j == pytest.approx(p * 300.0)
    assert rec.energy_j == pytest.approx(p * 300.0)


def test_two_jobs_share_one_gpu_exact_jct_and_energy(env):
    """alexnet (2 epochs x 100 s) and resnet50 (1 epoch x 100 s) share one V100 from t=0."""
    a = _job(env, 0, "alexnet", 2, 100.0)
    b = _job(env, 1, "resnet50", 1, 100.0)
    s_a, s_b = env.colocation.speeds(("alexnet", "resnet50"), "v100")
    assert 0 < s_a <= 1 and 0 < s_b <= 1
    u_ab = env.colocation.utilisation(("alexnet", "resnet50"), "v100")
    # b needs 1 epoch at s_b epochs per 100 s; a needs 2 epochs at s_a until b leaves, then 1.0
    t_b = 100.0 / s_b
    assert t_b < 200.0 / s_a, "scenario assumes b finishes first"
    done_a = s_a * t_b / 100.0
    t_a = t_b + (2 - done_a) * 100.0
    res = _sim(env, [a, b], ScriptedPolicy({0: (0,), 1: (0,)})).run()
    recs = {r.job_id: r for r in res.jobs}
    assert recs[1].finish_s == pytest.approx(t_b)
    assert recs[0].finish_s == pytest.approx(t_a)
    assert recs[0].colocated_time_s == pytest.approx(t_b)
    p_shared = _node_power(env, [a, b], u_ab, [a, b])
    p_alone = _node_power(env, [a], a.gpu_util, [a])
    assert res.energy.total_j == pytest.approx(p_shared * t_b + p_alone * (t_a - t_b))
    # host power split per job slot; the shared GPU's idle power split equally and the power its
    # work adds in proportion to each job's work there (exclusive utilisation x speed)
    gpu = env.energy.gpu("v100")
    p_gpu, p_idle = gpu.power_w(u_ab), gpu.power_w(0.0)
    share_b = b.gpu_util * s_b / (a.gpu_util * s_a + b.gpu_util * s_b)
    host_shared = p_shared - p_gpu
    e_b = (host_shared / 2 + p_idle / 2 + (p_gpu - p_idle) * share_b) * t_b
    assert recs[1].energy_j == pytest.approx(e_b)
    assert recs[0].energy_j == pytest.approx(p_shared * t_b - e_b + p_alone * (t_a - t_b))
    assert a.gpu_util < b.gpu_util and e_b > p_shared * t_b / 2  # resnet50 does more of the work than alexnet
    assert res.max_work_residual < 1e-9


def test_idle_gap_sleeps_and_is_counted(env, env_awake):
    job = _job(env, 0, "vgg16", 1, 50.0, submit=0.0)
    late = _job(env, 1, "vgg16", 1, 50.0, submit=150.0)
    res = _sim(env, [job, late], ScriptedPolicy({0: (0,), 1: (0,)})).run()
    assert res.energy.sleep_j == pytest.approx(env.energy.host.low_power_w * 100.0)
    awake = _sim(env_awake, [job, late], ScriptedPolicy({0: (0,), 1: (0,)})).run()
    idle_node_w = env_awake.energy.awake_idle_node_power_w("v100", 1)
    assert awake.energy.sleep_j == 0.0
    assert awake.energy.total_j - res.energy.total_j == pytest.approx((idle_node_w - env.energy.host.low_power_w) * 100.0)


def test_watch_reports_the_true_speed_and_undo_keeps_whole_epochs(env):
    a = _job(env, 0, "alexnet", 3, 100.0)
    b = _job(env, 1, "resnet50", 3, 100.0)
    s_a, _ = env.colocation.speeds(("alexnet", "resnet50"), "v100")
    policy = ScriptedPolicy({0: (0,), 1: (0,)}, watch=(0,), undo_on_report=True)
    res = _sim(env, [a, b], policy).run()
    rep = policy.reports[0]
    assert rep.job_id == 0 and rep.epochs_done == 1
    assert rep.observed_speed == pytest.approx(s_a)
    assert rep.time_s == pytest.approx(100.0 / s_a)
    assert rep.co_located_with == (1,)
    recs = {r.job_id: r for r in res.jobs}
    assert recs[0].undos == 1 and recs[0].placements == 2 and recs[0].lost_epochs == pytest.approx(0.0)
    assert res.undos == 1
    assert all(math.isfinite(r.finish_s) for r in res.jobs)


def test_undo_mid_epoch_loses_partial_epoch(env):
    from eaco.policies.decisions import WakeUp

    class UndoAt(Policy):
        """Place at once, wake at 150 s, undo there (mid-epoch), then place again."""

        name = "undo-once"

        def __init__(self):
            self.step = 0

        def schedule(self, view):
            if self.step == 0:
                self.step = 1
                return [Place(0, (0,)), WakeUp(150.0)]
            if self.step == 1 and view.now_s == 150.0:
                self.step = 2
                return [Undo(0)]
            if view.queue:
                return [Place(0, (0,))]
            return []

    job = _job(env, 0, "resnet50", 4, 100.0)
    res = _sim(env, [job], UndoAt()).run()
    rec = res.jobs[0]
    # ran 150 s (1.5 epochs), kept 1, restarted from epoch 1 (60 s, the default restart
    # overhead, holding the GPU without progress), then 300 s of running
    assert DEFAULT_RESTART_OVERHEAD_S == 60.0
    assert rec.lost_epochs == pytest.approx(0.5)
    assert rec.run_time_s == pytest.approx(510.0)
    assert rec.finish_s == pytest.approx(510.0)
    assert rec.restart_s == pytest.approx(60.0)
    assert rec.colocation_delay_s == pytest.approx(0.0)
    # without a restart overhead: 150 + 300 s
    free = _sim(env, [job], UndoAt(), options=SimulationOptions(check_invariants=True, restart_overhead_s=0.0)).run()
    assert free.jobs[0].run_time_s == pytest.approx(450.0) and free.jobs[0].restart_s == 0.0


def test_watch_set_while_restarting_counts_from_the_resume(env):
    """A job resumed after an undo restarts for 60 s; a watch asked meanwhile reports one whole
    epoch after the restart, at the job's true speed over its window (restart included)."""
    from eaco.policies.decisions import WakeUp

    class UndoThenWatch(Policy):
        name = "undo-watch"

        def __init__(self):
            self.step = 0
            self.reports = []

        def schedule(self, view):
            self.reports.extend(view.reports)
            if self.step == 0:
                self.step = 1
                return [Place(0, (0,)), WakeUp(100.0)]
            if self.step == 1 and view.now_s == 100.0:
                self.step = 2
                return [Undo(0)]
            if self.step == 2 and view.queue:
                self.step = 3
                return [Place(0, (0,)), Watch(0, 1)]
            return []

    policy = UndoThenWatch()
    res = _sim(env, [_job(env, 0, "resnet50", 3, 100.0)], policy).run()
    (rep,) = policy.reports
    assert rep.time_s == pytest.approx(100.0 + 60.0 + 100.0)
    assert rep.epochs_done == 2
    assert res.jobs[0].finish_s == pytest.approx(100.0 + 60.0 + 200.0)


def test_policy_memory_violation_is_refused(env):
    big = env.catalog.get("vgg16").memory_gb
    assert big > 0
    jobs = [
        Job(0, 0.0, 1, "vgg16", 1, 10.0, 20.0, 0.5),
        Job(1, 0.0, 1, "vgg16", 1, 10.0, 20.0, 0.5),
    ]

    class Greedy(Policy):
        name = "greedy"

        def schedule(self, view):
            return [Place(j.job_id, (0,)) for j in view.queue[:1]]

    with pytest.raises(PolicyError, match="needs 20.0 GB on GPU 0"):
        _sim(env, jobs, Greedy()).run()


def test_job_that_can_never_fit_is_reported_before_running(env):
    jobs = [Job(0, 0.0, 16, "resnet50", 1, 10.0, 1.0, 0.5)]
    with pytest.raises(ValueError, match="can never run"):
        _sim(env, jobs, ScriptedPolicy({})).run()


def test_metrics_of_a_hand_built_run(env):
    a = _job(env, 0, "resnet50", 2, 100.0)
    b = _job(env, 1, "resnet50", 2, 100.0, submit=50.0)
    from eaco.policies.fifo import FifoPolicy

    res = _sim(env, [a, b], FifoPolicy()).run()
    m = compute_metrics(res)
    # b waits for a (single GPU): a 0..200, b 200..400
    assert m.makespan_s == pytest.approx(400.0)
    assert m.waiting_s.mean == pytest.approx((0 + 150.0) / 2)
    assert m.total_time_s.mean == pytest.approx((200.0 + 350.0) / 2)
    assert m.avg_active_nodes == pytest.approx(1.0)
    assert m.avg_gpu_util == pytest.approx(a.gpu_util)


def test_policies_that_end_at_different_times_are_compared_to_the_same_end(env, env_awake):
    from eaco.sim.metrics import with_common_end

    # one run ends at 300 s (nodes asleep after), the other at 200 s with its node awake
    slow = compute_metrics(_sim(env, [_job(env, 0, "resnet50", 3, 100.0)], ScriptedPolicy({0: (0,)})).run())
    fast = compute_metrics(_sim(env_awake, [_job(env, 0, "resnet50", 2, 100.0)], ScriptedPolicy({0: (0,)})).run())
    assert slow.empty_cluster_power_w == pytest.approx(env.energy.host.low_power_w)
    assert fast.empty_cluster_power_w == pytest.approx(env_awake.energy.awake_idle_node_power_w("v100", 1))
    assert slow.energy_common_end_kwh is None
    a, b = with_common_end([slow, fast])
    assert a.energy_common_end_kwh == pytest.approx(slow.energy_kwh)  # it ends last
    extra_kwh = 100.0 * fast.empty_cluster_power_w / 3.6e6
    assert b.energy_common_end_kwh == pytest.approx(fast.energy_kwh + extra_kwh)
    assert with_common_end([slow]) == [slow]
