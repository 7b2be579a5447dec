"""Tests of the co-location ground truth (catalogue, Gavel loader, model)."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import pytest

from eaco.colocation import fitted
from eaco.colocation.catalog import REFERENCE_GPU, JobCatalog
from eaco.colocation.gavel import load_gavel_throughputs, parse_gavel_throughputs
from eaco.colocation.generations import amdahl_speed, amdahl_util, generation_factor, measured_generation_factor
from eaco.colocation.interference import model_speeds, water_fill
from eaco.colocation.job_types import JOB_TYPES_CSV, read_job_type_rows
from eaco.colocation.memory_check import memory_agreement
from eaco.colocation.model import ColocationModel, load_colocation_model
from eaco.errors import InputError
from eaco.model.gpu import GPU_TYPES

R50 = "ResNet-50 (batch size {})".format
TR16 = "Transformer (batch size 16)"
PAPER_MODELS = ("alexnet", "resnet18", "resnet50", "vgg16")


@pytest.fixture(scope="module")
def model() -> ColocationModel:
    return load_colocation_model()


@pytest.fixture(scope="module")
def catalog(model: ColocationModel) -> JobCatalog:
    return model.catalog


# --- catalogue -------------------------------------------------------------------------------


def test_catalogue_has_gavel_26_and_paper_4_types(catalog: JobCatalog) -> None:
    names = catalog.names()
    assert len(names) == 30
    assert set(PAPER_MODELS) <= set(names)
    gavel_names = set(load_gavel_throughputs().job_types("v100"))
    assert len(gavel_names) == 26 and gavel_names <= set(names)


def test_catalogue_values_are_in_range_for_every_gpu_type(catalog: JobCatalog) -> None:
    for spec in catalog.types:
        assert spec.memory_gb > 0.5, spec.name
        assert 0.0 < spec.cpu_util_per_gpu < 1.0, spec.name
        assert spec.relative_speed[REFERENCE_GPU] == 1.0
        for gpu in GPU_TYPES:
            assert 0.0 < spec.gpu_util[gpu] <= 1.0, (spec.name, gpu)
            assert spec.relative_speed[gpu] > 0.0, (spec.name, gpu)
        assert spec.source and spec.memory_source


def test_catalogue_numbers_trace_to_their_sources(catalog: JobCatalog) -> None:
    # Gavel: K80 relative speed = K80 exclusive steps/s / V100 exclusive steps/s (hand-read from the file)
    assert catalog.get(R50(16)).relative_speed["k80"] == pytest.approx(2.3005199880283542 / 11.396129065315943, rel=1e-12)
    # paper: V100 utilisation is Table 1's 36.61 %
    assert catalog.get("resnet50").gpu_util["v100"] == pytest.approx(0.3661)
    # memory rule: 0.6 GB + 25.6M params x 4 B x 3 copies + 80 MB/sample x 64
    assert catalog.get(R50(64)).memory_gb == pytest.approx(0.6 + 25.6e6 * 4 * 3 / 1e9 + 80 * 64 / 1e3)
    # unmeasured GPU: Amdahl on the V100 utilisation with the generation factor
    u = catalog.get("vgg16").gpu_util["v100"]
    f = generation_factor("a100")
    assert catalog.get("vgg16").relative_speed["a100"] == pytest.approx(1.0 / (u / f + 1.0 - u))
    assert catalog.get("vgg16").gpu_util["a100"] == pytest.approx(amdahl_util(u, f))


def test_generation_rule_is_monotone_and_close_to_gavel_on_measured_gpus() -> None:
    assert generation_factor("v100") == pytest.approx(1.0)
    gavel = load_gavel_throughputs()
    for gpu in ("k80", "p100"):  # rule 0.27 / 0.69 vs measured medians 0.25 / 0.81
        assert generation_factor(gpu) == pytest.approx(measured_generation_factor(gavel, gpu), rel=0.2)
    assert generation_factor("t4") < 1.0 < generation_factor("a100") < generation_factor("h100")
    assert amdahl_speed(1.0, 2.0) == pytest.approx(2.0) and amdahl_speed(0.0, 2.0) == pytest.approx(1.0)


# --- model: measured data --------------------------------------------------------------------


@pytest.mark.parametrize("gpu", sorted(GPU_TYPES))
def test_single_job_runs_at_full_speed(model: ColocationModel, gpu: str) -> None:
    for name in (R50(32), "vgg16"):
        assert model.speeds((name,), gpu) == (1.0,)
        assert model.normalised_throughput((name,), gpu) == 1.0
        assert model.utilisation((name,), gpu) == model.catalog.get(name).gpu_util[gpu]


def test_gavel_pair_equals_the_file_ratio(model: ColocationModel) -> None:
    # gavel_throughputs.json.gz, k80: "('ResNet-50 (batch size 16)', 1)": null 2.3005199880283542,
    # with "('Transformer (batch size 16)', 1)": [1.346499909788587, 2.3105272899490563];
    # Transformer bs16 alone: 5.467379291465242 steps/s.
    pair = (R50(16), TR16)
    want = (1.346499909788587 / 2.3005199880283542, 2.3105272899490563 / 5.467379291465242)
    assert model.speeds(pair, "k80") == pytest.approx(want, rel=1e-12)
    assert model.speeds(pair[::-1], "k80") == pytest.approx(want[::-1], rel=1e-12)
    assert model.source(pair, "k80") == "gavel" and model.is_measured(pair, "k80")
    assert model.normalised_throughput(pair, "k80") == pytest.approx(sum(want))
    assert model.feasible(pair, "k80")


def test_paper_set_j1_j3_ratio(model: ColocationModel) -> None:
    # Table 1: J1 alexnet 0.39 h/epoch, J3 resnet50 0.40 h/epoch; Table 3: J1+J3 0.407 h/epoch, 40.25 %
    ratio = ((0.39 + 0.40) / 2) / 0.407
    assert model.speeds(("alexnet", "resnet50"), "v100") == pytest.approx((ratio, ratio))
    assert model.utilisation(("resnet50", "alexnet"), "v100") == pytest.approx(0.4025)
    assert model.source(("resnet50", "alexnet"), "v100") == "paper"
    # the four-job set has no epoch time: mean exclusive JCT / co-located JCT
    four = model.speeds(PAPER_MODELS, "v100")
    assert four == pytest.approx((((34.76 + 35.13 + 36.01 + 36.13) / 4) / 44.21,) * 4)
    # the same set on another GPU type is not measured
    assert model.source(("alexnet", "resnet50"), "a100") == "model"


# --- model: analytic part --------------------------------------------------------------------


def test_unmeasured_triple_uses_the_model(model: ColocationModel) -> None:
    triple = ("A3C", "LM (batch size 20)", "CycleGAN")
    for gpu in ("v100", "a100", "t4"):
        got = model.speeds(triple, gpu)
        assert model.source(triple, gpu) == "model" and not model.is_measured(triple, gpu)
        assert all(0.0 < s <= 1.0 for s in got)
        assert got == model.model_only_speeds(triple, gpu)
        utils = [model.catalog.get(t).gpu_util[gpu] for t in triple]
        assert model.utilisation(triple, gpu) == pytest.approx(min(1.0, sum(u * s for u, s in zip(utils, got))))
        assert model.utilisation(triple, gpu) <= 1.0


def test_model_formula_equal_demands_and_water_filling() -> None:
    k, c = 0.04, 0.9
    # equal demands: (1 - k (n-1)) * min(1, C / sum u)
    assert model_speeds((0.6, 0.6, 0.6), k, c) == pytest.approx(((1 - 2 * k) * c / 1.8,) * 3)
    assert model_speeds((0.2, 0.3), k, c) == pytest.approx((1 - k, 1 - k))
    # unequal: the light job keeps its demand, the heavy one gets the rest
    assert water_fill([0.1, 0.95], 0.9) == pytest.approx([0.1, 0.8])
    assert model_speeds((0.1, 0.95), k, c) == pytest.approx(((1 - k), (1 - k) * 0.8 / 0.95))
    assert sum(water_fill([0.5, 0.7, 0.9], 0.9)) == pytest.approx(0.9)


def test_symmetry_input_order_only_permutes_output(model: ColocationModel) -> None:
    sets = [("A3C", "LM (batch size 20)", "CycleGAN"), (R50(16), TR16), ("alexnet", "vgg16", R50(32))]
    for members in sets:
        base = dict(zip(members, model.speeds(members, "v100")))
        for perm in itertools.permutations(members):
            assert model.speeds(perm, "v100") == tuple(base[t] for t in perm)
            assert model.normalised_throughput(perm, "v100") == pytest.approx(sum(base.values()))


def test_duplicate_types_get_equal_speeds(model: ColocationModel) -> None:
    got = model.speeds((R50(32), R50(32), "A3C"), "a100")
    assert got[0] == got[1]


# --- feasibility -----------------------------------------------------------------------------


def test_memory_over_capacity_is_infeasible(model: ColocationModel) -> None:
    three = (R50(128),) * 3  # 3 x 11.15 GB > 32 GB
    assert not model.feasible(three, "v100")
    assert model.feasible((R50(128),), "v100")
    # t4 (16 GB), nothing measured there: 11.15 + 5.24 GB > 16 GB
    assert not model.feasible((R50(128), "Transformer (batch size 128)"), "t4")
    assert model.feasible((R50(128), "Transformer (batch size 128)"), "a100")


def test_gavel_unrunnable_pair_is_infeasible(model: ColocationModel) -> None:
    # the file holds [0.0, 0.0] for ResNet-50 bs128 with ResNet-50 bs64 on p100 and v100
    pair = (R50(128), R50(64))
    assert not model.feasible(pair, "p100") and not model.feasible(pair, "v100")
    assert not model.feasible(pair + ("alexnet",), "v100")  # a set holding that pair
    assert model.feasible(pair, "a100")  # nothing measured; 17.2 GB fits in 80 GB
    assert model.source(pair, "v100") == "model"


def test_no_pair_gavel_ran_exceeds_our_memory_estimate(catalog: JobCatalog) -> None:
    for row in memory_agreement(catalog, load_gavel_throughputs()):
        assert row.runnable_over == 0, row
        assert row.unrunnable_over > 0, row


# --- errors, speed, fit ----------------------------------------------------------------------


def test_unknown_names_are_rejected(model: ColocationModel) -> None:
    with pytest.raises(KeyError, match="unknown job type 'bert'"):
        model.speeds(("bert",), "v100")
    with pytest.raises(KeyError, match="unknown GPU type 'tpu'"):
        model.speeds(("vgg16",), "tpu")
    with pytest.raises(ValueError, match="at least one"):
        model.speeds((), "v100")


def test_gavel_loader_names_the_malformed_key() -> None:
    doc = {"k80": {"('A3C', 1)": {"null": 3.0, "('A3C' 1)": [1.0, 1.0]}}}
    with pytest.raises(InputError, match=r"\('A3C' 1\)"):
        parse_gavel_throughputs(doc, "x.json")
    doc = {"k80": {"('A3C', 1)": {"null": 3.0, "('A3C', 1)": [1.0]}}}
    with pytest.raises(InputError, match=r"\['k80'\]\[\"\('A3C', 1\)\"\]"):
        parse_gavel_throughputs(doc, "x.json")


def test_job_types_csv_errors_name_line_and_field(tmp_path: Path) -> None:
    text = JOB_TYPES_CSV.read_text().splitlines()
    text[3] = text[3].replace(",CIFAR-10,64,", ",CIFAR-10,sixty-four,")
    bad = tmp_path / "job_types.csv"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(InputError, match=r"job_types.csv:4: field 'batch_size_per_gpu'"):
        read_job_type_rows(bad)


def test_lookups_are_cached_and_loading_is_fast() -> None:
    t0 = time.perf_counter()
    m = load_colocation_model()
    assert time.perf_counter() - t0 < 1.0
    key = ("A3C", "vgg16", TR16)
    first = m.speeds(key, "h100")
    assert m.speeds(key, "h100") is first


def test_fit_report_matches_the_stored_fit(model: ColocationModel) -> None:
    rep = model.fit_report()
    assert rep.k_interference == fitted.K_INTERFERENCE and rep.capacity == fitted.CAPACITY
    assert {e.gpu_type for e in rep.in_sample} == {"k80", "p100", "v100"}
    for e in rep.in_sample:
        mape, mae, n = fitted.IN_SAMPLE_ERRORS[e.gpu_type]
        assert e.n_speeds == n
        assert e.mape == pytest.approx(mape, abs=0.01)  # CSV stores utilisations to 4 decimals
        assert 0.0 < e.mae < 0.5
    assert rep.paper_sets_mape == pytest.approx(fitted.PAPER_SETS_MAPE, abs=1e-3)
    assert math.isfinite(rep.paper_sets_mape) and rep.paper_sets_mape < 0.05
