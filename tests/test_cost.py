"""Electricity cost and carbon (eaco.energy.grid, eaco.sim.cost): the simulator's exact hourly
energy, hourly prices and intensities from a CSV (errors name file, line and field), PUE, and
the common end; `eaco simulate` prints and saves them."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from eaco.cli import app
from eaco.energy.grid import GridSettings, HourlySignal, load_grid_csv
from eaco.errors import InputError
from eaco.sim.cost import cost_figures, energy_per_hour_j, with_costs
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
