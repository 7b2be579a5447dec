"""`eaco serve --backend ray` without `--ray-address`: the daemon starts its own one-node Ray
instance with the declared GPUs, and jobs run as Ray attempt actors (what a new user tries first)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from eaco.runtime.client import RuntimeClient
from eaco.runtime.ray_attempt import RAY_ATTEMPT_FILE
from eaco.runtime.ray_runtime import LOCAL_NODE
from eaco.runtime.store import Store
from runtime_helpers import kill_leftover_jobs, wait_for


def test_serve_starts_a_local_ray_and_runs_colocated_jobs_on_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    err = open(tmp_path / "daemon.err", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "eaco.runtime", "--backend", "ray", "--gpus", "1xv100", "--state-dir", str(state),
         "--tick-s", "0.1"],
        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, env=env,
    )
    try:
        wait_for(lambda: (state / "api.json").exists() or proc.poll() is not None, 90, "the daemon and its Ray")
        assert proc.poll() is None, (tmp_path / "daemon.err").read_text()[-3000:]
        client = RuntimeClient(state)
        ids = []
        for name in ("r0", "r1"):
            spec = tmp_path / f"{name}.yaml"
            spec.write_text(
                f"name: {name}\n"
                f"command: {sys.executable} -m eaco.runtime.examples.tiny_train --job-name {name} --epochs 3 --steps-per-epoch 200\n"
                "epochs: 3\nexpected_epoch_s: 0.5\njob_type: resnet18\nmemory_gb: 4\ngpu_util: 0.3\n"
                "env: {OMP_NUM_THREADS: '1'}\n"
            )
            ids.append(client.submit(spec))
        wait_for(lambda: all(j["state"] in ("finished", "failed") for j in client.jobs()), 90, "both jobs to end")
        summary = client.summary()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        kill_leftover_jobs(state, RAY_ATTEMPT_FILE)
    assert summary["counts"]["finished"] == 2, summary
    assert summary["colocated_jobs"] == 2  # one GPU, two jobs: EaCO shared it
    nodes = json.loads((state / "ray_nodes.json").read_text())
    assert nodes["nodes"] == [[LOCAL_NODE, 1, "v100"]]
    for job_id in ids:  # each ran as a Ray attempt actor on the local node
        info = json.loads((state / "jobs" / str(job_id) / "attempts" / "1" / RAY_ATTEMPT_FILE).read_text())
        assert info["node"] == LOCAL_NODE
    store = Store(state / "runtime.db")
    try:
        assert all(a.outcome == "finished" for a in store.attempts())
    finally:
        store.close()
