from pathlib import Path

import pytest

from eaco.setup import load_environment
from runtime_helpers import kill_leftover_jobs


@pytest.fixture(scope="session")
def env():
    """The real models (catalogue, co-location ground truth, calibrated energy), loaded once."""
    return load_environment()


@pytest.fixture(scope="session")
def env_awake():
    """Same models, but empty nodes stay awake and idle instead of sleeping."""
    return load_environment(sleep_empty_nodes=False)


@pytest.fixture()
def state_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A runtime state folder; every job process left behind is killed afterwards."""
    state = tmp_path / "state"
    yield state
    kill_leftover_jobs(state)
