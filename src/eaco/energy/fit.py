"""Regenerate ``eaco/data/gpu_power.csv`` from the shared measurements.

Run ``python -m eaco.energy.fit`` (``--data-dir`` for another shared data folder, ``--out`` for
another output file). Rules, per GPU type (``gpu_power.md`` gives the resulting numbers):

- V100, P100 (Zeus traces): at the highest power limit measured (the GPU's default limit),
  ``max_power_w`` = the highest average power of any workload run, ``idle_power_w`` = the lowest
  (NCF, a recommendation model that leaves the GPU nearly idle: an upper bound on true idle).
- A100 (AcmeTrace production CDF): ``idle_power_w`` = the 5th percentile of per-GPU power (the
  0th is a lone 15 W sample), ``max_power_w`` = the 95th percentile, capped at the board power
  limit (short samples above the limit are not sustainable draw).
- K80, T4, A10, H100 (nothing measured): ``max_power_w`` = datasheet TDP; ``idle_power_w`` =
  TDP x the median idle/max ratio of the measured GPUs (V100, P100, A100 and Zeus' A40, RTX6000).
- ``exponent``: fitted for V100 on the EaCO paper's exclusive node measurements
  (:func:`eaco.energy.calibration.fit_paper_node`); other types reuse it (assumption).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

from eaco.energy.gpu_power import GpuPowerModel
from eaco.energy.measured import ZEUS_GPUS, load_acme_a100_power_cdf, load_zeus_runs, runs_at_max_power_limit
from eaco.energy.power_table import GPU_POWER_CSV, GpuPowerEntry, write_gpu_power_csv
from eaco.paths import shared_data_dir

# Datasheet board power (TDP) in W, from the vendors' product briefs.
DATASHEET_TDP_W: dict[str, float] = {
    "k80": 150.0,  # Tesla K80 board 300 W for two GK210 dies; the scheduler sees one die
    "p100": 250.0,  # Tesla P100 PCIe
    "t4": 70.0,  # Tesla T4
    "v100": 300.0,  # Tesla V100 SXM2 (PCIe: 250 W)
    "a10": 150.0,  # A10
    "a100": 400.0,  # A100 SXM4 80 GB
    "h100": 700.0,  # H100 SXM5
}
ACME_IDLE_QUANTILE = 0.05
ACME_MAX_QUANTILE = 0.95
MEASURED_ZEUS_TYPES = ("v100", "p100")  # Zeus GPUs that are also in eaco.model.gpu.GPU_TYPES
DATASHEET_ONLY_TYPES = ("k80", "t4", "a10", "h100")


@dataclass(frozen=True, slots=True)
class IdleMaxEstimate:
    gpu: str
    idle_power_w: float
    max_power_w: float
    source: str


def zeus_idle_max(data_dir: Path, gpu: str) -> IdleMaxEstimate:
    limit_w, runs = runs_at_max_power_limit(load_zeus_runs(data_dir, gpu))
    low = min(runs, key=lambda r: r.average_power_w)
    high = max(runs, key=lambda r: r.average_power_w)
    source = (
        f"Zeus zeus_power_{gpu}.csv at power limit {limit_w:.0f} W ({len(runs)} runs): "
        f"idle = min avg power ({low.network} bs {low.batch_size}; upper bound on idle); "
        f"max = max avg power ({high.network} bs {high.batch_size})"
    )
    return IdleMaxEstimate(gpu, low.average_power_w, high.average_power_w, source)


def acme_a100_idle_max(data_dir: Path) -> IdleMaxEstimate:
    cdf = load_acme_a100_power_cdf(data_dir)
    idle_w = cdf.quantile_w(ACME_IDLE_QUANTILE)
    q_max_w = cdf.quantile_w(ACME_MAX_QUANTILE)
    limit_w = DATASHEET_TDP_W["a100"]
    max_w = min(q_max_w, limit_w)
    source = (
        f"AcmeTrace A100 power CDF: idle = q{ACME_IDLE_QUANTILE * 100:.0f} ({idle_w:.1f} W); "
        f"max = q{ACME_MAX_QUANTILE * 100:.0f} ({q_max_w:.1f} W) capped at the {limit_w:.0f} W SXM4 board limit"
    )
    return IdleMaxEstimate("a100", idle_w, max_w, source)


def measured_idle_max(data_dir: Path) -> dict[str, IdleMaxEstimate]:
    """Idle/max from every measured GPU, including Zeus' A40 and RTX6000 (not scheduler types)."""
    out = {g: zeus_idle_max(data_dir, g) for g in ZEUS_GPUS}
    out["a100"] = acme_a100_idle_max(data_dir)
    return out


def fit_gpu_power_entries(data_dir: Path | None = None) -> list[GpuPowerEntry]:
    """Models for every scheduler GPU type, each with a provenance string."""
    from eaco.energy.calibration import fit_paper_node  # late import: calibration reads the table module

    data_dir = data_dir or shared_data_dir()
    measured = measured_idle_max(data_dir)
    idle_ratios = {g: m.idle_power_w / m.max_power_w for g, m in measured.items()}
    idle_ratio = statistics.median(idle_ratios.values())
    ratio_note = ", ".join(f"{g} {r:.3f}" for g, r in sorted(idle_ratios.items()))

    v100 = measured["v100"]
    node_fit = fit_paper_node(data_dir, gpu_idle_power_w=v100.idle_power_w, gpu_max_power_w=v100.max_power_w)
    exponent = node_fit.gpu_exponent
    exp_fitted = "exponent fitted on EaCO paper Tables 1-2 (8xV100 node power vs GPU util)"
    exp_assumed = "exponent = V100's fitted value (assumption)"

    entries: list[GpuPowerEntry] = []
    for gpu in ("k80", "p100", "t4", "v100", "a10", "a100", "h100"):
        if gpu in measured:
            m = measured[gpu]
            note = m.source + "; " + (exp_fitted if gpu == "v100" else exp_assumed)
            entries.append(GpuPowerEntry(GpuPowerModel(gpu, m.idle_power_w, m.max_power_w, exponent), note))
        else:
            tdp = DATASHEET_TDP_W[gpu]
            note = (
                f"nothing measured: max = datasheet TDP {tdp:.0f} W (assumption: busy GPU runs at its limit); "
                f"idle = TDP x median measured idle/max ratio {idle_ratio:.3f} ({ratio_note}); {exp_assumed}"
            )
            entries.append(GpuPowerEntry(GpuPowerModel(gpu, tdp * idle_ratio, tdp, exponent), note))
    return entries


def fit_gpu_power_params(data_dir: Path | None = None) -> list[GpuPowerModel]:
    """The calibrated :class:`GpuPowerModel` of every scheduler GPU type (see module docstring)."""
    return [e.model for e in fit_gpu_power_entries(data_dir)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eaco.energy.fit", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default: auto)")
    parser.add_argument("--out", type=Path, default=GPU_POWER_CSV, help=f"output CSV (default: {GPU_POWER_CSV})")
    args = parser.parse_args(argv)
    entries = fit_gpu_power_entries(args.data_dir)
    path = write_gpu_power_csv(entries, args.out)
    for e in entries:
        m = e.model
        print(f"{m.gpu_type:>5}: idle {m.idle_power_w:6.1f} W  max {m.max_power_w:6.1f} W  exponent {m.exponent:.4f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
