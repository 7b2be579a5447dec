"""The daemon's HTTP API on 127.0.0.1 (random port), bearer token required. JSON endpoints:

    POST /jobs                {"spec_yaml": "...", "source": "job.yaml", "base_dir": "/abs"} -> {"job_id"}
    GET  /jobs                -> {"jobs": [...]}
    GET  /jobs/<id>           -> {"job": {...}, "attempts": [...], "events": [...]}
    POST /jobs/<id>/cancel    -> {"job_id", "state"}
    GET  /jobs/<id>/logs?tail_bytes=N -> {"log": "..."}
    GET  /summary             -> the energy and JCT summary

Each request opens its own SQLite connection (WAL lets readers run beside the daemon loop).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
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


def write_token(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    os.chmod(path, 0o600)
    return token


class ApiServer:
    def __init__(self, layout: StateLayout, catalog: JobCatalog, inventory: GpuInventory, summary_totals: Callable[[], Any]) -> None:
        self.layout = layout
        self.catalog = catalog
        self.inventory = inventory
        self.summary_totals = summary_totals
        self.token = write_token(layout.token_file)
        self._local = threading.local()
        handler = self._handler_class()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="eaco-api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        tmp = self.layout.api_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": "127.0.0.1", "port": self.port, "pid": os.getpid()}), encoding="utf-8")
        os.replace(tmp, self.layout.api_file)

    def stop(self) -> None:
        self.layout.api_file.unlink(missing_ok=True)
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

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
        job_id = self.store().submit(spec.name, spec.model_dump_json())
        return 201, {"job_id": job_id}

    def route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("/") if p]
        store = self.store()
        if method == "POST" and parts == ["jobs"]:
            return self.submit(body)
        if method == "GET" and parts == ["jobs"]:
            return 200, {"jobs": [r.to_dict() for r in store.jobs()]}
        if method == "GET" and parts == ["summary"]:
            return 200, build_summary(store, self.summary_totals(), self.inventory)
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
                try:
                    tail = int(query.get("tail_bytes", ["65536"])[0])
                except ValueError:
                    return 400, {"error": "field 'tail_bytes': expected an integer", "field": "tail_bytes"}
                return 200, {"log": read_tail(self.layout.log_file(job_id), tail)}
        return 404, {"error": f"no endpoint {method} {path}"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

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


def read_tail(path: Path, tail_bytes: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - max(0, tail_bytes)))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
