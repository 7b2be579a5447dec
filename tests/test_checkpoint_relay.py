"""The checkpoint relay of node-local files mode (eaco.runtime.checkpoint_relay), without Ray: a
fake actor answers the daemon side's calls from a folder standing for the node's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from eaco.runtime import checkpoint_relay as relay


class FakeActor:
    """The attempt actor's checkpoint methods on ``folder``, answered at once. ``after_read``
    runs after each chunk read (to change the folder under a copy)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.reads: list[list[str]] = []  # the files asked for, per read
        self.after_read: Callable[[], None] | None = None
        self.dead = False

    def call(self, method: str, *args: Any) -> Any:
        if self.dead:
            return RuntimeError("actor died")
        if method == "checkpoint_manifest":
            return relay.manifest(self.folder)
        if method == "checkpoint_read":
            expected, wanted, cursor, max_bytes = args
            self.reads.append(list(wanted))
            answer = relay.read_chunks(self.folder, expected, wanted, cursor, max_bytes)
            if self.after_read is not None:
                self.after_read()
            return answer
        if method == "checkpoint_mark":
            relay.write_marker(self.folder, {"seq": args[0]})
            return None
        raise AssertionError(method)

    @staticmethod
    def get(ref: Any) -> Any:
        if isinstance(ref, Exception):
            raise ref
        return ref


def make_sync(snapshot: Path, actor: FakeActor, node: str = "n0", attempt: int = 1, chunk_bytes: int = 7) -> relay.CheckpointSync:
    return relay.CheckpointSync(snapshot, node, attempt, call=actor.call, ready=lambda ref: True, get=actor.get,
                                chunk_bytes=chunk_bytes)


def run_round(sync: relay.CheckpointSync) -> str:
    assert sync.start()
    for _ in range(1000):
        outcome = sync.step(max_answers=1)
        if outcome is not None:
            return outcome
    raise AssertionError("the round did not end")


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def contents(folder: Path) -> dict[str, bytes]:
    return {rel: (folder / rel).read_bytes() for rel in relay.manifest(folder)}


def test_a_round_copies_the_folder_in_chunks_and_numbers_the_snapshot(tmp_path: Path) -> None:
    node, snapshot = tmp_path / "node" / "ckpt", tmp_path / "daemon" / "ckpt"
    write(node / "model.pt", b"0123456789abcdefghij")  # 20 bytes: three chunks of 7
    write(node / "sub" / "optim.pt", b"xyz")
    write(node / "empty", b"")
    actor = FakeActor(node)
    sync = make_sync(snapshot, actor)
    assert run_round(sync) == "synced"
    assert contents(snapshot) == contents(node)
    record = relay.read_marker(snapshot)
    assert record["seq"] == 1 and record["node"] == "n0" and record["attempt"] == 1 and record["bytes"] == 23
    assert relay.marker_seq(node) == 1  # the node knows it holds snapshot 1
    assert not sync.staging.exists()
    # nothing changed: no read at all
    reads = len(actor.reads)
    assert run_round(sync) == "unchanged" and len(actor.reads) == reads and relay.marker_seq(snapshot) == 1
    # one file changed, one removed: only the changed one travels
    write(node / "model.pt", b"new weights")
    (node / "empty").unlink()
    actor.reads.clear()
    assert run_round(sync) == "synced"
    assert {tuple(w) for w in actor.reads} == {("model.pt",)}
    assert contents(snapshot) == {"model.pt": b"new weights", "sub/optim.pt": b"xyz"}
    assert relay.marker_seq(snapshot) == 2 and relay.marker_seq(node) == 2


def test_a_folder_changed_under_the_copy_leaves_the_snapshot_as_it_was(tmp_path: Path) -> None:
    node, snapshot = tmp_path / "node" / "ckpt", tmp_path / "daemon" / "ckpt"
    write(node / "model.pt", b"A" * 30)
    actor = FakeActor(node)
    sync = make_sync(snapshot, actor)
    assert run_round(sync) == "synced"
    write(node / "model.pt", b"B" * 30)

    def rewrite() -> None:  # the job writes its next checkpoint (tmp + rename) during the copy
        actor.after_read = None
        tmp = node / "model.tmp"
        tmp.write_bytes(b"C" * 30)
        os.replace(tmp, node / "model.pt")

    actor.after_read = rewrite
    assert run_round(sync) == "changed"
    assert contents(snapshot) == {"model.pt": b"A" * 30} and relay.marker_seq(snapshot) == 1
    assert not sync.staging.exists()
    assert run_round(sync) == "synced" and contents(snapshot) == {"model.pt": b"C" * 30}


def test_a_dead_actor_fails_the_round_and_an_empty_folder_keeps_the_snapshot(tmp_path: Path) -> None:
    node, snapshot = tmp_path / "node" / "ckpt", tmp_path / "daemon" / "ckpt"
    actor = FakeActor(node)
    sync = make_sync(snapshot, actor)
    assert run_round(sync) == "unchanged" and not snapshot.exists()  # no checkpoint yet
    write(node / "model.pt", b"weights")
    assert run_round(sync) == "synced"
    actor.dead = True
    write(node / "model.pt", b"later weights")
    assert run_round(sync) == "failed" and contents(snapshot) == {"model.pt": b"weights"}


def test_the_final_copy_starts_after_the_end(tmp_path: Path) -> None:
    """A round under way when the job ended may predate its last checkpoint: it is let finish,
    then a new round copies the folder as the job left it."""
    node, snapshot = tmp_path / "node" / "ckpt", tmp_path / "daemon" / "ckpt"
    write(node / "model.pt", b"epoch 1")
    actor = FakeActor(node)
    answers: list[Any] = []
    sync = relay.CheckpointSync(snapshot, "n0", 1, call=lambda m, *a: answers.append(actor.call(m, *a)) or len(answers) - 1,
                                ready=lambda ref: True, get=lambda ref: answers[ref])
    assert sync.start()  # listing sent while the job still writes
    write(node / "model.pt", b"epoch 2, the last one")
    for _ in range(100):
        if sync.final_step():
            break
    else:
        raise AssertionError("the final copy did not end")
    assert contents(snapshot) == {"model.pt": b"epoch 2, the last one"} and sync.rounds >= 2


def test_stage_in_installs_a_newer_snapshot_and_keeps_a_node_copy_as_new(tmp_path: Path) -> None:
    snapshot = tmp_path / "daemon" / "ckpt"
    write(snapshot / "model.pt", b"from node n1")
    write(snapshot / "deep" / "x.bin", b"\x00\x01")
    relay.write_marker(snapshot, {"seq": 3, "node": "n1", "attempt": 2})
    incoming = relay.snapshot_payload(snapshot, put=lambda data: data, chunk_bytes=4)
    assert incoming is not None and incoming["seq"] == 3
    assert dict((rel, b"".join(parts)) for rel, parts in incoming["files"]) == contents(snapshot)

    other = tmp_path / "n0" / "ckpt"
    write(other / "model.pt", b"older, from attempt 1")
    write(other / "stale.pt", b"gone after the copy")
    relay.write_marker(other, {"seq": 1})
    line = relay.stage_in(other, incoming, fetch=lambda parts: parts)
    assert "copied from the daemon: 2 file(s), 14 bytes" in line and "attempt 2 on node n1" in line
    assert contents(other) == contents(snapshot) and relay.marker_seq(other) == 3
    assert not (other.parent / ("ckpt" + relay.STAGING_SUFFIX)).exists()
    # a node that already holds snapshot 3 (or wrote after it) keeps its folder
    write(other / "model.pt", b"written after snapshot 3")
    line = relay.stage_in(other, incoming, fetch=lambda parts: parts)
    assert line.startswith("checkpoint kept") and (other / "model.pt").read_bytes() == b"written after snapshot 3"
    # nothing to send to the node the snapshot came from, nor without a snapshot
    assert relay.snapshot_payload(snapshot, put=lambda data: data, for_node="n1") is None
    assert relay.snapshot_payload(snapshot, put=lambda data: data, for_node="n0") is not None
    assert relay.snapshot_payload(tmp_path / "none", put=lambda d: d) is None


def test_paths_outside_the_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not inside the checkpoint folder"):
        relay.install(tmp_path / "ckpt", [("../escape", [b"x"])], {"seq": 1})
    # the node side reads only what its own listing holds: a path from elsewhere is never read
    assert relay.read_chunks(tmp_path, {"/etc/passwd": [1, 0, 0]}, ["/etc/passwd"], [0, 0], 10) == {"changed": True}
    assert not (tmp_path / "escape").exists()
