"""Loader for a Slurm accounting export (``sacct``): replay your own cluster's GPU jobs.

Produce the file on the cluster (one row per job allocation, ``|``-separated, with a header)::

    sacct --allusers --allocations --parsable2 --starttime 2026-01-01 --endtime 2026-02-01 \\
          --format=JobID,JobName,Submit,Start,End,ElapsedRaw,State,AllocTRES,ReqTRES,QOS > jobs.txt

Columns are found by name (any order; other columns are ignored; ``--parsable`` with its trailing
``|`` works too, and so does a comma-separated file with the same header). Needed: ``JobID`` (or
``JobIDRaw``), ``Submit``, ``State``; the run time from ``ElapsedRaw`` (seconds), else
``Elapsed`` (``[days-]hours:minutes:seconds``), else ``End - Start``; the GPUs from ``AllocTRES``
(else ``ReqTRES``). Optional: ``ReqTRES`` (the GPU type asked for), ``JobName``, ``QOS``.

Rules (docs/workloads.md, "Slurm"):

- rows of job steps (``JobID`` with a dot: ``123.batch``, ``123.0``, ``123.extern``) are left
  out (``"job_step"``); without ``--allocations`` sacct writes them beside each job;
- jobs still pending, running, suspended or requeued have no final run time: left out
  (``"not_ended"``); ended jobs that never ran (no ``Start``, or a run time of 0) are left out
  (``"never_ran"``); jobs with no GPU are left out (``"cpu_only"``). Every ended job that ran on
  GPUs is kept, whatever its end (completed, failed, cancelled, timed out, out of memory, node
  failure, preempted): it held its GPUs for that long;
- submit time = ``Submit``: ISO ``YYYY-MM-DDTHH:MM:SS`` as sacct prints it, in the cluster's
  local time: with ``timezone`` (an IANA name such as ``Europe/Berlin``, ``eaco simulate
  --slurm-timezone``) read in that zone, so that gaps across a daylight-saving change are right
  (in the hour that repeats when clocks go back, the first occurrence is taken); without it read
  as UTC wall-clock, which is off by an hour across such a change; or Unix seconds
  (``SLURM_TIME_FORMAT=%s sacct ...``, exact, no zone needed);
- GPUs = the ``gres/gpu`` count of ``AllocTRES`` (``billing=8,cpu=8,gres/gpu=2,mem=64G,node=1``);
  when only typed entries are there (``gres/gpu:a100=2``) their sum. Typed entries name the GPU
  model: a name containing one of our GPU types (``a100``, ``nvidia_a100-sxm4-80gb``,
  ``tesla_v100``, ``h100``, ``t4``, ...) maps to it. The run time was measured on the allocated
  type, so it is converted to the reference V100 with the job type's relative speed; a job
  pins that type only if ``ReqTRES`` asked for it (otherwise it may run on any type);
- the job type is the catalogue type whose name equals ``JobName`` (case-insensitive), else the
  usual seeded assignment from the Philly utilisation CDF;
- ``priority_qos``: QoS names (case-insensitive) whose jobs are high-priority (priority 1);
  none by default. Slurm records no completion deadline, so jobs carry none: the SLO rule
  (:mod:`eaco.workloads.slo`) gives them one unless it is turned off.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.model.gpu import gpu_type_from_model
from eaco.workloads._csvio import CsvTable, open_text
from eaco.workloads._defaults import resolve_catalog, workload_from_rows
from eaco.workloads.base import JobDraft, Workload
from eaco.workloads.util_cdf import UtilisationCdf

ENDED_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE",
})
NOT_ENDED_STATES = frozenset({
    "PENDING", "RUNNING", "SUSPENDED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
    "REVOKED", "STOPPED", "SIGNALING", "STAGE_OUT", "SPECIAL_EXIT", "PREEMPTED_REQUEUE",
})
MISSING_TIMES = frozenset({"", "unknown", "none", "n/a"})
EXCLUSION_REASONS = ("job_step", "not_ended", "never_ran", "cpu_only")

_ELAPSED = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")
def parse_elapsed(text: str) -> float:
    """``[days-][hours:]minutes:seconds[.frac]`` -> seconds; raises ValueError otherwise."""
    m = _ELAPSED.match(text.strip())
    if m is None:
        raise ValueError(text)
    days, hours, minutes, seconds = m.groups()
    return ((int(days or 0) * 24 + int(hours or 0)) * 60 + int(minutes)) * 60 + float(seconds)


def parse_time(text: str, zone: tzinfo | None = None) -> float | None:
    """A sacct time (ISO wall-clock or Unix seconds) -> seconds; None when sacct says it has none.
    A time without an offset is read in ``zone`` (default UTC).

    Raises ValueError for anything else.
    """
    t = text.strip()
    if t.lower() in MISSING_TIMES:
        return None
    if t.isdigit():
        return float(t)
    stamp = datetime.fromisoformat(t)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=zone or timezone.utc)
    return stamp.timestamp()


def time_zone(name: str, source: str = "--slurm-timezone") -> tzinfo:
    """An IANA time zone by name; InputError naming ``source`` when it is not known."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(source, f"unknown time zone {name!r}: expected an IANA name such as Europe/Berlin or "
                                 "America/New_York (the system's zone database; 'pip install tzdata' where there is none)") from None


def parse_tres_gpus(text: str) -> tuple[int, dict[str, int]]:
    """GPUs in a TRES string: (count, {model: count} of the typed entries).

    The count is the untyped ``gres/gpu`` entry, else the sum of the typed ones; 0 when none.
    Raises ValueError (with the entry) for a GPU entry whose count is not an integer.
    """
    untyped: int | None = None
    typed: dict[str, int] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not (key == "gres/gpu" or key.startswith("gres/gpu:")):
            continue
        v = value.strip()
        if not v.isdigit():
            raise ValueError(part.strip())
        if key == "gres/gpu":
            untyped = int(v)
        else:
            typed[key[len("gres/gpu:"):]] = int(v)
    count = untyped if untyped is not None else sum(typed.values())
    return count, typed


def _single_type(typed: dict[str, int]) -> str | None:
    types = {gpu_type_from_model(model) for model, n in typed.items() if n > 0}
    return types.pop() if len(types) == 1 else None


def _sniff_delimiter(path: Path) -> str:
    try:
        with open_text(path) as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError):
        return "|"  # CsvTable reports the problem with file and line
    return "|" if "|" in header or "," not in header else ","


def load_slurm(
    path: str | Path,
    *,
    catalog: JobCatalog | None = None,
    seed: int = 0,
    skip_bad_rows: bool = False,
    priority_qos: Collection[str] = (),
    name: str | None = None,
    limit: int | None = None,
    util_cdf: UtilisationCdf | None = None,
    timezone_name: str | None = None,
) -> Workload:
    """Load a ``sacct`` export as a :class:`Workload` (see module docs for the rules);
    ``timezone_name``: the IANA zone its ISO times are in (default: read as UTC).

    ``excluded`` in the result counts ``"job_step"``, ``"not_ended"``, ``"never_ran"`` and
    ``"cpu_only"`` rows.
    """
    p = Path(path)
    cat = resolve_catalog(catalog)
    zone = time_zone(timezone_name) if timezone_name else None
    delimiter = _sniff_delimiter(p) if p.is_file() else "|"
    table = CsvTable(p, required=("Submit", "State"), delimiter=delimiter,
                     quoting=csv.QUOTE_NONE if delimiter == "|" else csv.QUOTE_MINIMAL)
    src = table.source
    ix = table.index
    header = ", ".join(c for c in table.columns if c)

    def need(*choices: str) -> str:
        for c in choices:
            if c in ix:
                return c
        raise InputError(src, f"missing column {' or '.join(choices)}; header has: {header}", line=1)

    id_col = need("JobID", "JobIDRaw")
    gpu_col = need("AllocTRES", "ReqTRES")
    if not ({"ElapsedRaw", "Elapsed"} & ix.keys() or {"Start", "End"} <= ix.keys()):
        raise InputError(src, f"missing the run time: column ElapsedRaw, Elapsed, or Start and End; "
                         f"header has: {header}", line=1)
    req_col = "ReqTRES" if "ReqTRES" in ix and gpu_col != "ReqTRES" else None
    by_name = {n.lower(): n for n in cat.names()}
    wanted_qos = {q.strip().lower() for q in priority_qos if q.strip()}
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)

    def parse(line: int, row: list[str]) -> JobDraft | None:
        def cell(column: str | None) -> str:
            return "" if column is None or column not in ix else row[ix[column]].strip()

        def bad(column: str, what: str) -> InputError:
            return InputError(src, f"expected {what}, got {cell(column)!r}", line=line, field=column)

        def time_of(column: str) -> float | None:
            try:
                return parse_time(cell(column), zone)
            except ValueError:
                raise bad(column, "a time (YYYY-MM-DDTHH:MM:SS or Unix seconds)") from None

        job_id = cell(id_col)
        if not job_id:
            raise bad(id_col, "a job id")
        if "." in job_id:
            excluded["job_step"] += 1
            return None
        state = cell("State").split(" ")[0].upper()  # "CANCELLED by 1234"
        state = state.rstrip("+")  # sacct marks a truncated state with "+"
        if state in NOT_ENDED_STATES:
            excluded["not_ended"] += 1
            return None
        if state not in ENDED_STATES:
            raise bad("State", "a Slurm job state (COMPLETED, FAILED, CANCELLED, TIMEOUT, RUNNING, ...)")
        try:
            gpus, typed = parse_tres_gpus(cell(gpu_col))
        except ValueError as exc:
            raise InputError(src, f"expected gres/gpu=<integer>, got {exc.args[0]!r}",
                             line=line, field=gpu_col) from None
        submit = time_of("Submit")
        if submit is None:
            raise bad("Submit", "a submit time")
        start = time_of("Start") if "Start" in ix else submit
        if "ElapsedRaw" in ix:
            text = cell("ElapsedRaw")
            if not text.isdigit():
                raise bad("ElapsedRaw", "whole seconds")
            duration = float(text)
        elif "Elapsed" in ix:
            try:
                duration = parse_elapsed(cell("Elapsed"))
            except ValueError:
                raise bad("Elapsed", "[days-]hours:minutes:seconds") from None
        else:
            end = time_of("End")
            duration = 0.0 if start is None or end is None else end - start
            if duration < 0:
                raise bad("End", f"a time after Start ({cell('Start')})")
        if start is None or duration <= 0:
            excluded["never_ran"] += 1
            return None
        if gpus == 0:
            excluded["cpu_only"] += 1
            return None
        ran_on = _single_type(typed)
        pinned = None
        if req_col is not None:
            try:
                pinned = _single_type(parse_tres_gpus(cell(req_col))[1])
            except ValueError as exc:
                raise InputError(src, f"expected gres/gpu=<integer>, got {exc.args[0]!r}",
                                 line=line, field=req_col) from None
        elif gpu_col == "ReqTRES":
            pinned = ran_on
        return JobDraft(
            submit_time_s=submit,
            duration_s=duration,
            num_gpus=gpus,
            job_type=by_name.get(cell("JobName").lower()),
            gpu_type=pinned,
            priority=1 if wanted_qos and cell("QOS").lower() in wanted_qos else 0,
            duration_gpu_type=ran_on,
        )

    return workload_from_rows(
        name if name is not None else p.name.split(".")[0], table, parse, skip_bad_rows=skip_bad_rows,
        catalog=cat, seed=seed, util_cdf=util_cdf, limit=limit,
        excluded=lambda: {k: v for k, v in excluded.items() if v},
    )
