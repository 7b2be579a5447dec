"""Talks to a running daemon's API (address and token from its state folder)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from eaco.runtime.errors import ApiError
from eaco.runtime.layout import StateLayout


class RuntimeClient:
    def __init__(self, state_dir: Path, timeout_s: float = 10.0) -> None:
        self.layout = StateLayout(Path(state_dir))
        self.timeout_s = timeout_s
        try:
            info = json.loads(self.layout.api_file.read_text(encoding="utf-8"))
            self.token = self.layout.token_file.read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            raise ApiError(0, f"no daemon is serving {state_dir} (start one with `eaco serve --state-dir {state_dir}`)") from None
        self.base = f"http://127.0.0.1:{int(info['port'])}"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read())
            except ValueError:
                payload = {"error": exc.reason}
            raise ApiError(exc.code, str(payload.get("error")), payload.get("field")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ApiError(0, f"cannot reach the daemon at {self.base}: {exc}") from None

    def submit(self, spec_path: Path) -> int:
        p = Path(spec_path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ApiError(0, f"{p}: cannot read the spec: {exc.strerror}") from None
        out = self.request("POST", "/jobs", {"spec_yaml": text, "source": str(p), "base_dir": str(p.parent.resolve())})
        return int(out["job_id"])

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/jobs")["jobs"])

    def job(self, job_id: int) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: int) -> str:
        return str(self.request("POST", f"/jobs/{job_id}/cancel")["state"])

    def logs(self, job_id: int, tail_bytes: int = 65536) -> str:
        return str(self.request("GET", f"/jobs/{job_id}/logs?tail_bytes={tail_bytes}")["log"])

    def summary(self) -> dict[str, Any]:
        return self.request("GET", "/summary")
