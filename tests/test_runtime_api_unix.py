"""``eaco serve --api unix``: the same HTTP API on ``<state>/api.sock`` (mode 0600, token required),
and the client and CLI commands unchanged over it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

from eaco.errors import InputError
from eaco.runtime.api import ApiServer
from eaco.runtime.client import RuntimeClient, UnixHTTPConnection
from eaco.runtime.daemon import ServeOptions, serve
from eaco.runtime.errors import ApiError
from eaco.runtime.gpus import declared_gpus
from eaco.runtime.layout import StateLayout
from runtime_helpers import InThreadDaemon, kill_leftover_jobs, wait_for
from test_runtime import app, job_yaml, runner


@pytest.fixture()
def short_state() -> Iterator[Path]:
    """A state folder with a short path (pytest's tmp_path can come near the AF_UNIX limit)."""
    root = Path(tempfile.mkdtemp(prefix="eaco-u-", dir="/tmp"))
    state = root / "s"
    yield state
    kill_leftover_jobs(state)
    shutil.rmtree(root, ignore_errors=True)


def UnixDaemon(state: Path, api: str = "unix") -> InThreadDaemon:
    """``serve`` with ``api="unix"`` (or ``api``) in a thread of the test; stopped by ``close``."""
    options = ServeOptions(state, declared_gpus("2xv100"), "fifo", tick_s=0.05, api=api)
    return InThreadDaemon(options, name="eaco-test-unix-daemon")


def bind_dead_socket(path: Path) -> None:
    """Leave a socket file nobody listens on, as a SIGKILLed daemon does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    os.chmod(path, 0o644)  # unlike the daemon's: shows the file was replaced
    assert stat.S_ISSOCK(path.lstat().st_mode)


def raw_request(sock_path: str, token: str, path: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    conn = UnixHTTPConnection(sock_path, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_unix_api_serves_the_client_and_the_cli(short_state: Path, tmp_path: Path) -> None:
    state = short_state
    bind_dead_socket(state / "api.sock")  # stale: replaced, not refused
    daemon = UnixDaemon(state)
    try:
        sock = state / "api.sock"
        mode = sock.lstat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600, oct(mode)
        info = json.loads((state / "api.json").read_text())
        assert set(info) == {"socket", "pid"} and info["pid"] == os.getpid()
        assert info["socket"] == str(sock.absolute()) and Path(info["socket"]).is_absolute()
        assert not (state / "api.new").exists()

        client = RuntimeClient(state)
        assert client.base == f"unix:{info['socket']}" and client.jobs() == []
        spec = tmp_path / "u1.yaml"
        spec.write_text(job_yaml("u1", epochs=2, steps=20))
        job_id = client.submit(spec)
        assert [j["job_id"] for j in client.jobs()] == [job_id]

        token = (state / "api.token").read_text().strip()
        assert raw_request(info["socket"], token, "/jobs")[0] == 200
        status, payload = raw_request(info["socket"], token + "x", "/jobs")
        assert status == 401 and "token" in payload["error"]
        client.token = "wrong"
        with pytest.raises(ApiError) as err:
            client.jobs()
        assert err.value.status == 401
        client = RuntimeClient(state)
        with pytest.raises(ApiError) as err:
            client.job(999)
        assert err.value.status == 404 and "no job 999" in str(err.value)

        # a malformed request is answered 400 and the server keeps serving
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(info["socket"])
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert b" 400 " in s.recv(4096).split(b"\r\n", 1)[0]

        wait_for(lambda: client.job(job_id)["job"]["state"] in ("finished", "failed"), 30, "the job to end")
        assert client.job(job_id)["job"]["state"] == "finished", client.logs(job_id)
        assert "epoch 1 loss" in client.logs(job_id)
        summary = client.summary()
        assert summary["counts"]["finished"] == 1 and summary["jobs"][0]["energy_j"] > 0

        # the CLI commands, unchanged
        listed = runner.invoke(app, ["status", "--state-dir", str(state)])
        assert listed.exit_code == 0 and "u1" in listed.output and "finished" in listed.output
        hidden = runner.invoke(app, ["status", "--last", "0", "--state-dir", str(state)])  # active jobs only
        assert hidden.exit_code == 0 and "u1" not in hidden.output
        assert "1 older ended jobs not shown" in " ".join(hidden.output.split())
        assert client.recent_jobs(0) == ([], 1)
        logs = runner.invoke(app, ["logs", str(job_id), "--state-dir", str(state)])
        assert logs.exit_code == 0 and "epoch 1 loss" in logs.output
        submitted = runner.invoke(app, ["submit", str(spec), "--state-dir", str(state)])
        assert submitted.exit_code == 0, submitted.output
        # the id is the line of digits (the daemon's event log runs in this process and may
        # write a line into the captured output meanwhile)
        new_id = next(line.strip() for line in submitted.output.splitlines() if line.strip().isdigit())
        cancelled = runner.invoke(app, ["cancel", new_id, "--state-dir", str(state)])
        assert cancelled.exit_code == 0 and f"job {new_id}:" in cancelled.output, cancelled.output
    finally:
        daemon.close()
    assert not (state / "api.sock").exists() and not (state / "api.json").exists()


def test_a_live_daemon_socket_is_not_taken_over(short_state: Path, env) -> None:  # type: ignore[no-untyped-def]
    daemon = UnixDaemon(short_state)
    try:
        token = (short_state / "api.token").read_text()
        with pytest.raises(InputError, match="another daemon is serving") as err:
            ApiServer(StateLayout(short_state), env.catalog, declared_gpus("2xv100"), lambda: None, "unix")
        assert err.value.source == "--api"
        assert (short_state / "api.token").read_text() == token  # the live daemon's token is left alone
        assert RuntimeClient(short_state).jobs() == []
    finally:
        daemon.close()


def test_a_file_that_is_not_a_socket_is_refused(short_state: Path, env) -> None:  # type: ignore[no-untyped-def]
    short_state.mkdir(parents=True)
    (short_state / "api.sock").write_text("mine")
    with pytest.raises(InputError, match="not a socket"):
        ApiServer(StateLayout(short_state), env.catalog, declared_gpus("2xv100"), lambda: None, "unix")
    assert (short_state / "api.sock").read_text() == "mine"


def test_a_socket_path_over_the_af_unix_limit_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / ("d" * 60) / ("e" * 60)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:  # `serve` on the main thread installs its own handlers before starting the API
        result = runner.invoke(app, ["serve", "--state-dir", str(state), "--gpus", "2xv100", "--api", "unix"])
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert result.exit_code == 1
    assert "--api" in result.output and str(state / "api.sock") in result.output and "AF_UNIX" in result.output
    assert not (state / "api.token").exists() and not (state / "api.json").exists()
    bad = runner.invoke(app, ["serve", "--state-dir", str(state), "--gpus", "2xv100", "--api", "udp"])
    assert bad.exit_code == 1 and "--api: expected 'tcp' or 'unix', got 'udp'" in bad.output


def test_client_errors_over_the_unix_transport(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    layout.token_file.write_text("t")
    layout.api_file.write_text(json.dumps({"socket": str(tmp_path / "gone.sock"), "pid": 1}))
    with pytest.raises(ApiError, match="cannot reach the daemon at unix:") as err:
        RuntimeClient(tmp_path).jobs()
    assert err.value.status == 0
    layout.api_file.write_text(json.dumps({"host": "127.0.0.1", "pid": 1}))
    with pytest.raises(ApiError, match="expected 'socket'"):
        RuntimeClient(tmp_path)


def test_the_client_over_tcp_is_unchanged(short_state: Path, tmp_path: Path) -> None:
    daemon = UnixDaemon(short_state, api="tcp")
    try:
        info = json.loads((short_state / "api.json").read_text())
        assert set(info) == {"host", "port", "pid"} and info["host"] == "127.0.0.1"
        assert not (short_state / "api.sock").exists()
        client = RuntimeClient(short_state)
        assert client.base == f"http://127.0.0.1:{info['port']}" and client.jobs() == []
        bad = tmp_path / "bad.yaml"
        bad.write_text(job_yaml("bad").replace("job_type: resnet18", "job_type: nosuchmodel"))
        with pytest.raises(ApiError) as err:
            client.submit(bad)
        assert (err.value.status, err.value.field) == (400, "job_type")
        client.token = "wrong"
        with pytest.raises(ApiError) as err:
            client.summary()
        assert err.value.status == 401
    finally:
        daemon.close()
    with pytest.raises(ApiError, match="no daemon is serving"):
        RuntimeClient(short_state)


def test_a_second_daemon_on_the_same_state_folder_is_refused(tmp_path: Path) -> None:
    """Two daemons on one store would both launch the same queued jobs: the second is refused,
    naming --state-dir and the first one's pid, and the first keeps serving."""
    from eaco.runtime.lock import StateLock

    state = tmp_path / "state"
    first = StateLock(state)
    first.acquire()
    try:
        with pytest.raises(InputError, match=r"--state-dir.*already served by another daemon \(pid %d\)" % os.getpid()):
            serve(ServeOptions(state, declared_gpus("1xv100")), threading.Event())
        assert not (state / "runtime.db").exists()  # refused before it touched anything
    finally:
        first.release()
    with StateLock(state):  # free again once released
        pass
