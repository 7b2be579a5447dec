"""Reading numeric fields of CSV rows with errors that name the file, line and field."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

from eaco.errors import InputError


def csv_float(
    path: Path | str,
    line: int,
    row: Mapping[str, str | None],
    field: str,
    *,
    allow_empty: bool = False,
    positive: bool = False,
) -> float:
    """The field as a finite float. Empty gives NaN when ``allow_empty``; ``positive`` requires > 0."""
    raw = (row.get(field) or "").strip()
    if raw == "" and allow_empty:
        return math.nan
    try:
        value = float(raw)
    except ValueError:
        raise InputError(str(path), f"expected a number, got {raw!r}", line, field) from None
    if not math.isfinite(value):
        raise InputError(str(path), f"expected a finite number, got {raw!r}", line, field)
    if positive and not value > 0:
        raise InputError(str(path), f"expected a number > 0, got {raw!r}", line, field)
    return value
