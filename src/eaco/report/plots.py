"""PNG plots: active nodes over time, and energy/time bars per policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eaco.sim.metrics import Metrics
from eaco.sim.result import SimulationResult
from eaco.units import S_PER_H

MAX_POINTS = 4000


def _step_downsample(t: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Time-weighted average of a step function on a regular grid (keeps plots small)."""
    if t.size <= max_points:
        return t, y
    grid = np.linspace(t[0], t[-1], max_points)
    # integral of the step function at each grid point
    dt = np.diff(t, append=t[-1])
    cum = np.concatenate([[0.0], np.cumsum(y * dt)])
    idx = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, t.size - 1)
    integral = cum[idx] + y[idx] * (grid - t[idx])
    avg = np.diff(integral) / np.diff(grid)
    return grid[:-1], avg


def plot_active_nodes(out_path: Path, results: list[SimulationResult], num_nodes: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for r in results:
        t = np.asarray(r.timeseries.time_s, dtype=float)
        y = np.asarray(r.timeseries.active_nodes, dtype=float)
        if t.size == 0:
            continue
        t = np.append(t, r.makespan_s)
        y = np.append(y, y[-1])
        tg, yg = _step_downsample(t, y)
        ax.step(tg / S_PER_H, yg, where="post", label=r.policy, linewidth=1)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("active nodes")
    ax.set_ylim(0, num_nodes * 1.05)
    ax.set_title("Active nodes over time")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path


def plot_energy_and_time(out_path: Path, metrics: list[Metrics]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m.policy for m in metrics]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    x = np.arange(len(names))
    parts = [
        ("GPU busy", [m.gpu_busy_kwh for m in metrics]),
        ("GPU idle", [m.gpu_idle_kwh for m in metrics]),
        ("host", [m.host_kwh for m in metrics]),
        ("sleep", [m.sleep_kwh for m in metrics]),
    ]
    bottom = np.zeros(len(names))
    for label, vals in parts:
        axes[0].bar(x, vals, bottom=bottom, label=label)
        bottom += np.asarray(vals)
    axes[0].set_title("Energy (kWh)")
    axes[0].legend(fontsize=8)
    axes[1].bar(x, [m.run_time_s.mean / 3600 for m in metrics], color="tab:green")
    axes[1].set_title("Average runtime (h)")
    axes[2].bar(x, [m.total_time_s.mean / 3600 for m in metrics], color="tab:purple")
    axes[2].set_title("Average job total time (h)")
    for ax in axes:
        ax.set_xticks(x, names, rotation=20)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return out_path
