"""Tests for eaco.workloads: loaders, job-type assignment, generator."""

from __future__ import annotations

import gzip
import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from eaco.colocation.catalog import JobCatalog, JobTypeSpec
from eaco.errors import InputError
from eaco.workloads import (
    JobTypeAssigner,
    UtilisationCdf,
    Workload,
    generate_workload,
    load_alibaba,
    load_csv_trace,
    load_philly,
    load_util_cdf,
    load_workload,
    save_csv_trace,
)
from eaco.workloads.alibaba import gpu_type_from_spec
from eaco.workloads.stats import assignment_util_shift


def _spec(name: str, util: float, memory_gb: float) -> JobTypeSpec:
    return JobTypeSpec(
        name=name,
        family=name.split(" ")[0],
        memory_gb=memory_gb,
        gpu_util={"v100": util, "k80": min(1.0, util + 0.2)},
        relative_speed={"v100": 1.0, "k80": 0.3},
        cpu_util_per_gpu=0.05,
        source="test",
    )


@pytest.fixture(scope="module")
def catalog() -> JobCatalog:
    return JobCatalog(
        types=(
            _spec("tiny", 0.10, 1.5),
            _spec("small", 0.40, 4.0),
            _spec("medium", 0.70, 9.0),
            _spec("big", 0.95, 20.0),
        )
    )


@pytest.fixture(scope="module")
def tied_catalog() -> JobCatalog:
    """Two types with the same utilisation, to exercise the uniform tie-break."""
    return JobCatalog(types=(_spec("low", 0.2, 1.0), _spec("twin-a", 0.8, 2.0), _spec("twin-b", 0.8, 3.0)))


@pytest.fixture(scope="module")
def philly(catalog: JobCatalog) -> Workload:
    start = time.perf_counter()
    workload = load_philly(catalog=catalog, seed=0)
    elapsed_s = time.perf_counter() - start
    assert elapsed_s < 2.0, f"full Philly load took {elapsed_s:.2f} s (budget 2 s; ~0.8 s typical)"
    return workload


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _assert_workload_invariants(w: Workload) -> None:
    assert [j.job_id for j in w.jobs] == list(range(w.num_jobs))
    times = [j.submit_time_s for j in w.jobs]
    assert times == sorted(times)
    if w.jobs:
        assert times[0] == 0.0


# --- CSV traces --------------------------------------------------------------------------

GOOD_CSV = """submit_time_s,duration_s,num_gpus,job_type,gpu_type,deadline_s,priority,memory_gb,epochs,exclusive,note
500,7200,2,medium,V100,9000,1,,,,first
100,30,1,,,,,,,No,second (no type: assigned)
300,1000,4,big,,,0,12.5,5,true,third
"""


def test_csv_trace_good_file(tmp_path: Path, catalog: JobCatalog) -> None:
    w = load_csv_trace(_write(tmp_path / "trace.csv", GOOD_CSV), catalog=catalog, seed=3)
    _assert_workload_invariants(w)
    assert w.name == "trace" and w.num_jobs == 3 and w.skipped_rows == 0
    second, third, first = w.jobs  # sorted by submit time, rebased to the earliest (100 s)
    assert [j.submit_time_s for j in w.jobs] == [0.0, 200.0, 400.0]
    assert first.job_type == "medium" and first.gpu_type == "v100" and first.num_gpus == 2
    assert first.deadline_s == 8900.0 and first.priority == 1
    assert first.memory_gb == 9.0 and first.gpu_util == 0.70  # from the type
    assert (first.num_epochs, first.epoch_duration_s) == (2, 3600.0)  # epochs_for_duration(7200)
    assert third.memory_gb == 12.5 and third.num_epochs == 5 and third.epoch_duration_s == 200.0
    assert second.job_type in catalog and math.isinf(second.deadline_s)
    assert second.exclusive_duration_s == pytest.approx(30.0)
    assert [j.exclusive for j in (first, second, third)] == [False, False, True]


def test_csv_trace_round_trip(tmp_path: Path, catalog: JobCatalog) -> None:
    original = load_csv_trace(_write(tmp_path / "trace.csv", GOOD_CSV), catalog=catalog, seed=3)
    again = load_csv_trace(save_csv_trace(original, tmp_path / "copy.csv.txt"), catalog=catalog, seed=99)
    assert again.num_jobs == original.num_jobs
    for a, b in zip(original.jobs, again.jobs):
        assert (a.job_id, a.submit_time_s, a.num_gpus, a.job_type, a.gpu_type) == (
            b.job_id, b.submit_time_s, b.num_gpus, b.job_type, b.gpu_type)
        assert (a.deadline_s, a.priority, a.memory_gb, a.gpu_util, a.num_epochs, a.exclusive) == (
            b.deadline_s, b.priority, b.memory_gb, b.gpu_util, b.num_epochs, b.exclusive)
        assert b.epoch_duration_s == pytest.approx(a.epoch_duration_s, rel=1e-12)


def test_csv_trace_gzip(tmp_path: Path, catalog: JobCatalog) -> None:
    path = tmp_path / "trace.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(GOOD_CSV)
    assert load_csv_trace(path, catalog=catalog).num_jobs == 3


@pytest.mark.parametrize(
    ("row", "field", "expected"),
    [
        ("10,-5,1", "duration_s", "duration"),
        ("10,60,0", "num_gpus", ">= 1"),
        ("10,60,1.5", "num_gpus", "integer"),
        ("ten,60,1", "submit_time_s", "submit time"),
        ("10,60,1,resnet-9000", "job_type", "catalogue job type"),
        ("10,60,1,,tpu", "gpu_type", "GPU type"),
        ("10,60,1,,,5", "deadline_s", "after submit_time_s"),
        ("10,60,1,,,,,,0", "epochs", ">= 1"),
        ("10,60,1,,,,,,,1.5", "gpu_util", "<= 1"),
        ("10,60,1,,,,,,,,maybe", "exclusive", "true or false"),
    ],
)
def test_csv_bad_row_names_file_line_field(
    tmp_path: Path, catalog: JobCatalog, row: str, field: str, expected: str
) -> None:
    header = "submit_time_s,duration_s,num_gpus,job_type,gpu_type,deadline_s,priority,memory_gb,epochs,gpu_util,exclusive"
    cells = row.split(",")
    cells += [""] * (11 - len(cells))
    text = f"{header}\n0,60,1,tiny,,,,,,,\n{','.join(cells)}\n"
    path = _write(tmp_path / "bad_trace.csv", text)
    with pytest.raises(InputError) as info:
        load_csv_trace(path, catalog=catalog)
    err = info.value
    assert (err.line, err.field) == (3, field)
    message = str(err)
    assert "bad_trace.csv:3" in message and f"'{field}'" in message and expected in message


def test_csv_skip_bad_rows_counts_and_keeps_good(tmp_path: Path, catalog: JobCatalog) -> None:
    text = (
        "submit_time_s,duration_s,num_gpus,job_type\n"
        "0,60,1,tiny\n"
        "5,0,1,tiny\n"  # zero duration
        "7,60,1\n"  # too few fields
        "\n"  # blank line: not a row
        "9,60,2,small\n"
        "11,60,x,small\n"
    )
    path = _write(tmp_path / "mixed.csv", text)
    with pytest.raises(InputError) as info:
        load_csv_trace(path, catalog=catalog)
    assert info.value.line == 3
    w = load_csv_trace(path, catalog=catalog, skip_bad_rows=True)
    assert w.skipped_rows == 3
    assert [(j.submit_time_s, j.num_gpus, j.job_type) for j in w.jobs] == [(0.0, 1, "tiny"), (9.0, 2, "small")]


def test_csv_missing_columns_listed(tmp_path: Path, catalog: JobCatalog) -> None:
    path = _write(tmp_path / "nohdr.csv", "submit,duration_s\n1,2\n")
    with pytest.raises(InputError) as info:
        load_csv_trace(path, catalog=catalog)
    msg = str(info.value)
    assert "nohdr.csv:1" in msg and "submit_time_s" in msg and "num_gpus" in msg
    assert "duration_s," not in msg.split("header has")[0]  # only the missing ones are listed


# --- Philly ------------------------------------------------------------------------------


def test_philly_full_trace(philly: Workload) -> None:
    assert philly.num_jobs == 82_247 and philly.skipped_rows == 0
    _assert_workload_invariants(philly)
    hist = philly.gpu_count_histogram()
    assert hist[1] == 76_627 and hist[8] == 1_643 and max(hist) == 128
    # the trace spans 2017-09-04 10:30:41 .. 2017-12-22 08:02:11 (naive wall-clock time)
    first, last = datetime(2017, 9, 4, 10, 30, 41), datetime(2017, 12, 22, 8, 2, 11)
    assert philly.span_s == (last - first).total_seconds()
    assert philly.total_gpu_hours() == pytest.approx(978_078.47, abs=0.01)
    # duration kept exactly (within float rounding of the epoch split)
    assert philly.jobs[0].exclusive_duration_s > 0


def test_philly_limit_is_prefix_and_seeded(philly: Workload, catalog: JobCatalog) -> None:
    head = load_philly(catalog=catalog, seed=0, limit=500)
    assert head.jobs == philly.jobs[:500]
    other = load_philly(catalog=catalog, seed=1, limit=500)
    assert [j.job_type for j in other.jobs] != [j.job_type for j in head.jobs]
    assert [j.submit_time_s for j in other.jobs] == [j.submit_time_s for j in head.jobs]


def test_philly_bad_rows(tmp_path: Path, catalog: JobCatalog) -> None:
    path = tmp_path / "philly_small.csv.gz"
    rows = [
        "timestamp,duration,num_gpus,gpu_time,cluster",
        "2017-10-01 10:00:00,100.0,2,200.0,vc1",
        "2017-10-01 09:00:00,0.0,1,0.0,vc1",  # zero duration
        "2017-10-01 11:00:00,50.0,0,0.0,vc1",  # zero GPUs
        "2017-10-01 12:00:00,50.0,1,70.0,vc1",  # gpu_time inconsistent
        "2017-10-01 13:00,50.0,1,50.0,vc1",  # timestamp: no seconds is accepted by ISO
        "2017-13-01 13:00:00,50.0,1,50.0,vc1",  # month 13
    ]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    with pytest.raises(InputError) as info:
        load_philly(path, catalog=catalog)
    assert (info.value.line, info.value.field) == (3, "duration")
    assert "philly_small.csv.gz:3" in str(info.value)
    w = load_philly(path, catalog=catalog, skip_bad_rows=True, gpu_type="V100")
    assert w.skipped_rows == 4 and w.num_jobs == 2
    assert [j.submit_time_s for j in w.jobs] == [0.0, 3 * 3600.0]
    assert all(j.gpu_type == "v100" for j in w.jobs)


# --- Alibaba -----------------------------------------------------------------------------


def test_alibaba_excludes_cpu_only_and_unscheduled(catalog: JobCatalog) -> None:
    w = load_alibaba(catalog=catalog)
    _assert_workload_invariants(w)
    assert w.excluded_count("cpu_only") == 1_088
    assert w.excluded_count("never_scheduled") == 861
    assert w.num_jobs == 8_152 - 1_088 - 861 and w.skipped_rows == 0
    assert all(j.num_gpus >= 1 for j in w.jobs)
    assert w.gpu_count_histogram() == {1: 6_129, 2: 15, 4: 15, 8: 44}


def test_alibaba_fractional_pods_map_to_nearest_util(tmp_path: Path, catalog: JobCatalog) -> None:
    header = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"
    rows = [
        "p0,1000,1024,1,460,,LS,Running,0,100,0",  # 0.46 -> small (0.40)
        "p1,1000,1024,1,120,V100M16|V100M32,BE,Succeeded,10,50,12",  # 0.12 -> tiny, pinned v100
        "p2,1000,1024,0,0,,BE,Running,5,50,5",  # CPU-only
        "p3,1000,1024,1,900,T4,Burstable,Failed,20,80,25",  # 0.90 -> big (0.95)
        "p4,1000,1024,1,500,,LS,Pending,30,90,",  # never scheduled
    ]
    path = _write(tmp_path / "pods.csv", "\n".join([header, *rows]) + "\n")
    w = load_alibaba(path, catalog=catalog)
    assert [j.job_type for j in w.jobs] == ["small", "tiny", "big"]
    assert [j.exclusive_duration_s for j in w.jobs] == [100.0, 38.0, 55.0]
    assert [j.gpu_type for j in w.jobs] == [None, "v100", "t4"]
    assert [j.priority for j in w.jobs] == [1, 0, 0]
    assert dict(w.excluded) == {"cpu_only": 1, "never_scheduled": 1}
    pending = load_alibaba(path, catalog=catalog, include_pending=True)
    assert pending.num_jobs == 4 and pending.jobs[-1].exclusive_duration_s == 60.0


def test_alibaba_bad_multi_gpu_milli(tmp_path: Path, catalog: JobCatalog) -> None:
    header = "num_gpu,gpu_milli,gpu_spec,qos,creation_time,deletion_time,scheduled_time"
    path = _write(tmp_path / "pods.csv", f"{header}\n2,500,,LS,0,100,0\n")
    with pytest.raises(InputError) as info:
        load_alibaba(path, catalog=catalog)
    assert (info.value.line, info.value.field) == (2, "gpu_milli")


def test_gpu_spec_mapping() -> None:
    assert gpu_type_from_spec("V100M16|V100M32") == "v100"
    assert gpu_type_from_spec("T4") == "t4"
    assert gpu_type_from_spec("") is None
    assert gpu_type_from_spec("P100|T4") is None
    assert gpu_type_from_spec("G2") is None


# --- job-type assignment -----------------------------------------------------------------


def test_util_cdf_shared_file() -> None:
    cdf = load_util_cdf()
    assert cdf.util.size == 1000 and cdf.cdf[0] == 0.0 and cdf.cdf[-1] == 1.0
    assert cdf.mean() == pytest.approx(0.472, abs=0.002)
    assert cdf.quantile(0.0) == 0.0 and cdf.quantile(1.0) == 1.0


def test_assigner_deterministic_and_batch_equals_single(catalog: JobCatalog) -> None:
    cdf = load_util_cdf()
    a = JobTypeAssigner(catalog, cdf, np.random.default_rng(7))
    b = JobTypeAssigner(catalog, cdf, np.random.default_rng(7))
    c = JobTypeAssigner(catalog, cdf, np.random.default_rng(8))
    gpus = [1, 2, 1, 8] * 50
    singles = [a.assign(g).name for g in gpus]
    batch = [s.name for s in b.assign_many(gpus)]
    assert singles == batch
    assert [s.name for s in c.assign_many(gpus)] != batch


def test_assigner_nearest_and_ties(tied_catalog: JobCatalog) -> None:
    # a point mass at u = 0.75: both twins (0.8) are nearest; the other type is never picked
    cdf = UtilisationCdf(util=np.array([0.75, 0.75]), cdf=np.array([0.0, 1.0]), source="test")
    assigner = JobTypeAssigner(tied_catalog, cdf, np.random.default_rng(0))
    names = [s.name for s in assigner.assign_many([1] * 4000)]
    assert set(names) == {"twin-a", "twin-b"}
    assert abs(names.count("twin-a") - 2000) < 150  # uniform among the tied nearest
    assert assigner.assign_for_util(0.1, 1).name == "low"
    # a filter barring the twins from multi-GPU jobs leaves only "low" for them
    barred = JobTypeAssigner(tied_catalog, cdf, np.random.default_rng(0),
                             supports=lambda spec, g: g == 1 or spec.name == "low")
    assert {s.name for s in barred.assign_many([4] * 20)} == {"low"}


def test_assigner_tolerance_widens_candidates(catalog: JobCatalog) -> None:
    cdf = UtilisationCdf(util=np.array([0.5, 0.5]), cdf=np.array([0.0, 1.0]), source="test")
    exact = JobTypeAssigner(catalog, cdf, np.random.default_rng(0))
    assert {s.name for s in exact.assign_many([1] * 200)} == {"small"}  # |0.4-0.5| < |0.7-0.5|
    wide = JobTypeAssigner(catalog, cdf, np.random.default_rng(0), tolerance=0.15)
    assert {s.name for s in wide.assign_many([1] * 200)} == {"small", "medium"}


# --- generator ---------------------------------------------------------------------------


def test_generator_deterministic_per_seed(catalog: JobCatalog) -> None:
    a = generate_workload(300, 10.0, catalog=catalog, seed=11)
    b = generate_workload(300, 10.0, catalog=catalog, seed=11)
    c = generate_workload(300, 10.0, catalog=catalog, seed=12)
    assert a.jobs == b.jobs
    assert a.jobs != c.jobs
    _assert_workload_invariants(a)
    assert {j.job_type for j in a.jobs} == set(catalog.names())
    # durations come from the Philly pairs (shortest 3600 s) and GPU counts are powers of two
    assert min(j.exclusive_duration_s for j in a.jobs) >= 3600.0 - 1e-6
    assert {j.num_gpus for j in a.jobs} <= {1, 2, 4, 8}


def test_generator_arrival_rate(catalog: JobCatalog) -> None:
    w = generate_workload(4000, 30.0, catalog=catalog, seed=5)
    rate_per_h = (w.num_jobs - 1) / (w.span_s / 3600.0)
    assert rate_per_h == pytest.approx(30.0, rel=0.05)  # 4000 gaps: sd ~1.6 %
    static = generate_workload(10, None, catalog=catalog, seed=5)
    assert all(j.submit_time_s == 0.0 for j in static.jobs)


def test_generator_options(catalog: JobCatalog) -> None:
    single = generate_workload(500, 10.0, catalog=catalog, seed=1, multi_gpu=False,
                               max_duration_s=20_000.0)
    assert all(j.num_gpus == 1 for j in single.jobs)
    assert max(j.exclusive_duration_s for j in single.jobs) <= 20_000.0 + 1e-6
    util_typed = generate_workload(500, 10.0, catalog=catalog, seed=1, job_type_rule="philly_util")
    uniform = generate_workload(500, 10.0, catalog=catalog, seed=1)
    # the type rule changes types only; arrivals and (duration, gpus) draws are separate streams
    assert [j.submit_time_s for j in util_typed.jobs] == [j.submit_time_s for j in uniform.jobs]
    assert [j.num_gpus for j in util_typed.jobs] == [j.num_gpus for j in uniform.jobs]
    # ~32 % of Philly GPU samples are idle (u = 0), all mapped to "tiny"
    assert util_typed.job_type_counts()["tiny"] > 0.3 * 500
    with pytest.raises(ValueError):
        generate_workload(10, 10.0, catalog=catalog, max_duration_s=1.0)


# --- dispatch ----------------------------------------------------------------------------


def test_load_workload_dispatch(tmp_path: Path, catalog: JobCatalog) -> None:
    path = _write(tmp_path / "t.csv", GOOD_CSV)
    assert load_workload(f"csv:{path}", catalog=catalog).num_jobs == 3
    gen = load_workload("generated", catalog=catalog, seed=2, num_jobs=20, arrival_rate_per_h=5.0)
    assert gen.jobs == generate_workload(20, 5.0, catalog=catalog, seed=2).jobs
    assert load_workload("alibaba", catalog=catalog, limit=10).num_jobs == 10
    with pytest.raises(ValueError, match="unknown workload kind"):
        load_workload("borg", catalog=catalog)


def test_assignment_util_shift_report(catalog: JobCatalog) -> None:
    shift = assignment_util_shift(catalog, seed=0, num_draws=20_000)
    assert shift.drawn_mean_util == pytest.approx(load_util_cdf().mean(), abs=0.01)
    assert sum(share for _, share in shift.type_shares) == pytest.approx(1.0)
    # ~32 % of the CDF's mass is at u = 0, and u < 0.25 goes to "tiny" (0.10)
    assert dict(shift.type_shares)["tiny"] == pytest.approx(0.41, abs=0.02)
    assert 0.0 < shift.mean_abs_gap < 0.125  # at most half the widest gap between types


def test_util_cdf_bad_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "cdf.csv", "gpu_util_pct,cdf_pct\n0,0\n50,60\n40,80\n100,100\n")
    with pytest.raises(InputError) as info:
        load_util_cdf(path)
    assert (info.value.line, info.value.field) == (4, "gpu_util_pct")
    assert "non-decreasing" in str(info.value)
