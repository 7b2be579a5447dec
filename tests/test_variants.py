"""``eaco simulate --sweep``: EaCO settings variants, run side by side on one workload."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from eaco.cli import app
from eaco.errors import InputError
from eaco.policies.eaco import EacoSettings
from eaco.policies.variants import parse_sweep
from eaco.report.files import file_label


def test_parse_one_setting_and_a_grid() -> None:
    base = EacoSettings(util_threshold=0.7)
    one = parse_sweep("alpha=0,0.5,1", base)
    assert [label for label, _ in one] == ["eaco(alpha=0)", "eaco(alpha=0.5)", "eaco(alpha=1)"]
    assert [s.alpha for _, s in one] == [0.0, 0.5, 1.0] and all(s.util_threshold == 0.7 for _, s in one)
    grid = parse_sweep("util-threshold=0.5,1; reserve=true,off; reserve-wait-s=inf", base)
    assert [label for label, _ in grid][:2] == ["eaco(util_threshold=0.5,reserve=true,reserve_wait_s=inf)",
                                                "eaco(util_threshold=0.5,reserve=false,reserve_wait_s=inf)"]
    assert len(grid) == 4 and grid[3][1].util_threshold == 1.0 and not grid[3][1].reserve
    assert math.isinf(grid[0][1].reserve_wait_s) and isinstance(parse_sweep("max_jobs_per_gpu=2", base)[0][1].max_jobs_per_gpu, int)
    assert file_label("eaco(alpha=0.5,reserve=true)") == "eaco_alpha=0.5_reserve=true" and file_label("fifo-packed") == "fifo-packed"


@pytest.mark.parametrize("text, message", [
    ("alpha", "expected NAME=V1,V2"),
    ("colour=1,2", "unknown EaCO setting 'colour'"),
    ("alpha=0,x", "alpha: expected a number, got 'x'"),
    ("reserve=maybe", "reserve: expected true or false"),
    ("max_jobs_per_gpu=1.5", "max_jobs_per_gpu: expected an integer"),
    ("alpha=2", "alpha=2: EacoSettings: alpha must be in [0, 1]"),
    ("alpha=0; alpha=1", "alpha is swept twice"),
])
def test_bad_sweeps_name_the_option_and_value(text: str, message: str) -> None:
    with pytest.raises(InputError, match="--sweep") as err:
        parse_sweep(text, EacoSettings())
    assert message in str(err.value)


def test_simulate_runs_each_variant_in_eacos_place(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["simulate", "-n", "30", "--rate", "6", "-c", "2x8xv100", "-p", "eaco,fifo",
                                   "--sweep", "alpha=0,1", "--no-plots", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "metrics.json").read_text())
    assert [p["policy"] for p in data["policies"]] == ["eaco(alpha=0)", "eaco(alpha=1)", "fifo"]
    assert data["meta"]["sweep"] == "alpha=0,1"
    assert (out / "jobs_eaco_alpha=1.csv").exists() and (out / "timeseries_eaco_alpha=0.csv").exists()
    assert "| eaco(alpha=1) |" in (out / "report.md").read_text()
    bad = CliRunner().invoke(app, ["simulate", "-n", "5", "--sweep", "alpha=3", "-o", str(out)])
    assert bad.exit_code == 2 and "--sweep" in bad.output
