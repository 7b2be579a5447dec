"""``eaco simulate --seeds``: estimates over several workloads, and the command end to end."""

import csv
import json
import math
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from eaco.cli import app
from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.report.seed_stats import estimate, parse_seeds, summarise
from eaco.setup import load_environment
from eaco.sim.runner import simulate
from eaco.workloads import generate_workload

runner = CliRunner()


def test_parse_seeds_ranges_lists_and_errors():
    assert parse_seeds("0-4") == (0, 1, 2, 3, 4)
    assert parse_seeds("1-3, 9") == (1, 2, 3, 9)
    assert parse_seeds("3,3,2") == (3, 2)
    for bad, says in (("x", "'x'"), ("4-2", "FIRST <= LAST"), ("", "at least one"), ("-1", "'-1'"), ("0-5000", "at most")):
        with pytest.raises(InputError) as err:
            parse_seeds(bad)
        assert "--seeds" in str(err.value) and says in str(err.value)


def test_estimate_mean_and_t_interval_by_hand():
    # mean 12, sample std 2, t(0.975, 2 dof) = 4.302653: half-width 4.302653 x 2 / sqrt(3)
    e = estimate([10.0, 12.0, 14.0])
    assert (e.n, e.mean, e.std, e.min, e.max) == (3, 12.0, 2.0, 10.0, 14.0)
    assert e.half_width == pytest.approx(4.302653 * 2 / math.sqrt(3), rel=1e-6)
    assert (e.ci_low, e.ci_high) == pytest.approx((12 - 4.968275, 12 + 4.968275), rel=1e-6)
    # a quantity that cannot be negative: the interval is cut at 0, the half-width kept
    cut = estimate([0.0, 0.0, 3.0])
    assert cut.ci_low == 0.0 and cut.ci_high == pytest.approx(1 + 4.302653 * math.sqrt(3) / math.sqrt(3), rel=1e-6)
    assert estimate([-1.0, 1.0], floor=None).ci_low < -1
    one = estimate([5.0])
    assert one.mean == 5.0 and math.isnan(one.ci_low) and math.isnan(one.half_width)
    assert one.to_dict()["ci95_low"] is None


@pytest.fixture(scope="module")
def two_metrics():
    env = load_environment()
    wl = generate_workload(10, 6.0, catalog=env.catalog, seed=0)
    cluster = ClusterSpec.homogeneous(2, 8, "v100")
    return simulate(cluster, wl, "fifo", env)[1], simulate(cluster, wl, "gandiva", env)[1]


def test_summarise_pairs_each_run_with_the_reference_seed_by_seed(two_metrics):
    fifo, other = two_metrics
    per_seed = [
        (0, [replace(fifo, energy_kwh=100.0, deadline_misses=2), replace(other, energy_kwh=50.0, deadline_misses=0)]),
        (1, [replace(fifo, energy_kwh=200.0, deadline_misses=4), replace(other, energy_kwh=150.0, deadline_misses=1)]),
        (2, [replace(fifo, energy_kwh=300.0, deadline_misses=0), replace(other, energy_kwh=330.0, deadline_misses=0)]),
    ]
    got = {s.run: s for s in summarise(per_seed, "fifo")}
    assert list(got) == ["fifo", "gandiva"]
    g = got["gandiva"]
    assert g.seeds == (0, 1, 2) and g.values["energy_kwh"].mean == pytest.approx(530 / 3)
    # ratios seed by seed (0.5, 0.75, 1.1), not the ratio of the means (176.7 / 200)
    assert g.ratios["energy_kwh"].mean == pytest.approx((0.5 + 0.75 + 1.1) / 3)
    assert g.lower_energy_seeds == 2 and got["fifo"].lower_energy_seeds == 0
    assert got["fifo"].ratios["energy_kwh"].mean == 1.0 and got["fifo"].ratios["energy_kwh"].std == 0.0
    assert g.values["deadline_misses"].mean == pytest.approx(1 / 3)
    # no cost without grid settings: not summarised rather than made up
    assert "electricity_cost" not in g.values and "electricity_cost" not in g.ratios
    with pytest.raises(ValueError, match="reference"):
        summarise(per_seed, "eaco")


def test_simulate_seeds_writes_each_seed_and_the_summary(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "--seeds", "0-2", "-n", "30", "--rate", "6", "-c", "3x8xv100",
                              "-p", "fifo,eaco", "--no-plots", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "95% interval over 3 seeds" in text and "energy / fifo" in text
    per_seed = {}
    for s in (0, 1, 2):
        data = json.loads((out / f"seed-{s}" / "metrics.json").read_text())
        assert data["meta"]["seed"] == s and (out / f"seed-{s}" / "report.md").exists()
        per_seed[s] = {p["policy"]: p for p in data["policies"]}
    # different seeds, different workloads
    assert len({round(per_seed[s]["fifo"]["energy_kwh"], 6) for s in per_seed}) == 3
    rows = list(csv.DictReader(open(out / "seeds.csv")))
    assert [(int(r["seed"]), r["policy"]) for r in rows] == [(s, p) for s in (0, 1, 2) for p in ("fifo", "eaco")]
    summary = {(r["run"], r["metric"], r["kind"]): r for r in csv.DictReader(open(out / "summary.csv"))}
    energy = summary[("eaco", "energy_kwh", "value")]
    assert float(energy["mean"]) == pytest.approx(sum(per_seed[s]["eaco"]["energy_kwh"] for s in per_seed) / 3)
    ratios = [per_seed[s]["eaco"]["energy_kwh"] / per_seed[s]["fifo"]["energy_kwh"] for s in per_seed]
    ratio = summary[("eaco", "energy_kwh", "ratio_to_fifo")]
    assert float(ratio["mean"]) == pytest.approx(sum(ratios) / 3)
    assert float(ratio["min"]) == pytest.approx(min(ratios)) and int(ratio["n"]) == 3
    assert float(ratio["ci95_low"]) <= float(ratio["mean"]) <= float(ratio["ci95_high"])
    js = json.loads((out / "summary.json").read_text())
    assert js["reference"] == "fifo" and js["meta"]["seeds"] == [0, 1, 2] and "seed" not in js["meta"]
    assert [r["run"] for r in js["runs"]] == ["fifo", "eaco"]
    report = (out / "report.md").read_text()
    assert "over 3 seeds" in report and "[seed-2/report.md](seed-2/report.md)" in report
    assert f"| energy / fifo | - | {sum(ratios) / 3:.3f} [" in report


def test_simulate_seeds_errors_name_the_option(tmp_path):
    res = runner.invoke(app, ["simulate", "--seeds", "2-1", "-n", "5", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "--seeds" in res.output
    res = runner.invoke(app, ["simulate", "--seed", "3", "--seeds", "0-1", "-n", "5", "-o", str(tmp_path)])
    assert res.exit_code == 2 and "not both" in res.output
    assert not any(tmp_path.iterdir())  # nothing written
