"""Reading CSV traces (plain or gzip) with header checks and field errors that name file and line.

Line numbers are physical line numbers in the (decompressed) file: the header is line 1, the
first data row line 2. Blank lines are not rows and are passed over (several shared traces end
with one).
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

from eaco.errors import InputError

log = logging.getLogger("eaco.workloads")

T = TypeVar("T")


def open_text(path: Path) -> TextIO:
    """Open ``path`` for reading as UTF-8 text; ``*.gz`` files are decompressed on the fly."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


class CsvTable:
    """A CSV file opened for row iteration, its header checked against required columns."""

    __slots__ = ("_handle", "_reader", "columns", "delimiter", "index", "source")

    def __init__(self, path: Path, required: Sequence[str], *, delimiter: str = ",",
                 quoting: int = csv.QUOTE_MINIMAL) -> None:
        self.source = str(path)
        self.delimiter = delimiter
        try:
            self._handle = open_text(path)
        except FileNotFoundError:
            raise InputError(self.source, "file not found") from None
        except IsADirectoryError:
            raise InputError(self.source, "expected a file, got a folder") from None
        self._reader = csv.reader(self._handle, delimiter=delimiter, quoting=quoting)
        try:
            header = next(self._reader)
        except StopIteration:
            self._handle.close()
            raise InputError(
                self.source, f"empty file; expected a header with {', '.join(required)}", line=1
            ) from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            self._handle.close()
            raise InputError(self.source, f"unreadable: {exc}", line=1) from None
        self.columns = tuple(h.strip() for h in header)
        missing = [c for c in required if c not in self.columns]
        if missing:
            self._handle.close()
            raise InputError(
                self.source,
                f"missing required column(s): {', '.join(missing)}; "
                f"header has: {', '.join(self.columns) or '(nothing)'}",
                line=1,
            )
        self.index = {name: i for i, name in enumerate(self.columns)}

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Yield ``(line_number, fields)`` for each non-blank row; close the file at the end.

        Rows are yielded whatever their width; :meth:`width_error` tells a short or long row.
        """
        reader = self._reader
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield reader.line_num, row
        except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
            raise InputError(self.source, f"unreadable: {exc}", line=reader.line_num) from None
        finally:
            self._handle.close()

    def width_error(self, line: int, row: list[str]) -> InputError | None:
        width = len(self.columns)
        if len(row) == width:
            return None
        field = self.columns[len(row)] if len(row) < width else None
        sep = "comma" if self.delimiter == "," else repr(self.delimiter)
        return InputError(
            self.source,
            f"expected {width} {sep}-separated fields, got {len(row)}",
            line=line,
            field=field,
        )


class RowCounter:
    """Applies the ``skip_bad_rows`` rule: raise the first bad row, or count and skip it."""

    __slots__ = ("first_error", "skip_bad_rows", "skipped")

    def __init__(self, skip_bad_rows: bool) -> None:
        self.skip_bad_rows = skip_bad_rows
        self.skipped = 0
        self.first_error: InputError | None = None

    def bad(self, err: InputError) -> None:
        if not self.skip_bad_rows:
            raise err
        self.skipped += 1
        if self.first_error is None:
            self.first_error = err

    def log_summary(self, source: str) -> None:
        if self.skipped:
            log.warning(
                "%s: skipped %d bad row(s); first: %s", source, self.skipped, self.first_error
            )


def iter_parsed(
    table: CsvTable,
    parse: Callable[[int, list[str]], T | None],
    counter: RowCounter,
) -> Iterator[T]:
    """Parse each row; bad rows go to ``counter``; ``None`` results (excluded rows) are dropped.

    Rows that are excluded on purpose (not bad) must be counted by ``parse`` itself.
    A row with the wrong number of fields is a bad row too.
    """
    for line, row in table.rows():
        err = table.width_error(line, row)
        if err is not None:
            counter.bad(err)
            continue
        try:
            item = parse(line, row)
        except InputError as exc:
            counter.bad(exc)
            continue
        if item is not None:
            yield item


def parse_rows(
    table: CsvTable, parse: Callable[[int, list[str]], T | None], skip_bad_rows: bool
) -> tuple[list[T], int]:
    """Every row of ``table`` parsed (:func:`iter_parsed` under the ``skip_bad_rows`` rule), and
    how many bad rows were skipped (the first one is logged)."""
    counter = RowCounter(skip_bad_rows)
    items = list(iter_parsed(table, parse, counter))
    counter.log_summary(table.source)
    return items, counter.skipped


# --- field parsers -------------------------------------------------------------------------


def parse_float(
    source: str,
    line: int,
    field: str,
    text: str,
    *,
    low: float | None = None,
    low_inclusive: bool = True,
    high: float | None = None,
    what: str = "a number",
) -> float:
    """Parse a finite float, optionally bounded; raise InputError naming file, line and field."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(source, f"expected {what}, got {text!r}", line=line, field=field) from None
    if not math.isfinite(value):
        raise InputError(source, f"expected {what}, got {text!r}", line=line, field=field)
    if low is not None and (value < low or (not low_inclusive and value == low)):
        op = ">=" if low_inclusive else ">"
        raise InputError(
            source, f"expected {what} {op} {low:g}, got {text!r}", line=line, field=field
        )
    if high is not None and value > high:
        raise InputError(
            source, f"expected {what} <= {high:g}, got {text!r}", line=line, field=field
        )
    return value


def parse_int(
    source: str,
    line: int,
    field: str,
    text: str,
    *,
    low: int | None = None,
    what: str = "an integer",
) -> int:
    """Parse an integer (``"4"`` or ``"4.0"``), optionally with a lower bound."""
    try:
        value = int(text)
    except ValueError:
        try:
            as_float = float(text)
        except ValueError:
            as_float = math.nan
        if not (math.isfinite(as_float) and as_float == int(as_float)):
            raise InputError(
                source, f"expected {what}, got {text!r}", line=line, field=field
            ) from None
        value = int(as_float)
    if low is not None and value < low:
        raise InputError(source, f"expected {what} >= {low}, got {text!r}", line=line, field=field)
    return value
