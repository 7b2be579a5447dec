"""Undo on real processes: EaCO co-locates, observes the real epoch reports, undoes; the job stops at
its epoch end (checkpoint, exit 75) and resumes on the GPUs the policy chose, losing no epoch and
running none twice. And: while the undone job's old process finishes its epoch, its GPU memory is
still counted (no other job is placed into it).

The daemon runs in a thread of the test (``serve`` with a policy factory) so that EaCO's history H
can be seeded with a misleading measurement, the way tests/test_eaco.py forces an undo: H is told
that resnet50 + vgg16 share a V100 at full speed (0.99 each), so EaCO co-locates them. The vgg16
job declares ``expected_epoch_s`` far below its real epoch time and never runs alone before it is
co-located (so the declaration is its baseline, docs/runtime.md), so its observed speed (declared
exclusive epoch time / measured epoch time) is about 0.1: the real reports contradict H, the deadline
check fails and EaCO undoes the co-location. The policy is EaCO itself; the subclass only records
its decisions.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path


from eaco.policies.decisions import Place, Undo
from eaco.policies.eaco import EacoPolicy
from eaco.policies.registry import PolicyContext
from eaco.runtime.client import RuntimeClient
from eaco.runtime.control import EXIT_STOPPED
from eaco.runtime.daemon import ServeOptions, build_runtime
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.store import Store
from functools import partial

from runtime_helpers import InThreadDaemon
from runtime_helpers import wait_for as _wait_for

wait_for = partial(_wait_for, poll_s=0.02)

V100 = "v100"
GPU_MEMORY_GB = 32.0


class RecordingEaco(EacoPolicy):
    """EaCO unchanged; remembers what it decided."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.decisions: list[object] = []

    def schedule(self, view):  # type: ignore[no-untyped-def]
        out = super().schedule(view)
        self.decisions.extend(out)
        return out


class ThreadDaemon(InThreadDaemon):
    """``serve`` in a thread with a seeded EaCO; stopped (and its jobs killed) by the test."""

    def __init__(self, state: Path, seed: list[tuple[tuple[str, ...], tuple[float, ...]]]) -> None:
        self.policy: RecordingEaco | None = None

        def factory(ctx: PolicyContext) -> RecordingEaco:
            h = ctx.new_predictor()
            for types, speeds in seed:
                h.record(types, V100, speeds)
            # no reservations: these scenarios are about undo. With them on, B (urgent after its
            # undo) holds the only node, so C may not join A, and B may go back to GPU 0 once A
            # ends (alone there, which is fine) instead of to X's GPU: a race on the machine's speed
            settings = replace(ctx.eaco_settings, reserve=False)
            self.policy = RecordingEaco(h, ctx.catalog, ctx.energy, settings)
            return self.policy

        super().__init__(ServeOptions(state, declared_gpus("2xv100"), "eaco", tick_s=0.05), factory, start_timeout_s=20)


B_EPOCHS = 7  # the undone job's epochs






def spec(tmp_path: Path, name: str, job_type: str, epochs: int, steps: int, expected_epoch_s: float,
         memory_gb: float, extra: str = "") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(
        f"name: {name}\n"
        f"command: {sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs {epochs} --steps-per-epoch {steps}\n"
        f"epochs: {epochs}\nexpected_epoch_s: {expected_epoch_s}\njob_type: {job_type}\nmemory_gb: {memory_gb}\n"
        f"env: {{OMP_NUM_THREADS: '1'}}\n{extra}"
    )
    return p


def db_rows(state: Path):  # type: ignore[no-untyped-def]
    store = Store(state / "runtime.db")
    try:
        return {r.job_id: r for r in store.jobs()}, store.attempts(), store.events()
    finally:
        store.close()


def epoch_records(state: Path, job_id: int) -> list[dict]:
    lines = (state / "jobs" / str(job_id) / "report.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def max_concurrent_memory(attempts, memory_of: dict[int, float], gpu: int) -> float:  # type: ignore[no-untyped-def]
    """Most memory the attempts alive at one moment on ``gpu`` declared (a sweep over start/end)."""
    points: list[tuple[float, int, float]] = []
    for a in attempts:
        if gpu in a.gpus:
            points.append((a.start_unix, 1, memory_of[a.job_id]))
            points.append((a.end_unix if a.end_unix is not None else float("inf"), 0, memory_of[a.job_id]))
    used = peak = 0.0
    for _, kind, mem in sorted(points):  # at a tie an end (0) comes before a start (1)
        used += mem if kind == 1 else -mem
        peak = max(peak, used)
    return peak


def test_colocation_observed_undone_and_resumed_on_new_gpus(state_dir: Path, tmp_path: Path) -> None:
    # A (resnet50) runs on one GPU, X (alexnet) on the other; B (vgg16) can only join A (H: the
    # pair is fine; next to X it is not). B's real epoch takes ~1 s where it declared 0.15 s: its
    # observed speed (~0.15) contradicts H -> its deadline would be missed -> EaCO undoes it.
    # C (resnet18) arrives while B's old process finishes its epoch: it fits next to A as far as
    # H goes, but A + B + C (3 x 12 GB) do not fit one 32 GB GPU while B still holds its memory.
    seed = [(("resnet50", "vgg16"), (0.99, 0.99)),   # misleading: B will crawl next to A
            (("resnet18", "resnet50"), (0.99, 0.99)),  # C may join A
            (("alexnet", "resnet50"), (0.3, 0.3)),     # X never joins A,
            (("alexnet", "vgg16"), (0.3, 0.3)),        # ... B never joins X
            (("alexnet", "resnet18"), (0.3, 0.3)),     # ... nor C
            (("resnet18", "vgg16"), (0.3, 0.3))]       # ... and C never joins B
    daemon = ThreadDaemon(state_dir, seed)
    try:
        client = RuntimeClient(state_dir)
        a = client.submit(spec(tmp_path, "a", "resnet50", epochs=8, steps=2000, expected_epoch_s=1.0, memory_gb=12))
        wait_for(lambda: db_rows(state_dir)[0][a].state == "running", 15, "A to run")
        x = client.submit(spec(tmp_path, "x", "alexnet", epochs=5, steps=2000, expected_epoch_s=1.0, memory_gb=12))
        wait_for(lambda: db_rows(state_dir)[0][x].state == "running", 15, "X to run")
        # B has epochs to spare: an undo decided while B runs its last epoch would be moot (it
        # checks for the stop request only between epochs), so the undo must land well before.
        # Its deadline (16 s) is one it can still meet alone when the observation ends (else EaCO
        # treats it as lost and best-effort: no undo), even on a slow machine (its 6 epochs left
        # take 0.9 s alone as declared: first epoch done by ~15 s will do; 12 s was too tight
        # for a loaded 2-core host, 2 failures in about 12 runs), and one it misses at the
        # observed speed whenever the observation ends (H then plans with 0.05: 18 s left)
        b = client.submit(spec(tmp_path, "b", "vgg16", epochs=B_EPOCHS, steps=2500, expected_epoch_s=0.15, memory_gb=12,
                               extra="deadline_s: 16\n"))
        # the undo: B asked to stop; its old process runs on until its epoch end
        wait_for(lambda: db_rows(state_dir)[0][b].state == "stopping", 30, "B to be undone")
        assert (state_dir / "jobs" / str(b) / "control" / "stop").exists()
        c = client.submit(spec(tmp_path, "c", "resnet18", epochs=2, steps=1500, expected_epoch_s=0.5, memory_gb=12))
        wait_for(lambda: all(r.state == "finished" for r in db_rows(state_dir)[0].values()), 60, "all jobs to finish")
    finally:
        daemon.close()
    assert not daemon.errors, daemon.errors
    rows, attempts, events = db_rows(state_dir)
    policy = daemon.policy
    assert policy is not None
    by_job = {j: [t for t in attempts if t.job_id == j] for j in (a, b, c, x)}

    # B was co-located with A, then undone by EaCO itself after observing real epochs
    places_b = [d.gpus for d in policy.decisions if isinstance(d, Place) and d.job_id == b]
    gpu_a = by_job[a][0].gpus
    assert places_b[0] == gpu_a, (places_b, gpu_a)
    assert Undo(b) in policy.decisions and policy.stats.undos == 1 and policy.stats.undo_job_ids == [b]
    assert policy.predictor.observations >= 1  # H learnt from the real reports

    # attempt 1 stopped on request (exit 75) after reporting its epoch; attempt 2 ran on the GPUs
    # the policy chose next (not the undone set), and finished
    first, second = by_job[b]
    assert (first.outcome, first.exit_code, first.gpus, first.colocated) == ("stopped", EXIT_STOPPED, gpu_a, True)
    assert (second.outcome, second.exit_code) == ("finished", 0)
    assert len(places_b) == 2 and second.gpus == places_b[1]
    # never back into the undone set: another GPU, or A's once A had ended (on a machine slowed
    # enough, A may end before X, and B then takes A's GPU alone)
    a_end = by_job[a][-1].end_unix
    assert second.gpus != gpu_a or (a_end is not None and a_end <= second.start_unix), (second, by_job[a])
    assert first.end_unix is not None and first.end_unix <= second.start_unix
    assert rows[b].undos == 1 and rows[b].attempts == 2 and rows[b].epochs_done == B_EPOCHS
    assert any(kind == "undo" for _, j, kind, _ in events if j == b)

    # every epoch exactly once across the two attempts; the second resumed from the checkpoint
    recs = epoch_records(state_dir, b)
    epochs = [r["epoch"] for r in recs if r["event"] == "epoch"]
    assert sorted(epochs) == list(range(B_EPOCHS)) and len(epochs) == len(set(epochs)), epochs
    starts = [i for i, r in enumerate(recs) if r["event"] == "start"]
    assert len(starts) == 2 and recs[starts[0]]["detail"]["resumed_at_epoch"] == 0
    resumed_at = recs[starts[1]]["detail"]["resumed_at_epoch"]
    before = [r["epoch"] for r in recs[: starts[1]] if r["event"] == "epoch"]
    after = [r["epoch"] for r in recs[starts[1]:] if r["event"] == "epoch"]
    assert 1 <= resumed_at < B_EPOCHS and before == list(range(resumed_at)) and after == list(range(resumed_at, B_EPOCHS))
    assert recs[starts[1]]["detail"]["attempt"] == 2
    log = (state_dir / "jobs" / str(b) / "job.log").read_text()
    assert f"at epoch {resumed_at}" in log and "resumed from" in log
    # the stopped attempt reported its last epoch (and checkpointed) before it exited
    assert max(r["end_time_s"] for r in recs[: starts[1]] if r["event"] == "epoch") <= first.end_unix
    assert all(r["checkpoint"] for r in recs if r["event"] == "epoch")

    # C was submitted while B's old process still ran on A's GPU; it was not put into that memory
    assert rows[c].submit_unix < first.end_unix, "C came after B stopped: the drain window was not exercised"
    memory_of = {a: 12.0, b: 12.0, c: 12.0, x: 12.0}
    for g in (0, 1):
        assert max_concurrent_memory(attempts, memory_of, g) <= GPU_MEMORY_GB, (g, [(x.job_id, x.gpus, x.start_unix, x.end_unix) for x in attempts])

    # the summary counts the undo
    summary = json.loads((state_dir / "summary.json").read_text())
    assert summary["undos"] == 1 and summary["counts"]["finished"] == 4
    assert {j["job_id"]: j["undos"] for j in summary["jobs"]} == {a: 0, b: 1, c: 0, x: 0}

    # what EaCO learnt from the real reports (B's speed next to A) is in the store, and the EaCO
    # of a daemon started later on this state folder learns it again (H survives a restart)
    store = Store(state_dir / "runtime.db")
    learned = store.learned()
    store.close()
    assert learned == list(policy.learned()) and len(learned) >= 1
    assert any(item.member == "vgg16" and set(item.job_types) == {"resnet50", "vgg16"} and item.speed < 0.5 for item in learned)
    runtime, _ = build_runtime(ServeOptions(state_dir, declared_gpus("2xv100"), "eaco"))
    try:
        predictor = runtime.policy.predictor  # type: ignore[attr-defined]
        before = predictor.estimate(("resnet50", "vgg16"), V100)[1].speed
        assert runtime.restore_learned() == len(learned) and predictor.observations == len(learned)
        assert predictor.estimate(("resnet50", "vgg16"), V100)[1].speed < before
        runtime._save_learned()  # nothing new: nothing written twice
    finally:
        runtime.store.close()
    store = Store(state_dir / "runtime.db")
    assert len(store.learned()) == len(learned)
    store.close()
