"""The command line, as a user runs it."""

import csv
import json
import re

import pytest

from typer.testing import CliRunner

from eaco.cli import app

runner = CliRunner()


def test_simulate_generated_writes_table_json_csv_and_plots(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "-n", "40", "--rate", "6", "-c", "4x8xv100", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "energy (kWh)" in res.output and "gandiva" in res.output
    data = json.loads((out / "metrics.json").read_text())
    assert [p["policy"] for p in data["policies"]] == ["fifo", "fifo-packed", "gandiva", "eaco"]
    assert all(p["num_jobs"] == 40 and p["energy_kwh"] > 0 for p in data["policies"])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 4 and float(rows[0]["total_time_s_p99"]) >= float(rows[0]["total_time_s_p50"])
    # every policy's energy also to the same end: the latest makespan
    last = max(rows, key=lambda r: float(r["makespan_s"]))
    assert float(last["energy_common_end_kwh"]) == pytest.approx(float(last["energy_kwh"]))
    assert all(float(r["energy_common_end_kwh"]) >= float(r["energy_kwh"]) for r in rows)
    assert "energy to " in res.output
    jobs = list(csv.DictReader(open(out / "jobs_fifo.csv")))
    assert len(jobs) == 40 and {j["gpu_types"] for j in jobs} == {"v100"}
    assert float(jobs[0]["jct_s"]) == pytest.approx(float(jobs[0]["finish_s"]) - float(jobs[0]["first_start_s"]))
    ts = list(csv.DictReader(open(out / "timeseries_gandiva.csv")))
    assert ts and int(ts[0]["active_nodes"]) >= 0
    assert (out / "active_nodes.png").stat().st_size > 1000
    assert (out / "energy_time.png").stat().st_size > 1000
    # report.md: the set-up, the table, each policy against FIFO (from the same metrics), the figures
    report = (out / "report.md").read_text()
    assert "| command | `eaco" in report and "| cluster | 4x8xv100 |" in report
    by_policy = {p["policy"]: p for p in data["policies"]}
    ratio = by_policy["eaco"]["energy_kwh"] / by_policy["fifo"]["energy_kwh"]
    assert f"| eaco | {ratio:.3f} |" in report
    assert f"| energy (kWh) | {by_policy['fifo']['energy_kwh']:,.0f} |" in report
    assert "![active nodes](active_nodes.png)" in report
    # what EaCO did, counted by EaCO itself, in the JSON and the report
    eaco_stats = by_policy["eaco"]["policy_stats"]
    assert by_policy["fifo"]["policy_stats"] == {} and eaco_stats["colocations"] + eaco_stats["exclusive_placements"] >= 40
    assert eaco_stats["undos"] == by_policy["eaco"]["undos"]
    assert f"| colocations | {eaco_stats['colocations']:,} |" in report


def test_simulate_csv_trace_and_bad_row_errors(tmp_path):
    good = tmp_path / "trace.csv"
    good.write_text("submit_time_s,duration_s,num_gpus,job_type\n0,3600,1,resnet50\n60,7200,2,vgg16\n")
    res = runner.invoke(app, ["simulate", "-w", f"csv:{good}", "-c", "1x4xv100", "-p", "fifo", "-o", str(tmp_path / "o"), "--no-plots"])
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("submit_time_s,duration_s,num_gpus\n0,3600,1\n60,abc,2\n")
    res = runner.invoke(app, ["simulate", "-w", f"csv:{bad}", "-c", "1x4xv100", "-p", "fifo", "-o", str(tmp_path / "o2")])
    assert res.exit_code == 2
    assert "bad.csv:3" in res.output and "duration_s" in res.output
    res = runner.invoke(app, ["simulate", "-w", f"csv:{bad}", "-c", "1x4xv100", "-p", "fifo", "-o", str(tmp_path / "o3"),
                              "--skip-bad-rows", "--no-plots"])
    assert res.exit_code == 0, res.output
    assert "1 bad rows skipped" in res.output


def test_simulate_says_when_idle_nodes_dominate_energy(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("submit_time_s,duration_s,num_gpus,job_type\n0,3600,1,resnet50\n60,7200,2,vgg16\n")
    base = ["simulate", "-w", f"csv:{trace}", "-p", "fifo,eaco", "--no-plots"]
    res = runner.invoke(app, base + ["-c", "8x4xv100", "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "nodes had a job; fifo keep empty nodes awake" in " ".join(res.output.split())
    for extra in (["-c", "8x4xv100", "--sleep", "all"], ["-c", "1x4xv100"]):  # all sleep; or a busy cluster
        res = runner.invoke(app, base + extra + ["-o", str(tmp_path / "b")])
        assert res.exit_code == 0 and "keep empty nodes awake" not in res.output, extra


def test_simulate_on_several_clusters_runs_every_policy_on_each(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("submit_time_s,duration_s,num_gpus,job_type\n0,3600,1,resnet50\n60,7200,2,vgg16\n120,3600,1,resnet18\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "-w", f"csv:{trace}", "-p", "fifo,eaco", "-c", "8x4xv100; 1x4xv100",
                              "--no-plots", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "metrics.json").read_text())
    runs = [(p["policy"], p["cluster"], p["num_jobs"]) for p in data["policies"]]
    assert runs == [("fifo@8x4xv100", "8x4xv100", 3), ("eaco@8x4xv100", "8x4xv100", 3),
                    ("fifo@1x4xv100", "1x4xv100", 3), ("eaco@1x4xv100", "1x4xv100", 3)]
    assert data["meta"]["cluster"] == "8x4xv100; 1x4xv100"
    assert (out / "jobs_fifo_1x4xv100.csv").exists() and (out / "timeseries_eaco_8x4xv100.csv").exists()
    # the idle-cluster note concerns the 8-node cluster only
    said = " ".join(res.output.split())
    assert "had a job; fifo@8x4xv100 keep empty nodes awake" in said and "fifo@1x4xv100 keep" not in said
    # the same energy as a run on that cluster alone: each cluster's runs are independent
    alone = runner.invoke(app, ["simulate", "-w", f"csv:{trace}", "-p", "eaco", "-c", "1x4xv100", "--no-plots", "-o", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    assert json.loads((tmp_path / "alone" / "metrics.json").read_text())["policies"][0]["energy_kwh"] == data["policies"][3]["energy_kwh"]


def test_simulate_rejects_unknown_policy_and_cluster(tmp_path):
    res = runner.invoke(app, ["simulate", "-p", "fifo,nope", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "nope" in res.output
    res = runner.invoke(app, ["simulate", "-c", "28x8", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "NODESxGPUSxTYPE" in res.output


def test_calibrate_prints_errors_and_writes_json(tmp_path):
    res = runner.invoke(app, ["calibrate", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "held-out" in res.output
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data


def test_reproduce_quick_writes_report_with_paper_columns_and_targets(tmp_path):
    out = tmp_path / "rep"
    res = runner.invoke(app, ["reproduce", "--quick", "-n", "60", "--rate", "3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "ours vs paper" in res.output and "targets" in res.output
    report = (out / "report.md").read_text()
    assert "## 28 nodes x 8 V100" in report and "## 64 nodes x 8 V100" in report
    assert "(paper 0.61)" in res.output or "paper" in report
    data = json.loads((out / "reproduce.json").read_text())
    groups = {r["group"] for r in data["runs"]}
    assert groups == {"main", "tradeoff", "beyond-paper", "heavy", "seeds"}
    assert "## Beyond the paper" in report and "eaco, paper rules" in report
    # the 28-node comparison on seeds 1-4 too: one row per workload, the main one first
    assert len([r for r in data["runs"] if r["group"] == "seeds"]) == 16
    assert "## Other workloads" in report and "every target met on" in report
    assert "| 0 | " in report and "| 4 | " in report
    assert len([r for r in data["runs"] if r["group"] == "main"]) == 8
    assert {t["name"] for t in data["targets"]} and all("met" in t for t in data["targets"])
    for png in ("fig3_energy_runtime.png", "fig4_active_nodes_28.png", "fig4_active_nodes_64.png", "tradeoff.png"):
        assert (out / png).stat().st_size > 1000
    runs = list(csv.DictReader(open(out / "runs.csv")))
    assert len(runs) == len(data["runs"])
    # energy to the common end: each policy until the latest makespan of the 28-node group, from the JSON
    main28 = {r["metrics"]["policy"]: r["metrics"] for r in data["runs"] if r["group"] == "main" and r["nodes"] == 28}
    end_s = max(m["makespan_s"] for m in main28.values())

    def until(m):
        return m["energy_kwh"] + (end_s - m["makespan_s"]) * m["empty_cluster_power_w"] / 3.6e6

    ratio = until(main28["eaco"]) / until(main28["fifo"])
    section = report.split("## 28 nodes x 8 V100")[1].split("\n\n")[1]  # the section's first table
    header, _, *rows = section.splitlines()
    col = [c.strip() for c in header.split("|")].index("energy to common end /FIFO")
    cells = {cs[1]: cs[col] for cs in ([c.strip() for c in row.split("|")] for row in rows)}
    assert cells["fifo"] == "1.00" and cells["eaco"] == f"{ratio:.2f}"


def test_missing_profile_store_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["simulate", "-n", "5", "-p", "eaco", "--profiles", str(tmp_path / "nope.json"), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "nope.json" in res.output and "not found" in res.output


def test_predictor_error_prints_leave_one_out_per_gpu_type(tmp_path):
    res = runner.invoke(app, ["predictor-error", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for gpu in ("k80", "p100", "v100"):
        assert gpu in res.output
    data = json.loads((tmp_path / "predictor_error.json").read_text())
    assert data


def test_simulate_options_from_a_config_file_and_the_command_line_wins(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("jobs: 30\nrate: 6\ncluster: 2x8xv100\npolicies: fifo,eaco\nutil_threshold: 0.7\nreserve: false\nno-plots: true\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "--config", str(cfg), "-p", "fifo", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "metrics.json").read_text())
    assert [p["policy"] for p in data["policies"]] == ["fifo"]  # the command line's -p, not the file's
    assert data["policies"][0]["num_jobs"] == 30 and data["meta"]["cluster"] == "2x8xv100"
    assert "util_threshold=0.7" in data["meta"]["eaco_settings"] and "reserve=False" in data["meta"]["eaco_settings"]
    assert data["meta"]["config"]["values"]["plots"] is False and not (out / "active_nodes.png").exists()
    assert f"| options from | {cfg}: jobs=30" in (out / "report.md").read_text()
    for text, message in (("colour: blue\n", "key 'colour' is not an option of this command"),
                          ("util-threshold: abc\n", "key 'util-threshold': "),
                          ("no-plots: maybe\n", "key 'no-plots': expected true or false"),
                          ("- jobs\n", "expected a mapping of option names")):
        cfg.write_text(text)
        res = runner.invoke(app, ["simulate", "--config", str(cfg), "-o", str(out)], env={"COLUMNS": "400"})
        plain = " ".join(re.sub(r"[\u2500-\u257f]", " ", res.output).split())  # without the error box's borders
        assert res.exit_code == 2 and str(cfg.name) in plain and message in plain, res.output


def test_the_example_config_file_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "simulate" / "study.yaml"
    res = runner.invoke(app, ["simulate", "--config", str(example), "--help"])  # checks every key and value, runs nothing
    assert res.exit_code == 0, res.output
