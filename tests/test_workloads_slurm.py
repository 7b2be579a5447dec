"""The Slurm (sacct) loader: rules, conversions and errors, on a hand-written export."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from eaco.colocation.catalog import load_catalog
from eaco.errors import InputError
from eaco.setup import load_named_workload
from eaco.workloads import load_workload
from eaco.workloads.slurm import gpu_type_from_model, load_slurm, parse_elapsed, parse_tres_gpus

SAMPLE = Path(__file__).parent / "data" / "sacct_sample.txt"
HEADER = "JobID|JobName|Submit|Start|End|ElapsedRaw|State|AllocTRES|ReqTRES|QOS"


def write(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "jobs.txt") -> Path:
    p = tmp_path / name
    p.write_text("\n".join((header, *rows)) + "\n")
    return p


def test_parse_elapsed_forms() -> None:
    assert parse_elapsed("00:45") == 45
    assert parse_elapsed("02:03:04") == 2 * 3600 + 3 * 60 + 4
    assert parse_elapsed("1-00:00:00") == 86400
    assert parse_elapsed("3-01:02:03.5") == 3 * 86400 + 3600 + 123.5
    for bad in ("", "12", "1-", "a:b:c", "1:2:3:4"):
        with pytest.raises(ValueError):
            parse_elapsed(bad)


def test_gpu_models_map_to_our_types() -> None:
    assert gpu_type_from_model("a100") == "a100"
    assert gpu_type_from_model("nvidia_a100-sxm4-80gb") == "a100"
    assert gpu_type_from_model("a10") == "a10"
    assert gpu_type_from_model("tesla_v100-sxm2-16gb") == "v100"
    assert gpu_type_from_model("H100") == "h100"
    assert gpu_type_from_model("tesla_t4") == "t4"
    assert gpu_type_from_model("rtx_a6000") is None
    assert gpu_type_from_model("a4000") is None


def test_tres_gpu_count() -> None:
    assert parse_tres_gpus("billing=8,cpu=8,gres/gpu=2,mem=64G,node=1") == (2, {})
    assert parse_tres_gpus("cpu=8,gres/gpu:a100=2,gres/gpu=2") == (2, {"a100": 2})
    assert parse_tres_gpus("cpu=8,gres/gpu:a100=2,gres/gpu:v100=1") == (3, {"a100": 2, "v100": 1})
    assert parse_tres_gpus("cpu=4,mem=16G,gres/gpumem=40G,gres/shard=2") == (0, {})
    assert parse_tres_gpus("") == (0, {})
    with pytest.raises(ValueError, match="gres/gpu=two"):
        parse_tres_gpus("cpu=8,gres/gpu=two")


def test_sample_export_rules() -> None:
    wl = load_workload(f"slurm:{SAMPLE}", priority_qos=("HIGH", "urgent"))
    assert wl.name == "sacct_sample"
    assert dict(wl.excluded) == {"job_step": 1, "not_ended": 1, "never_ran": 1, "cpu_only": 1}
    assert wl.num_jobs == 4
    by_gpus = {j.num_gpus: j for j in wl.jobs}
    # rebased submit times: 09:00, 09:30, 11:00, 12:30
    assert [j.submit_time_s for j in wl.jobs] == [0.0, 1800.0, 7200.0, 12600.0]

    plain = by_gpus[1]  # untyped allocation, JobName = a catalogue type
    assert plain.job_type == "resnet50" and plain.gpu_type is None and plain.priority == 0
    assert plain.exclusive_duration_s == pytest.approx(7200.0)

    llm = by_gpus[4]  # asked for A100s and ran on them: pinned, run time converted to V100
    from eaco.workloads._defaults import resolve_catalog

    speed = resolve_catalog(None).get(llm.job_type).speed_on("a100")
    assert llm.gpu_type == "a100" and llm.priority == 1
    assert llm.exclusive_duration_s == pytest.approx(86400.0 * speed)
    assert not math.isfinite(llm.deadline_s)

    array_task = by_gpus[2]  # ran on A100s it did not ask for: converted, not pinned
    speed = resolve_catalog(None).get(array_task.job_type).speed_on("a100")
    assert array_task.gpu_type is None
    assert array_task.exclusive_duration_s == pytest.approx(3600.0 * speed)

    two_nodes = by_gpus[16]  # JobName matches case-insensitively; ran on V100 = reference
    assert two_nodes.job_type == "vgg16" and two_nodes.gpu_type == "v100" and two_nodes.priority == 1
    assert two_nodes.exclusive_duration_s == pytest.approx(14400.0)


def test_no_priority_qos_means_no_priority() -> None:
    assert all(j.priority == 0 for j in load_slurm(SAMPLE).jobs)


def test_comma_separated_with_elapsed_and_unix_times(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "7,1767603600,1767603660,1-00:00:00,COMPLETED,gres/gpu=8",
        "8,1767600000,1767600030,00:10:00,CANCELLED by 3,gres/gpu=1",
        header="JobIDRaw,Submit,Start,Elapsed,State,AllocTRES",
        name="jobs.csv",
    )
    wl = load_slurm(p)
    assert [(j.submit_time_s, j.num_gpus, j.exclusive_duration_s) for j in wl.jobs] == [
        (0.0, 1, 600.0), (3600.0, 8, 86400.0)]


def test_start_end_when_no_elapsed_column(tmp_path: Path) -> None:
    p = write(tmp_path, "5|2026-03-01T10:00:00|2026-03-01T10:05:00|2026-03-01T12:05:00|COMPLETED|gres/gpu=2",
              header="JobID|Submit|Start|End|State|AllocTRES")
    (job,) = load_slurm(p).jobs
    assert job.exclusive_duration_s == pytest.approx(7200.0) and job.num_gpus == 2


def test_parsable_with_trailing_bar(tmp_path: Path) -> None:
    p = write(tmp_path, "5|2026-03-01T10:00:00|60|COMPLETED|gres/gpu=1|",
              header="JobID|Submit|ElapsedRaw|State|AllocTRES|")
    (job,) = load_slurm(p).jobs
    assert job.exclusive_duration_s == 60.0


@pytest.mark.parametrize(
    ("row", "field", "expected"),
    [
        ("1|x|2026-01-05T09:00:00|2026-01-05T09:00:10||abc|COMPLETED|gres/gpu=1||normal", "ElapsedRaw", "whole seconds"),
        ("1|x|yesterday|2026-01-05T09:00:10||60|COMPLETED|gres/gpu=1||normal", "Submit", "a time"),
        ("1|x|2026-01-05T09:00:00|2026-01-05T09:00:10||60|DONE|gres/gpu=1||normal", "State", "a Slurm job state"),
        ("1|x|2026-01-05T09:00:00|2026-01-05T09:00:10||60|COMPLETED|cpu=2,gres/gpu=a|gres/gpu=1|normal", "AllocTRES", "gres/gpu=<integer>"),
        ("|x|2026-01-05T09:00:00|2026-01-05T09:00:10||60|COMPLETED|gres/gpu=1||normal", "JobID", "a job id"),
    ],
)
def test_bad_row_names_file_line_field(tmp_path: Path, row: str, field: str, expected: str) -> None:
    good = "9|x|2026-01-05T08:00:00|2026-01-05T08:00:10||60|COMPLETED|gres/gpu=1||normal"
    p = write(tmp_path, good, row)
    with pytest.raises(InputError) as info:
        load_slurm(p)
    err = info.value
    assert (err.source, err.line, err.field) == (str(p), 3, field)
    assert expected in err.message
    # skip_bad_rows keeps the good row and counts the bad one
    wl = load_slurm(p, skip_bad_rows=True)
    assert wl.num_jobs == 1 and wl.skipped_rows == 1


def test_missing_columns_are_named(tmp_path: Path) -> None:
    p = write(tmp_path, "1|2026-01-05T09:00:00|COMPLETED|gres/gpu=1", header="JobID|Submit|State|AllocTRES")
    with pytest.raises(InputError, match="ElapsedRaw, Elapsed, or Start and End") as info:
        load_slurm(p)
    assert info.value.line == 1
    p = write(tmp_path, "1|2026-01-05T09:00:00|60|COMPLETED", header="JobID|Submit|ElapsedRaw|State")
    with pytest.raises(InputError, match="missing column AllocTRES or ReqTRES"):
        load_slurm(p)
    with pytest.raises(InputError, match="file not found"):
        load_slurm(tmp_path / "nope.txt")


def test_simulate_command_on_a_slurm_export(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eaco.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "simulate", "-w", f"slurm:{SAMPLE}", "-c", "1x8xa100,2x8xv100", "-p", "fifo,eaco",
        "--slurm-priority-qos", "high", "-o", str(out), "--no-plots",
    ])
    assert result.exit_code == 0, result.output
    assert "1 job step" in result.output and "1 cpu only" in result.output
    assert (out / "metrics.json").exists()
    bad = CliRunner().invoke(app, ["simulate", "-n", "5", "--slurm-priority-qos", "high", "-o", str(out)])
    assert bad.exit_code == 2 and "slurm:PATH workloads only" in bad.output


def test_iso_times_in_the_clusters_time_zone_across_a_daylight_saving_change(tmp_path: Path) -> None:
    """Berlin's clocks jump from 02:00 to 03:00 on 2026-03-29: jobs submitted at 01:30 and 03:30
    local time are one hour apart, not two; without the zone the gap is read off the wall clock."""
    path = write(tmp_path,
                 "1|a|2026-03-29T01:30:00|2026-03-29T01:30:00|2026-03-29T03:40:00|600|COMPLETED|gres/gpu=1||normal",
                 "2|b|2026-03-29T03:30:00|2026-03-29T03:30:00|2026-03-29T03:40:00|600|COMPLETED|gres/gpu=1||normal")
    zoned = load_slurm(path, timezone_name="Europe/Berlin")
    plain = load_slurm(path)
    assert [j.submit_time_s for j in zoned.jobs] == [0.0, 3600.0]
    assert [j.submit_time_s for j in plain.jobs] == [0.0, 7200.0]
    with pytest.raises(InputError, match=r"--slurm-timezone: unknown time zone 'Mars/Olympus'"):
        load_slurm(path, timezone_name="Mars/Olympus")
    with pytest.raises(InputError, match="--slurm-timezone: applies to slurm:PATH workloads only"):
        load_named_workload("generated", load_catalog(), slurm_timezone="Europe/Berlin")
