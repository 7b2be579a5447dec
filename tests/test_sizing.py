"""How small can the cluster be (eaco.study.sizing, eaco simulate --smallest): the bisection on
hand-made outcomes, its inputs' errors, and the command end to end."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from eaco.cli import app
from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.sim.metrics import Metrics, compute_metrics
from eaco.study.sizing import NodeShape, SizingTarget, miss_share, parse_node_range, search_smallest
from test_engine import ScriptedPolicy, _job, _sim

runner = CliRunner()
SHAPE = NodeShape(8, "v100")


@pytest.fixture(scope="module")
def base_metrics(env) -> Metrics:
    return compute_metrics(_sim(env, [_job(env, 0, "resnet50", 1, 100.0)], ScriptedPolicy({0: (0,)})).run())


def _search(base: Metrics, misses_on: dict[int, int] | None, lo: int, hi: int, share: float = 0.01,
            first_ok: int | None = None):
    """Search with misses out of 100 jobs with a deadline: from ``misses_on`` (nodes -> misses),
    or 50 below ``first_ok`` nodes and none from it on."""
    asked: list[int] = []

    def evaluate(cluster: ClusterSpec) -> Metrics:
        n = cluster.num_nodes
        assert cluster.nodes[0].num_gpus == 8 and cluster.nodes[0].gpu_type == "v100"
        asked.append(n)
        misses = misses_on[n] if misses_on is not None else (50 if n < first_ok else 0)
        return replace(base, deadline_misses=misses, jobs_with_deadline=100)

    return search_smallest("eaco", SHAPE, evaluate, lo, hi, SizingTarget(share)), asked


def test_bisection_finds_the_fewest_nodes_and_tries_few_sizes(base_metrics) -> None:
    outcome, asked = _search(base_metrics, None, 1, 64, first_ok=23)
    assert outcome.smallest == 23 and outcome.chosen.num_nodes == 23 and outcome.chosen.met
    assert asked[:2] == [64, 1] and len(asked) == len(set(asked)) <= 2 + 6  # log2(64) halvings
    assert 22 in asked  # one node fewer was seen to miss
    assert [p.num_nodes for p in outcome.points] == asked


def test_the_ends_of_the_range(base_metrics) -> None:
    none, asked = _search(base_metrics, None, 4, 16, first_ok=17)
    assert none.smallest is None and asked == [16] and none.chosen.num_nodes == 16 and not none.chosen.met
    lowest, asked = _search(base_metrics, None, 4, 16, first_ok=2)
    assert lowest.smallest == 4 and asked == [16, 4]
    one, asked = _search(base_metrics, None, 5, 5, first_ok=5)
    assert one.smallest == 5 and asked == [5]


def test_the_target_is_a_share_of_the_jobs_with_a_deadline(base_metrics) -> None:
    # 1 miss in 100 meets 1%, 2 do not; the answer is the fewest nodes seen to meet it
    outcome, _ = _search(base_metrics, {8: 0, 1: 9, 4: 2, 6: 1, 5: 2}, 1, 8)
    assert outcome.smallest == 6
    strict, _ = _search(base_metrics, {8: 0, 1: 9, 4: 2, 6: 1, 7: 0}, 1, 8, share=0.0)
    assert strict.smallest == 7
    assert miss_share(replace(base_metrics, deadline_misses=0, jobs_with_deadline=0)) == 0.0


def test_a_wait_limit_counts_every_job(base_metrics) -> None:
    """With a limit on the mean wait, a size that keeps the deadlines but makes jobs wait longer
    misses the target (jobs without a deadline show their starving only there)."""
    waits = {8: 600.0, 1: 9000.0, 4: 4000.0, 6: 1800.0, 5: 3000.0}

    def evaluate(cluster: ClusterSpec) -> Metrics:
        wait = waits[cluster.num_nodes]
        return replace(base_metrics, deadline_misses=0, jobs_with_deadline=100,
                       waiting_s=replace(base_metrics.waiting_s, mean=wait))

    assert search_smallest("eaco", SHAPE, evaluate, 1, 8, SizingTarget(0.01)).smallest == 1
    limited = search_smallest("eaco", SHAPE, evaluate, 1, 8, SizingTarget(0.01, max_avg_wait_s=1800.0))
    assert limited.smallest == 6 and [p.num_nodes for p in limited.points] == [8, 1, 4, 6, 5]
    assert SizingTarget(0.01, 1800.0).describe() == "at most 1.0% of deadlines missed and jobs waiting at most 0.5 h on average"


def test_bad_sizing_input_is_named() -> None:
    assert parse_node_range(" 8-40 ") == (8, 40)
    for text in ("8", "0-4", "9-3", "a-b", "-4"):
        with pytest.raises(InputError, match="--smallest"):
            parse_node_range(text)
    for share in (-0.1, 1.5, float("nan")):
        with pytest.raises(InputError, match="--max-miss-share"):
            SizingTarget(share)
    with pytest.raises(InputError, match="--max-avg-wait-h.*hours >= 0"):
        SizingTarget(0.01, -3600.0)
    assert NodeShape.of(ClusterSpec.parse("3x4xa100")) == NodeShape(4, "a100")
    with pytest.raises(InputError, match="one node shape.*2x8xv100 \\+ 1x4xa100"):
        NodeShape.of(ClusterSpec.parse("2x8xv100,1x4xa100"))


def test_simulate_smallest_reports_each_policy_at_its_fewest_nodes(tmp_path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "-n", "40", "-p", "fifo,eaco", "-c", "8x8xv100", "--smallest", "1-8",
                              "--max-miss-share", "0.05", "--no-plots", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "smallest cluster of 8xv100 nodes with at most 5.0% of deadlines missed" in " ".join(res.output.split())
    sizing = json.loads((out / "sizing.json").read_text())
    assert sizing["range"] == [1, 8] and sizing["max_miss_share"] == 0.05
    rows = list(csv.DictReader(open(out / "sizing.csv")))
    metrics = {m["policy"]: m for m in json.loads((out / "metrics.json").read_text())["policies"]}
    for entry in sizing["policies"]:
        points = {p["num_nodes"]: p for p in entry["points"]}
        assert [r for r in rows if r["policy"] == entry["policy"]] and points[8]["num_gpus"] == 64
        n = entry["smallest_nodes"]
        chosen = points[8] if n is None else points[n]
        assert n is None or (chosen["meets_target"] and chosen["miss_share"] <= 0.05)
        assert n is None or n == 1 or not points[n - 1]["meets_target"]  # one fewer was tried and missed
        # the metrics are the policy's run at that size, labelled with it
        run = metrics[f"{entry['policy']}@{n or 8}x8xv100"]
        assert run["deadline_misses"] == chosen["deadline_misses"] and run["energy_kwh"] == pytest.approx(chosen["energy_kwh"])
    assert "## Smallest cluster" in (out / "report.md").read_text()


def test_simulate_smallest_over_seeds_sizes_each_seed_and_says_what_holds_on_every_one(tmp_path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "-n", "30", "-p", "fifo,eaco", "-c", "6x8xv100", "--smallest", "1-6",
                              "--max-miss-share", "0.05", "--seeds", "0-1", "--no-plots", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "sizing_seeds.csv")))
    assert [(r["policy"], r["seed"]) for r in rows] == [("fifo", "0"), ("eaco", "0"), ("fifo", "1"), ("eaco", "1")]
    for r in rows:  # each seed's answer is its own folder's search
        own = json.loads((out / f"seed-{r['seed']}" / "sizing.json").read_text())
        found = next(p["smallest_nodes"] for p in own["policies"] if p["policy"] == r["policy"])
        assert r["smallest_nodes"] == ("" if found is None else str(found))
        # the seed's metrics are the policy at that size, under the policy's own label
        seed_metrics = json.loads((out / f"seed-{r['seed']}" / "metrics.json").read_text())["policies"]
        assert [m["policy"] for m in seed_metrics] == ["fifo", "eaco"]
    section = (out / "report.md").read_text().split("## Smallest cluster, seed by seed", 1)[1].split("\n## ", 1)[0]
    table = {cells[0]: cells[1:] for line in section.splitlines() if line.startswith("| ")
             for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert table["policy"] == ["seed 0", "seed 1", "on every seed"]
    for policy in ("fifo", "eaco"):
        sizes = [r["smallest_nodes"] for r in rows if r["policy"] == policy]
        every = str(max(int(n) for n in sizes)) if all(sizes) else "none up to 6"
        assert table[policy][-1] == every


@pytest.mark.parametrize("extra, expected", [
    (["--smallest", "1-4", "-c", "2x8xv100;3x8xv100"], "sizes one cluster's node shape: give one --cluster"),
    (["--smallest", "1-4", "-c", "2x8xv100,1x4xa100"], "one node shape"),
    (["--smallest", "4"], "expected a node range LO-HI"),
    (["--max-miss-share", "0.1"], "applies with --smallest"),
    (["--max-avg-wait-h", "2"], "--max-avg-wait-h: applies with --smallest"),
])
def test_simulate_smallest_refuses_what_it_cannot_size(tmp_path, extra, expected) -> None:
    res = runner.invoke(app, ["simulate", "-n", "10", "-p", "fifo", "--no-plots", "-o", str(tmp_path / "o"), *extra])
    assert res.exit_code != 0 and expected in " ".join(res.output.split()), res.output  # the console wraps lines
    assert not (tmp_path / "o").exists()


def test_the_reproduction_study_reports_each_policys_fewest_nodes(env, tmp_path) -> None:
    from eaco.report.reproduce_report import write_reproduce_report
    from eaco.study.reproduce import POLICIES, StudyConfig, planned_runs, run_study

    config = StudyConfig(num_jobs=40, node_counts=(8,), sensitivity=False, philly=False, beyond_paper=False,
                         robustness_seeds=(), alphas=(), util_thresholds=(), sizing_nodes=(1, 8),
                         sizing_target=SizingTarget(0.05))
    study = run_study(config, env)
    assert [o.label for o in study.sizing] == list(POLICIES)
    sized = study.group("sizing")
    assert len(sized) == sum(len(o.points) for o in study.sizing) <= planned_runs(config) - len(POLICIES)
    for o in study.sizing:  # every size tried is a run of the study, with the same figures
        for p in o.points:
            run = next(r for r in sized if r.policy == o.label and r.nodes == p.num_nodes)
            assert run.metrics is p.metrics
    write_reproduce_report(tmp_path, study, "test")
    report = (tmp_path / "report.md").read_text()
    assert "## Beyond the paper: the fewest nodes that keep the deadlines (main workload)" in report
    runs = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert sum(1 for r in runs if r["group"] == "sizing") == len(sized)
