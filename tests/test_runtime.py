"""The live runtime: specs, store, and real daemons running tiny training jobs on 2 declared GPUs."""

from __future__ import annotations

import csv
import json
import logging
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner
import typer

from eaco.errors import InputError
from eaco.runtime.errors import RuntimeStateError
from eaco.runtime.spec import load_spec, spec_from_yaml
from eaco.runtime.metrics import store_counts
from eaco.runtime.store import Store
from eaco.runtime_cli import cancel_command, logs_command, serve_command, status_command, submit_command
from runtime_helpers import ddp_spec, wait_for

app = typer.Typer()
app.command("serve")(serve_command)
app.command("submit")(submit_command)
app.command("status")(status_command)
app.command("cancel")(cancel_command)
app.command("logs")(logs_command)
runner = CliRunner()


def job_yaml(name: str, epochs: int = 3, steps: int = 30, extra: str = "", args: str = "", expected_epoch_s: float = 0.5) -> str:
    return (
        f"name: {name}\n"
        f"command: {sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs {epochs} --steps-per-epoch {steps} {args}\n"
        f"epochs: {epochs}\nexpected_epoch_s: {expected_epoch_s}\njob_type: resnet18\n"
        f"env: {{OMP_NUM_THREADS: '1'}}\n{extra}"
    )


# ------------------------------------------------------------------------ specs
def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    ok = spec_from_yaml(job_yaml("a"))
    assert ok.command[1:3] == ["-m", "eaco.runtime.examples.tiny_train"] and ok.epochs == 3
    cases = {
        "epochs": job_yaml("a").replace("epochs: 3", "epochs: 0"),
        "gpu_type": job_yaml("a", extra="gpu_type: tpu9\n"),
        "num_gpus": job_yaml("a", extra="num_gpus: -1\n"),
        "colour": job_yaml("a", extra="colour: red\n"),
        "memory_gb": job_yaml("a", extra="memory_gb: abc\n"),
    }
    for field, text in cases.items():
        with pytest.raises(InputError) as err:
            spec_from_yaml(text, "job.yaml")
        assert err.value.field == field, (field, str(err.value))
        assert f"field '{field}'" in str(err.value)
    with pytest.raises(InputError, match="deadline_s or slack"):
        spec_from_yaml(job_yaml("a", extra="deadline_s: 10\nslack: 1\n"))
    with pytest.raises(InputError, match="not valid YAML"):
        spec_from_yaml("name: [unclosed")
    p = tmp_path / "j.yaml"
    p.write_text(job_yaml("a", extra="working_dir: sub\n"))
    assert load_spec(p).working_dir == str((tmp_path / "sub").resolve())


def test_spec_slack_gives_a_deadline() -> None:
    spec = spec_from_yaml(job_yaml("a", extra="slack: 1.0\n"))
    assert spec.relative_deadline_s() == pytest.approx(2 * 3 * 0.5)


# ------------------------------------------------------------------------ store
def test_store_transitions_and_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    spec = spec_from_yaml(job_yaml("a"))
    job_id = store.submit("a", spec.model_dump_json())
    assert store.job(job_id).state == "queued"
    attempt = store.begin_attempt(job_id, (1,), colocated=False, now_unix=time.time())
    store.set_pid(job_id, attempt, 1234, 99)
    row = store.job(job_id)
    assert (row.state, row.gpus, row.attempts) == ("running", (1,), 1)
    with pytest.raises(RuntimeStateError):
        store.begin_attempt(job_id, (0,), colocated=False, now_unix=time.time())  # never twice at once
    store.request_undo(job_id)
    store.set_next_gpus(job_id, (0,))
    assert store.job(job_id).next_gpus == (0,)
    store.end_attempt(job_id, attempt, 75, "stopped", "queued", time.time())
    assert store.job(job_id).state == "queued" and store.job(job_id).undos == 1
    a2 = store.begin_attempt(job_id, (0,), colocated=True, now_unix=time.time())
    store.end_attempt(job_id, a2, 0, "finished", "finished", time.time())
    row = store.job(job_id)
    assert row.state == "finished" and row.finish_unix is not None and row.gpus is None
    assert [a.outcome for a in store.attempts(job_id)] == ["stopped", "finished"]
    assert store.request_cancel(job_id) == "finished"
    q = store.submit("b", spec.model_dump_json())
    running = store.submit("c", spec.model_dump_json())
    store.begin_attempt(running, (0,), colocated=False, now_unix=time.time())
    assert store.active_states() == {q: ("queued", False), running: ("running", False)}  # no finished job
    assert store.request_cancel(q) == "cancelled"
    assert store.request_cancel(running) == "running"
    assert store.active_states() == {running: ("running", True)}
    rows, omitted = store.recent_jobs(1)  # the running job and the latest ended one (q)
    assert [r.job_id for r in rows] == [q, running] and omitted == 1
    assert [r.job_id for r in store.recent_jobs(0)[0]] == [running]
    store.close()
    # a second connection (another thread or process) sees the same data
    again = Store(tmp_path / "r.db")
    assert [r.state for r in again.jobs()] == ["finished", "cancelled", "running"]
    again.close()


def test_store_counts_moves_apart_from_undos(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    spec = spec_from_yaml(job_yaml("a"))
    job_id = store.submit("a", spec.model_dump_json())
    attempt = store.begin_attempt(job_id, (0,), colocated=False, now_unix=time.time())
    store.request_undo(job_id, reason="migration")  # the consolidator empties its node
    store.end_attempt(job_id, attempt, 75, "stopped", "queued", time.time())
    row = store.job(job_id)
    assert (row.undos, row.migrations) == (0, 1)
    assert "move" in [kind for _, _, kind, _ in store.events(job_id)]
    store.close()
    per_state, undos, migrations, attempts = store_counts(tmp_path / "r.db")
    assert (per_state["queued"], undos, migrations, attempts) == (1, 0, 1, 1)


def test_store_written_by_older_schemas_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT INTO meta VALUES ('schema_version', '1');"
                     "CREATE TABLE jobs (job_id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
                     "spec_json TEXT NOT NULL, state TEXT NOT NULL, submit_unix REAL NOT NULL, "
                     "exclusive_only INTEGER NOT NULL DEFAULT 0, gpus TEXT, next_gpus TEXT, "
                     "attempts INTEGER NOT NULL DEFAULT 0, undos INTEGER NOT NULL DEFAULT 0, "
                     "epochs_done INTEGER NOT NULL DEFAULT 0, first_start_unix REAL, placed_unix REAL, "
                     "epochs_at_placement INTEGER NOT NULL DEFAULT 0, finish_unix REAL, "
                     "run_time_s REAL NOT NULL DEFAULT 0, colocated_s REAL NOT NULL DEFAULT 0, "
                     "energy_j REAL NOT NULL DEFAULT 0, exit_code INTEGER, reason TEXT, "
                     "cancel_requested INTEGER NOT NULL DEFAULT 0);"
                     "INSERT INTO jobs(name, spec_json, state, submit_unix, undos) VALUES ('old', '{}', 'finished', 1.0, 2);"
                     "CREATE TABLE exclusive_epochs (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, "
                     "workload_key TEXT NOT NULL, epoch INTEGER NOT NULL, duration_s REAL NOT NULL, end_unix REAL NOT NULL);"
                     "INSERT INTO exclusive_epochs(job_id, workload_key, epoch, duration_s, end_unix) VALUES (1, 'k', 1, 2.5, 9.0);"
                     # energy per hour as schema 3 kept it: no split columns
                     "CREATE TABLE energy_hours (hour_start_unix INTEGER PRIMARY KEY, duration_s REAL NOT NULL DEFAULT 0, "
                     "gpu_busy_j REAL NOT NULL DEFAULT 0, gpu_idle_j REAL NOT NULL DEFAULT 0, host_j REAL NOT NULL DEFAULT 0, "
                     "model_gpu_busy_j REAL NOT NULL DEFAULT 0, model_gpu_idle_j REAL NOT NULL DEFAULT 0, "
                     "counter_gpu_s REAL NOT NULL DEFAULT 0, power_gpu_s REAL NOT NULL DEFAULT 0, model_gpu_s REAL NOT NULL DEFAULT 0);"
                     "INSERT INTO energy_hours(hour_start_unix, duration_s, gpu_busy_j) VALUES (3600, 60.0, 500.0);")
    db.commit()
    db.close()
    store = Store(path)
    row = store.job(1)
    assert (row.name, row.undos, row.migrations) == ("old", 2, 0)
    assert store.meta("schema_version") == "4"
    energy = store.energy_totals()
    assert (energy["gpu_busy_j"], energy["split_measured_gpu_s"], energy["split_declared_gpu_s"]) == (500.0, 0.0, 0.0)
    store.add_accounting({}, {"duration_s": 10.0, "split_measured_gpu_s": 10.0}, 3600.0 + 30.0)
    assert store.energy_totals()["split_measured_gpu_s"] == 10.0
    # alone epochs from before they carried a GPU type: the daemon marks them with its own type
    assert store.exclusive_epochs(1, 5) == [(2.5, None)]
    assert store.fill_epoch_gpu_type("v100") == 1 and store.fill_epoch_gpu_type("a100") == 0
    assert store.workload_exclusive_epochs("k", 5) == [(2.5, "v100")]
    store.close()


# ------------------------------------------------------------------ daemon runs
class Daemon:
    """A daemon subprocess on a state folder; stopped (and its jobs reaped) by the test."""

    def __init__(self, state: Path, policy: str = "eaco", extra: tuple[str, ...] = ()) -> None:
        self.state = state
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eaco.runtime", "--state-dir", str(state), "--gpus", "2xv100", "--policy", policy, "--tick-s", "0.1", *extra],
            stdout=subprocess.DEVNULL, stderr=open(state.parent / f"daemon-{state.name}.err", "ab"), start_new_session=True,
        )
        wait_for(lambda: (state / "api.json").exists() and json.loads((state / "api.json").read_text())["pid"] == self.proc.pid, 20, "daemon API")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=15)




def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def job_states(state: Path) -> dict[int, str]:
    store = Store(state / "runtime.db")
    try:
        return {r.job_id: r.state for r in store.jobs()}
    finally:
        store.close()




def submit(state: Path, tmp_path: Path, name: str, **kw) -> int:  # type: ignore[no-untyped-def]
    p = tmp_path / f"{name}.yaml"
    p.write_text(job_yaml(name, **kw))
    return int(cli("submit", str(p), "--state-dir", str(state)).strip())


def test_four_jobs_on_two_gpus_colocated_all_finish(state_dir: Path, tmp_path: Path) -> None:
    daemon = Daemon(state_dir)
    try:
        ids = [submit(state_dir, tmp_path, f"job{i}", epochs=3, steps=40) for i in range(4)]
        # a malformed spec is refused with the field named, and nothing else changes
        bad = tmp_path / "bad.yaml"
        bad.write_text(job_yaml("bad").replace("epochs: 3", "epochs: zero"))
        result = runner.invoke(app, ["submit", str(bad), "--state-dir", str(state_dir)])
        assert result.exit_code == 1 and "field 'epochs'" in result.output
        unknown = tmp_path / "unknown.yaml"
        unknown.write_text(job_yaml("u").replace("job_type: resnet18", "job_type: nosuchmodel"))
        result = runner.invoke(app, ["submit", str(unknown), "--state-dir", str(state_dir)])
        assert result.exit_code == 1 and "field 'job_type'" in result.output
        # the GPUs now, for people and as JSON
        table = cli("status", "--gpus", "--state-dir", str(state_dir))
        assert "memory GB" in table and "2 GPUs:" in table and "power not measured" in table
        gpus = json.loads(cli("status", "--gpus", "--json", "--state-dir", str(state_dir)))["gpus"]
        assert [(g["gpu"], g["node"], g["gpu_type"], g["memory_gb"]) for g in gpus] == [(0, "local", "v100", 32.0), (1, "local", "v100", 32.0)]
        assert all(set(g["jobs"]) <= set(ids) and g["memory_reserved_gb"] >= 0 for g in gpus)
        good = tmp_path / "job0.yaml"
        result = runner.invoke(app, ["submit", str(good), str(unknown), "--state-dir", str(state_dir)])
        assert result.exit_code == 1 and "unknown.yaml" in result.output and "nothing submitted" in result.output
        assert sorted(job_states(state_dir)) == ids
        # following a job's output returns once it has ended, with every line
        followed = cli("logs", str(ids[3]), "--follow", "--poll-s", "0.1", "--state-dir", str(state_dir))
        assert job_states(state_dir)[ids[3]] == "finished" and "epoch 2 loss" in followed
        assert followed.count("epoch 0 loss") == 1
        wait_for(lambda: all(s == "finished" for s in job_states(state_dir).values()), 60, "4 jobs to finish")
        summary = json.loads(cli("status", "--summary", "--json", "--state-dir", str(state_dir)))
        table = cli("status", "--summary", "--state-dir", str(state_dir))
        assert "JCT s" in table and "jobs: 4 finished" in table and "GPU energy modelled" in table
        priced = json.loads(cli("status", "--summary", "--json", "--price-per-kwh", "0.2", "--state-dir", str(state_dir)))
        assert priced["costs"]["cluster"]["cost"] == pytest.approx(priced["energy"]["total_kwh"] * 0.2, rel=0.05)
        tariff = tmp_path / "tariff.csv"
        tariff.write_text("hour,price_per_kwh\n" + "".join(f"{h},0.2\n" for h in range(24)))
        hourly = json.loads(cli("status", "--summary", "--json", "--grid", str(tariff), "--state-dir", str(state_dir)))
        assert hourly["costs"]["hourly"] and hourly["costs"]["cluster"]["cost"] == pytest.approx(priced["costs"]["cluster"]["cost"], rel=0.05)
        assert "status" not in summary
        assert "job0" in cli("status", "--state-dir", str(state_dir))
        one = cli("status", str(ids[0]), "--state-dir", str(state_dir))  # one job, for people
        assert one.startswith(f"job {ids[0]} job0: finished") and "events:" in one and "submitted" in one
        assert "attempt-finished" in one and "outcome" in one
        assert "epoch 2 loss" in cli("logs", str(ids[0]), "--state-dir", str(state_dir))
    finally:
        daemon.kill(signal.SIGTERM)
    store = Store(state_dir / "runtime.db")
    attempts = store.attempts()
    store.close()
    gpus_of = {a.job_id: a.gpus for a in attempts}
    shared = [g for g in (0, 1) if sum(1 for gs in gpus_of.values() if g in gs) >= 2]
    assert shared, f"no GPU was shared: {gpus_of}"
    # the daemon printed every job's events on stderr, the sharing named
    daemon_log = (state_dir.parent / f"daemon-{state_dir.name}.err").read_text()
    for job_id in ids:
        assert f"INFO job {job_id} submitted: job" in daemon_log and f"INFO job {job_id} attempt-finished" in daemon_log
    assert ", sharing with job" in daemon_log
    assert all(a.outcome == "finished" for a in attempts) and len(attempts) == 4
    assert summary["counts"]["finished"] == 4 and summary["colocated_jobs"] >= 2
    assert summary["energy"]["total_j"] > 0 and "modelled" in summary["energy"]["label"]
    assert all(j["jct_s"] and j["jct_s"] > 0 and j["energy_j"] > 0 for j in summary["jobs"])
    assert (state_dir / "summary.json").exists()
    # what ran, as a trace the simulator replays on the same GPUs
    trace = tmp_path / "ran.csv"
    from eaco.cli import app as eaco_app

    def eaco(*args: str) -> str:
        result = runner.invoke(eaco_app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    said = " ".join(eaco("export-trace", "--out", str(trace), "--state-dir", str(state_dir)).split())
    assert said.startswith("wrote 4 job(s)") and f"replay it: eaco simulate -w csv:{trace} -c 1x2xv100 --no-slos" in said
    rows = {r["name"]: r for r in csv.DictReader(trace.open())}
    by_name = {j["name"]: j for j in summary["jobs"]}
    for name, row in rows.items():
        assert row["runtime_state"] == "finished" and row["epochs"] == "3" and row["job_type"] == "resnet18"
        assert float(row["runtime_jct_s"]) == pytest.approx(by_name[name]["jct_s"])
        assert row["epoch_source"] in ("measured", "history", "declared")
        if row["epoch_source"] == "measured":  # its own alone epochs, on the reference V100 as they ran
            assert float(row["duration_s"]) == pytest.approx(3 * by_name[name]["exclusive_epoch_s"])
    replay = tmp_path / "replay"
    eaco("simulate", "-w", f"csv:{trace}", "-c", "1x2xv100", "--no-slos", "-p", "fifo,eaco", "--out", str(replay))
    replayed = json.loads((replay / "metrics.json").read_text())["policies"]
    assert [(m["policy"], m["num_jobs"], m["cluster"], m["jobs_with_deadline"]) for m in replayed] == [
        ("fifo", 4, "1x2xv100", 0), ("eaco", 4, "1x2xv100", 0)]
    # ... and as a report: the same jobs and attempts, the sharing on the timeline
    report = tmp_path / "report"
    said = " ".join(eaco("report", "--state-dir", str(state_dir), "-o", str(report)).split())
    assert said.startswith(f"4 jobs, 4 attempts, {summary['colocated_jobs']} co-located")
    reported = {int(r["job_id"]): r for r in csv.DictReader((report / "jobs.csv").open())}
    assert {j: r["state"] for j, r in reported.items()} == {j: "finished" for j in ids}
    assert all(float(reported[j["job_id"]]["jct_s"]) == pytest.approx(j["jct_s"]) for j in summary["jobs"])
    assert sorted((int(r["job_id"]), r["gpus"]) for r in csv.DictReader((report / "attempts.csv").open())) == sorted(
        (a.job_id, " ".join(map(str, a.gpus))) for a in attempts)
    assert (report / "timeline.png").stat().st_size > 1000 and "## Timeline" in (report / "report.md").read_text()


def test_a_policy_of_your_own_drives_the_runtime(state_dir: Path, tmp_path: Path) -> None:
    """The example policy file (docs/policies.md) as the daemon's policy: the same object the
    simulator runs places real jobs, and shares a GPU by its own rule."""
    example = Path(__file__).resolve().parents[1] / "examples" / "policies" / "util_pack.py"
    daemon = Daemon(state_dir, policy=f"{example}:UtilPack")
    try:
        ids = [submit(state_dir, tmp_path, f"own{i}", epochs=2, steps=30) for i in range(3)]
        wait_for(lambda: all(s == "finished" for s in job_states(state_dir).values()), 60, "3 jobs to finish")
    finally:
        daemon.kill(signal.SIGTERM)
    store = Store(state_dir / "runtime.db")
    attempts = store.attempts()
    store.close()
    assert sorted(a.job_id for a in attempts) == ids and all(a.outcome == "finished" for a in attempts)
    assert any(a.colocated for a in attempts), [(a.job_id, a.gpus) for a in attempts]


def test_crash_while_colocated_is_requeued_exclusive(state_dir: Path, tmp_path: Path) -> None:
    daemon = Daemon(state_dir)
    try:
        specs = []
        for i in range(3):
            specs.append(tmp_path / f"c{i}.yaml")
            specs[-1].write_text(job_yaml(f"c{i}", epochs=3, steps=30))
        ids = [int(x) for x in cli("submit", *map(str, specs), "--state-dir", str(state_dir)).split()]  # several at once
        assert ids == sorted(ids) and len(set(ids)) == 3
        bad = submit(state_dir, tmp_path, "crashy", epochs=3, steps=30, args="--fail-at-epoch 1 --fail-kind oom")
        # training done and reported, then a crash on the way out: finished, not run again
        done = submit(state_dir, tmp_path, "exit-crashy", epochs=2, steps=30, args="--fail-at-exit")
        wait_for(lambda: all(s == "finished" for s in job_states(state_dir).values()), 60, "jobs to finish")
    finally:
        daemon.kill(signal.SIGTERM)
    store = Store(state_dir / "runtime.db")
    row, attempts = store.job(bad), store.attempts(bad)
    done_row, done_attempts = store.job(done), store.attempts(done)
    store.close()
    assert [a.outcome for a in attempts] == ["oom", "finished"], attempts
    assert attempts[0].colocated and row.exclusive_only and "exclusively" in (row.reason or "")
    assert [(a.outcome, a.exit_code) for a in done_attempts] == [("finished", 1)], done_attempts
    assert "'end' record" in (done_row.reason or "") and not done_row.exclusive_only
    assert len(ids) == 3


def test_daemon_sigkill_and_restart_loses_nothing_runs_nothing_twice(state_dir: Path, tmp_path: Path) -> None:
    daemon = Daemon(state_dir)
    try:
        ids = [submit(state_dir, tmp_path, f"k{i}", epochs=4, steps=60) for i in range(4)]
        wait_for(lambda: sum(1 for s in job_states(state_dir).values() if s == "running") >= 2, 30, "jobs to run")
        daemon.kill(signal.SIGKILL)
        running_before = {j for j, s in job_states(state_dir).items() if s == "running"}
        daemon = Daemon(state_dir)
        wait_for(lambda: all(s == "finished" for s in job_states(state_dir).values()), 90, "jobs to finish after restart")
    finally:
        daemon.kill(signal.SIGTERM)
    store = Store(state_dir / "runtime.db")
    rows = {r.job_id: r for r in store.jobs()}
    attempts = store.attempts()
    events = store.events()
    store.close()
    assert sorted(rows) == ids and all(r.state == "finished" for r in rows.values())
    for job_id in running_before:
        outcomes = [a.outcome for a in attempts if a.job_id == job_id]
        if outcomes != ["finished"]:  # re-attached: still its first and only attempt ...
            # ... unless the daemon died before its process was on record: then that attempt was
            # given up (its wrapper, if it started at all, did not run the job) and requeued
            assert outcomes == ["lost", "finished"], (job_id, outcomes)
            assert any(j == job_id and kind == "recover" and "left no process" in detail for _, j, kind, detail in events)
    assert any(kind == "recover" and "watching it again" in detail for _, _, kind, detail in events)
    # never two attempts of one job at the same time
    for job_id in ids:
        mine = sorted((a.start_unix, a.end_unix or 0.0) for a in attempts if a.job_id == job_id)
        assert all(prev[1] <= nxt[0] for prev, nxt in zip(mine, mine[1:]))


def test_an_attempt_given_up_on_restart_never_starts_its_job(tmp_path: Path) -> None:
    """The handshake of eaco.runtime.wrapper: a daemon killed before a new attempt's process was on
    record lets the next one give it up; a wrapper starting late must then not run the job, and
    one that started before the give-up is watched, not duplicated."""
    import subprocess
    import sys

    from eaco.runtime.local_backend import LocalBackend
    from eaco.runtime.wrapper import ABANDONED_FILE, EXIT_ABANDONED, EXIT_FILE, WRAPPER_FILE

    late = tmp_path / "late"
    late.mkdir()
    (late / ABANDONED_FILE).touch()  # given up before the wrapper got going
    marker = tmp_path / "ran"
    proc = subprocess.run([sys.executable, "-m", "eaco.runtime.wrapper", str(late), "--",
                           sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"], timeout=60)
    assert proc.returncode == EXIT_ABANDONED
    assert not marker.exists() and (late / WRAPPER_FILE).exists() and not (late / EXIT_FILE).exists()

    # the give-up itself (Runtime._abandon_or_find): mark, then look again
    from eaco.runtime.engine import Runtime

    class _Stub:
        backend = LocalBackend()

    nothing = tmp_path / "nothing"
    assert Runtime._abandon_or_find(_Stub(), nothing) is None  # type: ignore[arg-type]
    assert (nothing / ABANDONED_FILE).exists()
    started = tmp_path / "started"
    started.mkdir()
    (started / WRAPPER_FILE).write_text('{"pid": 12345, "start_ticks": 7}')  # its wrapper won the race
    handle = Runtime._abandon_or_find(_Stub(), started)  # type: ignore[arg-type]
    assert handle is not None and handle.pid == 12345 and handle.start_ticks == 7


def test_example_specs_are_valid_and_runnable_here() -> None:
    from eaco.runtime.gpus import declared_gpus
    from eaco.runtime.jobs import check_runnable
    from eaco.setup import load_environment

    catalog = load_environment().catalog
    root = Path(__file__).resolve().parents[1] / "examples" / "runtime"
    specs = sorted(root.glob("*.yaml"))
    assert {p.name for p in specs} >= {"tiny_mlp.yaml", "zoo_resnet18.yaml", "ddp_mlp.yaml"}
    for p in specs:
        check_runnable(load_spec(p), catalog, declared_gpus("2xv100"), str(p))


def test_two_torchrun_jobs_share_the_gpus_each_meeting_at_its_own_port(state_dir: Path, tmp_path: Path) -> None:
    """Two data-parallel jobs started by a plain ``torchrun`` (no options: the runtime gives it one
    process per GPU and a meeting port of the attempt's own) share both GPUs under EaCO and
    finish; only rank 0 of each reports, so each epoch is counted once."""
    specs = []
    for name in ("ddp-a", "ddp-b"):
        p = tmp_path / f"{name}.yaml"
        p.write_text(ddp_spec(name, epochs=3, num_gpus=2, extra="gpu_util: 0.3\nmemory_gb: 2\nslack: 20\n"))
        specs.append(str(p))
    daemon = Daemon(state_dir, extra=("--share-unmeasured",))
    try:
        ids = [int(x) for x in cli("submit", *specs, "--state-dir", str(state_dir)).split()]
        wait_for(lambda: all(job_states(state_dir)[j] in ("finished", "failed") for j in ids), 120, "both torchrun jobs to end")
        store = Store(state_dir / "runtime.db")
        try:
            for j in ids:
                assert store.job(j).state == "finished", cli("logs", str(j), "--state-dir", str(state_dir))
                records = [json.loads(x) for x in (state_dir / "jobs" / str(j) / "report.jsonl").read_text().splitlines()]
                assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0, 1, 2]
                assert records[0]["detail"]["world_size"] == 2  # torchrun started one process per GPU
            assert any(a.colocated for a in store.attempts()), [(a.job_id, a.gpus, a.colocated) for a in store.attempts()]
        finally:
            store.close()
    finally:
        daemon.kill(signal.SIGTERM)


def test_a_zoo_job_runs_under_the_daemon_and_checkpoints_in_the_runtime_folder(state_dir: Path, tmp_path: Path) -> None:
    """The profiler's zoo job reports epochs to the runtime and checkpoints where it says."""
    p = tmp_path / "zoo.yaml"
    p.write_text(
        "name: zoo-ncf\n"
        f"command: {sys.executable} -m eaco.profiler.train --model ncf --job-name zoo-ncf --epochs 2 --steps-per-epoch 3"
        " --batch-size 4 --width-mult 0.125 --num-users 50 --num-items 60 --device cpu --workers 0 --threads 1\n"
        "epochs: 2\nexpected_epoch_s: 0.5\njob_type: Recommendation (batch size 512)\nmemory_gb: 2\nenv: {OMP_NUM_THREADS: '1'}\n"
    )
    daemon = Daemon(state_dir)
    try:
        job_id = int(cli("submit", str(p), "--state-dir", str(state_dir)).strip())
        wait_for(lambda: job_states(state_dir)[job_id] in ("finished", "failed"), 60, "the zoo job to end")
        detail = json.loads(cli("status", str(job_id), "--json", "--state-dir", str(state_dir)))
        assert detail["job"]["state"] == "finished", cli("logs", str(job_id), "--state-dir", str(state_dir))
    finally:
        daemon.kill(signal.SIGTERM)
    assert detail["job"]["epochs_done"] == 2
    assert (state_dir / "jobs" / str(job_id) / "checkpoints" / "zoo-ncf.pt").exists()


def test_store_events_are_logged_once_committed(tmp_path: Path) -> None:
    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    store = Store(tmp_path / "runtime.db")
    events_log = logging.getLogger("eaco.runtime.events")
    collect, old_level = Collect(), events_log.level
    events_log.addHandler(collect)
    events_log.setLevel(logging.INFO)
    try:
        store.event(None, "node-lost", "node n1: GPU 3 fenced")
        with pytest.raises(RuntimeError):
            with store.transaction() as db:
                store._event(db, 7, "never", "rolled back")
                raise RuntimeError("abort")
        store.event(7, "memory", "")
        assert collect.messages == ["node-lost: node n1: GPU 3 fenced", "job 7 memory"]
        assert [e[2] for e in store.events()] == ["node-lost", "memory"]  # the rolled-back one is gone too
    finally:
        events_log.removeHandler(collect)
        events_log.setLevel(old_level)
        store.close()


def test_log_reads_from_an_offset_give_whole_lines(tmp_path: Path) -> None:
    from eaco.runtime.api import read_from, read_tail

    log = tmp_path / "job.log"
    assert read_from(log, 0) == ("", 0) and read_tail(log, 10) == ("", 0)
    log.write_bytes(b"one\ntwo\nthr")
    assert read_from(log, 0) == ("one\ntwo\n", 8)  # the line being written waits
    assert read_from(log, 8) == ("", 8)
    assert read_from(log, 8, whole_lines=False) == ("thr", 11)
    assert read_from(log, 0, max_bytes=2) == ("on", 2)  # a line longer than the limit comes in parts
    assert read_tail(log, 3) == ("thr", 11)


def test_gpus_payload_names_each_gpus_node() -> None:
    from eaco.runtime.api import gpus_payload
    from eaco.runtime.gpu_meter import GpuInterval
    from eaco.runtime.metrics import GpuSnapshot, RuntimeSnapshot
    from eaco.runtime.ray_inventory import RayInventory, RayNode
    inventory = RayInventory("v100", (0, 1, 2), True, (RayNode("a", 2, "v100"), RayNode("b", 1, "v100")))
    gpus = (GpuSnapshot(0, "v100", (3, 4), 24.0, 32.0, 0.9, GpuInterval(10.0, "counter", 250.0, 0.8, None)),
            GpuSnapshot(1, "v100", (), 0.0, 32.0, 0.0),
            GpuSnapshot(2, "v100", (5,), 8.0, 32.0, 0.4))
    snap = RuntimeSnapshot(1.0, 0, 3, 0, 2, {}, {}, 0.0, 0, gpus)
    out = gpus_payload(snap, inventory)
    assert [(g["gpu"], g["node"], g["jobs"]) for g in out["gpus"]] == [(0, "a", [3, 4]), (1, "a", []), (2, "b", [5])]
    assert out["gpus"][0]["power_w"] == 250.0 and out["gpus"][0]["util_measured"] == 0.8 and out["gpus"][1]["power_w"] is None
    assert gpus_payload(None, inventory) == {"time_unix": None, "gpus": []}
    from eaco.runtime_cli import format_gpus

    text = format_gpus(out)
    assert "3,4" in text and "24.0/32" in text and "3 GPUs: 2 busy, 1 shared" in text and "power not measured" not in text


def test_eaco_settings_reach_the_daemons_policy(tmp_path: Path) -> None:
    """`eaco serve --eaco-setting NAME=VALUE`: the live EaCO runs with those settings; a bad one,
    or one for another policy, is refused before anything starts."""
    from eaco.policies.eaco import EacoPolicy, EacoSettings
    from eaco.policies.variants import parse_settings
    from eaco.runtime.daemon import ServeOptions, build_runtime
    from eaco.runtime.gpus import declared_gpus

    settings, changes = parse_settings(["alpha=0.25", "util-threshold=0.7", "wait_for_faster_type=false"],
                                       EacoSettings(), "--eaco-setting")
    assert changes == {"alpha": 0.25, "util_threshold": 0.7, "wait_for_faster_type": False}
    runtime, _ = build_runtime(ServeOptions(tmp_path / "state", declared_gpus("1xv100"), "eaco", eaco_settings=settings))
    try:
        assert isinstance(runtime.policy, EacoPolicy) and runtime.policy.settings == settings
    finally:
        runtime.store.close()
    state = tmp_path / "refused"
    for args, message in [
        (["--eaco-setting", "alpha=2"], "--eaco-setting: EacoSettings: alpha must be in [0, 1]"),
        (["--eaco-setting", "alpah=0.5"], "--eaco-setting: unknown EaCO setting 'alpah'"),
        (["--eaco-setting", "reserve=maybe"], "--eaco-setting: reserve: expected true or false, got 'maybe'"),
        (["--eaco-setting", "alpha=0.5", "--eaco-setting", "alpha=0.6"], "--eaco-setting: alpha is given twice"),
        (["--eaco-setting", "alpha"], "--eaco-setting: expected NAME=VALUE"),
        (["--policy", "fifo", "--eaco-setting", "alpha=0.5"], "--eaco-setting: applies to --policy eaco, not 'fifo'"),
        (["--ray-checkpoint-sync", "often"], "--ray-checkpoint-sync: expected a number of seconds > 0, 'end' or 'off', got 'often'"),
        (["--ray-checkpoint-sync", "0"], "--ray-checkpoint-sync: expected a number of seconds > 0"),
    ]:
        result = runner.invoke(app, ["serve", "--state-dir", str(state), "--gpus", "1xv100", *args])
        assert result.exit_code == 1 and message in " ".join(result.output.split()), (args, result.output)
    assert not state.exists()
