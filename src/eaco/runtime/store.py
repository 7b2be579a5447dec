"""The runtime's single source of truth: SQLite in WAL mode.

Every state transition is one transaction, written before the runtime acts (an attempt is
recorded before its process starts) or right after it observes something (an exit). States:

    queued -> running -> finished | failed | cancelled
    running -> stopping (undo or move asked; the job stops at its next epoch end) -> running | queued
    running -> queued (crash while co-located: requeued to run exclusively; process lost)
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from eaco.predictor.history import LearnedSpeed
from eaco.runtime.errors import RuntimeStateError

# every job event, once committed (the daemon prints them: eaco serve --log-level)
event_log = logging.getLogger("eaco.runtime.events")

SCHEMA_VERSION = 4  # 2: jobs.migrations; 3: exclusive_epochs.gpu_type; 4: energy_hours.split_*_gpu_s

STATES = ("queued", "running", "stopping", "finished", "failed", "cancelled")
ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("finished", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    state TEXT NOT NULL,
    submit_unix REAL NOT NULL,
    exclusive_only INTEGER NOT NULL DEFAULT 0,
    gpus TEXT,
    next_gpus TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    undos INTEGER NOT NULL DEFAULT 0,
    migrations INTEGER NOT NULL DEFAULT 0,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    first_start_unix REAL,
    placed_unix REAL,
    epochs_at_placement INTEGER NOT NULL DEFAULT 0,
    finish_unix REAL,
    run_time_s REAL NOT NULL DEFAULT 0,
    colocated_s REAL NOT NULL DEFAULT 0,
    energy_j REAL NOT NULL DEFAULT 0,
    exit_code INTEGER,
    reason TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, job_id, cancel_requested);
CREATE TABLE IF NOT EXISTS attempts (
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    gpus TEXT NOT NULL,
    pid INTEGER,
    start_ticks INTEGER,
    start_unix REAL NOT NULL,
    end_unix REAL,
    exit_code INTEGER,
    outcome TEXT NOT NULL,
    colocated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS learned (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_unix REAL NOT NULL,
    job_types TEXT NOT NULL,
    gpu_type TEXT NOT NULL,
    member TEXT NOT NULL,
    speed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS exclusive_epochs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    workload_key TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    end_unix REAL NOT NULL,
    gpu_type TEXT
);
CREATE INDEX IF NOT EXISTS exclusive_epochs_job ON exclusive_epochs(job_id);
CREATE INDEX IF NOT EXISTS exclusive_epochs_key ON exclusive_epochs(workload_key);
CREATE TABLE IF NOT EXISTS memory_peaks (
    job_id INTEGER PRIMARY KEY,
    workload_key TEXT NOT NULL,
    memory_gb REAL NOT NULL,
    time_unix REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS memory_peaks_key ON memory_peaks(workload_key);
CREATE TABLE IF NOT EXISTS energy_hours (
    hour_start_unix INTEGER PRIMARY KEY,
    duration_s REAL NOT NULL DEFAULT 0,
    gpu_busy_j REAL NOT NULL DEFAULT 0,
    gpu_idle_j REAL NOT NULL DEFAULT 0,
    host_j REAL NOT NULL DEFAULT 0,
    model_gpu_busy_j REAL NOT NULL DEFAULT 0,
    model_gpu_idle_j REAL NOT NULL DEFAULT 0,
    counter_gpu_s REAL NOT NULL DEFAULT 0,
    power_gpu_s REAL NOT NULL DEFAULT 0,
    model_gpu_s REAL NOT NULL DEFAULT 0,
    split_measured_gpu_s REAL NOT NULL DEFAULT 0,
    split_declared_gpu_s REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_unix REAL NOT NULL,
    job_id INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""


ENERGY_COLUMNS = ("duration_s", "gpu_busy_j", "gpu_idle_j", "host_j", "model_gpu_busy_j", "model_gpu_idle_j",
                  "counter_gpu_s", "power_gpu_s", "model_gpu_s", "split_measured_gpu_s", "split_declared_gpu_s")
_ADD_HOUR = (
    "INSERT INTO energy_hours(hour_start_unix, " + ", ".join(ENERGY_COLUMNS) + ") VALUES (?" + ", ?" * len(ENERGY_COLUMNS) + ") "
    "ON CONFLICT(hour_start_unix) DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in ENERGY_COLUMNS)
)


def _hour_pieces(end_unix: float, duration_s: float) -> list[tuple[int, float]]:
    """The UTC hours that ``[end_unix - duration_s, end_unix]`` covers, each with its share."""
    if not duration_s > 0:
        return []
    start = end_unix - duration_s
    out: list[tuple[int, float]] = []
    t = start
    while t < end_unix:
        hour = int(t // 3600) * 3600
        upto = min(end_unix, hour + 3600)
        out.append((hour, (upto - t) / duration_s))
        t = upto
    return out


@dataclass(frozen=True, slots=True)
class JobRow:
    job_id: int
    name: str
    spec_json: str
    state: str
    submit_unix: float
    exclusive_only: bool
    gpus: tuple[int, ...] | None
    next_gpus: tuple[int, ...] | None
    attempts: int
    undos: int  # co-locations undone for it (the deadline check after observation)
    migrations: int  # moves to other GPUs so that a node empties (consolidation)
    epochs_done: int
    first_start_unix: float | None
    placed_unix: float | None
    epochs_at_placement: int
    finish_unix: float | None
    run_time_s: float
    colocated_s: float
    energy_j: float
    exit_code: int | None
    reason: str | None
    cancel_requested: bool

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__ if k != "spec_json"}  # type: ignore[attr-defined]
        out["gpus"] = list(self.gpus) if self.gpus is not None else None
        out["next_gpus"] = list(self.next_gpus) if self.next_gpus is not None else None
        return out


@dataclass(frozen=True, slots=True)
class AttemptRow:
    job_id: int
    attempt: int
    gpus: tuple[int, ...]
    pid: int | None
    start_ticks: int | None
    start_unix: float
    end_unix: float | None
    exit_code: int | None
    outcome: str  # running | finished | stopped | crashed | oom | failed | lost | cancelled | reattached
    colocated: bool

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]
        out["gpus"] = list(self.gpus)
        return out


def _gpus(text: str | None) -> tuple[int, ...] | None:
    return None if text is None else tuple(int(g) for g in json.loads(text))


def _job_row(r: sqlite3.Row) -> JobRow:
    return JobRow(
        job_id=r["job_id"], name=r["name"], spec_json=r["spec_json"], state=r["state"],
        submit_unix=r["submit_unix"], exclusive_only=bool(r["exclusive_only"]), gpus=_gpus(r["gpus"]),
        next_gpus=_gpus(r["next_gpus"]), attempts=r["attempts"], undos=r["undos"], migrations=r["migrations"],
        epochs_done=r["epochs_done"],
        first_start_unix=r["first_start_unix"], placed_unix=r["placed_unix"],
        epochs_at_placement=r["epochs_at_placement"], finish_unix=r["finish_unix"], run_time_s=r["run_time_s"],
        colocated_s=r["colocated_s"], energy_j=r["energy_j"], exit_code=r["exit_code"], reason=r["reason"],
        cancel_requested=bool(r["cancel_requested"]),
    )


def _attempt_row(r: sqlite3.Row) -> AttemptRow:
    return AttemptRow(
        job_id=r["job_id"], attempt=r["attempt"], gpus=_gpus(r["gpus"]) or (), pid=r["pid"],
        start_ticks=r["start_ticks"], start_unix=r["start_unix"], end_unix=r["end_unix"],
        exit_code=r["exit_code"], outcome=r["outcome"], colocated=bool(r["colocated"]),
    )


class Store:
    """One connection per thread (open one per thread with :meth:`open`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._unlogged: list[tuple[int | None, str, str]] = []  # events of the open transaction
        self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        with self.transaction() as db:
            columns = {r["name"] for r in db.execute("PRAGMA table_info(jobs)")}
            if "migrations" not in columns:  # a state folder written by schema 1
                db.execute("ALTER TABLE jobs ADD COLUMN migrations INTEGER NOT NULL DEFAULT 0")
            columns = {r["name"] for r in db.execute("PRAGMA table_info(exclusive_epochs)")}
            if "gpu_type" not in columns:  # written by a runtime of one GPU type: fill_epoch_gpu_type
                db.execute("ALTER TABLE exclusive_epochs ADD COLUMN gpu_type TEXT")
            columns = {r["name"] for r in db.execute("PRAGMA table_info(energy_hours)")}
            for column in ("split_measured_gpu_s", "split_declared_gpu_s"):
                if column not in columns:  # written before shared GPUs' splits were counted
                    db.execute(f"ALTER TABLE energy_hours ADD COLUMN {column} REAL NOT NULL DEFAULT 0")
            db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('clock_origin_unix', ?)", (repr(time.time()),))

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            self._unlogged.clear()
            raise
        self._db.execute("COMMIT")
        if self._unlogged:
            events, self._unlogged = self._unlogged, []
            for job_id, kind, detail in events:
                if job_id is None:
                    event_log.info("%s%s", kind, f": {detail}" if detail else "")
                else:
                    event_log.info("job %d %s%s", job_id, kind, f": {detail}" if detail else "")

    # ------------------------------------------------------------------ meta
    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    def clock_origin_unix(self) -> float:
        return float(self.meta("clock_origin_unix") or 0.0)

    def _event(self, db: sqlite3.Connection, job_id: int | None, kind: str, detail: str = "") -> None:
        db.execute("INSERT INTO events(time_unix, job_id, kind, detail) VALUES (?, ?, ?, ?)", (time.time(), job_id, kind, detail))
        self._unlogged.append((job_id, kind, detail))

    # --------------------------------------------------------------- queries
    def job(self, job_id: int) -> JobRow:
        r = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if r is None:
            raise KeyError(f"no job {job_id}")
        return _job_row(r)

    def jobs(self, states: tuple[str, ...] | None = None) -> list[JobRow]:
        if states is None:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY job_id").fetchall()
        else:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY job_id", states).fetchall()
        return [_job_row(r) for r in rows]

    def recent_jobs(self, ended: int) -> tuple[list[JobRow], int]:
        """Every queued, running or stopping job and the ``ended`` most recent others (by id), in
        id order, and how many older ended jobs were left out."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        done = self._db.execute(f"SELECT * FROM jobs WHERE state NOT IN ({marks}) ORDER BY job_id DESC LIMIT ?",
                                (*ACTIVE_STATES, max(0, ended))).fetchall()
        total_done = self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE state NOT IN ({marks})", ACTIVE_STATES).fetchone()[0]
        rows = sorted((*self.jobs(ACTIVE_STATES), *(_job_row(r) for r in done)), key=lambda r: r.job_id)
        return rows, total_done - len(done)

    def active_states(self) -> dict[int, tuple[str, bool]]:
        """Job id -> (state, cancel requested) of every queued, running or stopping job: what the
        daemon reads every tick, from the state index alone (no spec, however many jobs the
        folder has seen)."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        rows = self._db.execute(
            f"SELECT job_id, state, cancel_requested FROM jobs WHERE state IN ({marks})", ACTIVE_STATES).fetchall()
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    def attempts(self, job_id: int | None = None) -> list[AttemptRow]:
        if job_id is None:
            rows = self._db.execute("SELECT * FROM attempts ORDER BY job_id, attempt").fetchall()
        else:
            rows = self._db.execute("SELECT * FROM attempts WHERE job_id = ? ORDER BY attempt", (job_id,)).fetchall()
        return [_attempt_row(r) for r in rows]

    def attempt(self, job_id: int, attempt: int) -> AttemptRow:
        r = self._db.execute("SELECT * FROM attempts WHERE job_id = ? AND attempt = ?", (job_id, attempt)).fetchone()
        if r is None:
            raise KeyError(f"no attempt {attempt} of job {job_id}")
        return _attempt_row(r)

    def add_learned(self, items: Iterable[LearnedSpeed], now_unix: float | None = None) -> None:
        """Append speeds the policy learnt (its history H grows with every observed co-location)."""
        rows = [(time.time() if now_unix is None else now_unix, json.dumps(list(i.job_types)), i.gpu_type, i.member, i.speed)
                for i in items]
        if not rows:
            return
        with self.transaction() as db:
            db.executemany("INSERT INTO learned(time_unix, job_types, gpu_type, member, speed) VALUES (?, ?, ?, ?, ?)", rows)

    def learned(self) -> list[LearnedSpeed]:
        rows = self._db.execute("SELECT job_types, gpu_type, member, speed FROM learned ORDER BY seq").fetchall()
        return [LearnedSpeed(tuple(json.loads(r[0])), r[1], r[2], float(r[3])) for r in rows]

    def add_exclusive_epoch(self, job_id: int, workload_key: str, epoch: int, duration_s: float, end_unix: float,
                            gpu_type: str) -> None:
        """An epoch the job ran alone on all its GPUs, of ``gpu_type`` (the runtime's own measure
        of its exclusive epoch time, :mod:`eaco.runtime.baselines`)."""
        with self.transaction() as db:
            db.execute("INSERT INTO exclusive_epochs(job_id, workload_key, epoch, duration_s, end_unix, gpu_type) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (job_id, workload_key, epoch, duration_s, end_unix, gpu_type))

    def fill_epoch_gpu_type(self, gpu_type: str) -> int:
        """Alone epochs stored before epochs carried their GPU type ran on the one type the
        runtime had then: mark them so (the daemon's main type). Returns how many."""
        with self.transaction() as db:
            return db.execute("UPDATE exclusive_epochs SET gpu_type = ? WHERE gpu_type IS NULL", (gpu_type,)).rowcount

    def exclusive_epochs(self, job_id: int, limit: int) -> list[tuple[float, str]]:
        """The job's last ``limit`` alone epochs, oldest first: (duration in s, GPU type)."""
        rows = self._db.execute("SELECT duration_s, gpu_type FROM exclusive_epochs WHERE job_id = ? ORDER BY seq DESC LIMIT ?",
                                (job_id, limit)).fetchall()
        return [(float(r[0]), r[1]) for r in reversed(rows)]

    def exclusive_epochs_by_job(self, limit: int) -> dict[int, list[tuple[float, str]]]:
        """Every job's last ``limit`` alone epochs, oldest first: (duration in s, GPU type)."""
        out: dict[int, list[tuple[float, str]]] = {}
        for r in self._db.execute("SELECT job_id, duration_s, gpu_type FROM exclusive_epochs ORDER BY seq").fetchall():
            got = out.setdefault(int(r[0]), [])
            got.append((float(r[1]), r[2]))
            if len(got) > limit:
                del got[0]
        return out

    def workload_exclusive_epochs(self, workload_key: str, limit: int, except_job: int | None = None) -> list[tuple[float, str]]:
        """The last ``limit`` alone epochs of jobs of this workload, oldest first: (duration in s, GPU type)."""
        rows = self._db.execute(
            "SELECT duration_s, gpu_type FROM exclusive_epochs WHERE workload_key = ? AND job_id IS NOT ? ORDER BY seq DESC LIMIT ?",
            (workload_key, except_job, limit)).fetchall()
        return [(float(r[0]), r[1]) for r in reversed(rows)]

    def add_memory_peak(self, job_id: int, workload_key: str, memory_gb: float, now_unix: float | None = None) -> bool:
        """A GPU memory peak the job reported (GB per GPU, CUDA context included,
        :mod:`eaco.runtime.memory`); the job's largest is kept. Returns whether it is a new largest."""
        with self.transaction() as db:
            row = db.execute("SELECT memory_gb FROM memory_peaks WHERE job_id = ?", (job_id,)).fetchone()
            if row is not None and float(row[0]) >= memory_gb:
                return False
            db.execute("INSERT OR REPLACE INTO memory_peaks(job_id, workload_key, memory_gb, time_unix) VALUES (?, ?, ?, ?)",
                       (job_id, workload_key, memory_gb, time.time() if now_unix is None else now_unix))
            return True

    def memory_peak_gb(self, job_id: int) -> float | None:
        row = self._db.execute("SELECT memory_gb FROM memory_peaks WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else float(row[0])

    def workload_memory_peak_gb(self, workload_key: str, except_job: int | None = None) -> float | None:
        """The largest peak any job of this workload reported (``except_job`` left out)."""
        row = self._db.execute("SELECT MAX(memory_gb) FROM memory_peaks WHERE workload_key = ? AND job_id IS NOT ?",
                               (workload_key, except_job)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def events(self, job_id: int | None = None) -> list[tuple[float, int | None, str, str]]:
        q = "SELECT time_unix, job_id, kind, detail FROM events"
        rows = self._db.execute(q + " WHERE job_id = ? ORDER BY seq", (job_id,)) if job_id is not None else self._db.execute(q + " ORDER BY seq")
        return [(r[0], r[1], r[2], r[3]) for r in rows.fetchall()]

    # ----------------------------------------------------------- transitions
    def _expect(self, db: sqlite3.Connection, job_id: int, states: tuple[str, ...]) -> sqlite3.Row:
        r = db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if r is None:
            raise KeyError(f"no job {job_id}")
        if r["state"] not in states:
            raise RuntimeStateError(f"job {job_id} is {r['state']}; expected {' or '.join(states)}")
        return r

    def submit(self, name: str, spec_json: str, submit_unix: float | None = None) -> int:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO jobs(name, spec_json, state, submit_unix) VALUES (?, ?, 'queued', ?)",
                (name, spec_json, submit_unix if submit_unix is not None else time.time()),
            )
            job_id = int(cur.lastrowid)  # type: ignore[arg-type]
            self._event(db, job_id, "submitted", name)
        return job_id

    def begin_attempt(self, job_id: int, gpus: tuple[int, ...], colocated: bool, now_unix: float,
                      sharing_with: tuple[int, ...] = ()) -> int:
        """queued/stopping -> running: record the attempt before its process starts
        (``sharing_with``: the jobs already on those GPUs, for its event)."""
        with self.transaction() as db:
            r = self._expect(db, job_id, ("queued", "stopping"))
            attempt = r["attempts"] + 1
            db.execute(
                "INSERT INTO attempts(job_id, attempt, gpus, start_unix, outcome, colocated) VALUES (?, ?, ?, ?, 'running', ?)",
                (job_id, attempt, json.dumps(list(gpus)), now_unix, int(colocated)),
            )
            db.execute(
                "UPDATE jobs SET state = 'running', attempts = ?, gpus = ?, next_gpus = NULL, placed_unix = ?, "
                "epochs_at_placement = epochs_done, first_start_unix = COALESCE(first_start_unix, ?) WHERE job_id = ?",
                (attempt, json.dumps(list(gpus)), now_unix, now_unix, job_id),
            )
            shared = f", sharing with job {', '.join(map(str, sharing_with))}" if sharing_with else ""
            self._event(db, job_id, "started", f"attempt {attempt} on GPUs {list(gpus)}{shared}")
        return attempt

    def set_pid(self, job_id: int, attempt: int, pid: int, start_ticks: int | None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE attempts SET pid = ?, start_ticks = ? WHERE job_id = ? AND attempt = ?", (pid, start_ticks, job_id, attempt))

    def mark_colocated(self, job_id: int, attempt: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE attempts SET colocated = 1 WHERE job_id = ? AND attempt = ?", (job_id, attempt))

    def set_progress(self, job_id: int, epochs_done: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET epochs_done = MAX(epochs_done, ?) WHERE job_id = ?", (epochs_done, job_id))

    def add_accounting(self, increments: dict[int, tuple[float, float, float]],
                       energy: Mapping[str, float] | None = None, end_unix: float | None = None) -> None:
        """Per job: (+run time s, +co-located time s, +energy J); and the cluster's energy of the
        same interval by part (``energy``: :data:`~eaco.runtime.accounting.ENERGY_PARTS`, the
        interval ending at ``end_unix`` and lasting ``energy["duration_s"]``), added to the
        hours it covers (split in proportion where it crosses an hour)."""
        pieces = _hour_pieces(end_unix, energy.get("duration_s", 0.0)) if energy and end_unix is not None else []
        if not increments and not pieces:
            return
        with self.transaction() as db:
            for job_id, (run_s, coloc_s, energy_j) in increments.items():
                db.execute(
                    "UPDATE jobs SET run_time_s = run_time_s + ?, colocated_s = colocated_s + ?, energy_j = energy_j + ? WHERE job_id = ?",
                    (run_s, coloc_s, energy_j, job_id),
                )
            assert energy is not None or not pieces
            for hour, share in pieces:
                values = [energy.get(c, 0.0) * share for c in ENERGY_COLUMNS]  # type: ignore[union-attr]
                db.execute(_ADD_HOUR, (hour, *values))

    def energy_totals(self) -> dict[str, float]:
        """The cluster's energy by part over every hour recorded (survives daemon restarts)."""
        row = self._db.execute("SELECT " + ", ".join(f"COALESCE(SUM({c}), 0) AS {c}" for c in ENERGY_COLUMNS)
                               + " FROM energy_hours").fetchone()
        return {c: float(row[c]) for c in ENERGY_COLUMNS}

    def energy_hours(self) -> list[dict[str, float]]:
        """Per hour (UTC-aligned, ``hour_start_unix``) with energy recorded: its parts, oldest first."""
        rows = self._db.execute("SELECT * FROM energy_hours ORDER BY hour_start_unix").fetchall()
        return [{k: (int(r[k]) if k == "hour_start_unix" else float(r[k])) for k in r.keys()} for r in rows]

    def request_undo(self, job_id: int, reason: str = "colocation") -> None:
        """running -> stopping: the job was asked to stop at its next epoch end, to undo its
        co-location (``reason`` "colocation", counted in ``undos``) or to move it elsewhere so
        that its node empties ("migration", counted in ``migrations``)."""
        column, kind, detail = {
            "colocation": ("undos", "undo", "stop requested at the next epoch end (co-location undone)"),
            "migration": ("migrations", "move", "stop requested at the next epoch end (moved to empty its node)"),
        }[reason]
        with self.transaction() as db:
            self._expect(db, job_id, ("running",))
            db.execute(f"UPDATE jobs SET state = 'stopping', {column} = {column} + 1, next_gpus = NULL WHERE job_id = ?", (job_id,))
            self._event(db, job_id, kind, detail)

    def set_next_gpus(self, job_id: int, gpus: tuple[int, ...] | None) -> None:
        """A stopping job was placed again (or that placement undone): where it restarts."""
        with self.transaction() as db:
            self._expect(db, job_id, ("stopping",))
            db.execute("UPDATE jobs SET next_gpus = ? WHERE job_id = ?", (None if gpus is None else json.dumps(list(gpus)), job_id))

    def end_attempt(
        self, job_id: int, attempt: int, exit_code: int | None, outcome: str, new_state: str, now_unix: float,
        reason: str | None = None, exclusive_only: bool | None = None,
    ) -> None:
        """An attempt ended: record how, and move the job to ``new_state`` (queued or final)."""
        if new_state not in ("queued", "finished", "failed", "cancelled"):
            raise ValueError(f"end_attempt: new_state {new_state!r}")
        with self.transaction() as db:
            self._expect(db, job_id, ("running", "stopping"))
            db.execute(
                "UPDATE attempts SET end_unix = ?, exit_code = ?, outcome = ? WHERE job_id = ? AND attempt = ?",
                (now_unix, exit_code, outcome, job_id, attempt),
            )
            final = new_state in FINAL_STATES
            db.execute(
                "UPDATE jobs SET state = ?, gpus = NULL, next_gpus = NULL, placed_unix = NULL, exit_code = ?, "
                "reason = COALESCE(?, reason), finish_unix = CASE WHEN ? THEN ? ELSE finish_unix END, "
                "exclusive_only = COALESCE(?, exclusive_only) WHERE job_id = ?",
                (new_state, exit_code, reason, final, now_unix, None if exclusive_only is None else int(exclusive_only), job_id),
            )
            self._event(db, job_id, f"attempt-{outcome}", f"attempt {attempt} exit {exit_code} -> {new_state}" + (f": {reason}" if reason else ""))

    def request_cancel(self, job_id: int) -> str:
        """Mark for cancelling; a queued job is cancelled at once. Returns the state now."""
        with self.transaction() as db:
            r = db.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if r is None:
                raise KeyError(f"no job {job_id}")
            state = r["state"]
            if state in FINAL_STATES:
                return state
            if state == "queued":
                db.execute("UPDATE jobs SET state = 'cancelled', finish_unix = ?, reason = 'cancelled by user' WHERE job_id = ?", (time.time(), job_id))
                self._event(db, job_id, "cancelled", "while queued")
                return "cancelled"
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?", (job_id,))
            self._event(db, job_id, "cancel-requested", "")
            return state

    def event(self, job_id: int | None, kind: str, detail: str = "") -> None:
        with self.transaction() as db:
            self._event(db, job_id, kind, detail)
