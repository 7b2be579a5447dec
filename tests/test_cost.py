"""Electricity cost and carbon (eaco.energy.grid, eaco.sim.cost): the simulator's exact hourly
energy, hourly prices and intensities from a CSV (errors name file, line and field), PUE, and
the common end; the cost of ownership (eaco.model.ownership: hardware written off, plus the
electricity); `eaco simulate` prints and saves them."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from eaco.cli import app
from eaco.energy.grid import GridSettings, HourlySignal, load_grid_csv
from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.model.ownership import ANY_TYPE, S_PER_YEAR, HardwareCost, parse_hardware_cost
from eaco.sim.cost import cost_figures, energy_per_hour_j, with_costs, with_ownership
from eaco.sim.metrics import compute_metrics, with_common_end
from test_engine import ScriptedPolicy, _job, _node_power, _sim

runner = CliRunner()


def test_hourly_signal_repeats_or_holds_and_shifts() -> None:
    s = HourlySignal((1.0, 2.0, 3.0))
    assert [s.at_hour(h) for h in range(7)] == [1, 2, 3, 1, 2, 3, 1]
    held = HourlySignal((1.0, 2.0), repeat=False, offset_h=1)
    assert [held.at_hour(h) for h in range(4)] == [1, 1, 2, 2]
    assert HourlySignal((5.0,), offset_h=3).at_hour(0) == 5.0
    assert s.weighted_sum([10.0, 0.0, 1.0, 2.0]) == pytest.approx(10 + 3 + 2)


def test_grid_csv_is_read_and_bad_rows_are_named(tmp_path) -> None:
    good = tmp_path / "g.csv"
    good.write_text("hour,price_per_kwh,carbon_g_per_kwh\n0,0.1,300\n1,-0.02,0\n")
    price, carbon = load_grid_csv(good, repeat=False, offset_h=2)
    assert price == HourlySignal((0.1, -0.02), False, 2) and carbon == HourlySignal((300.0, 0.0), False, 2)
    only = tmp_path / "c.csv"
    only.write_text("hour,carbon_g_per_kwh\n0,250\n")
    assert load_grid_csv(only) == (None, HourlySignal((250.0,)))
    cases = {
        "hour,price_per_kwh\n0,0.1\n2,0.2\n": (3, "hour", "expected hour 1"),
        "hour,carbon_g_per_kwh\n0,-5\n": (2, "carbon_g_per_kwh", ">= 0"),
        "hour,price_per_kwh\n0,cheap\n": (2, "price_per_kwh", "expected a number"),
        "hour,price_per_kwh\n0\n": (2, "price_per_kwh", "fields"),
        "hour,tariff\n0,1\n": (1, "", "price_per_kwh or carbon_g_per_kwh"),
        "hour,price_per_kwh\n": (1, "", "no rows"),
        "price_per_kwh\n0.1\n": (1, "", "missing required column(s): hour"),
    }
    for i, (text, (line, field, why)) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.csv"
        path.write_text(text)
        with pytest.raises(InputError) as err:
            load_grid_csv(path)
        message = str(err.value)
        assert f"{path}:{line}:" in message and field in message and why in message, message
    with pytest.raises(InputError, match="--pue"):
        GridSettings(pue=0.9)


def test_hourly_energy_is_exact_and_priced_by_the_hour(env) -> None:
    """One resnet50 alone on one V100 for 2 x 3000 s: 6000 s at constant power p, i.e. 3600 s in
    hour 0 and 2400 s in hour 1. Price 0.1 then 0.3 per kWh, intensity 400 then 100 g/kWh, PUE 1.5."""
    job = _job(env, 0, "resnet50", 2, 3000.0)
    result = _sim(env, [job], ScriptedPolicy({0: (0,)})).run()
    p = _node_power(env, [job], job.gpu_util, [job])
    hourly = list(result.timeseries.energy_per_hour_j)
    assert hourly == pytest.approx([p * 3600.0, p * 2400.0])
    assert sum(hourly) == pytest.approx(result.energy.total_j)
    grid = GridSettings(pue=1.5, price_per_kwh=HourlySignal((0.1, 0.3)), carbon_g_per_kwh=HourlySignal((400.0, 100.0)))
    got = cost_figures(hourly, grid)
    kwh = [1.5 * e / 3.6e6 for e in hourly]
    assert got.facility_energy_kwh == pytest.approx(sum(kwh))
    assert got.electricity_cost == pytest.approx(0.1 * kwh[0] + 0.3 * kwh[1])
    assert got.carbon_kg == pytest.approx((400 * kwh[0] + 100 * kwh[1]) / 1000)
    assert cost_figures(hourly, GridSettings()).electricity_cost is None
    # extended to 3 h at the empty cluster's power (asleep after the job)
    m = compute_metrics(result)
    extended = energy_per_hour_j(result, m.empty_cluster_power_w, 3 * 3600.0)
    assert extended == pytest.approx([p * 3600.0, p * 2400.0 + m.empty_cluster_power_w * 1200.0, m.empty_cluster_power_w * 3600.0])


def test_costs_to_the_common_end(env, env_awake) -> None:
    slow_run = _sim(env, [_job(env, 0, "resnet50", 3, 1000.0)], ScriptedPolicy({0: (0,)})).run()
    fast_run = _sim(env_awake, [_job(env, 0, "resnet50", 2, 1000.0)], ScriptedPolicy({0: (0,)})).run()
    rows = with_common_end([compute_metrics(slow_run), compute_metrics(fast_run)])
    grid = GridSettings(price_per_kwh=HourlySignal.constant(0.2), carbon_g_per_kwh=HourlySignal.constant(500.0))
    slow, fast = with_costs([slow_run, fast_run], rows, grid)
    assert slow.electricity_cost == pytest.approx(0.2 * slow.energy_kwh)
    assert slow.electricity_cost_common_end == pytest.approx(slow.electricity_cost)  # it ends last
    assert fast.electricity_cost_common_end == pytest.approx(0.2 * fast.energy_common_end_kwh)
    assert fast.carbon_kg_common_end == pytest.approx(0.5 * fast.energy_common_end_kwh)
    assert fast.carbon_kg < fast.carbon_kg_common_end
    assert with_costs([slow_run], [rows[0]], GridSettings()) == [rows[0]]  # nothing asked: nothing added


def test_simulate_prints_and_saves_cost_and_carbon(tmp_path) -> None:
    grid = tmp_path / "grid.csv"
    grid.write_text("hour,price_per_kwh\n0,0.1\n1,0.3\n")
    out = tmp_path / "out"
    args = ["simulate", "-n", "30", "-p", "fifo,eaco", "--no-plots", "-o", str(out), "--grid", str(grid),
            "--carbon-g-per-kwh", "350", "--pue", "1.2", "--currency", "EUR"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "electricity cost (EUR)" in res.output and "carbon (kg CO2e)" in res.output and "x PUE" in res.output
    data = json.loads((out / "metrics.json").read_text())
    assert "PUE 1.2" in data["meta"]["grid"] and str(grid) in data["meta"]["grid"]
    for m in data["policies"]:
        hourly = [float(r["energy_kwh"]) for r in csv.DictReader(open(out / f"energy_hourly_{m['policy']}.csv"))]
        assert sum(hourly) == pytest.approx(m["energy_kwh"], rel=1e-6)
        assert m["facility_energy_kwh"] == pytest.approx(1.2 * m["energy_kwh"])
        assert m["carbon_kg"] == pytest.approx(0.35 * m["facility_energy_kwh"])
        price = sum(h * 1.2 * (0.1 if i % 2 == 0 else 0.3) for i, h in enumerate(hourly))
        assert m["electricity_cost"] == pytest.approx(price, rel=1e-5)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert rows[0]["electricity_cost"] and rows[0]["carbon_kg_common_end"]
    # the same quantity twice is refused, naming the option
    res = runner.invoke(app, args + ["--price-per-kwh", "0.2"])
    assert res.exit_code != 0 and "--price-per-kwh" in res.output and "given as well as in" in res.output


# --- cost of ownership ---------------------------------------------------------------------------

def test_hardware_cost_is_parsed_per_gpu_type_and_bad_text_is_named() -> None:
    assert parse_hardware_cost("12000").per_gpu == {ANY_TYPE: 12000.0}
    both = parse_hardware_cost("9000, A100=30000", life_years=5)
    assert both.per_gpu == {ANY_TYPE: 9000.0, "a100": 30000.0} and both.life_years == 5
    assert both.price_of("a100") == 30000.0 and both.price_of("k80") == 9000.0
    assert not parse_hardware_cost(None).active and not parse_hardware_cost("").active
    for text, expected in {
        "tpu=5": "unknown GPU type 'tpu'",
        "v100=1,v100=2": "v100 given twice",
        "1,2": "a plain cost given twice",
        "v100=cheap": "expected COST or TYPE=COST",
        "-5": "expected a cost >= 0",
        "nan": "expected a cost >= 0",
    }.items():
        with pytest.raises(InputError, match="--hardware-cost-per-gpu") as err:
            parse_hardware_cost(text)
        assert expected in str(err.value), (text, str(err.value))
    with pytest.raises(InputError, match="--hardware-life-years"):
        parse_hardware_cost("1000", life_years=0)
    with pytest.raises(InputError, match="no cost for a100 GPUs .*add a100=COST"):
        HardwareCost({"v100": 1.0}).price_of("a100")


def test_a_clusters_hardware_is_written_off_per_second_of_its_life() -> None:
    cluster = ClusterSpec.parse("2x8xv100,1x4xa100")
    cost = HardwareCost({"v100": 10_000.0, "a100": 30_000.0}, life_years=2.0)
    # 16 V100 at 10,000 + 4 A100 at 30,000 = 280,000 over two years
    assert cost.cluster_cost_per_s(cluster) == pytest.approx(280_000.0 / (2 * 365.25 * 24 * 3600))
    assert S_PER_YEAR == 365.25 * 24 * 3600


def test_ownership_is_hardware_over_the_run_plus_its_electricity(env, env_awake) -> None:
    slow_run = _sim(env, [_job(env, 0, "resnet50", 3, 1000.0)], ScriptedPolicy({0: (0,)})).run()
    fast_run = _sim(env_awake, [_job(env, 0, "resnet50", 2, 1000.0)], ScriptedPolicy({0: (0,)})).run()
    small, big = ClusterSpec.homogeneous(1, 1, "v100"), ClusterSpec.homogeneous(2, 8, "v100")
    rows = with_common_end([compute_metrics(slow_run), compute_metrics(fast_run)])
    hardware = HardwareCost({ANY_TYPE: 8_000.0}, life_years=4.0)
    per_gpu_s = 8_000.0 / (4 * S_PER_YEAR)
    # without a price for electricity: the hardware alone, no cost of ownership
    slow, fast = with_ownership(rows, [small, big], hardware)
    assert slow.hardware_cost == pytest.approx(per_gpu_s * slow.makespan_s)
    assert fast.hardware_cost == pytest.approx(16 * per_gpu_s * fast.makespan_s)
    assert fast.hardware_cost_common_end == pytest.approx(16 * per_gpu_s * slow.makespan_s)  # slow ends last
    assert slow.ownership_cost is None and fast.ownership_cost_common_end is None
    # with it: hardware + electricity, over the run and to the common end
    priced = with_costs([slow_run, fast_run], rows, GridSettings(price_per_kwh=HourlySignal.constant(0.2)))
    slow, fast = with_ownership(priced, [small, big], hardware)
    assert slow.ownership_cost == pytest.approx(slow.hardware_cost + slow.electricity_cost)
    assert fast.ownership_cost_common_end == pytest.approx(fast.hardware_cost_common_end + fast.electricity_cost_common_end)
    assert with_ownership(rows, [small, big], HardwareCost()) == rows  # nothing asked: nothing added
    with pytest.raises(ValueError, match="2 metrics rows but 1 clusters"):
        with_ownership(rows, [small], hardware)


def test_simulate_compares_the_cost_of_ownership_of_two_cluster_sizes(tmp_path) -> None:
    out = tmp_path / "out"
    args = ["simulate", "-n", "30", "-p", "fifo", "--no-plots", "-o", str(out), "-c", "4x8xv100; 2x8xv100",
            "--price-per-kwh", "0.1", "--hardware-cost-per-gpu", "v100=12000", "--hardware-life-years", "3",
            "--currency", "EUR"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "hardware, written off (EUR)" in res.output and "cost of ownership (EUR)" in res.output
    data = json.loads((out / "metrics.json").read_text())
    assert data["meta"]["hardware"] == "hardware per GPU: v100 12,000; written off over 3 years"
    big, small = data["policies"]
    end_s = max(big["makespan_s"], small["makespan_s"])
    for m, gpus in ((big, 32), (small, 16)):
        assert m["hardware_cost"] == pytest.approx(gpus * 12_000 * m["makespan_s"] / (3 * S_PER_YEAR))
        assert m["hardware_cost_common_end"] == pytest.approx(gpus * 12_000 * end_s / (3 * S_PER_YEAR))
        assert m["ownership_cost"] == pytest.approx(m["hardware_cost"] + m["electricity_cost"])
    assert small["hardware_cost_common_end"] == pytest.approx(big["hardware_cost_common_end"] / 2)
    row = next(csv.DictReader(open(out / "metrics.csv")))
    assert float(row["ownership_cost_common_end"]) == pytest.approx(big["ownership_cost_common_end"])
    # a GPU type of a cluster without a cost is refused before anything runs
    res = runner.invoke(app, [*args[:-4], "--hardware-cost-per-gpu", "a100=30000", "-o", str(tmp_path / "none")])
    said = " ".join(res.output.split())  # the console wraps lines
    assert res.exit_code != 0 and "--hardware-cost-per-gpu" in said and "no cost for v100 GPUs" in said
    assert not (tmp_path / "none").exists()
