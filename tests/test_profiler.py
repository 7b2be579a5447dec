"""Tests of the profiler: zoo, epoch reports, training processes, telemetry, profile store, CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

import torch
import psutil

from typer.testing import CliRunner  # noqa: E402
import typer  # noqa: E402

from eaco.colocation.model import load_colocation_model  # noqa: E402
from eaco.colocation.profiles import (  # noqa: E402
    SCHEMA_VERSION,
    ColocatedProfile,
    ExclusiveProfile,
    ProfileStore,
    Provenance,
    load_profiles,
    parse_profile_store,
    read_profile_store,
    store_to_json,
    write_profile_store,
)
from eaco.energy.host_power import HostPowerModel  # noqa: E402
from eaco.errors import InputError  # noqa: E402
from eaco.profiler import pipeline  # noqa: E402
from eaco.profiler.cli import profile_command  # noqa: E402
from eaco.profiler.data import DataShape, build_dataset  # noqa: E402
from eaco.profiler.epoch_report import EpochReporter, ReportError, read_report, timed_epochs  # noqa: E402
from eaco.profiler.experiment import JobSettings, parse_models, parse_sets, run_together  # noqa: E402
from eaco.profiler.gpu_naming import gpu_type_key  # noqa: E402
from eaco.profiler.members import zoo_members  # noqa: E402
from eaco.profiler.store import member_timing  # noqa: E402
from eaco.profiler.summary import summarize  # noqa: E402
from eaco.profiler.telemetry import GpuDevice, GpuReading, GpuSample, HostSample, TelemetrySampler, open_nvml  # noqa: E402
from eaco.profiler.train import TrainConfig, train  # noqa: E402
from eaco.profiler.zoo import MODEL_NAMES, build_model, zoo_entry  # noqa: E402

TINY_SHAPE = DataShape(image_size=40, num_classes=10, seq_len=12, vocab_size=300, num_users=50, num_items=60)
TINY_JOBS = JobSettings(batch_size=4, epochs=3, steps_per_epoch=5, image_size=40, num_classes=10, seq_len=12,
                        vocab_size=300, num_users=50, num_items=60, width_mult=0.125, device="cpu", workers=1,
                        threads=1)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# --- zoo and data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_zoo_model_trains_one_step_on_its_synthetic_data(name: str) -> None:
    s = TINY_SHAPE
    model = build_model(name, num_classes=s.num_classes, vocab_size=s.vocab_size, seq_len=s.seq_len,
                        num_users=s.num_users, num_items=s.num_items, width_mult=0.125)
    ds = build_dataset(name, 4, s, seed=1)
    x, y = (torch.stack(t) for t in zip(*(ds[i] for i in range(4))))
    kind = zoo_entry(name).kind
    if kind == "image":
        assert x.shape == (4, 3, 40, 40)
        out = model(x)
        assert out.shape == (4, 10)
        loss = torch.nn.functional.cross_entropy(out, y)
    elif kind == "tokens":
        out = model(x)
        assert out.shape == (4, 12, 300)
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, 300), y.reshape(-1))
    else:
        out = model(x[:, 0], x[:, 1])
        assert out.shape == (4,)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.parameters())


def test_published_sizes_at_width_one() -> None:
    # Parameter counts of the published models (torchvision's definitions, 1000 classes).
    kw = dict(num_classes=1000, vocab_size=10, seq_len=8, num_users=10, num_items=10)
    counts = {n: sum(p.numel() for p in build_model(n, **kw).parameters()) for n in ("resnet18", "resnet50", "alexnet")}
    assert counts["resnet18"] == 11_689_512
    assert counts["resnet50"] == 25_557_032
    assert counts["alexnet"] == 61_100_840


def test_synthetic_data_is_deterministic_per_index() -> None:
    a = build_dataset("resnet18", 8, TINY_SHAPE, seed=3)
    b = build_dataset("resnet18", 8, TINY_SHAPE, seed=3)
    assert torch.equal(a[5][0], b[5][0]) and not torch.equal(a[5][0], a[6][0])


def test_too_small_images_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="image_size: alexnet needs images of at least 35"):
        TrainConfig(model="alexnet", job_name="a", batch_size=2, epochs=1, steps_per_epoch=1,
                    shape=DataShape(image_size=32))


# --- epoch reports ----------------------------------------------------------------------------------


def test_epoch_reports_round_trip_and_ignore_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rep = EpochReporter.to_file("job", path)
    rep.start(model="m")
    for _, tick in timed_epochs(rep, range(2, 4)):
        time.sleep(0.01)
        tick.steps, tick.samples = 5, 20
    rep.end()
    rep.close()
    with open(path, "a") as fh:
        fh.write('{"event": "epoch", "job": "jo')  # a writer caught mid-line
    log = read_report(path)
    assert log.ended and [e.epoch for e in log.epochs] == [2, 3]
    assert all(e.duration_s >= 0.01 and e.samples == 20 for e in log.epochs)
    assert log.epochs[0].throughput_samples_per_s == pytest.approx(20 / log.epochs[0].duration_s)
    path.write_text('{"event": "lunch"}\n')
    with pytest.raises(ReportError, match=r"r.jsonl:1: field 'event'"):
        read_report(path)


# --- training processes -------------------------------------------------------------------------------


def test_train_checkpoints_each_epoch_and_resumes(tmp_path: Path) -> None:
    cfg = TrainConfig(model="resnet18", job_name="r18", batch_size=4, epochs=2, steps_per_epoch=2, shape=TINY_SHAPE,
                      width_mult=0.125, device="cpu", workers=0, checkpoint_dir=tmp_path / "ck",
                      report_file=tmp_path / "r.jsonl", threads=1)
    assert train(cfg) == 2
    assert (tmp_path / "ck" / "r18.pt").exists()
    again = TrainConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "epochs": 3})
    assert train(again) == 1  # epochs 0 and 1 come from the checkpoint
    log = read_report(tmp_path / "r.jsonl")
    assert [e.epoch for e in log.epochs] == [0, 1, 2]
    assert [s.detail["start_epoch"] for s in log.starts] == [0, 2]
    assert all(e.checkpoint and e.peak_memory_mib and e.peak_memory_mib > 0 for e in log.epochs)


def test_train_under_the_runtime_stops_at_an_epoch_end_and_resumes(tmp_path: Path, monkeypatch) -> None:
    """The zoo job uses the runtime's job client: checkpoints in $EACO_CHECKPOINT_DIR, a stop
    request ends it after the epoch it is in with exit code 75, and the next attempt resumes."""
    from eaco.runtime.control import CHECKPOINT_DIR_ENV, CONTROL_DIR_ENV, EXIT_STOPPED, clear_stop, request_stop

    control = tmp_path / "control"
    monkeypatch.setenv(CONTROL_DIR_ENV, str(control))
    monkeypatch.setenv(CHECKPOINT_DIR_ENV, str(tmp_path / "ck"))
    cfg = TrainConfig(model="ncf", job_name="n", batch_size=4, epochs=3, steps_per_epoch=2, shape=TINY_SHAPE,
                      width_mult=0.125, device="cpu", workers=0, report_file=tmp_path / "r.jsonl", threads=1)
    request_stop(control)  # asked before the first epoch: it still trains one, then stops
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == EXIT_STOPPED
    assert (tmp_path / "ck" / "n.pt").exists()
    clear_stop(control)
    assert train(cfg) == 2  # epochs 1 and 2: resumed from the checkpoint
    log = read_report(tmp_path / "r.jsonl")
    assert [e.epoch for e in log.epochs] == [0, 1, 2]
    assert [s.detail["start_epoch"] for s in log.starts] == [0, 1]


def test_two_processes_run_at_the_same_time(tmp_path: Path) -> None:
    run = run_together("set-ncf+resnet18", zoo_members(("ncf", "resnet18"), TINY_JOBS), tmp_path / "run", None,
                       sample_hz=20, cpu_util=lambda: 0.5)
    assert [j.model for j in run.jobs] == ["ncf", "resnet18"]
    assert len({j.pid for j in run.jobs}) == 2
    a, b = run.jobs
    # Both training windows overlap: the processes really ran together.
    a0 = a.epochs[0].end_time_s - a.epochs[0].duration_s
    b0 = b.epochs[0].end_time_s - b.epochs[0].duration_s
    assert max(a0, b0) < min(a.epochs[-1].end_time_s, b.epochs[-1].end_time_s)
    assert all(len(j.epochs) == 3 and 0 < j.jct_s <= run.duration_s + 0.2 for j in run.jobs)
    t = member_timing(a, [b])
    assert t.epoch_s > 0
    # Host energy: the injected 50% CPU through the host model over the window.
    assert run.telemetry.host_energy_j == pytest.approx(HostPowerModel().power_w(0.5) * run.duration_s, rel=1e-6)
    assert run.telemetry.gpu_energy_j is None and run.telemetry.gpu_util_mean is None


# --- telemetry -------------------------------------------------------------------------------------------


class ScriptedGpu:
    """A stand-in for NVML: two GPUs drawing 100 W and 300 W, counters rising accordingly."""

    def __init__(self, with_counter: bool = True) -> None:
        self.devices = (GpuDevice(0, "NVIDIA H100 80GB HBM3", 81559.0), GpuDevice(1, "NVIDIA H100 80GB HBM3", 81559.0))
        self.driver_version = "test-driver"
        self.with_counter = with_counter
        self.t0 = time.monotonic()
        self.closed = False

    def read(self) -> tuple[GpuReading, ...]:
        t = time.monotonic() - self.t0
        return tuple(
            GpuReading(i, p, (1000.0 + p * t) if self.with_counter else None, u, 1000.0 * (i + 1), {4242: 512.0})
            for i, (p, u) in enumerate(((100.0, 20.0), (300.0, 60.0)))
        )

    def close(self) -> None:
        self.closed = True


def test_sampler_with_an_injected_source_measures_energy_from_the_counter() -> None:
    src = ScriptedGpu()
    with TelemetrySampler(src, sample_hz=50, cpu_util=lambda: 0.25) as s:
        time.sleep(0.3)
    duration = s.elapsed_s()
    gpu, host = s.gpu_samples(), s.host_samples()
    assert len(gpu) >= 10  # >= 10 Hz achieved (50 Hz asked, 0.3 s)
    summ = summarize(gpu, host, duration, src.devices)
    assert summ.gpu_energy_source == "counter"
    span = gpu[-1].time_s - gpu[0].time_s
    assert summ.gpu_energy_j == pytest.approx(400.0 * span, rel=0.05)
    assert summ.gpu_util_mean == pytest.approx(0.40) and summ.gpu_util_max == pytest.approx(0.40)
    assert summ.gpu_memory_mib_peak == pytest.approx(3000.0)
    assert summ.memory_util_mean == pytest.approx(3000.0 / (2 * 81559.0))
    assert summ.process_memory_mib_peak == {4242: 1024.0}
    assert summ.host_cpu_util_mean == pytest.approx(0.25)
    assert summ.energy_j == pytest.approx(summ.gpu_energy_j + summ.host_energy_j)


class _NvmlError(Exception):
    def __init__(self, message: str, value: int = 999) -> None:
        super().__init__(message)
        self.value = value


def _util_sample(pid: int, ts: int, sm: int):
    return type("S", (), {"pid": pid, "timeStamp": ts, "smUtil": sm, "memUtil": 0, "encUtil": 0, "decUtil": 0})()


class StandInNvml:
    """The part of pynvml's API that NvmlSource calls, answering like a driver would (mW, mJ, bytes)."""

    NVMLError = _NvmlError
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NOT_FOUND = 6

    def __init__(self) -> None:
        self.energy_mj = 5_000_000
        self.util_asks: list[tuple[int, int]] = []  # (handle, lastSeenTimeStamp) per call
        self.util_samples: list = []  # what device 0 answers (its buffer: filtered by the caller's timestamp)

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"Tesla V100-SXM2-32GB"

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return f"GPU-{h}"

    def nvmlDeviceGetMemoryInfo(self, h: int):
        return type("Mem", (), {"total": 32 * 2**30, "used": 3 * 2**30})()

    def nvmlSystemGetDriverVersion(self) -> str:
        return "535.1"

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if h == 1:
            raise _NvmlError("Not Supported")
        self.energy_mj += 1000
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return 250_500

    def nvmlDeviceGetUtilizationRates(self, h: int):
        return type("Util", (), {"gpu": 87, "memory": 40})()

    def nvmlDeviceGetComputeRunningProcesses(self, h: int):
        return [type("P", (), {"pid": 77, "usedGpuMemory": 2**30})(), type("P", (), {"pid": 78, "usedGpuMemory": None})()]

    def nvmlDeviceGetProcessUtilization(self, h: int, last_seen_us: int):
        self.util_asks.append((h, last_seen_us))
        if h == 1:
            raise _NvmlError("Not Supported", self.NVML_ERROR_NOT_SUPPORTED)
        newer = [s for s in self.util_samples if s.timeStamp > last_seen_us]
        if not newer:
            raise _NvmlError("Not Found", self.NVML_ERROR_NOT_FOUND)
        return self.util_samples  # a driver may hand back older samples too: the reader filters them

    def nvmlShutdown(self) -> None:
        pass


def test_nvml_source_converts_driver_units_and_tolerates_missing_counters() -> None:
    from eaco.profiler.telemetry import NvmlSource

    src = NvmlSource(StandInNvml(), [1, 0])
    assert [d.index for d in src.devices] == [1, 0] and src.devices[0].memory_total_mib == 32 * 1024
    assert src.driver_version == "535.1"
    first = src.read()
    assert first[0].energy_counter_j is None and first[1].energy_counter_j == pytest.approx(5001.0)
    assert first[1].power_w == pytest.approx(250.5) and first[1].util_pct == 87.0
    assert first[1].memory_used_mib == pytest.approx(3072.0) and first[1].process_memory_mib == {77: 1024.0}
    with pytest.raises(ValueError, match="gpus: NVML sees 2 GPU"):
        NvmlSource(StandInNvml(), [2])


def test_nvml_source_reads_each_process_share_of_the_kernel_time() -> None:
    """Per process, its share of the SM utilisation NVML sampled since the previous read; a board
    that does not support it is not asked again; samples already seen are not counted twice."""
    from eaco.profiler.telemetry import NvmlSource

    nv = StandInNvml()
    src = NvmlSource(nv, [1, 0])
    first = src.read()  # no sample yet: nothing
    assert first[0].process_busy_share == {} and first[1].process_busy_share == {}
    start_us = nv.util_asks[-1][1]
    assert abs(start_us - time.time() * 1e6) < 60e6  # samples older than the source are not read
    nv.util_samples = [_util_sample(77, start_us - 5, 99),  # before the source opened
                       _util_sample(77, start_us + 10, 60), _util_sample(78, start_us + 10, 20),
                       _util_sample(77, start_us + 20, 60), _util_sample(78, start_us + 20, 60)]
    second = src.read()
    assert second[1].process_busy_share == {77: pytest.approx(120 / 200), 78: pytest.approx(80 / 200)}
    assert second[0].process_busy_share == {}
    third = src.read()  # nothing newer than the last sample seen
    assert third[1].process_busy_share == {}
    assert nv.util_asks[-1] == (0, start_us + 20)
    assert [h for h, _ in nv.util_asks].count(1) == 1  # NOT_SUPPORTED once: never asked again


def test_process_busy_shares_ignore_idle_processes_and_clip() -> None:
    from eaco.profiler.telemetry import process_busy_shares

    seen = [0, 100]
    assert process_busy_shares([_util_sample(5, 101, 0), _util_sample(6, 101, 0)], seen, 1) == {}
    assert seen == [0, 101]
    shares = process_busy_shares([_util_sample(5, 102, 250), _util_sample(6, 103, 0), _util_sample(7, 103, 100)], seen, 1)
    assert shares == {5: pytest.approx(0.5), 7: pytest.approx(0.5)} and seen == [0, 103]


def test_summary_divides_the_gpu_utilisation_among_processes_by_their_kernel_time() -> None:
    """Per pid: on each GPU the mean of share x utilisation over the readings with shares (those
    without are no evidence either way), then the mean over the run's GPUs."""
    def sample(t: float, shares0: dict[int, float], shares1: dict[int, float]) -> GpuSample:
        return GpuSample(t, (GpuReading(0, 100.0, None, 80.0, 100.0, {}, shares0),
                             GpuReading(1, 100.0, None, 40.0, 100.0, {}, shares1)))

    gpu = [sample(0.0, {7: 0.75, 8: 0.25}, {}), sample(1.0, {}, {}), sample(2.0, {7: 0.25, 8: 0.75}, {7: 1.0})]
    summ = summarize(gpu, [], 2.0)
    # pid 7: GPU 0 (0.6 + 0.2) / 2 = 0.4, GPU 1 0.4 / 1; pid 8: GPU 0 (0.2 + 0.6) / 2 = 0.4, GPU 1 0
    assert summ.process_util_mean == {7: pytest.approx(0.4), 8: pytest.approx(0.2)}
    assert summarize([GpuSample(0.0, (GpuReading(0, 100.0, None, 50.0, 100.0),))], [], 1.0).process_util_mean == {}


def test_summary_integrates_power_when_there_is_no_counter() -> None:
    def sample(t: float, p: float) -> GpuSample:
        return GpuSample(t, (GpuReading(0, p, None, 50.0, 100.0),))

    gpu = [sample(0.0, 100.0), sample(1.0, 200.0), sample(2.0, 200.0)]
    host = [HostSample(1.0, 0.0, 60.0), HostSample(2.0, 0.0, 60.0)]
    s = summarize(gpu, host, 3.0)
    # trapezoid 0..2: 150 + 200, then the last value held to 3 s: +200
    assert s.gpu_energy_source == "power_integral" and s.gpu_energy_j == pytest.approx(550.0)
    assert s.host_energy_j == pytest.approx(180.0)  # 60 W held over the whole 3 s window
    assert s.avg_power_w == pytest.approx((550.0 + 180.0) / 3.0)
    assert s.memory_util_mean is None  # no device totals given


def test_without_nvml_open_says_why() -> None:
    source, reason = open_nvml()
    if source is not None:
        source.close()
        pytest.skip("NVML works on this machine")
    assert reason


def test_gpu_type_keys_from_nvml_names() -> None:
    assert gpu_type_key("NVIDIA H100 80GB HBM3") == "h100"
    assert gpu_type_key("Tesla V100-SXM2-32GB") == "v100"
    assert gpu_type_key("NVIDIA A100-SXM4-80GB") == "a100"
    assert gpu_type_key("NVIDIA A10") == "a10"
    assert gpu_type_key("NVIDIA H200") == "h200"
    assert gpu_type_key("NVIDIA GeForce RTX 4090") == "rtx_4090"


def test_set_and_model_parsing() -> None:
    models = parse_models("alexnet, resnet18,vgg16,alexnet")
    assert models == ("alexnet", "resnet18", "vgg16")
    assert len(parse_sets("pairs", models)) == 3
    assert parse_sets("pairs,all", models)[-1] == models
    assert parse_sets("none", models) == ()
    with pytest.raises(ValueError, match="sets: a set of 4"):
        parse_sets("quads", models)
    with pytest.raises(KeyError, match="unknown model 'resnet"):
        parse_models("resnet")


# --- profile store ------------------------------------------------------------------------------------------


def _prov(gpu: str) -> Provenance:
    return Provenance("2025-01-01T00:00:00+00:00", "eaco profile", "host", gpu, ("NVIDIA H100 80GB HBM3",), "550",
                      "12.4", "2.13.0", "3.11", "0.1.0", "nvml", 10.0, {"batch_size": 32})


def _alone(job: str, gpu: str, epoch_s: float, util: float, energy_j: float) -> ExclusiveProfile:
    return ExclusiveProfile(job, job, 32, gpu, 1, 3, epoch_s, 3 * epoch_s + 5, 1000.0, util, min(1.0, util + 0.1),
                            0.2, 0.3, 8000.0, 6000.0, energy_j / (3 * epoch_s + 5), energy_j, energy_j * 0.7,
                            energy_j * 0.3, 0.1, 3 * epoch_s + 5)


def _store(gpu: str = "v100") -> ProfileStore:
    a = _alone("alexnet", gpu, 10.0, 0.05, 5000.0)
    r = _alone("resnet50", gpu, 20.0, 0.4, 12000.0)
    t = _alone("transformer_lm", gpu, 15.0, 0.6, 9000.0)
    pair = ColocatedProfile(("alexnet", "resnet50"), gpu, 1, (12.5, 25.0), (45.0, 80.0), (0.8, 0.8), 0.5, 0.9, 0.3,
                            0.4, 14000.0, 200.0, 14000.0, 10000.0, 4000.0, 0.2, 80.0, 17000.0, 3000.0, 3000 / 17000,
                            member_gpu_util=(0.1, 0.4))
    tr = ColocatedProfile(("resnet50", "transformer_lm"), gpu, 1, (40.0, 20.0), (130.0, 70.0), (0.5, 0.75), 0.95, 1.0,
                          0.5, 0.6, 30000.0, 300.0, 21000.0, 15000.0, 6000.0, 0.2, 130.0, 21000.0, 0.0, 0.0)
    return ProfileStore(_prov(gpu), (a, r, t), (pair, tr))


def test_a_profile_is_compared_with_the_papers_tables(tmp_path: Path) -> None:
    from eaco.measurements.paper import load_paper_tables
    from eaco.profiler.paper_compare import compare_with_paper
    from eaco.profiler.report import markdown_report, write_comparison_csv

    store = _store()
    cmp = compare_with_paper(store, load_paper_tables())
    # alone: the paper's J1 (AlexNet) and J3 (ResNet-50); transformer_lm is not the paper's
    assert [(e.job, e.model) for e in cmp.exclusive] == [("J1", "alexnet"), ("J3", "resnet50")]
    assert cmp.exclusive[0].paper_gpu_util == pytest.approx(0.0472) and cmp.exclusive[0].ours_gpu_util == 0.05
    # the paper's J1+J3: 50.93 kWh together vs 24.73 + 47.87 alone; JCT 36.63 h vs (34.76 + 36.01) / 2
    (pair,) = cmp.sets
    assert pair.job_set == "J1+J3" and pair.models == ("alexnet", "resnet50")
    assert pair.paper_energy_saved_frac == pytest.approx(1 - 50.93 / (24.73 + 47.87))
    assert pair.paper_jct_vs_alone == pytest.approx(36.63 / ((34.76 + 36.01) / 2) - 1)
    assert pair.ours_energy_saved_frac == pytest.approx(3000 / 17000)
    assert pair.ours_jct_vs_alone == pytest.approx((45 + 80) / 2 / ((35 + 65) / 2) - 1)  # alone JCT = 3 x epoch + 5
    assert pair.paper_gpu_util == pytest.approx(0.4025) and pair.ours_gpu_util == 0.5
    assert cmp.paper_sets_not_profiled == ("J1+J4", "J2+J4", "J1+J2+J3", "J1+J2+J4", "J1+J2+J3+J4")
    assert "the paper 1 of 1 sets (29.8 to 29.8 %), this profile 1 of 1 (17.6 to 17.6 %); same sign in 1 of 1" in cmp.summary()
    md = markdown_report(store, cmp)
    assert "## Compared with the paper" in md and "| J1+J3 | alexnet+resnet50 | 29.85 | 17.65 | +3.5 | +25.0 |" in md
    rows = list(csv.DictReader(open(write_comparison_csv(cmp, tmp_path / "c.csv"))))
    assert [r["name"] for r in rows] == ["J1", "J3", "J1+J3"] and float(rows[2]["paper_energy_saved_pct"]) == pytest.approx(29.848, abs=1e-3)
    # nothing in common, or no paper tables: the report says so
    assert "None of the paper's jobs" in markdown_report(ProfileStore(store.provenance, store.exclusive[2:], ()),
                                                         compare_with_paper(ProfileStore(store.provenance, store.exclusive[2:], ()), load_paper_tables()))
    assert "Not compared: no tables here" in markdown_report(store, None, "no tables here")


def test_store_round_trips_through_json(tmp_path: Path) -> None:
    store = _store()
    path = write_profile_store(store, tmp_path / "p.json")
    back = read_profile_store(path)
    assert back.exclusive == store.exclusive and back.colocated == store.colocated
    assert back.provenance.gpu_names == store.provenance.gpu_names
    assert dict(back.provenance.settings) == {"batch_size": 32}
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
    # member utilisation is optional: written where measured, absent (None) otherwise
    rows = json.loads(path.read_text())["colocated"]
    assert rows[0]["member_gpu_util"] == [0.1, 0.4] and "member_gpu_util" not in rows[1]
    assert back.colocated[1].member_gpu_util is None


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d.update(schema_version=99), "schema_version", "expected 1"),
        (lambda d: d["exclusive"][1].pop("epoch_s"), "exclusive[1].epoch_s", "missing"),
        (lambda d: d["exclusive"][0].update(gpu_util_mean=1.5), "exclusive[0].gpu_util_mean", "<= 1.0"),
        (lambda d: d["colocated"][0].update(speeds=[0.8]), "colocated[0].speeds", "one per member"),
        (lambda d: d["colocated"][0].update(speeds=[0.8, -1]), "colocated[0].speeds[1]", "> 0"),
        (lambda d: d["colocated"][0].update(members=["resnet50", "alexnet"]), "colocated[0].members", "sorted"),
        (lambda d: d["colocated"][1].update(members=["resnet50", "vgg16"]), "colocated[1].members", "no exclusive row"),
        (lambda d: d["provenance"].pop("command"), "provenance.command", "missing"),
        (lambda d: d["colocated"][0].update(member_gpu_util=[0.1]), "colocated[0].member_gpu_util", "one per member"),
        (lambda d: d["colocated"][0].update(member_gpu_util=[0.1, 1.2]), "colocated[0].member_gpu_util[1]", "<= 1.0"),
    ],
)
def test_store_validation_names_file_and_field(mutate, field: str, message: str) -> None:
    data = store_to_json(_store())
    mutate(data)
    with pytest.raises(InputError, match=message) as err:
        parse_profile_store(data, "profiles.json")
    assert err.value.source == "profiles.json" and err.value.field == field


def test_colocation_model_uses_profiles_first(tmp_path: Path) -> None:
    path = write_profile_store(_store("v100"), tmp_path / "p.json")
    plain = load_colocation_model()
    assert plain.source(("alexnet", "resnet50"), "v100") == "paper"
    m = load_colocation_model(profiles=path)
    # The profile beats the paper's measured set J1+J3 on v100 ...
    assert m.source(("resnet50", "alexnet"), "v100") == "profile"
    assert m.speeds(("resnet50", "alexnet"), "v100") == (0.8, 0.8)
    assert m.utilisation(("alexnet", "resnet50"), "v100") == pytest.approx(0.5)
    assert m.source(("alexnet",), "v100") == "profile" and m.utilisation(("alexnet",), "v100") == pytest.approx(0.05)
    # ... but other GPU types and unmeasured sets keep their usual source.
    assert m.source(("alexnet", "resnet50"), "a100") == plain.source(("alexnet", "resnet50"), "a100") == "model"
    assert m.source(("alexnet", "vgg16"), "v100") == "paper"  # J1+J4: not profiled, the paper's
    assert m.source(("resnet18", "resnet50"), "v100") == "model"
    assert m.speeds(("resnet18", "resnet50"), "v100") == plain.speeds(("resnet18", "resnet50"), "v100")
    # An unknown job type joins the catalogue from its exclusive row.
    spec = m.catalog.get("transformer_lm")
    assert spec.util_on("v100") == pytest.approx(0.6) and spec.memory_gb == pytest.approx(6000 * 2**20 / 1e9)
    assert m.speeds(("transformer_lm", "resnet50"), "v100") == (0.75, 0.5)
    assert m.source(("transformer_lm", "vgg16"), "v100") == "model"  # unmeasured: the model, with the new type
    assert "transformer_lm" not in plain.catalog


# --- the whole command ------------------------------------------------------------------------------------------


def test_run_profile_with_an_injected_gpu_source(tmp_path: Path) -> None:
    src = ScriptedGpu()
    settings = JobSettings(**{**{f: getattr(TINY_JOBS, f) for f in TINY_JOBS.__dataclass_fields__}, "epochs": 2})
    cfg = pipeline.ProfileConfig(members=zoo_members(("ncf",), settings), sets=(), settings=settings, out_dir=tmp_path,
                                 sample_hz=20, command="test")
    result = pipeline.run_profile(cfg, gpu_source_factory=lambda gpus: (src, ""))
    assert src.closed
    store = read_profile_store(result.store_path)
    assert store.provenance.gpu_type == "h100" and store.provenance.driver_version == "test-driver"
    (row,) = store.exclusive
    assert row.gpu_type == "h100" and row.num_gpus == 2 and row.gpu_util_mean == pytest.approx(0.4)
    assert row.gpu_energy_j == pytest.approx(400.0 * row.duration_s, rel=0.1)
    assert row.energy_j == pytest.approx(row.gpu_energy_j + row.host_energy_j)
    assert load_colocation_model(profiles=result.store_path).source(("ncf",), "h100") == "profile"


class SharingGpu(ScriptedGpu):
    """As :class:`ScriptedGpu` (utilisation 20% and 60%), with NVML's per-process shares of the
    kernel time: among the training processes this test started, the ``ncf`` job 3 parts, the
    other 1."""

    def read(self) -> tuple[GpuReading, ...]:
        weights = {}
        for child in psutil.Process().children(recursive=True):
            try:
                cmd = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "eaco.profiler" in cmd:
                weights[child.pid] = 3.0 if "ncf" in cmd else 1.0
        total = sum(weights.values())
        shares = {pid: w / total for pid, w in weights.items()}
        return tuple(replace(r, process_busy_share=shares) for r in super().read())


def test_a_set_profile_divides_its_utilisation_among_the_members(tmp_path: Path) -> None:
    """With per-process shares from the GPU source, a set's row gives each member's utilisation
    (adding up to the set's, 40% here) and the report shows it."""
    src = SharingGpu()
    settings = JobSettings(**{**{f: getattr(TINY_JOBS, f) for f in TINY_JOBS.__dataclass_fields__}, "epochs": 2})
    members = zoo_members(("ncf", "lstm_lm"), settings)
    cfg = pipeline.ProfileConfig(members=members, sets=(tuple(m.name for m in members),), settings=settings,
                                 out_dir=tmp_path, sample_hz=20, command="test")
    result = pipeline.run_profile(cfg, gpu_source_factory=lambda gpus: (src, ""))
    store = read_profile_store(result.store_path)
    (pair,) = store.colocated
    assert pair.member_gpu_util is not None and sum(pair.member_gpu_util) == pytest.approx(0.4, abs=0.01)
    by_member = dict(zip(pair.members, pair.member_gpu_util))
    assert by_member["ncf"] > by_member["lstm_lm"] > 0
    report = " ".join(next(p for p in result.files.values() if p.name == "report.md").read_text().split())
    assert "GPU util per member (%)" in report and f"{100 * by_member['ncf']:.0f}" in report


def test_an_interrupted_profile_resumes_where_it_stopped(tmp_path: Path) -> None:
    """A time budget of 0 makes one run and stops (its outcome saved, its checkpoints gone); the
    same experiment with resume keeps that run and makes only the other; a run saved with other
    settings or on another GPU is not kept, and says why."""
    from eaco.profiler.run_io import RUN_FILE, load_run, run_fingerprint

    settings = JobSettings(**{**{f: getattr(TINY_JOBS, f) for f in TINY_JOBS.__dataclass_fields__}, "epochs": 2})
    base = dict(members=zoo_members(("ncf", "lstm_lm"), settings), sets=(), settings=settings, out_dir=tmp_path,
                sample_hz=20, command="test")
    with pytest.raises(pipeline.ProfileIncomplete, match="1 of 2 runs done") as stopped:
        pipeline.run_profile(pipeline.ProfileConfig(**base, time_budget_s=0.0), gpu_source_factory=lambda gpus: (ScriptedGpu(), ""))
    assert (stopped.value.done, stopped.value.total) == (1, 2)
    first = tmp_path / "runs" / "alone-ncf"
    assert (first / RUN_FILE).exists() and not (first / "checkpoints").exists()
    assert not (tmp_path / "runs" / "alone-lstm_lm").exists() and not (tmp_path / "profiles.json").exists()
    saved = json.loads((first / RUN_FILE).read_text())

    result = pipeline.run_profile(pipeline.ProfileConfig(**base, resume=True), gpu_source_factory=lambda gpus: (ScriptedGpu(), ""))
    assert result.runs_kept == ("alone-ncf",)
    assert json.loads((first / RUN_FILE).read_text()) == saved  # kept, not run again
    kept_run = result.runs[0]
    assert kept_run.start_time_s == saved["outcome"]["start_time_s"] and len(kept_run.gpu_samples) == len(saved["outcome"]["gpu_samples"])
    store = read_profile_store(result.store_path)
    assert [e.job_type for e in store.exclusive] == ["ncf", "lstm_lm"]
    assert store.provenance.settings["runs_kept_from_an_earlier_command"] == ["alone-ncf"]
    assert len(list((tmp_path / "timeseries").glob("*.csv"))) == 2

    # what a run's result depends on decides whether it is kept
    devices = ScriptedGpu().devices
    ncf = zoo_members(("ncf",), settings)
    fp = run_fingerprint(ncf, devices, 20, HostPowerModel(), ())
    outcome, why = load_run(first, fp)
    assert outcome == kept_run and why == ""
    other_steps = zoo_members(("ncf",), JobSettings(**{**asdict(settings), "steps_per_epoch": 6}))
    assert load_run(first, run_fingerprint(other_steps, devices, 20, HostPowerModel(), ()))[1] == "made with other members"
    other_gpu = (GpuDevice(0, "NVIDIA A100-SXM4-40GB", 40960.0),) + devices[1:]
    assert "devices" in load_run(first, run_fingerprint(ncf, other_gpu, 20, HostPowerModel(), ()))[1]
    (first / RUN_FILE).write_text("{not json")
    assert "unreadable" in load_run(first, fp)[1]


def test_profile_command_without_nvml_runs_a_pair_and_writes_everything(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(pipeline, "open_nvml", lambda gpus: (None, "test: NVML switched off"))
    app = typer.Typer()
    app.command("profile")(profile_command)
    app.command("other")(lambda: None)  # two commands: typer keeps "profile" as a sub-command
    out = tmp_path / "out"
    res = CliRunner().invoke(app, [
        "profile", "--models", "resnet18,ncf", "--sets", "pairs", "--batch-size", "4", "--epochs", "2",
        "--steps-per-epoch", "3", "--image-size", "40", "--width-mult", "0.125", "--seq-len", "12",
        "--vocab-size", "300", "--device", "cpu", "--workers", "1", "--sample-hz", "20", "--out", str(out),
    ])
    assert res.exit_code == 0, res.output
    assert res.output.count("NVML switched off") == 1  # said once
    store = read_profile_store(out / "profiles.json")
    assert store.provenance.gpu_type == "cpu" and store.provenance.telemetry.startswith("none:")
    assert [e.job_type for e in store.exclusive] == ["resnet18", "ncf"]
    (pair,) = store.colocated
    assert pair.members == ("ncf", "resnet18")
    alone = {e.job_type: e for e in store.exclusive}
    for m, s, e in zip(pair.members, pair.speeds, pair.member_epoch_s):
        assert s == pytest.approx(alone[m].epoch_s / e)
    assert pair.members_alone_energy_j == pytest.approx(sum(e.energy_j for e in store.exclusive))
    assert pair.energy_saved_j == pytest.approx(pair.members_alone_energy_j - pair.energy_j)
    assert pair.gpu_util_mean is None and pair.gpu_energy_j is None
    for name in ("report.md", "exclusive.csv", "colocated.csv", "fig2_utilisation.png"):
        assert (out / name).stat().st_size > 0, name
    assert "Table 3" in (out / "report.md").read_text()
    assert len(list((out / "timeseries").glob("*.csv"))) == 3
    assert "## Compared with the paper" in (out / "report.md").read_text()
    # the report is written again from the saved files alone (--report-only runs nothing)
    for name in ("report.md", "paper_comparison.csv", "fig2_utilisation.png"):
        (out / name).unlink()
    res = CliRunner().invoke(app, ["profile", "--report-only", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| J2 | resnet18 | 11.17 | n/a |" in (out / "report.md").read_text()  # the paper's ResNet-18; no GPU here
    assert (out / "paper_comparison.csv").exists() and (out / "fig2_utilisation.png").stat().st_size > 0
    res = CliRunner().invoke(app, ["profile", "--report-only", "--out", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "profile store not found" in res.output
    # The simulator's loader accepts the store; CPU rows are kept but not used for GPU types.
    prof = load_profiles(out / "profiles.json")
    assert not prof.exclusive and len(prof.skipped) == 3
    assert load_colocation_model(profiles=prof).source(("resnet18",), "v100") == "paper"


def test_profile_command_reports_bad_options(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("profile")(profile_command)
    app.command("other")(lambda: None)
    res = CliRunner().invoke(app, ["profile", "--models", "resnet18", "--sets", "pairs", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "sets: a set of 2" in res.output
    res = CliRunner().invoke(app, ["profile", "--models", "ncf", "--sets", "none", "--time-budget-s", "-1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--time-budget-s" in res.output and "expected >= 0" in res.output


# --- the lent GPU machine's packages -------------------------------------------------------------

# scripts/gpu_profile.sh runs the profiler from src/ on a machine that has torch, nvidia-ml-py,
# psutil, numpy, matplotlib, typer and rich, but not the runtime's pydantic, Ray or
# prometheus-client (docs/profiler.md, "On a lent GPU machine"): a module-level import of one of
# them in the profiler's path would cost a lent GPU session its run.
_GPU_MACHINE_LACKS = ("pydantic", "ray", "prometheus_client")
# Refused only where the project's own code imports them (another library's optional use, such as
# typer's of pydantic, is that library's business: the script's preflight checks the machine).
_IMPORT_WITHOUT = f"""
import importlib, importlib.abc, os, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] not in {_GPU_MACHINE_LACKS!r}:
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
            frame = frame.f_back
        if frame is not None and os.sep + "eaco" + os.sep in frame.f_code.co_filename:
            raise ImportError("not on the GPU machine: " + name)
        return None
sys.meta_path.insert(0, Refuse())
for module in ("eaco.profiler.__main__", "eaco.profiler.pipeline", "eaco.profiler.train", "eaco.profiler.zoo",
               "eaco.profiler.report", "eaco.profiler.store", "eaco.profiler.run_io"):
    importlib.import_module(module)
"""


def _python_without_runtime_packages(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-c", _IMPORT_WITHOUT + code], capture_output=True, text=True, env=env,
                          timeout=120)


def test_the_profiler_imports_without_the_runtimes_packages() -> None:
    done = _python_without_runtime_packages("")
    assert done.returncode == 0, done.stderr[-2000:]
    # the refusal itself works: the runtime's job spec needs pydantic
    refused = _python_without_runtime_packages("import eaco.runtime.spec\n")
    assert refused.returncode != 0 and "not on the GPU machine: pydantic" in refused.stderr
