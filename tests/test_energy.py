"""Tests for eaco.energy: power curves, the packaged GPU table, and the calibration on paper data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from eaco.energy import EnergyModel, GpuPowerModel, HostPowerModel, default_energy_model, read_gpu_power_csv
from eaco.energy.calibration import (
    PAPER_CPU_UTIL_PER_JOB,
    ROLE_FIT,
    ROLE_HELD_OUT,
    format_calibration_table,
    paper_cpu_util,
    run_calibration,
)
from eaco.energy.fit import fit_gpu_power_entries
from eaco.energy.measured import PowerCdf
from eaco.energy.node_power import PAPER_NODE_BASELINE_W
from eaco.energy.power_table import GPU_POWER_CSV, load_gpu_power_models
from eaco.errors import InputError
from eaco.model.gpu import GPU_TYPES

REQUIRED_GPUS = ("k80", "p100", "v100", "a100", "h100")


@pytest.fixture(scope="module")
def report():
    return run_calibration()


# --- GPU curve -------------------------------------------------------------------------------


def test_gpu_power_endpoints_and_clipping() -> None:
    g = GpuPowerModel("v100", idle_power_w=40.0, max_power_w=250.0, exponent=0.5)
    assert g.power_w(0.0) == 40.0
    assert g.power_w(1.0) == 250.0
    assert g.power_w(-0.3) == 40.0
    assert g.power_w(1.7) == 250.0
    assert g.power_w(0.25) == pytest.approx(40.0 + 210.0 * 0.5)  # 0.25**0.5 = 0.5
    assert g.energy_j(0.25, 10.0) == pytest.approx(1450.0)


@pytest.mark.parametrize("exponent", [0.3, 0.512, 1.0, 2.0])
def test_gpu_power_monotone(exponent: float) -> None:
    g = GpuPowerModel("a100", 60.0, 400.0, exponent)
    powers = [g.power_w(i / 100) for i in range(101)]
    assert all(b > a for a, b in zip(powers, powers[1:]))
    assert powers[0] == 60.0 and powers[-1] == 400.0


def test_gpu_power_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="max_power_w"):
        GpuPowerModel("v100", 100.0, 50.0, 1.0)
    with pytest.raises(ValueError, match="exponent"):
        GpuPowerModel("v100", 30.0, 250.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        GpuPowerModel("v100", 30.0, 250.0, 1.0).power_w(math.nan)


# --- host curve ------------------------------------------------------------------------------


def test_fwb_hand_checked_at_half_load() -> None:
    h = HostPowerModel(idle_power_w=60.0, max_power_w=300.0, exponent_r=1.4, low_power_w=25.0)
    # 0.5**1.4 = exp(1.4 * ln 0.5) = 0.378929; 2*0.5 - 0.378929 = 0.621071; 60 + 240 * 0.621071 = 209.057
    assert h.power_w(0.5) == pytest.approx(209.057, abs=1e-3)
    assert h.power_w(0.0) == 60.0
    assert h.power_w(1.0) == 300.0
    assert h.power_w(2.0) == 300.0
    powers = [h.power_w(i / 50) for i in range(51)]
    assert all(b > a for a, b in zip(powers, powers[1:]))


def test_host_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="exponent_r"):
        HostPowerModel(exponent_r=2.5)
    with pytest.raises(ValueError, match="max_power_w"):
        HostPowerModel(idle_power_w=200.0, max_power_w=100.0)


# --- node model ------------------------------------------------------------------------------


def test_node_power_sums_parts_and_sleep() -> None:
    gpu = GpuPowerModel("v100", 40.0, 250.0, 1.0)
    host = HostPowerModel(idle_power_w=60.0, max_power_w=300.0, low_power_w=20.0)
    model = EnergyModel({"v100": gpu}, host, node_baseline_w=50.0)
    expected = 50.0 + host.power_w(0.5) + gpu.power_w(0.0) + gpu.power_w(0.5) + gpu.power_w(1.0)
    assert model.node_power_w("v100", [0.0, 0.5, 1.0], 0.5) == pytest.approx(expected)
    assert model.empty_node_power_w("v100", 8) == 20.0
    awake = EnergyModel({"v100": gpu}, host, node_baseline_w=50.0, sleep_empty_nodes=False)
    assert awake.empty_node_power_w("v100", 8) == pytest.approx(50.0 + 60.0 + 8 * 40.0)
    with pytest.raises(KeyError, match="have: v100"):
        model.node_power_w("h100", [0.5], 0.1)


def test_default_energy_model_covers_all_gpu_types() -> None:
    model = default_energy_model()
    assert set(model.gpus) == set(GPU_TYPES)
    assert model.node_baseline_w == PAPER_NODE_BASELINE_W
    busy = model.node_power_w("v100", [1.0] * 8, 1.0)
    idle = model.awake_idle_node_power_w("v100", 8)
    assert idle < busy
    assert model.empty_node_power_w("v100", 8) < idle


# --- packaged table --------------------------------------------------------------------------


def test_gpu_power_csv_parses_required_types() -> None:
    entries = read_gpu_power_csv()
    by_type = {e.model.gpu_type: e for e in entries}
    for gpu in REQUIRED_GPUS:
        entry = by_type[gpu]
        assert 0.0 < entry.model.idle_power_w < entry.model.max_power_w
        assert entry.provenance, f"{gpu}: empty provenance"
    # Spot values from the sources (gpu_power.md): Zeus V100, AcmeTrace A100, datasheet H100.
    assert by_type["v100"].model.max_power_w == pytest.approx(228.4, abs=0.05)
    assert by_type["a100"].model.idle_power_w == pytest.approx(61.8, abs=0.05)
    assert by_type["h100"].model.max_power_w == 700.0
    assert by_type["k80"].model.max_power_w == 150.0


def test_gpu_power_csv_errors_name_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "gpu_power.csv"
    bad.write_text(
        "# comment\n"
        "gpu_type,idle_power_w,max_power_w,exponent,provenance\n"
        "v100,36.2,228.4,0.5,ok\n"
        "\n"
        "# a comment between rows\n"
        "p100,abc,178.7,0.5,bad\n"
    )
    with pytest.raises(InputError) as err:
        load_gpu_power_models(bad)
    assert err.value.line == 6 and err.value.field == "idle_power_w"
    bad.write_text("gpu_type,idle_power_w,max_power_w,exponent,provenance\nxyz,1,2,1,x\n")
    with pytest.raises(InputError, match="unknown GPU type"):
        load_gpu_power_models(bad)


def test_packaged_table_is_what_fit_regenerates() -> None:
    """The CSV must be the output of eaco.energy.fit on the shared data (rounded as written)."""
    packaged = load_gpu_power_models(GPU_POWER_CSV)
    for entry in fit_gpu_power_entries():
        m, p = entry.model, packaged[entry.model.gpu_type]
        assert p.idle_power_w == pytest.approx(m.idle_power_w, abs=0.051)
        assert p.max_power_w == pytest.approx(m.max_power_w, abs=0.051)
        assert p.exponent == pytest.approx(m.exponent, abs=1e-4)


def test_power_cdf_quantile_interpolates() -> None:
    cdf = PowerCdf((10.0, 20.0, 40.0), (0.0, 0.5, 1.0))
    assert cdf.quantile_w(0.25) == pytest.approx(15.0)
    assert cdf.quantile_w(0.75) == pytest.approx(30.0)
    assert cdf.quantile_w(1.0) == 40.0


# --- calibration on the paper's tables -------------------------------------------------------


def test_calibration_fits_exclusive_and_predicts_colocated(report) -> None:
    roles = [r.role for r in report.rows]
    assert roles.count(ROLE_FIT) == 4 and roles.count(ROLE_HELD_OUT) == 6
    # Measured on the shared data: fit MAE 3.2%, held-out MAE 2.8% (docs/energy.md).
    assert report.mae_pct_fit < 5.0
    assert report.mae_pct_held_out < 5.0
    assert all(abs(r.error_pct) < 8.0 for r in report.rows)
    assert 0.3 < report.gpu.exponent < 0.8  # concave: a lightly busy V100 is well above idle
    four = next(r for r in report.rows if r.job_set == "J1+J2+J3+J4")
    assert four.measured_power_w == 1944.0
    assert four.cpu_util == pytest.approx(paper_cpu_util(4))
    assert four.cpu_util == pytest.approx(4 * PAPER_CPU_UTIL_PER_JOB)


def test_calibration_matches_packaged_constants(report) -> None:
    assert report.node_baseline_w == pytest.approx(PAPER_NODE_BASELINE_W, abs=0.5)
    assert load_gpu_power_models()["v100"].exponent == pytest.approx(report.gpu.exponent, abs=5e-3)


def test_calibration_cpu_assumption_changes_held_out_only_through_host(report) -> None:
    no_cpu = run_calibration(cpu_util_per_job=0.0)
    # Exclusive rows share one CPU load, so the fit quality does not depend on it ...
    assert no_cpu.mae_pct_fit == pytest.approx(report.mae_pct_fit, abs=0.05)
    # ... but co-located rows do: without extra CPU load the held-out prediction is lower.
    lower = [a.modelled_power_w < b.modelled_power_w for a, b in zip(no_cpu.rows, report.rows) if a.role == ROLE_HELD_OUT]
    assert all(lower)
    with pytest.raises(ValueError, match="cpu_util_per_job"):
        run_calibration(cpu_util_per_job=1.5)


def test_calibration_report_outputs(report) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["mae_pct"][ROLE_HELD_OUT] == pytest.approx(report.mae_pct_held_out)
    assert len(data["rows"]) == 10
    assert data["fitted"]["gpu_exponent"] == pytest.approx(report.gpu.exponent)
    table = format_calibration_table(report)
    assert table.row_count == 12  # 10 job sets + 2 MAE rows


def test_catalogue_cpu_share_of_paper_models_matches_the_calibration():
    from eaco.colocation.catalog import load_catalog
    from eaco.energy.calibration import PAPER_CPU_UTIL_PER_GPU

    catalog = load_catalog()
    for model in ("alexnet", "resnet18", "resnet50", "vgg16"):
        assert catalog.get(model).cpu_util_per_gpu == pytest.approx(PAPER_CPU_UTIL_PER_GPU)
