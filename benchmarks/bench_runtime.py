"""Benchmark: the live runtime's scheduling loop with a long queue.

Builds the local runtime (``eaco serve``'s objects, declared GPUs, a state folder under a
temporary directory), submits N job specs to its SQLite store, and times the daemon's tick (read
the store, pick up new jobs, cancels, poll processes, read epoch reports, call the policy, account
energy) while N jobs wait. The jobs are real processes (``python -c 'time.sleep(...)'``): the
ones the policy starts run for the whole benchmark and are killed at its end. Prints per policy
and queue length: submits per second, the first tick (loads every job), median and max of the
later ticks, and the jobs running. Target on a 2-core machine: a later tick at most 50 ms with
10,000 queued jobs (the daemon ticks every 0.2 s by default), for every policy.

    python benchmarks/bench_runtime.py [--jobs 2000,10000] [--policies fifo,eaco] [--gpus 8xv100]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_TICK_S = 0.050
TARGET_AT_JOBS = 10_000
TICKS = 20


def run_one(state: Path, jobs: int, policy: str, gpus: str) -> dict[str, object]:
    from eaco.runtime.daemon import ServeOptions, build_runtime
    from eaco.runtime.gpus import declared_gpus
    from eaco.runtime.spec import spec_from_yaml

    runtime, _ = build_runtime(ServeOptions(state, declared_gpus(gpus), policy))
    try:
        spec = spec_from_yaml(
            f"name: sleeper\ncommand: {sys.executable} -c 'import time; time.sleep(3600)'\n"
            "epochs: 10\njob_type: resnet18\nmemory_gb: 4\nexpected_epoch_s: 60\n", "bench"
        ).model_dump_json()
        t0 = time.perf_counter()
        for i in range(jobs):
            runtime.store.submit(f"sleeper-{i}", spec)
        submit_s = time.perf_counter() - t0
        runtime.recover()
        ticks = []
        for _ in range(TICKS):
            t0 = time.perf_counter()
            runtime.tick()
            ticks.append(time.perf_counter() - t0)
        running = sum(1 for s in runtime.status.values() if s == "running")
    finally:
        runtime.store.close()
        _kill_jobs(state)
    later = ticks[1:]
    return {"policy": policy, "jobs": jobs, "submits_per_s": jobs / submit_s, "first_tick_s": ticks[0],
            "median_tick_s": statistics.median(later), "max_tick_s": max(later), "running": running}


def _kill_jobs(state: Path) -> None:
    from eaco.runtime.procs import signal_group
    from eaco.runtime.wrapper import read_json_dict

    for path in state.glob("jobs/*/attempts/*/wrapper.json"):
        pid = (read_json_dict(path) or {}).get("pid")
        if isinstance(pid, int) and pid > 0:
            signal_group(pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default=f"2000,{TARGET_AT_JOBS}", help="queue lengths, comma-separated")
    parser.add_argument("--policies", default="fifo,fifo-packed,gandiva,eaco")
    parser.add_argument("--gpus", default="8xv100", help="declared GPUs (COUNTxTYPE)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="eaco-bench-runtime-") as tmp:
        for policy in args.policies.split(","):
            for n in (int(x) for x in args.jobs.split(",")):
                print(f"running {policy} with {n:,} jobs ...", file=sys.stderr, flush=True)
                rows.append(run_one(Path(tmp) / f"{policy}-{n}", n, policy.strip(), args.gpus))
    print(f"runtime tick on {args.gpus} (declared), {TICKS} ticks")
    print(f"{'policy':<12} {'jobs':>7} {'submits/s':>10} {'first s':>8} {'median ms':>10} {'max ms':>8} {'running':>8}  target")
    ok_all = True
    for r in rows:
        judged = r["jobs"] >= TARGET_AT_JOBS
        ok = not judged or r["median_tick_s"] <= TARGET_TICK_S
        ok_all &= ok
        verdict = ("ok" if ok else f"MISSED (<= {TARGET_TICK_S * 1000:.0f} ms)") if judged else "-"
        print(f"{r['policy']:<12} {r['jobs']:>7,} {r['submits_per_s']:>10,.0f} {r['first_tick_s']:>8.2f} "
              f"{r['median_tick_s'] * 1000:>10.1f} {r['max_tick_s'] * 1000:>8.1f} {r['running']:>8}  {verdict}")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
