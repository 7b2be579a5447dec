"""Reads a job's epoch report file incrementally (complete lines only)."""

from __future__ import annotations

from pathlib import Path

from eaco.profiler.epoch_report import EpochRecord, ReportError, parse_report_line


class ReportTail:
    """``stopped_s``: the time (Unix s) of the last "stopped" record read: the job said it stopped
    on request, whatever exit code its launcher turns that into. ``ended_s``: the same for the
    last "end" record: the job said it finished training."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.bad_lines = 0
        self.stopped_s: float | None = None
        self.ended_s: float | None = None

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
            elif rec.event == "stopped":
                self.stopped_s = rec.time_s
            elif rec.event == "end":
                self.ended_s = rec.time_s
        return out
