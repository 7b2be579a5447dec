"""``eaco profile --jobs``: your own training scripts (runtime job specs) profiled alone and
together with zoo models; the store they make feeds the co-location model."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from eaco.colocation.model import load_colocation_model  # noqa: E402
from eaco.colocation.profiles import read_profile_store  # noqa: E402
from eaco.errors import InputError  # noqa: E402
from eaco.profiler import pipeline  # noqa: E402
from eaco.profiler.epoch_report import EpochReporter, timed_epochs, wait_for_start  # noqa: E402
from eaco.profiler.experiment import JobSettings, ProfilerError, run_together  # noqa: E402
from eaco.profiler.members import check_members, spec_members, zoo_members  # noqa: E402
from eaco.profiler.telemetry import GpuDevice, GpuReading  # noqa: E402

ZOO = JobSettings(batch_size=4, epochs=2, steps_per_epoch=3, image_size=40, num_classes=10, seq_len=12,
                  vocab_size=300, num_users=50, num_items=60, width_mult=0.125, device="cpu", workers=0, threads=1)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _spec(tmp_path: Path, name: str, command: str, epochs: int = 2, extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ncommand: {command}\nepochs: {epochs}\nenv: {{OMP_NUM_THREADS: '1'}}\n{extra}",
                    encoding="utf-8")
    return path


def _tiny_train(name: str, epochs: int = 2) -> str:
    return f"{sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs {epochs} --steps-per-epoch 5"


class OneGpu:
    """A stand-in for NVML: one H100 at 200 W, 50 % busy, its energy counter rising accordingly."""

    def __init__(self) -> None:
        self.devices = (GpuDevice(0, "NVIDIA H100 80GB HBM3", 81559.0),)
        self.driver_version = "test-driver"
        self.t0 = time.monotonic()

    def read(self) -> tuple[GpuReading, ...]:
        return (GpuReading(0, 200.0, 1000.0 + 200.0 * (time.monotonic() - self.t0), 50.0, 2000.0, {}),)

    def close(self) -> None:
        pass


def test_own_job_is_profiled_alone_and_with_a_zoo_model(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "my-mlp", _tiny_train("mlp"))
    members = check_members(zoo_members(("ncf",), ZOO) + spec_members([spec]))
    cfg = pipeline.ProfileConfig(members=members, sets=(("ncf", "my-mlp"),), settings=ZOO, out_dir=tmp_path / "out",
                                 sample_hz=20, command="test")
    result = pipeline.run_profile(cfg, gpu_source_factory=lambda gpus: (OneGpu(), ""))
    store = read_profile_store(result.store_path)
    alone = {e.job_type: e for e in store.exclusive}
    assert set(alone) == {"ncf", "my-mlp"}
    assert alone["my-mlp"].batch_size is None and alone["ncf"].batch_size == 4
    assert alone["my-mlp"].epochs == 2 and alone["my-mlp"].throughput_samples_per_s > 0  # tiny_train counts samples
    (pair,) = store.colocated
    assert pair.members == ("my-mlp", "ncf") and all(s > 0 for s in pair.speeds)
    # the provenance names the job and its command, not its environment's values
    (job,) = store.provenance.settings["jobs"]
    assert job["name"] == "my-mlp" and job["source"] == str(spec) and job["env_names"] == ["OMP_NUM_THREADS"]
    assert store.provenance.settings["members"] == ["ncf", "my-mlp"]
    # the scheduler's co-location model now knows the new job type and uses the measured pair
    model = load_colocation_model(profiles=result.store_path)
    assert "my-mlp" in model.catalog.names()
    assert model.source(("my-mlp", "ncf"), "h100") == "profile"
    # both members ran at once: each one's own checkpoint folder and report
    run_dir = tmp_path / "out" / "runs" / "set-ncf+my-mlp"
    assert (run_dir / "my-mlp.jsonl").exists() and (run_dir / "ncf.jsonl").exists()
    # the report is written again from the saved files
    (tmp_path / "out" / "report.md").unlink()
    pipeline.rebuild_report(tmp_path / "out")
    assert "my-mlp" in (tmp_path / "out" / "report.md").read_text()


def test_a_job_that_never_reaches_the_start_barrier_is_named_with_the_fix(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "plain", f"{sys.executable} -c \"print('no epoch reports')\"", epochs=1)
    with pytest.raises(ProfilerError, match=r"job plain exited \(code 0\) before it was ready at the start barrier.*timed_epochs"):
        run_together("alone-plain", spec_members([spec]), tmp_path / "run", None, sample_hz=20)


def test_a_job_that_reports_fewer_epochs_than_its_spec_says_is_refused(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "short", _tiny_train("short", epochs=1), epochs=2)
    with pytest.raises(ProfilerError, match="job short reported 1 of 2 epochs"):
        run_together("alone-short", spec_members([spec]), tmp_path / "run", None, sample_hz=20)


def test_a_command_that_cannot_start_names_the_job(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "missing", "/nonexistent/train.sh")
    with pytest.raises(ProfilerError, match="cannot start job missing"):
        run_together("alone-missing", spec_members([spec]), tmp_path / "run", None, sample_hz=20)


def test_names_must_be_unique_and_specs_valid(tmp_path: Path) -> None:
    clash = _spec(tmp_path, "ncf", _tiny_train("x"))
    with pytest.raises(InputError, match=r"ncf.yaml: field 'name': job name 'ncf' is also the name of a zoo model"):
        check_members(zoo_members(("ncf",), ZOO) + spec_members([clash]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ncommand: python x.py\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.yaml: field 'epochs'"):
        spec_members([bad])


def test_timed_epochs_waits_at_the_barrier_named_by_the_launcher(tmp_path: Path, monkeypatch) -> None:
    """Under the profiler, the first epoch of a plain ``timed_epochs`` loop starts only at the
    launcher's go; the ready file carries the launcher's name for the job (EACO_JOB_NAME), and a
    process passes its barrier once."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv("EACO_START_BARRIER", str(barrier))
    monkeypatch.setenv("EACO_JOB_NAME", "launcher-name")
    (barrier / "go").touch()
    reporter = EpochReporter.to_file("script-name", tmp_path / "r.jsonl")
    assert [e for e, _ in timed_epochs(reporter, range(2))] == [0, 1]
    assert (barrier / "launcher-name.ready").exists() and not (barrier / "script-name.ready").exists()
    (barrier / "go").unlink()
    assert wait_for_start(barrier, "launcher-name", timeout_s=0.05) == 0.0  # passed already: no second wait
    with pytest.raises(TimeoutError):
        wait_for_start(barrier, "another", timeout_s=0.05)


def test_profile_command_with_jobs_only(tmp_path: Path, monkeypatch) -> None:
    import typer
    from typer.testing import CliRunner

    from eaco.profiler.cli import profile_command

    monkeypatch.setattr(pipeline, "open_nvml", lambda gpus: (None, "test: NVML switched off"))
    app = typer.Typer()
    app.command("profile")(profile_command)
    app.command("other")(lambda: None)
    spec = _spec(tmp_path, "mine", _tiny_train("mine"))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["profile", "--jobs", str(spec), "--out", str(out)])  # no --models: only the job
    assert res.exit_code == 0, res.output
    assert [e.job_type for e in read_profile_store(out / "profiles.json").exclusive] == ["mine"]
    res = CliRunner().invoke(app, ["profile", "--models", "none", "--out", str(out)])
    assert res.exit_code == 2 and "expected at least one job to profile" in res.output
    res = CliRunner().invoke(app, ["profile", "--jobs", str(tmp_path / "nope.yaml"), "--out", str(out)])
    assert res.exit_code == 2 and "no such job spec file" in res.output
