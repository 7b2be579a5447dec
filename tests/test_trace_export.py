"""eaco export-trace (eaco.runtime.trace_export): a runtime's jobs as a CSV trace the simulator
loads, built here from a store filled by hand (no daemon)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eaco.colocation.catalog import load_catalog
from eaco.errors import InputError
from eaco.runtime.baselines import workload_key
from eaco.runtime.layout import StateLayout
from eaco.runtime.ray_inventory import NODES_FILE
from eaco.runtime.spec import spec_from_yaml
from eaco.runtime.store import Store
from eaco.runtime.trace_export import describe, export_trace, runtime_gpus
from eaco.workloads.csv_trace import load_csv_trace

T0 = 1_700_000_000.0


def spec_text(name: str, extra: str = "") -> str:
    return f"name: {name}\ncommand: [python, train.py, --run, {name}]\nepochs: 4\njob_type: resnet50\n{extra}"


def run(store: Store, job_id: int, start: float, end: float, outcome: str = "finished") -> None:
    attempt = store.begin_attempt(job_id, (0,), False, start)
    store.end_attempt(job_id, attempt, 0 if outcome == "finished" else 1, outcome if outcome != "failed" else "crashed", outcome, end)


def test_jobs_become_trace_rows_with_their_measured_epochs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "local_gpus.json").write_text(json.dumps({"gpu_type": "v100", "device_indices": [0, 1], "declared": True}))
    catalog = load_catalog()
    store = Store(StateLayout(state).db)
    specs = {
        "measured": spec_text("measured", "expected_epoch_s: 99\ndeadline_s: 500\n"),
        "on-a100": spec_text("on-a100", "gpu_type: a100\nslack: 1.0\nexpected_epoch_s: 10\npriority: 1\nmemory_gb: 6\n"),
        "declared": spec_text("declared", "expected_epoch_s: 20\ngpu_util: 0.4\n"),
        "unknown": spec_text("unknown"),
        "crashed": spec_text("crashed", "expected_epoch_s: 5\n"),
        "waiting": spec_text("waiting", "expected_epoch_s: 5\n"),
    }
    ids = {name: store.submit(name, spec_from_yaml(text).model_dump_json(), T0 + i) for i, (name, text) in enumerate(specs.items())}
    measured = spec_from_yaml(specs["measured"])
    for epoch, duration_s in enumerate((31.0, 30.0, 29.0)):
        store.add_exclusive_epoch(ids["measured"], workload_key(measured, "v100"), epoch, duration_s, T0 + 100 + epoch, "v100")
    store.add_memory_peak(ids["measured"], workload_key(measured, "v100"), 3.5)
    for epoch in range(2):
        store.add_exclusive_epoch(ids["on-a100"], "k", epoch, 12.0, T0 + 200, "a100")
    run(store, ids["measured"], T0 + 10, T0 + 140)
    run(store, ids["on-a100"], T0 + 11, T0 + 60)
    run(store, ids["declared"], T0 + 12, T0 + 100)
    run(store, ids["unknown"], T0 + 13, T0 + 20)
    run(store, ids["crashed"], T0 + 14, T0 + 15, outcome="failed")
    store.close()

    out = tmp_path / "trace.csv"
    result = export_trace(state, out, catalog)
    assert result.jobs == 3 and result.cluster == "1x2xv100" and result.epoch_sources == {"measured": 2, "declared": 1}
    assert result.left_out == {"exclusive epoch time never learnt (no alone epoch, none declared)": 1,
                               "failed (not exported)": 1, "queued (not ended)": 1}
    text = describe(result)
    assert f"replay it: eaco simulate -w csv:{out} -c 1x2xv100 --no-slos -p fifo,eaco" in text and "left out 1: queued (not ended)" in text
    rows = {r["name"]: r for r in csv.DictReader(out.open())}
    # its own alone epochs (median 30 s on the V100, the reference), its deadline, its memory peak
    m = rows["measured"]
    assert float(m["duration_s"]) == pytest.approx(4 * 30.0) and float(m["deadline_s"]) == pytest.approx(T0 + 500)
    assert float(m["memory_gb"]) == 3.5 and m["epoch_source"] == "measured" and float(m["runtime_jct_s"]) == pytest.approx(130)
    # measured on an A100: on the reference V100 it takes as much longer as the catalogue says
    a = rows["on-a100"]
    assert float(a["duration_s"]) == pytest.approx(4 * 12.0 * catalog.get("resnet50").speed_on("a100"))
    assert a["gpu_type"] == "a100" and a["priority"] == "1" and float(a["memory_gb"]) == 6.0
    assert float(a["deadline_s"]) == pytest.approx(T0 + 1 + 2.0 * 4 * 10.0)  # slack 1: 2 x the declared run
    d = rows["declared"]
    assert float(d["duration_s"]) == pytest.approx(80.0) and d["deadline_s"] == "" and float(d["gpu_util"]) == 0.4
    # the simulator reads it back: same jobs, rebased times
    workload = load_csv_trace(out)
    assert [j.num_epochs for j in workload.jobs] == [4, 4, 4]
    assert [j.submit_time_s for j in workload.jobs] == [0.0, 1.0, 2.0]
    assert workload.jobs[0].epoch_duration_s == pytest.approx(30.0) and workload.jobs[0].deadline_s == pytest.approx(500)
    assert not workload.jobs[2].has_deadline and workload.jobs[1].priority == 1
    # failed jobs too, on request
    again = export_trace(state, tmp_path / "with_failed.csv", catalog, states=("finished", "failed"))
    assert again.jobs == 4
    with pytest.raises(InputError, match="expected some of finished, failed, cancelled, got running"):
        export_trace(state, out, catalog, states=("running",))


def test_ray_nodes_give_the_cluster_and_a_folder_without_state_is_refused(tmp_path: Path) -> None:
    (tmp_path / NODES_FILE).write_text(json.dumps({"gpu_type": "v100", "nodes": [["n0", 2, "v100"], ["n1", 2, "v100"], ["t9", 1, "a100"]]}))
    assert runtime_gpus(tmp_path) == ("v100", "2x2xv100,1x1xa100")
    assert runtime_gpus(tmp_path / "nothing") == ("v100", None)
    with pytest.raises(InputError, match="no runtime state here"):
        export_trace(tmp_path / "nothing", tmp_path / "t.csv", load_catalog())
