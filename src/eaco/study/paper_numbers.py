"""The paper's published simulation numbers (``src/eaco/data/paper_simulation.csv``)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass

from eaco.errors import InputError
from eaco.paths import PACKAGE_DATA_DIR

PAPER_SIMULATION_CSV = PACKAGE_DATA_DIR / "paper_simulation.csv"


@dataclass(frozen=True, slots=True)
class PaperNumber:
    metric: str
    nodes: int
    policy: str
    value: float
    derivation: str


def load_paper_numbers() -> dict[tuple[str, int, str], PaperNumber]:
    out: dict[tuple[str, int, str], PaperNumber] = {}
    path = PAPER_SIMULATION_CSV
    with open(path, newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    for line, row in enumerate(csv.DictReader(lines), start=2):
        try:
            value = float(row["value"]) if row["value"].strip() else math.nan
            nodes = int(row["nodes"])
        except ValueError as exc:
            raise InputError(str(path), f"expected numbers in 'nodes' and 'value': {exc}", line) from None
        n = PaperNumber(row["metric"], nodes, row["policy"], value, row["derivation"])
        out[(n.metric, n.nodes, n.policy)] = n
    return out
