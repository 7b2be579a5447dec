"""Markdown building blocks shared by the reports (``eaco simulate``, ``eaco profile``)."""

from __future__ import annotations

from typing import Sequence


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table, as lines ('|' in a cell is escaped)."""

    def cells(values: Sequence[str]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    return [cells(header), "|" + "|".join("---" for _ in header) + "|", *(cells(r) for r in rows)]
