"""Co-location ground truth: the job-type catalogue and what happens when jobs share a GPU.

- :mod:`eaco.colocation.catalog`: ``JobTypeSpec``, ``JobCatalog``, ``load_catalog``.
- :mod:`eaco.colocation.model`: ``ColocationModel``, ``load_colocation_model``.
- :mod:`eaco.colocation.gavel`: typed loader of Gavel's measured throughputs.
- :mod:`eaco.colocation.fit`: offline fit of the model (``python -m eaco.colocation.fit``).
"""

from eaco.colocation.catalog import JobCatalog, JobTypeSpec, load_catalog
from eaco.colocation.model import ColocationModel, FitReport, load_colocation_model

__all__ = ["JobCatalog", "JobTypeSpec", "load_catalog", "ColocationModel", "FitReport", "load_colocation_model"]
