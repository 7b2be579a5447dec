"""Benchmark: replay the full bundled Philly trace (82k jobs) on the Philly cluster.

The cluster is built from the bundled Philly machine list (every machine with GPUs, as V100s).
Each policy runs in a fresh Python process so that its peak memory (max RSS) is its own.
Prints, per policy: simulate wall time, load time, events, events per second, jobs per second,
peak memory. Targets on a 2-core machine: each baseline <= 20 s (issue 2) and EaCO <= 40 s
(ours: it searches co-location candidates and checks deadlines at every arrival, and observes
every co-location), each <= 2 GiB.

    python benchmarks/bench_philly.py [--policies fifo,fifo-packed,gandiva] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

TARGET_WALL_S = 20.0
TARGET_WALL_S_BY_POLICY = {"eaco": 40.0}
TARGET_PEAK_GIB = 2.0


def run_one(policy: str, limit: int | None) -> dict[str, object]:
    from eaco.setup import build_cluster, load_environment, load_named_workload
    from eaco.sim.runner import simulate

    t0 = time.perf_counter()
    env = load_environment()
    workload = load_named_workload("philly", env.catalog, jobs=limit)
    cluster = build_cluster("philly")
    load_s = time.perf_counter() - t0
    result, metrics = simulate(cluster, workload, policy, env)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "policy": policy,
        "jobs": metrics.num_jobs,
        "nodes": cluster.num_nodes,
        "gpus": cluster.num_gpus,
        "load_s": load_s,
        "simulate_s": result.wall_s,
        "events": result.events,
        "events_per_s": result.events / result.wall_s,
        "jobs_per_s": metrics.num_jobs / result.wall_s,
        "peak_rss_gib": peak_kib / 2**20,
        "energy_kwh": metrics.energy_kwh,
        "avg_total_time_h": metrics.total_time_s.mean / 3600,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="fifo,fifo-packed,gandiva")
    parser.add_argument("--limit", type=int, default=None, help="only the first N jobs")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.limit)))
        return 0
    rows = []
    for policy in args.policies.split(","):
        cmd = [sys.executable, __file__, "--one", policy]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        print(f"running {policy} ...", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    header = f"{'policy':<12} {'jobs':>7} {'load s':>7} {'sim s':>7} {'events':>9} {'events/s':>9} {'jobs/s':>8} {'peak GiB':>8} {'kWh':>10}  target"
    print(f"Philly trace on {rows[0]['nodes']} nodes / {rows[0]['gpus']} GPUs")
    print(header)
    ok_all = True
    for r in rows:
        wall_target = TARGET_WALL_S_BY_POLICY.get(str(r["policy"]), TARGET_WALL_S)
        ok = r["simulate_s"] <= wall_target and r["peak_rss_gib"] <= TARGET_PEAK_GIB
        ok_all &= ok
        print(
            f"{r['policy']:<12} {r['jobs']:>7,} {r['load_s']:>7.2f} {r['simulate_s']:>7.2f} {r['events']:>9,} "
            f"{r['events_per_s']:>9,.0f} {r['jobs_per_s']:>8,.0f} {r['peak_rss_gib']:>8.2f} {r['energy_kwh']:>10,.0f}  "
            + ("ok" if ok else f"MISSED (<= {wall_target:.0f} s, <= {TARGET_PEAK_GIB:.0f} GiB)")
        )
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
