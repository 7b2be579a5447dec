import pytest

from eaco.errors import InputError, PolicyError
from eaco.model.cluster import ClusterSpec
from eaco.model.job import Job, epochs_for_duration
from eaco.state.cluster_state import ClusterState


def job(job_id: int, gpus: int = 1, mem: float = 4.0, jt: str = "resnet18", gpu_type=None) -> Job:
    return Job(job_id, 0.0, gpus, jt, 10, 60.0, mem, 0.3, gpu_type=gpu_type)


def test_cluster_parse_mixed_and_errors():
    spec = ClusterSpec.parse("2x8xv100,1x4xa100")
    assert spec.num_nodes == 3 and spec.num_gpus == 20
    assert spec.gpu_types == ("a100", "v100")
    with pytest.raises(InputError, match="NODESxGPUSxTYPE"):
        ClusterSpec.parse("28x8")
    with pytest.raises(InputError, match="unknown GPU type"):
        ClusterSpec.parse("2x8xz900")


def test_place_remove_bookkeeping_and_free_index():
    st = ClusterState(ClusterSpec.homogeneous(2, 4, "v100"))
    assert st.free_gpu_count() == 8 and st.active_nodes == 0
    st.place(job(0, 2), (0, 1))
    assert st.active_nodes == 1 and st.busy_gpus == 2
    assert st.nodes_with_free("v100", 2) == {0}
    assert st.nodes_with_free("v100", 4) == {1}
    # co-locate a second 2-GPU job on the same GPUs: no new busy GPU, memory adds up
    st.place(job(1, 2, mem=10.0), (0, 1))
    assert st.busy_gpus == 2
    assert st.gpu_memory_used_gb[0] == pytest.approx(14.0)
    assert st.gpu_jobs[0] == [0, 1]
    st.remove(0)
    assert st.gpu_jobs[0] == [1] and st.gpu_memory_used_gb[0] == pytest.approx(10.0)
    st.remove(1)
    assert st.active_nodes == 0 and st.busy_gpus == 0 and st.free_gpu_count() == 8
    assert st.gpu_memory_used_gb[0] == 0.0


def test_memory_overcommit_is_refused_and_nothing_changes():
    st = ClusterState(ClusterSpec.homogeneous(1, 2, "v100"))  # 32 GB per GPU
    st.place(job(0, 1, mem=20.0), (0,))
    with pytest.raises(PolicyError, match="needs 15.0 GB on GPU 0"):
        st.place(job(1, 1, mem=15.0), (0,))
    assert st.gpu_jobs[0] == [0] and 1 not in st.job_gpus
    with pytest.raises(PolicyError, match="already placed"):
        st.place(job(0, 1), (1,))
    with pytest.raises(PolicyError, match="asks for a100"):
        st.place(job(2, 1, gpu_type="a100"), (1,))


def test_solo_index_tracks_packing():
    st = ClusterState(ClusterSpec.homogeneous(1, 4, "v100"))
    st.place(job(0, 2, jt="a"), (0, 1))
    st.place(job(1, 2, jt="b"), (2, 3))
    assert set(st.solo_partner_groups(2, "v100")) == {"a", "b"}
    st.place(job(2, 2, jt="c"), (0, 1))  # packs with job 0
    groups = st.solo_partner_groups(2, "v100")
    assert set(groups) == {"b"}
    st.remove(2)
    assert set(st.solo_partner_groups(2, "v100")) == {"a", "b"}


def test_epochs_for_duration_rule():
    assert epochs_for_duration(60.0) == (1, 60.0)
    assert epochs_for_duration(7200.0) == (2, 3600.0)
    n, d = epochs_for_duration(1e7)
    assert n == 100 and d == pytest.approx(1e5)


def test_offline_gpus_are_not_free_and_come_back():
    st = ClusterState(ClusterSpec.homogeneous(2, 4, "v100"))
    v0, n0, log0 = st.version, list(st.node_version), st.nodes_changed_since(0)[1]
    st.set_offline([1, 2], True)
    assert st.offline_gpus == {1, 2}
    assert st.free_gpu_count() == 6 and st.free_gpu_count("v100") == 6
    assert st.free_gpus_on(0) == {0, 3} and st.nodes_with_free("v100", 2) == {0}
    assert st.nodes_with_free("v100", 4) == {1} and st.max_free_on_a_node("v100") == 4
    assert st.free_memory_gb(1) == 0.0 and st.free_memory_gb(0) == pytest.approx(32.0)
    assert st.version > v0 and st.node_version[0] > n0[0] and st.node_version[1] == n0[1]
    changed, _ = st.nodes_changed_since(log0)
    assert changed and set(changed) == {0}  # readers that follow the node log see node 0 change
    with pytest.raises(PolicyError, match="GPU 1 is offline"):
        st.place(job(0, 1, mem=0.0), (1,))
    assert st.gpu_jobs[1] == [] and 0 not in st.job_gpus
    v1 = st.version
    st.set_offline([1], True)  # already offline: nothing changes
    assert st.version == v1 and st.free_gpu_count() == 6
    st.set_offline([1, 2], False)
    assert st.offline_gpus == set() and st.version > v1
    assert st.free_gpu_count() == 8 and st.free_gpus_on(0) == {0, 1, 2, 3} and st.nodes_with_free("v100", 4) == {0, 1}
    assert st.free_memory_gb(1) == pytest.approx(32.0)
    st.place(job(1, 4), (0, 1, 2, 3))  # usable again
    assert st.busy_gpus == 4


def test_a_gpu_holding_a_job_cannot_go_offline():
    st = ClusterState(ClusterSpec.homogeneous(1, 2, "v100"))
    st.place(job(0, 1), (1,))
    v = st.version
    with pytest.raises(ValueError, match="GPU 1 holds jobs \\[0\\]"):
        st.set_offline([0, 1], True)
    assert st.offline_gpus == set() and st.version == v and st.free_gpus_on(0) == {0}  # all or nothing
    with pytest.raises(ValueError, match="GPU 5 does not exist"):
        st.set_offline([5], False)
    st.remove(0)
    st.set_offline([1], True)
    assert st.free_gpus_on(0) == {0} and st.free_gpu_count() == 1


def test_an_unshareable_job_is_never_a_packing_partner():
    s = ClusterState(ClusterSpec.homogeneous(1, 2, "v100"))
    s.place(job(1), (0,), shareable=False)  # e.g. an undone job finishing its epoch in the runtime
    s.place(job(2), (1,))
    assert list(s.solo_partner_groups(1, "v100").get("resnet18", {})) == [2]
    s.place(job(3), (1,))  # job 2 shares now; when job 3 leaves, job 2 is a partner again
    assert s.solo_partner_groups(1, "v100").get("resnet18") is None
    s.remove(3)
    assert list(s.solo_partner_groups(1, "v100")["resnet18"]) == [2]
    s.remove(1)
    assert 1 not in s.unshareable
    s.place(job(1), (0,))  # placed again normally: a partner like any other
    assert list(s.solo_partner_groups(1, "v100")["resnet18"]) == [2, 1]


def test_nodes_added_to_a_live_cluster_are_usable_and_announced():
    from eaco.model.cluster import ClusterSpec, NodeSpec
    from eaco.model.job import Job
    from eaco.policies.fifo import FifoPolicy
    from eaco.policies.view import JobProgress, SchedulerView
    from eaco.state.cluster_state import ClusterState

    state = ClusterState(ClusterSpec.homogeneous(1, 2, "v100"))
    wide = Job(1, 0.0, 2, "resnet50", 1, 60.0, 4.0, 0.5)
    big = Job(2, 0.0, 4, "resnet50", 1, 60.0, 4.0, 0.5)
    state.place(wide, (0, 1))
    fifo = FifoPolicy()

    def view():
        return SchedulerView(0.0, state, [big], {1: wide, 2: big}, lambda j: JobProgress(0.0, None, None, 0.0))

    assert fifo.schedule(view()) == []  # no room: the head is blocked ...
    _, position = state.nodes_changed_since(0)
    assert state.add_nodes([NodeSpec(0, "v100", 4)]) == (2, 3, 4, 5)
    assert state.spec.num_nodes == 2 and state.gpu_node[2:] == [1, 1, 1, 1] and state.max_node_gpus["v100"] == 4
    assert state.free_gpu_count("v100") == 4 and state.nodes_with_free("v100", 4) == {1}
    assert state.nodes_changed_since(position)[0] == [1] and state.capacity_version == 1
    # ... and looks again once GPUs joined, although no job ended
    assert [d.gpus for d in fifo.schedule(view())] == [(2, 3, 4, 5)]
    state.place(big, (2, 3, 4, 5))
    assert state.active_nodes == 2
    state.set_offline((), True)
    assert state.capacity_version == 1  # nothing changed


def test_an_exclusive_job_holds_its_gpus_whole_until_it_may_share():
    from dataclasses import replace

    st = ClusterState(ClusterSpec.parse("1x2xv100,1x2xa100"))
    st.place(job(0, 1), (1,))
    with pytest.raises(PolicyError, match="not idle and job 5 is exclusive"):
        st.place(replace(job(5, 1), exclusive=True), (1,))  # an exclusive job needs idle GPUs
    excl = replace(job(1, 2, mem=6.0), exclusive=True)
    st.place(excl, (2, 3))  # A100s: it holds all 80 GB of each, whatever it needs
    assert st.gpu_memory_used_gb[2] == st.gpu_memory_used_gb[3] == 80.0
    assert st.solo_partner_groups(2, "a100") == {}  # never a packing partner
    with pytest.raises(PolicyError, match="holds an exclusive job"):
        st.place(job(2, 1, mem=0.0), (2,))  # not even a job that needs no memory joins it
    st.set_job_memory(1, 10.0)  # still exclusive: no change
    assert st.gpu_memory_used_gb[2] == 80.0
    with pytest.raises(PolicyError, match="does not fit"):
        st.end_exclusive(1, 90.0)
    st.end_exclusive(1, 10.0)  # it may share from now on, holding its own figure
    assert st.gpu_memory_used_gb[2] == 10.0 and list(st.solo_partner_groups(2, "a100")["resnet18"]) == [1]
    st.place(job(3, 2, mem=20.0), (2, 3))
    assert st.gpu_memory_used_gb[3] == 30.0
    st.remove(3)
    st.remove(1)
    assert st.gpu_memory_used_gb[2] == 0.0 and not st.exclusive_jobs
