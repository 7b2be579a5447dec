"""Policies of your own (eaco.policies.custom): FILE.py:Class wherever a policy is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eaco.cli import app
from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.policies.custom import load_custom_policy
from eaco.policies.registry import make_policy, policy_label, policy_manages_node_power
from eaco.setup import load_environment
from eaco.sim.runner import simulate
from eaco.workloads import generate_workload

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "policies" / "util_pack.py") + ":UtilPack"
runner = CliRunner()

# a policy written here: FIFO again (the head of the queue alone on free GPUs, the rest wait)
OWN = '''
from eaco.policies.base import Policy
from eaco.policies.decisions import Place
from eaco.policies.placement import find_free_gpus_any_type


class Alone(Policy):
    def __init__(self):
        self.calls = 0

    def schedule(self, view):
        self.calls += 1
        if view.queue:
            gpus = find_free_gpus_any_type(view, view.queue[0])
            if gpus is not None:
                return [Place(view.queue[0].job_id, gpus)]
        return []


class WithContext(Alone):
    name = "with-context"
    manages_node_power = True

    def __init__(self, context=None):
        super().__init__()
        self.context = context


class NotAPolicy:
    pass


class Abstract(Policy):
    pass


class TooMany(Alone):
    def __init__(self, a, b):
        super().__init__()
'''


@pytest.fixture(scope="module")
def env():
    return load_environment()


def test_the_example_policy_runs_beside_the_builtins(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "-n", "60", "--rate", "6", "-c", "2x8xv100", "-p", f"fifo,{EXAMPLE}", "--no-plots",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    runs = {m["policy"]: m for m in json.loads((out / "metrics.json").read_text())["policies"]}
    assert list(runs) == ["fifo", "util-pack"] and runs["util-pack"]["num_jobs"] == 60
    # it shares GPUs where FIFO never does, and its empty nodes sleep as it declares
    assert runs["util-pack"]["colocated_jobs"] > 0 and runs["fifo"]["colocated_jobs"] == 0
    assert runs["util-pack"]["sleep_kwh"] > 0 and runs["fifo"]["sleep_kwh"] == 0
    assert (out / "jobs_util-pack.csv").exists() and "| util-pack |" in (out / "report.md").read_text()


def test_a_policy_written_here_with_and_without_context(tmp_path: Path, env) -> None:
    path = tmp_path / "own.py"
    path.write_text(OWN)
    alone = load_custom_policy(f"{path}:Alone")
    assert alone.label == "Alone" and not alone.takes_context and not alone.manages_node_power
    with_ctx = load_custom_policy(f" {path}:WithContext ")
    assert with_ctx.label == "with-context" and with_ctx.takes_context and policy_manages_node_power(f"{path}:WithContext")
    assert policy_label(f"{path}:WithContext") == "with-context" and policy_label("FIFO") == "fifo"
    ctx = env.policy_context()
    assert make_policy(f"{path}:WithContext", ctx).context is ctx
    # loaded once per process while the file is unchanged: one module, one class
    assert load_custom_policy(f"{path}:Alone").cls is alone.cls
    # ... and through the simulator: the same result as the built-in FIFO
    wl = generate_workload(20, 6.0, catalog=env.catalog, seed=1)
    cluster = ClusterSpec.homogeneous(2, 8, "v100")
    mine = simulate(cluster, wl, f"{path}:Alone", env)[1]
    fifo = simulate(cluster, wl, "fifo", env)[1]
    assert mine.num_jobs == 20 and mine.colocated_jobs == 0
    assert mine.total_time_s.mean == pytest.approx(fifo.total_time_s.mean) and mine.energy_kwh == pytest.approx(fifo.energy_kwh)


@pytest.mark.parametrize("attr, says", [
    ("Missing", "has no 'Missing'"),
    ("NotAPolicy", "not a subclass of eaco.policies.base.Policy"),
    ("Abstract", "does not implement schedule"),
    ("TooMany", "must take no argument or one"),
])
def test_refusals_name_the_reference(tmp_path: Path, attr: str, says: str) -> None:
    path = tmp_path / "own.py"
    path.write_text(OWN)
    with pytest.raises(InputError) as err:
        load_custom_policy(f"{path}:{attr}")
    assert f"{path}:{attr}" in str(err.value) and says in str(err.value)


def test_bad_files_and_modules_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import nosuchmodule_xyz\n")
    for spec, says in ((f"{tmp_path}/none.py:X", "no policy file"), (f"{broken}:X", "ModuleNotFoundError"),
                       ("nosuch.module_xyz:X", "cannot import module"), ("just-a-name:", "expected FILE.py:Class")):
        with pytest.raises(InputError, match=says):
            load_custom_policy(spec)
    # the command line: refused before anything runs or is written
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", "-n", "5", "-p", f"fifo,{tmp_path}/none.py:X", "-o", str(out)])
    said = "".join(res.output.split())  # the console wraps long paths
    assert res.exit_code == 2 and f"{tmp_path}/none.py:X:nopolicyfile" in said and not out.exists()
    res = runner.invoke(app, ["serve", "--gpus", "1xv100", "--policy", f"{broken}:X", "--state-dir", str(tmp_path / "s")])
    assert res.exit_code != 0 and "ModuleNotFoundError" in res.output and not (tmp_path / "s").exists()
