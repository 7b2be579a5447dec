"""Talks to a running daemon's API (address and token from its state folder): over TCP on
127.0.0.1, or over the Unix socket named in ``api.json`` (``eaco serve --api unix``)."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from eaco.runtime.errors import ApiError
from eaco.runtime.layout import StateLayout


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the Unix domain socket ``path`` (the Host header says ``localhost``)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class RuntimeClient:
    def __init__(self, state_dir: Path, timeout_s: float = 10.0) -> None:
        self.layout = StateLayout(Path(state_dir))
        self.timeout_s = timeout_s
        try:
            info = json.loads(self.layout.api_file.read_text(encoding="utf-8"))
            self.token = self.layout.token_file.read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            raise ApiError(0, f"no daemon is serving {state_dir} (start one with `eaco serve --state-dir {state_dir}`)") from None
        self.socket_path: str | None = None
        self.port = 0
        if isinstance(info, dict) and isinstance(info.get("socket"), str):
            self.socket_path = info["socket"]
            self.base = f"unix:{self.socket_path}"
        elif isinstance(info, dict) and isinstance(info.get("port"), int):
            self.port = info["port"]
            self.base = f"http://127.0.0.1:{self.port}"
        else:
            raise ApiError(0, f"{self.layout.api_file}: expected 'socket' (a path) or 'port' (an integer); "
                              "restart the daemon to rewrite it")

    def _connection(self) -> http.client.HTTPConnection:
        if self.socket_path is not None:
            return UnixHTTPConnection(self.socket_path, self.timeout_s)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            status, reason, raw = resp.status, resp.reason, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(0, f"cannot reach the daemon at {self.base}: {exc}") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not 200 <= status < 300:
            if not isinstance(payload, dict):
                payload = {"error": reason}
            raise ApiError(status, str(payload.get("error")), payload.get("field"))
        if not isinstance(payload, dict):
            raise ApiError(status, f"the daemon at {self.base} answered {method} {path} with something that is not a JSON object")
        return payload

    def submit(self, spec_path: Path) -> int:
        out = self.request("POST", "/jobs", self._spec_body(spec_path))
        return int(out["job_id"])

    def check(self, spec_path: Path) -> None:
        """Have the daemon validate a spec as it would on submission (job type, GPUs, memory,
        working folder) without submitting it; ApiError naming the field if it is refused."""
        self.request("POST", "/jobs", {**self._spec_body(spec_path), "check_only": True})

    @staticmethod
    def _spec_body(spec_path: Path) -> dict[str, Any]:
        p = Path(spec_path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ApiError(0, f"{p}: cannot read the spec: {exc.strerror}") from None
        return {"spec_yaml": text, "source": str(p), "base_dir": str(p.parent.resolve())}

    def gpus(self) -> dict[str, Any]:
        """Each GPU now (``GET /gpus``)."""
        return self.request("GET", "/gpus")

    def energy_hours(self) -> list[dict[str, float]]:
        """The cluster's energy per UTC hour, by part (``Store.energy_hours``)."""
        return list(self.request("GET", "/energy/hours")["hours"])

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/jobs")["jobs"])

    def recent_jobs(self, ended: int) -> tuple[list[dict[str, Any]], int]:
        """The active jobs and the ``ended`` latest ended ones, and how many older ones ended."""
        got = self.request("GET", f"/jobs?ended={int(ended)}")
        return list(got["jobs"]), int(got["ended_omitted"])

    def job(self, job_id: int) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: int) -> str:
        return str(self.request("POST", f"/jobs/{job_id}/cancel")["state"])

    def logs(self, job_id: int, tail_bytes: int = 65536) -> str:
        return self.logs_tail(job_id, tail_bytes)[0]

    def logs_tail(self, job_id: int, tail_bytes: int = 65536) -> tuple[str, int]:
        """The log's last ``tail_bytes`` and the byte offset after them."""
        out = self.request("GET", f"/jobs/{job_id}/logs?tail_bytes={tail_bytes}")
        return str(out["log"]), int(out["end"])

    def logs_from(self, job_id: int, offset: int, partial: bool = False) -> tuple[str, int]:
        """Whole lines of the log from byte ``offset`` on (``partial``: and a last line not ended
        yet), and the offset after them."""
        out = self.request("GET", f"/jobs/{job_id}/logs?offset={offset}" + ("&partial=1" if partial else ""))
        return str(out["log"]), int(out["end"])

    def summary(self) -> dict[str, Any]:
        return self.request("GET", "/summary")
