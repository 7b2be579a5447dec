"""What reservations for waiting jobs buy: ``python -m eaco.study.reservation_sweep``.

Runs EaCO with and without reservations (``EacoSettings.reserve``; a few values of
``reserve_wait_s``) on the reproduce study's 28 x 8 V100 cluster, for the main workload (6 jobs/h,
``philly_util`` job types) on seeds 0-7 and a heavy one (12 jobs/h) on seeds 0-4, and prints per
variant, over the seeds: energy and average runtime relative to FIFO on the same workload, the
deadline misses (caused by sharing in brackets), the average and longest wait of all jobs and of
the jobs that ask for a whole node (8 GPUs), and the misses per seed. docs/eaco.md quotes its
output (about 1.5 min).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Sequence

from eaco.policies.eaco import EacoSettings
from eaco.study.reproduce import SweepRun, sweep_command_line
from eaco.units import S_PER_H

VARIANTS: dict[str, EacoSettings] = {
    "off": replace(EacoSettings(), reserve=False),
    "urgent jobs (default)": EacoSettings(),
    "urgent or waited 4 h": replace(EacoSettings(), reserve_wait_s=4 * 3600.0),
    "urgent or waited 24 h": replace(EacoSettings(), reserve_wait_s=24 * 3600.0),
}
LOADS: tuple[tuple[float, tuple[int, ...]], ...] = ((6.0, tuple(range(8))), (12.0, tuple(range(5))))


def _waits_h(run: SweepRun, min_gpus: int) -> list[float]:
    return [j.waiting_s / S_PER_H for j in run.result.jobs if j.num_gpus >= min_gpus]


def main(argv: Sequence[str] | None = None) -> int:
    sweep = sweep_command_line(argv, __doc__.splitlines()[0], VARIANTS, LOADS)
    print("load  setting                         energy/FIFO  runtime/FIFO  misses (by sharing)  "
          "wait avg / max (h)  8-GPU jobs: wait avg / max (h)")
    for rate, name, runs in sweep:
        n = len(runs)
        energy = sum(r.metrics.energy_kwh / r.fifo.energy_kwh for r in runs) / n
        runtime = sum(r.metrics.run_time_s.mean / r.fifo.run_time_s.mean for r in runs) / n
        misses = sum(r.metrics.deadline_misses for r in runs)
        by_sharing = sum(r.metrics.deadline_misses_colocation for r in runs)
        waits = [w for r in runs for w in _waits_h(r, 1)]
        big = [w for r in runs for w in _waits_h(r, 8)]
        big_text = f"{sum(big) / len(big):6.2f} / {max(big):5.1f}" if big else "     - /     -"
        print(f"{rate:4g}  {name:30s}  {energy:11.3f}  {runtime:12.3f}  {misses:8d} ({by_sharing:3d})     "
              f"{sum(waits) / len(waits):6.2f} / {max(waits):5.1f}     {big_text}", flush=True)
        print(f"{'':36s}misses per seed: {', '.join(str(r.metrics.deadline_misses) for r in runs)}; "
              f"energy/FIFO per seed: {', '.join(f'{r.metrics.energy_kwh / r.fifo.energy_kwh:.3f}' for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
