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
