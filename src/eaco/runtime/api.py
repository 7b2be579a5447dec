"""The daemon's HTTP API, bearer token required, on one of two transports (``eaco serve --api``):

- ``tcp`` (default): 127.0.0.1, a random port; ``<state>/api.json`` holds ``{"host", "port", "pid"}``;
- ``unix``: the Unix domain socket ``<state>/api.sock`` (mode 0600); ``api.json`` holds
  ``{"socket", "pid"}``.

The token is in ``<state>/api.token`` (0600) for both. JSON endpoints:

    POST /jobs                {"spec_yaml": "...", "source": "job.yaml", "base_dir": "/abs"} -> {"job_id"}
                              (with "check_only": true: validated, not submitted -> {"ok": true})
    GET  /jobs                -> {"jobs": [...]}
    GET  /jobs?ended=N        -> {"jobs": active ones + the N latest ended, "ended_omitted": older ended}
    GET  /jobs/<id>           -> {"job": {...}, "attempts": [...], "events": [...]}
    POST /jobs/<id>/cancel    -> {"job_id", "state"}
    GET  /jobs/<id>/logs?tail_bytes=N -> {"log": "...", "end": byte offset after it}
    GET  /jobs/<id>/logs?offset=N     -> {"log": whole lines from byte N on (at most 1 MiB), "end"}
                                         (&partial=1: a last line without its newline too)
    GET  /summary             -> the energy and JCT summary
    GET  /energy/hours        -> {"hours": [...]}: the cluster's energy per UTC hour, by part
    GET  /gpus                -> {"gpus": [...]}: each GPU now: node, type, jobs, memory, utilisation, power

Each request opens its own SQLite connection (WAL lets readers run beside the daemon loop).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import socket
import socketserver
import stat
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

from eaco.colocation.catalog import JobCatalog
from eaco.errors import InputError
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.jobs import check_runnable
from eaco.runtime.layout import StateLayout
from eaco.runtime.spec import spec_from_yaml
from eaco.runtime.store import Store
from eaco.runtime.summary import build_summary

MAX_BODY_BYTES = 1 << 20
API_TRANSPORTS = ("tcp", "unix")
UNIX_PATH_MAX_BYTES = 107  # sun_path of an AF_UNIX address is 108 bytes on Linux, NUL included


def write_token(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    os.chmod(path, 0o600)
    return token


def check_transport(api: str) -> str:
    """``"tcp"`` or ``"unix"`` (case and spaces ignored), else :class:`InputError` naming ``--api``."""
    value = api.strip().lower()
    if value not in API_TRANSPORTS:
        raise InputError("--api", f"expected 'tcp' or 'unix', got {api!r}")
    return value


def check_socket_path(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > UNIX_PATH_MAX_BYTES:
        raise InputError("--api", f"the socket path {path} is {size} bytes, over the AF_UNIX limit of "
                                  f"{UNIX_PATH_MAX_BYTES}; use a shorter --state-dir or --api tcp")


def clear_stale_socket(path: Path) -> None:
    """Remove the socket file a killed daemon left; refuse if a live daemon still accepts on it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InputError("--api", f"{path} exists and is not a socket; move it away")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # nobody listens: a dead daemon's socket
        return
    except OSError as exc:
        raise InputError("--api", f"cannot tell whether a daemon serves {path}: {exc.strerror or exc}") from None
    finally:
        probe.close()
    raise InputError("--api", f"another daemon is serving {path}; stop it first, or use another --state-dir")


def bind_unix_server(path: Path, handler: type[BaseHTTPRequestHandler]) -> socketserver.ThreadingUnixStreamServer:
    """A listening HTTP server on the Unix socket ``path``, mode 0600 from the moment clients can
    reach it: bound under a staging name, chmod-ed, then renamed into place."""
    check_socket_path(path)
    clear_stale_socket(path)
    server = socketserver.ThreadingUnixStreamServer(str(path), handler, bind_and_activate=False)
    server.daemon_threads = True
    staging = path.with_suffix(".new")  # not longer than ``path``: the length check covers it
    try:
        staging.unlink(missing_ok=True)
        server.socket.bind(str(staging))
        os.chmod(staging, 0o600)
        os.replace(staging, path)
        server.server_address = str(path)
        server.server_activate()
    except OSError as exc:
        server.server_close()
        staging.unlink(missing_ok=True)
        raise InputError("--api", f"cannot serve on the socket {path}: {exc.strerror or exc}") from None
    return server


def _count_param(query: dict[str, list[str]], name: str) -> int | None:
    """The query parameter ``name`` as an integer >= 0; None when it is not one."""
    try:
        value = int(query[name][0])
    except ValueError:
        return None
    return value if value >= 0 else None


class ApiServer:
    def __init__(self, layout: StateLayout, catalog: JobCatalog, inventory: GpuInventory | Callable[[], GpuInventory],
                 summary_totals: Callable[[], Any], transport: str = "tcp",
                 snapshot: Callable[[], Any] | None = None) -> None:
        """``inventory``: the runtime's GPUs, or a function giving them now (a Ray cluster grows);
        ``snapshot``: the daemon's latest :class:`~eaco.runtime.metrics.RuntimeSnapshot` (``GET /gpus``)."""
        self.layout = layout
        self.catalog = catalog
        self._inventory = inventory
        self.snapshot = snapshot
        self.summary_totals = summary_totals
        self.transport = check_transport(transport)
        self._local = threading.local()
        handler = self._handler_class()
        self.port: int | None = None
        self.socket_path: Path | None = None
        self._socket_ino: int | None = None
        self.httpd: socketserver.BaseServer
        if self.transport == "unix":  # bound before the token is written: a refusal leaves a live daemon's token alone
            self.socket_path = layout.api_socket.absolute()
            self.httpd = bind_unix_server(self.socket_path, handler)
            self._socket_ino = self.socket_path.stat().st_ino
        else:
            tcp = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            tcp.daemon_threads = True
            self.port = int(tcp.server_address[1])
            self.httpd = tcp
        self.token = write_token(layout.token_file)  # requests are served only after start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="eaco-api", daemon=True)

    def address(self) -> dict[str, Any]:
        """What ``api.json`` says about where to connect."""
        if self.socket_path is not None:
            return {"socket": str(self.socket_path)}
        return {"host": "127.0.0.1", "port": self.port}

    def start(self) -> None:
        self._thread.start()
        tmp = self.layout.api_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.address(), "pid": os.getpid()}), encoding="utf-8")
        os.replace(tmp, self.layout.api_file)

    def stop(self) -> None:
        self.layout.api_file.unlink(missing_ok=True)
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
        self._remove_socket()

    def _remove_socket(self) -> None:
        """Unlink our socket file (not one that replaced it since)."""
        if self.socket_path is None:
            return
        try:
            if self.socket_path.lstat().st_ino == self._socket_ino:
                self.socket_path.unlink()
        except FileNotFoundError:
            pass

    @property
    def inventory(self) -> GpuInventory:
        return self._inventory() if callable(self._inventory) else self._inventory

    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.layout.db)
            self._local.store = store
        return store

    # ------------------------------------------------------------ handlers
    def submit(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = body.get("spec_yaml")
        source = str(body.get("source") or "<spec>")
        if not isinstance(text, str):
            return 400, {"error": "field 'spec_yaml': expected the spec's YAML text", "field": "spec_yaml"}
        base = body.get("base_dir")
        try:
            spec = spec_from_yaml(text, source, Path(base) if isinstance(base, str) else None)
            check_runnable(spec, self.catalog, self.inventory, source)
            if not Path(spec.working_dir).is_dir():
                raise InputError(source, f"no such folder: {spec.working_dir}", field="working_dir")
        except InputError as exc:
            return 400, {"error": str(exc), "field": exc.field}
        if body.get("check_only") is True:
            return 200, {"ok": True}
        job_id = self.store().submit(spec.name, spec.model_dump_json())
        return 201, {"job_id": job_id}

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("/") if p]
        store = self.store()
        if method == "POST" and parts == ["jobs"]:
            return self.submit(body)
        if method == "GET" and parts == ["jobs"]:
            if "ended" not in query:
                return 200, {"jobs": [r.to_dict() for r in store.jobs()]}
            ended = _count_param(query, "ended")
            if ended is None:
                return 400, {"error": "field 'ended': expected an integer >= 0", "field": "ended"}
            rows, omitted = store.recent_jobs(ended)
            return 200, {"jobs": [r.to_dict() for r in rows], "ended_omitted": omitted}
        if method == "GET" and parts == ["summary"]:
            return 200, build_summary(store, self.summary_totals(), self.inventory)
        if method == "GET" and parts == ["energy", "hours"]:
            return 200, {"hours": store.energy_hours()}
        if method == "GET" and parts == ["gpus"]:
            return 200, gpus_payload(self.snapshot() if self.snapshot else None, self.inventory)
        if len(parts) >= 2 and parts[0] == "jobs":
            try:
                job_id = int(parts[1])
                row = store.job(job_id)
            except (ValueError, KeyError):
                return 404, {"error": f"no job {parts[1]}"}
            if method == "GET" and len(parts) == 2:
                events = [{"time_unix": t, "kind": k, "detail": d} for t, _, k, d in store.events(job_id)]
                return 200, {"job": row.to_dict(), "attempts": [a.to_dict() for a in store.attempts(job_id)], "events": events}
            if method == "POST" and parts[2:] == ["cancel"]:
                return 200, {"job_id": job_id, "state": store.request_cancel(job_id)}
            if method == "GET" and parts[2:] == ["logs"]:
                if "offset" in query:
                    offset = _count_param(query, "offset")
                    if offset is None:
                        return 400, {"error": "field 'offset': expected an integer >= 0", "field": "offset"}
                    whole = query.get("partial", ["0"])[0] != "1"
                    text, end = read_from(self.layout.log_file(job_id), offset, whole_lines=whole)
                    return 200, {"log": text, "end": end}
                try:
                    tail = int(query.get("tail_bytes", ["65536"])[0])
                except ValueError:
                    return 400, {"error": "field 'tail_bytes': expected an integer", "field": "tail_bytes"}
                text, end = read_tail(self.layout.log_file(job_id), tail)
                return 200, {"log": text, "end": end}
        return 404, {"error": f"no endpoint {method} {path}"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def address_string(self) -> str:  # an AF_UNIX peer's address is a (often empty) string
                peer = self.client_address
                return str(peer[0]) if isinstance(peer, tuple) else (str(peer) or "unix-socket")

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                auth = self.headers.get("Authorization", "")
                if not hmac.compare_digest(auth, f"Bearer {server.token}"):
                    self._answer(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
                    return
                body: dict[str, Any] = {}
                if length:
                    try:
                        loaded = json.loads(self.rfile.read(length))
                    except ValueError:
                        self._answer(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
                        return
                    body = loaded if isinstance(loaded, dict) else {}
                url = urlparse(self.path)
                try:
                    status, payload = server.route(method, url.path, parse_qs(url.query), body)
                except Exception as exc:  # answer instead of dropping the connection
                    status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
                self._answer(status, payload)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler


def read_tail(path: Path, tail_bytes: int) -> tuple[str, int]:
    """The last ``tail_bytes`` of a log, and the file's size (where a follower goes on from)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            end = fh.tell()
            fh.seek(max(0, end - max(0, tail_bytes)))
            return fh.read().decode("utf-8", errors="replace"), end
    except FileNotFoundError:
        return "", 0


FOLLOW_MAX_BYTES = 1 << 20


def read_from(path: Path, offset: int, max_bytes: int = FOLLOW_MAX_BYTES, whole_lines: bool = True) -> tuple[str, int]:
    """The whole lines of a log from byte ``offset`` on (a line still being written waits, unless
    it alone exceeds ``max_bytes``; ``whole_lines`` False: whatever is there), and the offset
    after them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(max_bytes)
    except FileNotFoundError:
        return "", offset
    if not whole_lines:
        return data.decode("utf-8", errors="replace"), offset + len(data)
    cut = data.rfind(b"\n") + 1
    if cut == 0 and len(data) < max_bytes:
        return "", offset
    data = data[:cut] if cut else data
    return data.decode("utf-8", errors="replace"), offset + len(data)


def gpus_payload(snapshot: Any, inventory: GpuInventory) -> dict[str, Any]:
    """Each GPU as of the daemon's last tick: its node (a Ray node's name, else ``local``), type,
    jobs, the memory the policy holds for them and the GPU's, the estimated utilisation, and the
    measured power and utilisation where NVML reads it."""
    if snapshot is None:
        return {"time_unix": None, "gpus": []}
    rows = []
    for g in snapshot.gpus:
        m = g.measured
        rows.append({"gpu": g.gpu, "node": inventory.node_name(g.gpu), "gpu_type": g.gpu_type, "jobs": list(g.job_ids),
                     "memory_reserved_gb": g.memory_reserved_gb, "memory_gb": g.memory_gb,
                     "util_estimate": g.util_estimate, "power_w": m.power_w if m else None, "util_measured": m.util if m else None})
    return {"time_unix": snapshot.time_unix, "gpus": rows}
