"""eaco report (eaco.report.runtime_report): the runtime's report from its state folder, built
here from a store filled by hand (no daemon); the real four-job run checks it in test_runtime.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eaco.cli import app
from eaco.errors import InputError
from eaco.report.runtime_report import _lanes, write_runtime_report
from eaco.runtime.layout import StateLayout
from eaco.runtime.spec import spec_from_yaml
from eaco.runtime.store import Store

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: the hour starts at T0 - 800


def spec_json(name: str, extra: str = "") -> str:
    return spec_from_yaml(f"name: {name}\ncommand: [python, train.py]\nepochs: 4\njob_type: resnet50\n{extra}").model_dump_json()


def test_lanes_stack_overlapping_attempts_only():
    # a alone, then b and c together (two lanes), then d alone after both ended
    spans = [(0, 10, "a"), (10, 30, "b"), (15, 25, "c"), (30, 40, "d"), (26, 29, "e")]
    assert _lanes(spans) == [(0, 1), (0, 2), (1, 2), (0, 1), (1, 2)]
    assert _lanes([]) == []


@pytest.fixture()
def state(tmp_path: Path) -> Path:
    root = tmp_path / "state"
    root.mkdir()
    (root / "local_gpus.json").write_text(json.dumps({"gpu_type": "v100", "device_indices": [0, 1], "declared": True}))
    store = Store(StateLayout(root).db)
    a = store.submit("alone", spec_json("alone", "deadline_s: 100\n"), T0)
    b = store.submit("shared", spec_json("shared", "deadline_s: 50\n"), T0 + 1)
    c = store.submit("undone", spec_json("undone"), T0 + 2)
    d = store.submit("waiting", spec_json("waiting", "deadline_s: 10\n"), T0 + 3)
    store.end_attempt(a, store.begin_attempt(a, (0,), False, T0 + 5), 0, "finished", "finished", T0 + 60)
    store.end_attempt(b, store.begin_attempt(b, (1,), False, T0 + 5), 0, "finished", "finished", T0 + 80)
    first = store.begin_attempt(c, (1,), True, T0 + 6, sharing_with=(b,))
    store.request_undo(c)
    store.end_attempt(c, first, 0, "stopped", "queued", T0 + 20)
    store.end_attempt(c, store.begin_attempt(c, (0,), False, T0 + 61), 0, "finished", "finished", T0 + 90)
    store.add_accounting({a: (55.0, 0.0, 1000.0), b: (75.0, 14.0, 2000.0), c: (43.0, 14.0, 1500.0)},
                         {"duration_s": 85.0, "gpu_busy_j": 4000.0, "gpu_idle_j": 500.0, "host_j": 3000.0, "model_gpu_s": 170.0},
                         end_unix=T0 + 90)
    del d  # queued: never ran
    store.close()
    return root


def test_report_files_from_a_state_folder(state: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    got = write_runtime_report(state, out, now_unix=T0 + 100)
    assert (got.jobs, got.attempts, got.colocated_jobs) == (4, 4, 2)
    assert got.energy_kwh == pytest.approx(7500.0 / 3.6e6)
    assert {f.name for f in got.files} == {"report.md", "jobs.csv", "attempts.csv", "energy_hourly.csv", "summary.json", "timeline.png"}
    jobs = {r["name"]: r for r in csv.DictReader((out / "jobs.csv").open())}
    # deadlines: judged on finished jobs; a queued job's is pending, a job without one has none
    assert jobs["alone"]["missed_deadline"] == "False" and jobs["shared"]["missed_deadline"] == "True"
    assert jobs["undone"]["deadline_unix"] == "" and jobs["waiting"]["missed_deadline"] == ""
    assert float(jobs["shared"]["deadline_unix"]) == pytest.approx(T0 + 51)
    assert jobs["undone"]["undos"] == "1" and jobs["undone"]["attempts"] == "2" and float(jobs["undone"]["jct_s"]) == pytest.approx(84.0)
    assert jobs["shared"]["job_type"] == "resnet50" and jobs["shared"]["num_gpus"] == "1"
    attempts = list(csv.DictReader((out / "attempts.csv").open()))
    assert [(r["name"], r["attempt"], r["gpus"], r["outcome"], r["colocated"]) for r in attempts] == [
        ("alone", "1", "0", "finished", "0"), ("shared", "1", "1", "finished", "0"),
        ("undone", "1", "1", "stopped", "1"), ("undone", "2", "0", "finished", "0")]
    assert float(attempts[2]["duration_s"]) == pytest.approx(14.0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gpus"] == "1x2xv100" and summary["counts"]["queued"] == 1 and summary["undos"] == 1
    assert summary["deadline_misses"] == 1 and summary["finished_jobs_with_deadline"] == 2
    assert summary["energy"]["total_j"] == pytest.approx(7500.0) and summary["energy"]["attributed_to_jobs_j"] == pytest.approx(4500.0)
    hourly = list(csv.DictReader((out / "energy_hourly.csv").open()))
    assert sum(float(h["gpu_busy_j"]) for h in hourly) == pytest.approx(4000.0)
    report = (out / "report.md").read_text()
    assert "deadlines missed 1 of 2 finished jobs with one" in report and "![timeline](timeline.png)" in report
    assert "| 4 | waiting | resnet50 | 1 | queued |" in report and "| pending |" in report
    assert "| 3 | undone | 1 | 1 | 1.0 | 15.0 | stopped | 0 | yes |" in report
    assert "modelled (no NVML)" in report
    assert (out / "timeline.png").stat().st_size > 1000


def test_report_command_and_a_folder_without_state(state: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r"
    res = runner.invoke(app, ["report", "--state-dir", str(state), "-o", str(out), "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "4 jobs, 4 attempts, 2 co-located" in res.output and not (out / "timeline.png").exists()
    res = runner.invoke(app, ["report", "--state-dir", str(tmp_path / "nothing"), "-o", str(out)])
    assert res.exit_code != 0 and "runtime.db missing" in res.output
    with pytest.raises(InputError):
        write_runtime_report(tmp_path / "nothing", out)
