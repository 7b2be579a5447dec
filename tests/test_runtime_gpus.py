"""Which GPUs the local runtime uses: ``--gpus nvml[:TYPE|:I,J]`` picks NVML's boards (one type),
and a state folder keeps the GPUs of its last daemon while jobs still hold them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import eaco.runtime.gpus as gpus_module
from eaco.errors import InputError
from eaco.runtime.daemon import ServeOptions, build_runtime
from eaco.runtime.gpus import declared_gpus, discover_gpus, select_nvml_gpus
from eaco.runtime.spec import spec_from_yaml
from runtime_helpers import attach_this_process

MIXED = ["NVIDIA A100-SXM4-80GB", "Tesla T4", "NVIDIA A100-SXM4-80GB", "Tesla T4"]


def test_one_type_takes_every_board() -> None:
    inv = select_nvml_gpus(["Tesla V100-SXM2-32GB"] * 3)
    assert (inv.gpu_type, inv.device_indices, inv.declared) == ("v100", (0, 1, 2), False)


def test_mixed_boards_must_be_chosen_by_type_or_index() -> None:
    with pytest.raises(InputError) as err:
        select_nvml_gpus(MIXED)
    message = str(err.value)
    assert message.startswith("--gpus")
    assert "nvml:a100" in message and "nvml:t4" in message and "1: Tesla T4" in message
    assert select_nvml_gpus(MIXED, "a100").device_indices == (0, 2)
    t4 = select_nvml_gpus(MIXED, " T4 ")
    assert (t4.gpu_type, t4.device_indices) == ("t4", (1, 3))
    assert select_nvml_gpus(MIXED, "3,1").device_indices == (3, 1)  # policy GPU 0 is board 3


@pytest.mark.parametrize("select, expected", [
    ("0,1", "different types"), ("4", "no GPU 4: NVML reports 4"), ("1,1", "repeat"), ("h100", "no GPU of type 'h100'"),
])
def test_bad_choices_are_refused(select: str, expected: str) -> None:
    with pytest.raises(InputError) as err:
        select_nvml_gpus(MIXED, select)
    assert expected in str(err.value)


def test_discover_reads_the_choice_after_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus_module, "_nvml_names", lambda option: MIXED)
    assert discover_gpus("nvml:t4").device_indices == (1, 3)
    assert discover_gpus("NVML:2").device_indices == (2,)
    assert discover_gpus("2xv100").declared
    with pytest.raises(InputError):
        discover_gpus("nvml")


def _spec() -> str:
    return spec_from_yaml("name: a\ncommand: python train.py\nepochs: 1\njob_type: resnet18\nmemory_gb: 4\n").model_dump_json()


def test_other_gpus_are_refused_while_jobs_hold_the_old_ones(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, _ = build_runtime(ServeOptions(state, declared_gpus("2xv100"), "fifo"))
    try:
        job = first.store.submit("a", _spec())
        attach_this_process(first.store, first.layout, job, (1,))  # its process runs on GPU 1
        queued = first.store.submit("b", _spec())
    finally:
        first.store.close()
    assert json.loads((state / "local_gpus.json").read_text())["device_indices"] == [0, 1]
    with pytest.raises(InputError) as err:
        build_runtime(ServeOptions(state, declared_gpus("1xv100"), "fifo"))
    message = str(err.value)
    assert "2xv100 (devices 0,1, declared)" in message and "1xv100" in message and f"jobs {job} " in message
    assert str(queued) not in message.split("jobs ")[1].split(" still")[0]
    # the same GPUs: accepted, and the job re-attached
    again, _ = build_runtime(ServeOptions(state, declared_gpus("2xv100"), "fifo"))
    try:
        again.recover()
        assert again.state.job_gpus[job] == (1,)
    finally:
        again.store.close()


def test_other_gpus_are_taken_when_no_job_holds_any(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, _ = build_runtime(ServeOptions(state, declared_gpus("2xv100"), "fifo"))
    first.store.submit("a", _spec())  # queued only
    first.store.close()
    second, _ = build_runtime(ServeOptions(state, declared_gpus("1xa100"), "fifo"))
    second.store.close()
    saved = json.loads((state / "local_gpus.json").read_text())
    assert saved == {"gpu_type": "a100", "device_indices": [0], "declared": True}
