"""Defaults shared by the loaders: the job catalogue, the seeded type assigner, and the last step
of every trace loader (rows parsed, then the workload built with that assigner)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import numpy as np

from eaco.colocation.catalog import JobCatalog
from eaco.paths import shared_data_dir
from eaco.workloads._csvio import CsvTable, parse_rows
from eaco.workloads.base import JobDraft, Workload, build_workload
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



def workload_from_rows(
    name: str,
    table: CsvTable,
    parse: Callable[[int, list[str]], JobDraft | None],
    *,
    skip_bad_rows: bool,
    catalog: JobCatalog,
    seed: int,
    util_cdf: UtilisationCdf | None,
    limit: int | None,
    excluded: Callable[[], Mapping[str, int]] = dict,
) -> Workload:
    """Parse every row of ``table`` (bad rows under the ``skip_bad_rows`` rule) and build the
    workload, job types assigned by :func:`make_assigner` where the trace names none.
    ``excluded`` is read after the rows are parsed (the parser counts what it leaves out)."""
    drafts, skipped = parse_rows(table, parse, skip_bad_rows)
    return build_workload(
        name,
        table.source,
        drafts,
        catalog=catalog,
        assigner=lambda: make_assigner(catalog, seed, util_cdf),
        skipped_rows=skipped,
        excluded=excluded(),
        limit=limit,
    )
