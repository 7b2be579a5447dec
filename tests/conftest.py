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
