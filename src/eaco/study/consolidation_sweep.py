"""What consolidation by migration buys: ``python -m eaco.study.consolidation_sweep``.

Runs EaCO with and without consolidation (``EacoSettings.consolidate``; a few values of
``consolidate_min_remaining_s``) on the reproduce study's 28 x 8 V100 cluster, for the main
workload (6 jobs/h, ``philly_util`` job types) on seeds 0-4 and a heavy one (12 jobs/h) on seeds
0-2, and prints per seed each variant's energy, average runtime relative to FIFO on the same
workload, average active nodes, deadline misses (caused by sharing in brackets) and jobs moved.
docs/eaco.md quotes its output.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Sequence

from eaco.policies.eaco import EacoSettings
from eaco.study.reproduce import sweep_command_line

VARIANTS: dict[str, EacoSettings] = {
    "off": replace(EacoSettings(), consolidate=False),
    "on, min 1 h": replace(EacoSettings(), consolidate=True, consolidate_min_remaining_s=3600.0),
    "on, min 3 h (default)": EacoSettings(),
    "on, min 10 h": replace(EacoSettings(), consolidate=True, consolidate_min_remaining_s=36000.0),
}
LOADS: tuple[tuple[float, tuple[int, ...]], ...] = ((6.0, (0, 1, 2, 3, 4)), (12.0, (0, 1, 2)))


def main(argv: Sequence[str] | None = None) -> int:
    sweep = sweep_command_line(argv, __doc__.splitlines()[0], VARIANTS, LOADS)
    print("load  setting                 mean energy/FIFO  mean runtime/FIFO  per seed: energy/FIFO, active nodes, misses (by sharing), moved")
    for rate, name, runs in sweep:
        rows = [(m.energy_kwh / fifo.energy_kwh, m.run_time_s.mean / fifo.run_time_s.mean,
                 m.avg_active_nodes, m.deadline_misses, m.deadline_misses_colocation, m.migrations)
                for m, fifo in ((r.metrics, r.fifo) for r in runs)]
        n = len(rows)
        per_seed = "; ".join(f"{r[0]:.3f}, {r[2]:.1f}, {r[3]} ({r[4]}), {r[5]}" for r in rows)
        print(f"{rate:4g}  {name:22s}  {sum(r[0] for r in rows) / n:16.3f}  {sum(r[1] for r in rows) / n:17.3f}  {per_seed}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
