"""Reads a job's epoch report file incrementally (complete lines only)."""

from __future__ import annotations

from pathlib import Path

from eaco.profiler.epoch_report import EpochRecord, ReportError, parse_report_line


class ReportTail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.bad_lines = 0

    def read_new(self) -> list[EpochRecord]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        out: list[EpochRecord] = []
        for line in data[: end + 1].decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = parse_report_line(line, str(self.path))
            except ReportError:
                self.bad_lines += 1
                continue
            if isinstance(rec, EpochRecord):
                out.append(rec)
        return out
