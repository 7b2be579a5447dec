import json
import os
import signal
from pathlib import Path

import pytest

from eaco.setup import load_environment


@pytest.fixture(scope="session")
def env():
    """The real models (catalogue, co-location ground truth, calibrated energy), loaded once."""
    return load_environment()


@pytest.fixture(scope="session")
def env_awake():
    """Same models, but empty nodes stay awake and idle instead of sleeping."""
    return load_environment(sleep_empty_nodes=False)


def kill_leftover_jobs(state: Path) -> None:
    """Safety net for runtime tests: SIGKILL the process group of every attempt still alive."""
    from eaco.runtime.procs import process_alive

    for wrapper in state.glob("jobs/*/attempts/*/wrapper.json"):
        info = json.loads(wrapper.read_text())
        if process_alive(info["pid"], info["start_ticks"]):
            try:
                os.killpg(info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture()
def state_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A runtime state folder; every job process left behind is killed afterwards."""
    state = tmp_path / "state"
    yield state
    kill_leftover_jobs(state)
