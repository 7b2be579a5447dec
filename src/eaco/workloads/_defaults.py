"""Defaults shared by the loaders: the job catalogue and the seeded type assigner."""

from __future__ import annotations

import inspect

import numpy as np

from eaco.colocation.catalog import JobCatalog
from eaco.paths import shared_data_dir
from eaco.workloads.job_types import JobTypeAssigner
from eaco.workloads.util_cdf import UtilisationCdf, load_util_cdf


def resolve_catalog(catalog: JobCatalog | None) -> JobCatalog:
    """The given catalogue, or the project's default one (:func:`eaco.colocation.catalog.load_catalog`)."""
    if catalog is not None:
        return catalog
    from eaco.colocation import catalog as catalog_module

    load = getattr(catalog_module, "load_catalog", None)
    if load is None:
        raise RuntimeError("no catalogue given and eaco.colocation.catalog.load_catalog is missing")
    params = inspect.signature(load).parameters.values()
    if any(p.default is inspect.Parameter.empty and p.kind is not p.VAR_POSITIONAL
           and p.kind is not p.VAR_KEYWORD for p in params):
        loaded = load(shared_data_dir())
    else:
        loaded = load()
    if not isinstance(loaded, JobCatalog):
        raise TypeError(f"load_catalog returned {type(loaded).__name__}, expected JobCatalog")
    return loaded


def make_assigner(
    catalog: JobCatalog, seed: int, util_cdf: UtilisationCdf | None
) -> JobTypeAssigner:
    """Assigner seeded with ``seed`` using the Philly utilisation CDF unless another is given."""
    cdf = util_cdf if util_cdf is not None else load_util_cdf()
    return JobTypeAssigner(catalog, cdf, np.random.default_rng(seed))
