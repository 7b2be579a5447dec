"""How EaCO's deadline-aware rules were chosen: ``python -m eaco.study.urgency_sweep``.

Runs EaCO with the paper's rules and with several (``urgent_slack``, ``urgent_min_speed``)
settings on the reproduce study's 28 x 8 V100 cluster, for the main workload (6 jobs/h,
``philly_util`` job types, seeds 0-2) and a heavy one (12 jobs/h, seed 0), and prints each
setting's energy, average runtime and average total time relative to FIFO on the same workload,
with its deadline misses (those caused by sharing in brackets). docs/eaco.md quotes its output.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Sequence

from eaco.policies.eaco import EacoSettings
from eaco.study.reproduce import paper_rules, sweep_command_line

VARIANTS: dict[str, EacoSettings] = {
    "paper rules": paper_rules(EacoSettings()),
    "late only": replace(EacoSettings(), urgent_slack=0.0),
    "late + urgent 0.5/0.7": replace(EacoSettings(), urgent_slack=0.5, urgent_min_speed=0.7),
    "late + urgent 1/0.7 (default)": EacoSettings(),
    "late + urgent 1/0.6": replace(EacoSettings(), urgent_slack=1.0, urgent_min_speed=0.6),
    "late + urgent 1/0.5": replace(EacoSettings(), urgent_slack=1.0, urgent_min_speed=0.5),
    "late + urgent 2/0.6": replace(EacoSettings(), urgent_slack=2.0, urgent_min_speed=0.6),
}
LOADS: tuple[tuple[float, tuple[int, ...]], ...] = ((6.0, (0, 1, 2)), (12.0, (0,)))


def main(argv: Sequence[str] | None = None) -> int:
    sweep = sweep_command_line(argv, __doc__.splitlines()[0], VARIANTS, LOADS)
    print("load  setting                          energy/FIFO  runtime/FIFO  total/FIFO  misses (by sharing), per seed")
    for rate, name, runs in sweep:
        rows = [(m.energy_kwh / fifo.energy_kwh, m.run_time_s.mean / fifo.run_time_s.mean,
                 m.total_time_s.mean / fifo.total_time_s.mean, m.deadline_misses, m.deadline_misses_colocation)
                for m, fifo in ((r.metrics, r.fifo) for r in runs)]
        n = len(rows)
        mean = [sum(r[i] for r in rows) / n for i in range(3)]
        misses = ", ".join(f"{r[3]} ({r[4]})" for r in rows)
        print(f"{rate:4g}  {name:31s}  {mean[0]:11.3f}  {mean[1]:12.3f}  {mean[2]:10.2f}  {misses}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
