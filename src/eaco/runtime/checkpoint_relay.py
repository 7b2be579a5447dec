"""Checkpoint relay for node-local files mode (``--ray-files node``, docs/runtime_ray.md): a job's
checkpoint folder follows the job from node to node through the daemon.

Without a file system shared by the nodes, a job's default checkpoint folder is on the node where
it ran. The relay keeps a **snapshot** of it on the daemon side (the job's checkpoint folder in
the state folder, which is empty otherwise in that mode):

- **Stage out** (:class:`CheckpointSync`, daemon side): the node's folder is copied into the
  snapshot, every ``checkpoint_sync_s`` while the job runs and once more when it has ended
  (stopped for an undo or a move, finished, failed), through the attempt actor's
  ``checkpoint_*`` methods. A copy is consistent: the node's folder is listed (size, mtime,
  inode of every file) before and after every chunk read, and a round whose listing changed is
  dropped; the new snapshot replaces the old one by renames, so the daemon always holds one
  complete checkpoint. Only files that changed since the last copy from that node travel.
- **Stage in** (:func:`stage_in`, node side, in the attempt actor before the job starts): the
  snapshot is installed on the job's new node unless that node's copy is at least as new.

Newer is told by a **sequence number**: every stage-out gives the snapshot the next number; the
node whose folder it came from, and every node it is installed on, records that number beside its
folder (``<folder>.relay.json``, :func:`marker_path`). A node whose recorded number is at least the
snapshot's keeps its folder: it holds that snapshot, or what its job wrote after it (an attempt
whose last copy failed, its node being alive). The daemon's record (the same file beside the
snapshot) also names the node, attempt and listing the snapshot came from.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

from eaco.runtime.wrapper import read_json_dict, write_json_atomic

RELAY_SUFFIX = ".relay.json"  # beside a checkpoint folder: the relay's record for it
STAGING_SUFFIX = ".relay-staging"  # a copy being assembled
OLD_SUFFIX = ".relay-old"  # the replaced copy, removed once the new one is in place
CHUNK_BYTES = 16 << 20  # bytes per read of the node's folder
SYNC_S = 60.0  # default: a running job's checkpoint folder copied to the daemon this often
FINAL_RETRIES = 3  # a final copy whose listing changed is tried again this often

Manifest = dict[str, list[int]]  # path relative to the folder -> [size, mtime_ns, inode]


# ------------------------------------------------------------------ both sides
def manifest(folder: Path) -> Manifest:
    """Every regular file under ``folder`` (none if it does not exist), sorted by path."""
    out: Manifest = {}
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for path in sorted(folder.rglob("*")):
        try:
            if path.is_symlink() or not path.is_file():
                continue
            st = path.stat()
        except FileNotFoundError:  # removed while listed: the listing differs next time
            continue
        out[path.relative_to(folder).as_posix()] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def _sibling(folder: Path, suffix: str) -> Path:
    folder = Path(folder)
    return folder.parent / (folder.name + suffix)


def marker_path(folder: Path) -> Path:
    """The relay's record for a checkpoint folder: beside it, not in it (the job never sees it)."""
    return _sibling(folder, RELAY_SUFFIX)


def read_marker(folder: Path) -> dict[str, Any]:
    """The record beside ``folder`` ({} if none or unreadable)."""
    return read_json_dict(marker_path(folder)) or {}


def _seq(record: dict[str, Any]) -> int:
    """A relay record's sequence number (0: none)."""
    try:
        return int(record.get("seq", 0))
    except (TypeError, ValueError):
        return 0


def marker_seq(folder: Path) -> int:
    return _seq(read_marker(folder))


def write_marker(folder: Path, record: dict[str, Any]) -> None:
    write_json_atomic(marker_path(folder), record)


def _safe_rel(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise ValueError(f"checkpoint relay: refusing the path {rel!r} (not inside the checkpoint folder)")
    return path


def _swap(new: Path, folder: Path) -> None:
    """Put the complete copy ``new`` in place of ``folder`` by renames."""
    old = _sibling(folder, OLD_SUFFIX)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------ node side
def read_chunks(folder: Path, expected: Manifest, wanted: list[str], cursor: list[int], max_bytes: int) -> dict[str, Any]:
    """Up to ``max_bytes`` of the files ``wanted`` (in that order) from ``cursor`` ([index in
    wanted, byte offset]) on, provided the folder's listing is ``expected`` before and after the
    read. Returns ``{"changed": True}`` if not, else the chunks ``[rel, offset, bytes]`` and the
    next cursor (None once every wanted file has been read)."""
    folder = Path(folder)
    if manifest(folder) != expected:
        return {"changed": True}
    chunks: list[list[Any]] = []
    index, offset = int(cursor[0]), int(cursor[1])
    budget = max(1, int(max_bytes))
    while index < len(wanted) and budget > 0:
        rel = wanted[index]
        size = int(expected[rel][0])
        count = min(budget, size - offset)
        try:
            with open(folder / _safe_rel(rel), "rb") as fh:
                fh.seek(offset)
                data = fh.read(count)
        except FileNotFoundError:
            return {"changed": True}
        if len(data) != count:
            return {"changed": True}
        chunks.append([rel, offset, data])
        offset += count
        budget -= count
        if offset >= size:
            index, offset = index + 1, 0
    if manifest(folder) != expected:
        return {"changed": True}
    return {"changed": False, "chunks": chunks, "next": [index, offset] if index < len(wanted) else None}


def install(folder: Path, files: Iterable[tuple[str, Iterable[bytes]]], record: dict[str, Any]) -> tuple[int, int]:
    """Replace ``folder`` by the given files (path relative to it, its bytes in parts), assembled
    beside it first; then record ``record`` (its ``seq``) beside it. Returns (files, bytes)."""
    folder = Path(folder)
    staging = _sibling(folder, STAGING_SUFFIX)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    count = size = 0
    for rel, parts in files:
        target = staging / _safe_rel(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:
            for part in parts:
                fh.write(part)
                size += len(part)
        count += 1
    _swap(staging, folder)
    write_marker(folder, record)
    return count, size


def stage_in(folder: Path, incoming: dict[str, Any], fetch: Callable[[list[Any]], list[bytes]]) -> str:
    """Node side, before a job starts: install the daemon's snapshot ``incoming`` (``seq``,
    ``files``: [rel, [parts]], where it came from) in ``folder`` unless the node's copy is at least
    as new. ``fetch`` turns the parts' references into bytes. Returns a line for the job's log."""
    seq = int(incoming["seq"])
    have = marker_seq(folder)
    origin = f"snapshot {seq}, from attempt {incoming.get('attempt', '?')} on node {incoming.get('node', '?')}"
    if have >= seq:
        return f"checkpoint kept: this node's copy is as new as the daemon's ({origin})"
    files = [(str(rel), iter(fetch(list(parts)))) for rel, parts in incoming["files"]]
    count, size = install(folder, files, {"seq": seq, "from": "daemon", "node": incoming.get("node"),
                                          "attempt": incoming.get("attempt")})
    return f"checkpoint copied from the daemon: {count} file(s), {size} bytes ({origin})"


# ------------------------------------------------------------------ daemon side
def snapshot_payload(snapshot: Path, put: Callable[[bytes], Any], chunk_bytes: int = CHUNK_BYTES,
                     for_node: str | None = None) -> dict[str, Any] | None:
    """What a new attempt's actor needs to install the daemon's snapshot: its ``seq`` and origin,
    and every file's bytes as parts made by ``put`` (``ray.put``). None if there is no snapshot,
    or if it came from ``for_node`` (the attempt's node), which holds it or what its job wrote after."""
    record = read_marker(snapshot)
    seq = _seq(record)
    if seq <= 0 or not Path(snapshot).is_dir() or (for_node is not None and record.get("node") == for_node):
        return None
    files: list[list[Any]] = []
    for rel in manifest(snapshot):
        parts = []
        with open(Path(snapshot) / rel, "rb") as fh:
            while True:
                data = fh.read(chunk_bytes)
                if not data:
                    break
                parts.append(put(data))
        files.append([rel, parts])
    return {"seq": seq, "node": record.get("node"), "attempt": record.get("attempt"), "files": files}


@dataclass(slots=True)
class CheckpointSync:
    """Daemon side: copies one attempt's checkpoint folder on its node into the daemon's snapshot.
    ``call(method, *args)`` starts an actor method and returns a reference; ``ready(ref)`` says
    whether it has answered; ``get(ref)`` its answer (raises if the actor died). One call is in
    flight at a time; :meth:`step` never blocks."""

    snapshot: Path
    node: str
    attempt: int
    call: Callable[..., Any]
    ready: Callable[[Any], bool]
    get: Callable[[Any], Any]
    chunk_bytes: int = CHUNK_BYTES
    state: str = "idle"  # idle | listing | reading | marking
    ref: Any = None
    started_s: float = -1e18  # when the last round started (time.monotonic)
    rounds: int = 0
    _listing: Manifest = field(default_factory=dict)
    _wanted: list[str] = field(default_factory=list)
    _final: dict[str, Any] = field(default_factory=dict)

    @property
    def staging(self) -> Path:
        return _sibling(self.snapshot, STAGING_SUFFIX)

    def start(self) -> bool:
        """Begin a round (list the node's folder) unless one is under way."""
        if self.state != "idle":
            return False
        self.state, self.ref = "listing", self.call("checkpoint_manifest")
        self.started_s = time.monotonic()
        self.rounds += 1
        return True

    def step(self, max_answers: int = 8) -> str | None:
        """Take the answers that have come (at most ``max_answers``); the outcome of a round that
        ended now ("synced", "unchanged", "changed": the folder changed under the copy, "failed":
        the actor did not answer), else None."""
        for _ in range(max_answers):
            if self.state == "idle" or not self.ready(self.ref):
                return None
            ref, self.ref = self.ref, None
            try:
                answer = self.get(ref)
            except Exception:
                return self._end("failed")
            outcome = self._take(answer)
            if outcome is not None:
                return self._end(outcome)
        return None

    def final_step(self, max_answers: int = 8) -> bool:
        """After the job has ended: True once a round started after the end has finished (or
        failed, or changed ``FINAL_RETRIES`` times). A round under way at the end is let finish
        first (its copy may predate the last checkpoint)."""
        if not self._final:
            if self.state != "idle":
                self.step(max_answers)
                if self.state != "idle":
                    return False
            self._final = {"retries": 0}
            self.start()
        outcome = self.step(max_answers)
        if outcome is None:
            return False
        if outcome == "changed" and self._final["retries"] < FINAL_RETRIES:
            self._final["retries"] += 1
            self.start()
            return False
        return True

    def _end(self, outcome: str) -> str:
        if outcome in ("changed", "failed"):
            shutil.rmtree(self.staging, ignore_errors=True)
        self.state, self.ref = "idle", None
        return outcome

    def _take(self, answer: Any) -> str | None:
        if self.state == "listing":
            return self._plan(dict(answer or {}))
        if self.state == "reading":
            if answer.get("changed"):
                return "changed"
            for rel, offset, data in answer["chunks"]:
                target = self.staging / _safe_rel(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "r+b" if offset else "wb") as fh:
                    fh.seek(offset)
                    fh.write(data)
            if answer["next"] is not None:
                self.ref = self.call("checkpoint_read", self._listing, self._wanted, answer["next"], self.chunk_bytes)
                return None
            return self._commit()
        if self.state == "marking":
            return "synced"
        return None

    def _plan(self, listing: Manifest) -> str | None:
        """The node's listing came: nothing to copy, or the files that changed since the
        snapshot was taken from this node (every file if it came from elsewhere)."""
        if not listing:
            return "unchanged"  # no checkpoint yet (or none any more): the snapshot stays
        record = read_marker(self.snapshot)
        same_node = record.get("node") == self.node and self.snapshot.is_dir()
        known: Manifest = record.get("files", {}) if same_node else {}
        if same_node and known == listing:
            return "unchanged"
        self._listing = listing
        self._wanted = [rel for rel in listing
                        if known.get(rel) != listing[rel] or not (self.snapshot / _safe_rel(rel)).is_file()]
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        for rel in listing:  # the files that did not change come from the snapshot
            if rel not in self._wanted:
                target = self.staging / _safe_rel(rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.snapshot / rel, target)
        if not self._wanted:
            return self._commit()
        self.state = "reading"
        self.ref = self.call("checkpoint_read", listing, self._wanted, [0, 0], self.chunk_bytes)
        return None

    def _commit(self) -> str | None:
        """The staged copy is complete: it becomes the snapshot, with the next number, which the
        node records beside its folder too."""
        seq = marker_seq(self.snapshot) + 1
        _swap(self.staging, self.snapshot)
        size = sum(int(v[0]) for v in self._listing.values())
        write_marker(self.snapshot, {"seq": seq, "node": self.node, "attempt": self.attempt,
                                     "files": self._listing, "bytes": size, "unix_s": time.time()})
        self.state, self.ref = "marking", self.call("checkpoint_mark", seq)
        return None
