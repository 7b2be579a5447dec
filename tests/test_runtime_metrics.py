"""The daemon's Prometheus endpoint: a real daemon (``python -m eaco.runtime --metrics-port 0``) runs
two tiny jobs co-located on one declared GPU; the endpoint is scraped over HTTP and the text
exposition parsed with prometheus_client's parser at each stage (idle, co-located, finished)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import typer
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from eaco.runtime.client import RuntimeClient
from eaco.runtime.metrics import MetricsServer, RuntimeSnapshot
from eaco.runtime.layout import StateLayout
from eaco.runtime.store import Store
from eaco.runtime_cli import serve_command
from functools import partial

from runtime_helpers import wait_for as _wait_for

wait_for = partial(_wait_for, poll_s=0.05)

app = typer.Typer()
app.command()(serve_command)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]




def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]




def job_spec(tmp_path: Path, name: str) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(
        f"name: {name}\n"
        f"command: {sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs 3 --steps-per-epoch 1500\n"
        "epochs: 3\nexpected_epoch_s: 0.8\njob_type: resnet18\nmemory_gb: 4\ngpu_util: 0.3\n"
        "env: {OMP_NUM_THREADS: '1'}\n"
    )
    return p


def test_metrics_endpoint_follows_the_jobs(state_dir: Path, tmp_path: Path) -> None:
    err = open(tmp_path / "daemon.err", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eaco.runtime", "--state-dir", str(state_dir), "--gpus", "1xv100",
         "--policy", "eaco", "--tick-s", "0.1", "--metrics-port", "0"],
        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
    )
    try:
        info = wait_for(lambda: (state_dir / "metrics.json").exists() and json.loads((state_dir / "metrics.json").read_text()), 20, "metrics.json")
        assert info["host"] == "127.0.0.1" and info["pid"] == proc.pid and info["port"] > 0
        port = int(info["port"])
        wait_for(lambda: (state_dir / "api.json").exists(), 20, "daemon API")

        # idle: one idle GPU draws power, energy accumulates, no job anywhere
        idle = wait_for(lambda: (s := scrape(port)) and value(s, "eaco_accounted_seconds_total") > 0.2 and s, 10, "a few ticks")
        assert value(idle, "eaco_power_watts", part="gpu_busy", source="modelled") == 0.0
        assert value(idle, "eaco_power_watts", part="gpu_idle", source="modelled") > 0.0
        assert value(idle, "eaco_power_watts", part="total", source="modelled") > value(idle, "eaco_power_watts", part="gpu_idle", source="modelled")
        assert value(idle, "eaco_energy_joules_total", part="gpu_idle", source="modelled") > 0.0
        assert value(idle, "eaco_energy_joules_total", part="gpu_busy", source="modelled") == 0.0
        for name in ("eaco_queue_length", "eaco_running_jobs", "eaco_colocated_jobs", "eaco_jobs_finished_total", "eaco_undos_total"):
            assert value(idle, name) == 0.0, name
        assert value(idle, "eaco_gpu_jobs", gpu="0", gpu_type="v100") == 0.0
        assert ("eaco_gpu_jobs", (("gpu", "1"), ("gpu_type", "v100"))) not in idle  # one GPU declared
        assert not any(name.startswith("python_") or name.startswith("process_") for name, _ in idle)  # own registry

        # two jobs share the only GPU
        client = RuntimeClient(state_dir)
        ids = [client.submit(job_spec(tmp_path, f"m{i}")) for i in range(2)]
        busy = wait_for(lambda: (s := scrape(port)) and value(s, "eaco_colocated_jobs") == 2 and s, 20, "two co-located jobs")
        assert value(busy, "eaco_running_jobs") == 2 and value(busy, "eaco_queue_length") == 0
        assert value(busy, "eaco_gpu_jobs", gpu="0", gpu_type="v100") == 2
        assert value(busy, "eaco_gpu_utilisation_estimate", gpu="0", gpu_type="v100") == pytest.approx(0.6)
        assert value(busy, "eaco_gpu_memory_reserved_bytes", gpu="0", gpu_type="v100") == pytest.approx(8e9)
        assert value(busy, "eaco_jobs", state="running") == 2
        busy_w = wait_for(lambda: (s := scrape(port)) and value(s, "eaco_power_watts", part="gpu_busy", source="modelled") > 0 and s, 5, "busy power")
        assert value(busy_w, "eaco_power_watts", part="gpu_idle", source="modelled") == 0.0
        assert value(busy_w, "eaco_power_watts", part="gpu_busy", source="modelled") > value(idle, "eaco_power_watts", part="gpu_idle", source="modelled")

        # both finish: counters move, gauges fall back
        done = wait_for(lambda: (s := scrape(port)) and value(s, "eaco_jobs_finished_total") == 2 and value(s, "eaco_running_jobs") == 0 and s,
                        60, "both jobs to finish")
        assert value(done, "eaco_colocated_jobs") == 0 and value(done, "eaco_queue_length") == 0
        assert value(done, "eaco_gpu_jobs", gpu="0", gpu_type="v100") == 0
        assert value(done, "eaco_jobs", state="finished") == 2 and value(done, "eaco_jobs_failed_total") == 0
        assert value(done, "eaco_attempts_total") == 2 and value(done, "eaco_undos_total") == 0
        for part in ("gpu_busy", "gpu_idle", "host", "total"):
            assert value(done, "eaco_energy_joules_total", part=part, source="modelled") > value(idle, "eaco_energy_joules_total", part=part, source="modelled"), part
        assert value(done, "eaco_policy_calls_total") >= 2
        # EaCO's own counts: one job alone first, the other co-located with it and observed
        assert value(done, "eaco_policy_decisions_total", kind="exclusive_placements") == 1
        assert value(done, "eaco_policy_decisions_total", kind="colocations") == 1
        assert value(done, "eaco_policy_decisions_total", kind="undos") == 0
        # the endpoint's energy is the daemon's own accounting (what the summary reports too)
        summary = client.summary()
        assert summary["energy"]["total_j"] == pytest.approx(value(done, "eaco_energy_joules_total", part="total", source="modelled"), rel=0.2)
        store = Store(state_dir / "runtime.db")
        try:
            assert all(store.job(j).state == "finished" for j in ids)
        finally:
            store.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        err.close()
    # stopped with the daemon: address file gone, port closed
    assert not (state_dir / "metrics.json").exists()
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_server_without_snapshot_or_store_and_port_in_use(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    snap: list[RuntimeSnapshot | None] = [None]
    first = MetricsServer(layout, lambda: snap[0], 0)
    port = first.start()
    try:
        # before the first tick and before the store exists: an empty but valid exposition
        assert scrape(port) == {}
        # the same port twice: refused (the daemon reports it), the first server unharmed
        with pytest.raises(OSError):
            MetricsServer(StateLayout(tmp_path / "other"), lambda: None, port).start()
        Store(layout.db).close()
        samples = scrape(port)
        assert value(samples, "eaco_jobs", state="queued") == 0 and value(samples, "eaco_undos_total") == 0
        # `eaco serve --metrics-port` on a port in use: a clear error naming the option, no traceback
        result = CliRunner().invoke(app, ["--state-dir", str(tmp_path / "st"), "--gpus", "1xv100", "--metrics-port", str(port)])
        assert result.exit_code == 1 and "--metrics-port" in result.output and f"127.0.0.1:{port}" in result.output, result.output
        assert not (tmp_path / "st" / "api.json").exists()
    finally:
        first.stop()
    assert not (tmp_path / "metrics.json").exists()
