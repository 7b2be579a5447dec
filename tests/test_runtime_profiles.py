"""``eaco serve --profiles``: the runtime's policy learns from profile stores, and jobs profiled
with ``eaco profile --jobs`` become job types that specs may name."""

from __future__ import annotations

from pathlib import Path

import pytest

from eaco.colocation.profiles import (
    ColocatedProfile,
    ExclusiveProfile,
    ProfileStore,
    Provenance,
    write_profile_store,
)
from eaco.errors import InputError
from eaco.runtime.daemon import ServeOptions, build_runtime
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.jobs import check_runnable
from eaco.runtime.spec import spec_from_yaml

SPEC = "name: ft\ncommand: python3 train.py\nepochs: 3\njob_type: my-mlp\n"


def _alone(job: str, epoch_s: float, util: float) -> ExclusiveProfile:
    return ExclusiveProfile(job, job, None, "v100", 1, 3, epoch_s, 3 * epoch_s, 0.0, util, util, 0.1, 0.1, 3000.0,
                            2000.0, 200.0, 3 * epoch_s * 200.0, 3 * epoch_s * 150.0, 3 * epoch_s * 50.0, 0.1, 3 * epoch_s)


def _store(path: Path) -> Path:
    prov = Provenance("2026-11-24T00:00:00+00:00", "eaco profile --jobs my-mlp.yaml", "host", "v100",
                      ("Tesla V100-SXM2-32GB",), "550", "12.4", "2.13.0", "3.11", "0.1.0", "nvml", 10.0, {})
    pair = ColocatedProfile(("my-mlp", "resnet18"), "v100", 1, (12.0, 25.0), (40.0, 80.0), (0.83, 0.8), 0.9, 1.0,
                            0.2, 0.2, 5000.0, 250.0, 20000.0, 15000.0, 5000.0, 0.1, 80.0, 30000.0, 10000.0, 1 / 3)
    return write_profile_store(ProfileStore(prov, (_alone("my-mlp", 10.0, 0.3), _alone("resnet18", 20.0, 0.5)), (pair,)), path)


def test_serve_with_profiles_knows_the_profiled_jobs_and_their_measured_sharing(tmp_path: Path) -> None:
    spec = spec_from_yaml(SPEC)
    gpus = declared_gpus("1xv100")
    plain, plain_env = build_runtime(ServeOptions(tmp_path / "a", gpus, "eaco"))
    try:
        with pytest.raises(InputError, match="field 'job_type': unknown job type 'my-mlp'"):
            check_runnable(spec, plain.catalog, gpus)
        assert not plain_env.new_predictor().has_seen(("my-mlp", "resnet18"), "v100")
    finally:
        plain.store.close()
    runtime, env = build_runtime(ServeOptions(tmp_path / "b", gpus, "eaco", profiles=(_store(tmp_path / "p.json"),)))
    try:
        check_runnable(spec, runtime.catalog, gpus)  # accepted now
        assert runtime.catalog.get("my-mlp").memory_gb == pytest.approx(2000 * 2**20 / 1e9)  # its measured peak (MiB -> GB)
        predictor = env.new_predictor()
        assert predictor.has_seen(("my-mlp", "resnet18"), "v100")
        a, b = predictor.estimate(("my-mlp", "resnet18"), "v100")
        assert (a.speed, b.speed) == pytest.approx((0.83, 0.8), abs=0.05) and a.source == "history"
    finally:
        runtime.store.close()


def test_serve_refuses_a_missing_profile_store(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="profile store not found"):
        build_runtime(ServeOptions(tmp_path / "s", declared_gpus("1xv100"), "eaco", profiles=(tmp_path / "none.json",)))
