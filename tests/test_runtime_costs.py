"""``eaco status --summary --price-per-kwh/--carbon-g-per-kwh/--pue``: the runtime's cost and carbon."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from eaco.energy.grid import grid_settings_from_options
from eaco.runtime.summary import add_costs
from eaco.runtime_cli import format_summary, status_command

SUMMARY = {
    "jobs": [{"job_id": 1, "name": "a", "state": "finished", "jct_s": 10.0, "run_time_s": 10.0, "waiting_s": 0.0,
              "colocated_s": 5.0, "energy_j": 3.6e6, "attempts": 1, "undos": 0, "migrations": 0, "exclusive_epoch_s": 1.0},
             {"job_id": 2, "name": "b", "state": "finished", "jct_s": 20.0, "run_time_s": 20.0, "waiting_s": 1.0,
              "colocated_s": 5.0, "energy_j": 1.8e6, "attempts": 1, "undos": 0, "migrations": 0, "exclusive_epoch_s": 2.0}],
    "counts": {"finished": 2}, "mean_jct_s": 15.0, "max_jct_s": 20.0, "colocated_jobs": 2, "undos": 0, "migrations": 0,
    "attributed_energy_j": 5.4e6,
    "energy": {"duration_s": 30.0, "total_j": 7.2e6, "total_kwh": 2.0, "gpu_busy_j": 4e6, "gpu_idle_j": 1e6, "host_j": 2.2e6,
               "label": "GPU energy modelled"},
}


def test_costs_apply_pue_price_and_intensity_to_the_run_and_each_job() -> None:
    out = add_costs(SUMMARY, grid_settings_from_options(0.25, 400.0, pue=1.5, currency="EUR"))
    assert out["costs"]["cluster"] == pytest.approx({"facility_kwh": 3.0, "cost": 0.75, "carbon_kg": 1.2})
    assert out["costs"]["attributed"] == pytest.approx({"facility_kwh": 2.25, "cost": 0.5625, "carbon_kg": 0.9})
    assert [j["cost"] for j in out["jobs"]] == pytest.approx([0.375, 0.1875])
    assert "costs" not in SUMMARY and "cost" not in SUMMARY["jobs"][0]  # the input is left as it was
    text = format_summary(out)
    assert "cost and carbon (PUE 1.5" in text and "cluster 3.0000 kWh x PUE, 0.7500 EUR, 1.2000 kg CO2e" in text
    # only carbon: no cost figures
    carbon_only = add_costs(SUMMARY, grid_settings_from_options(None, 100.0))
    assert carbon_only["costs"]["cluster"]["cost"] is None and carbon_only["costs"]["cluster"]["carbon_kg"] == pytest.approx(0.2)
    assert add_costs(SUMMARY, grid_settings_from_options(None, None)) is SUMMARY  # nothing asked: unchanged


def test_status_cost_options_are_checked(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("status")(status_command)
    app.command("other")(lambda: None)
    runner = CliRunner()
    res = runner.invoke(app, ["status", "--price-per-kwh", "0.2", "--state-dir", str(tmp_path)])
    assert res.exit_code != 0 and "apply to --summary" in res.output
    res = runner.invoke(app, ["status", "--summary", "--pue", "0.5", "--state-dir", str(tmp_path)])
    assert res.exit_code != 0 and "--pue: expected a number >= 1" in res.output


def test_hourly_prices_charge_the_cluster_per_hour_and_jobs_at_their_hours_mean(tmp_path: Path) -> None:
    h0 = 490_000 * 3600  # 16:00 UTC on some day (490,000 h = 20,416 days + 16 h)
    assert h0 // 3600 % 24 == 16
    csv_path = tmp_path / "tariff.csv"
    csv_path.write_text("hour,price_per_kwh,carbon_g_per_kwh\n" + "".join(f"{h},{0.1 if h < 20 else 0.3},{100 * (h % 2)}\n" for h in range(24)))
    grid = grid_settings_from_options(None, None, csv_path, offset_h=0)
    # 1 kWh in the hour 16-17 UTC (price 0.1, carbon 0), 2 kWh in 20-21 UTC (price 0.3, carbon 0)
    kwh_j = 3.6e6
    hours = [{"hour_start_unix": h0, "gpu_busy_j": kwh_j, "gpu_idle_j": 0.0, "host_j": 0.0},
             {"hour_start_unix": h0 + 4 * 3600, "gpu_busy_j": 2 * kwh_j, "gpu_idle_j": 0.0, "host_j": 0.0},
             {"hour_start_unix": h0 + 5 * 3600, "gpu_busy_j": 0.0, "gpu_idle_j": 0.0, "host_j": kwh_j}]  # 21-22: 0.3, 100 g
    summary = {**SUMMARY, "jobs": [{**SUMMARY["jobs"][0], "first_start_unix": h0 + 60.0, "finish_unix": h0 + 600.0},
                                   {**SUMMARY["jobs"][1], "first_start_unix": h0 + 60.0, "finish_unix": h0 + 4 * 3600 + 60.0}]}
    out = add_costs(summary, grid, hours)
    assert out["costs"]["hourly"] is True
    assert out["costs"]["cluster"] == pytest.approx({"facility_kwh": 4.0, "cost": 0.1 + 0.6 + 0.3, "carbon_kg": 0.1})
    # job 1 ran only in the 16 h hour: 0.1/kWh; job 2 over 16 h-20 h: (1 x 0.1 + 2 x 0.3) / 3 per kWh
    assert out["jobs"][0]["cost"] == pytest.approx(1.0 * 0.1)
    assert out["jobs"][1]["cost"] == pytest.approx(0.5 * 0.7 / 3)
    assert out["costs"]["attributed"]["cost"] == pytest.approx(0.1 + 0.5 * 0.7 / 3)
    assert "each job at the energy-weighted mean" in format_summary(out)
    # shifted by -1 h (a series in UTC+1): the 16 h UTC hour reads row 17
    shifted = add_costs(summary, grid_settings_from_options(None, None, csv_path, offset_h=-1), hours)
    assert shifted["costs"]["cluster"]["carbon_kg"] == pytest.approx((1 * 100 + 2 * 100 + 1 * 0) / 1000)
