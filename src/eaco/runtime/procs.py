"""Process identity on Linux (``/proc``): a pid is the same process only if its start time matches."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    rest = text[text.rfind(")") + 2 :].split()
    return rest  # rest[0] is field 3 (state)


def process_start_ticks(pid: int) -> int | None:
    """Start time of the process in clock ticks since boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """The process exists, is not a zombie, and (if known) started at ``start_ticks``."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def process_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid`` (a job started in a session of its own); False
    if the group is gone (or not ours)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def session_of(pid: int) -> int | None:
    """The session id of ``pid`` (a job's attempt leads a session of its own: its processes, and
    theirs, carry the attempt's pid here); None if the process is gone or not ours to ask."""
    try:
        return os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return None
