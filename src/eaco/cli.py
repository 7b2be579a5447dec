"""The ``eaco`` command line."""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eaco import __version__
from eaco.config_file import config_option, config_record
from eaco.errors import InputError, PolicyError
from eaco.model.ownership import DEFAULT_LIFE_YEARS, parse_hardware_cost
from eaco.study.sizing import DEFAULT_MAX_MISS_SHARE
from eaco.units import S_PER_H
from eaco.policies.eaco import EacoSettings
from eaco.workloads.slo import SloSettings, assign_slos

if TYPE_CHECKING:
    from eaco.sim.metrics import Metrics
    from eaco.sim.result import SimulationResult
    from eaco.workloads.base import Workload

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="EaCO: energy-aware co-location of deep-learning training jobs on GPU clusters.",
)
console = Console(emoji=False)  # ":x:" in a path or a job name is text, not an emoji
err_console = Console(stderr=True, emoji=False)

DEFAULT_POLICIES = "fifo,fifo-packed,gandiva,eaco"
DEFAULT_GENERATED_JOBS = 1000
DEFAULT_GENERATED_RATE_PER_H = 12.0
DEFAULT_GENERATED_CLUSTER = "28x8xv100"
_EACO = EacoSettings()  # defaults shown in --help


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}")  # a message's "[...]" is text, not markup
    raise typer.Exit(code=2)


def _write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"wrote {path}")


def _progress(unit: str = "jobs done") -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _excluded_text(wl: Workload) -> str:
    return ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in wl.excluded if n)


@app.command()
def simulate(
    ctx: typer.Context,
    config: Optional[Path] = config_option(),
    workload: str = typer.Option(
        "generated", "--workload", "-w",
        help="generated | philly | alibaba | csv:PATH (CSV with submit_time_s, duration_s, num_gpus) "
        "| slurm:PATH (a 'sacct --parsable2' export, docs/workloads.md)",
    ),
    cluster: str = typer.Option(
        "auto", "--cluster", "-c",
        help="NODESxGPUSxTYPE (e.g. 28x8xv100, or mixed 20x8xv100,8x8xa100), 'philly' or 'alibaba' "
        "(the trace's machine list), sinfo:PATH[:TYPE] (your Slurm nodes, 'sinfo --Node --format=\"%N|%G\"'; TYPE for "
        "untyped GPUs; docs/workloads.md), or 'auto' (the trace's own cluster for philly/alibaba, 28x8xv100 otherwise); "
        "several separated by ';' run every policy on each ('28x8xv100;20x8xv100': runs named fifo@28x8xv100, ...)",
    ),
    policies: str = typer.Option(DEFAULT_POLICIES, "--policies", "-p",
                                  help="comma-separated: fifo, fifo-packed, gandiva, eaco, or FILE.py:Class for a policy of your own (docs/policies.md)"),
    sweep: Optional[str] = typer.Option(
        None, "--sweep",
        help="run EaCO once per value of its settings, e.g. 'alpha=0,0.5,1' or 'alpha=0,1; reserve=true,false' (every combination); "
        "the variants take EaCO's place in --policies (docs/eaco.md)"),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-n", help=f"generated: number of jobs (default {DEFAULT_GENERATED_JOBS}); traces: keep the first N"
    ),
    rate_per_h: float = typer.Option(
        DEFAULT_GENERATED_RATE_PER_H, "--rate", help="generated: Poisson arrival rate (jobs per hour)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed for generated workloads and job-type assignment"),
    seeds: Optional[str] = typer.Option(
        None, "--seeds",
        help="several seeds, e.g. '0-4' or '0,3,7': everything runs once per seed (each seed's output in OUT/seed-N/) and "
        "OUT gets the mean and 95% interval of each run over the seeds, and its ratio to the first policy seed by seed",
    ),
    job_types: str = typer.Option(
        "uniform", "--job-types",
        help="generated: 'uniform' over the catalogue (Gavel's rule) or 'philly_util' (utilisation follows Philly's CDF)",
    ),
    out: Path = typer.Option(Path("results/simulate"), "--out", "-o", help="output folder"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="skip malformed trace rows and report how many"),
    slurm_priority_qos: str = typer.Option("", "--slurm-priority-qos", help="slurm:PATH: comma-separated QoS names whose jobs are high-priority"),
    slurm_timezone: Optional[str] = typer.Option(
        None, "--slurm-timezone",
        help="slurm:PATH: the cluster's time zone (IANA, e.g. Europe/Berlin) its sacct times are in; default: read as UTC (off by an hour across a daylight-saving change)"),
    sleep: str = typer.Option(
        "policy", "--sleep",
        help="low-power state for nodes with no job: 'policy' (only under policies that manage node "
        "power, i.e. EaCO; the baselines leave empty nodes idle, as published), 'all' or 'none'",
    ),
    sleep_power_w: Optional[float] = typer.Option(
        None, "--sleep-power-w", help="power of a node in its low-power state (W, whole node; default 25)"
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write PNG plots"),
    profiles: list[Path] = typer.Option(
        [], "--profiles", help="profile store(s) from 'eaco profile': refine co-location data and seed EaCO's history"
    ),
    price_per_kwh: Optional[float] = typer.Option(None, "--price-per-kwh", help="electricity price (in --currency per kWh): report each policy's cost"),
    carbon_g_per_kwh: Optional[float] = typer.Option(None, "--carbon-g-per-kwh", help="grid carbon intensity (g CO2e per kWh): report each policy's emissions"),
    grid: Optional[Path] = typer.Option(
        None, "--grid", help="CSV of hourly prices/intensities: hour, price_per_kwh and/or carbon_g_per_kwh (docs/energy.md)"
    ),
    grid_offset_h: int = typer.Option(0, "--grid-offset-h", help="--grid: simulated hour at which the CSV's hour 0 applies"),
    grid_repeat: bool = typer.Option(True, "--grid-repeat/--grid-hold", help="--grid: past its last hour the series repeats, or holds its last value"),
    pue: float = typer.Option(1.0, "--pue", help="power usage effectiveness: cost and carbon apply to energy x PUE"),
    currency: str = typer.Option("USD", "--currency", help="currency of --price-per-kwh and --hardware-cost-per-gpu (a label)"),
    hardware_cost_per_gpu: Optional[str] = typer.Option(
        None, "--hardware-cost-per-gpu",
        help="purchase cost of a server per GPU it holds, in --currency: one for every type (12000) or per type "
        "(v100=12000,a100=30000): report the hardware written off and the cost of ownership (docs/energy.md)"),
    hardware_life_years: float = typer.Option(
        DEFAULT_LIFE_YEARS, "--hardware-life-years", help="--hardware-cost-per-gpu: years over which the hardware is written off"),
    smallest: Optional[str] = typer.Option(
        None, "--smallest",
        help="LO-HI: find, per policy, the fewest nodes (from LO to HI) of the --cluster's node shape on which at most "
        "--max-miss-share of the deadlines are missed; report each policy at its own smallest size (sizing.csv lists every size tried)"),
    max_miss_share: Optional[float] = typer.Option(
        None, "--max-miss-share", help=f"--smallest: share of the jobs with a deadline that may miss it (default {DEFAULT_MAX_MISS_SHARE})"),
    max_avg_wait_h: Optional[float] = typer.Option(
        None, "--max-avg-wait-h", help="--smallest: and the jobs (those without a deadline too) wait at most this long on average"),
    slos: bool = typer.Option(True, "--slos/--no-slos", help="give jobs without an SLO one by the rule below"),
    slack_min: float = typer.Option(0.5, "--slack-min", help="deadline = submit + (1 + slack) x exclusive runtime, slack ~ U[min, max]"),
    slack_max: float = typer.Option(2.0, "--slack-max"),
    no_slo_share: float = typer.Option(0.1, "--no-slo-share", help="share of jobs without a deadline"),
    high_priority_share: float = typer.Option(0.05, "--high-priority-share", help="share of high-priority jobs"),
    alpha: float = typer.Option(_EACO.alpha, "--alpha", help="EaCO objective weight: 1 = energy only, 0 = time only"),
    util_threshold: float = typer.Option(_EACO.util_threshold, "--util-threshold", help="EaCO: GPUs at or above this predicted utilisation take no more jobs"),
    memory_threshold: float = typer.Option(_EACO.memory_threshold, "--memory-threshold", help="EaCO: ... nor GPUs with this share of memory in use"),
    memory_margin_gb: float = typer.Option(_EACO.memory_margin_gb, "--memory-margin-gb", help="EaCO: memory kept free per GPU"),
    max_jobs_per_gpu: int = typer.Option(_EACO.max_jobs_per_gpu, "--max-jobs-per-gpu"),
    observation_epochs: int = typer.Option(_EACO.observation_epochs, "--observation-epochs", help="EaCO: epochs watched after a co-location"),
    confidence_z: float = typer.Option(_EACO.confidence_z, "--confidence-z", help="EaCO: deadline checks use estimate - z x uncertainty"),
    unobserved_z: float = typer.Option(_EACO.unobserved_z, "--unobserved-z", help="EaCO: ... and this z for a job that ends within the observation window"),
    max_candidates: int = typer.Option(_EACO.max_candidates, "--max-candidates", help="EaCO: feasible co-location options compared per job"),
    min_speed: float = typer.Option(_EACO.min_speed, "--min-speed", help="EaCO: least predicted speed a co-located job may keep"),
    urgent_slack: float = typer.Option(_EACO.urgent_slack, "--urgent-slack", help="EaCO: a job whose slack / remaining time is below this may share down to --urgent-min-speed (0: off)"),
    urgent_min_speed: float = typer.Option(_EACO.urgent_min_speed, "--urgent-min-speed", help="EaCO: least predicted speed for urgent jobs"),
    late_best_effort: bool = typer.Option(_EACO.late_jobs_best_effort, "--late-best-effort/--no-late-best-effort", help="EaCO: a job that can no longer meet its deadline is placed best-effort"),
    consolidate: bool = typer.Option(_EACO.consolidate, "--consolidate/--no-consolidate", help="EaCO: move jobs at epoch ends to empty lightly loaded nodes so they sleep"),
    consolidate_min_remaining_s: float = typer.Option(_EACO.consolidate_min_remaining_s, "--consolidate-min-remaining-s", help="EaCO: drain a node only if its longest job has this much work left"),
    consolidate_shared: bool = typer.Option(_EACO.consolidate_shared, "--consolidate-shared/--no-consolidate-shared", help="EaCO: also drain nodes whose GPUs are shared, moving each set to one GPU held for it (docs/eaco.md: not the default)"),
    reserve: bool = typer.Option(_EACO.reserve, "--reserve/--no-reserve", help="EaCO: hold the node that frees first for a job that is urgent or has waited --reserve-wait-s"),
    reserve_wait_s: float = typer.Option(_EACO.reserve_wait_s, "--reserve-wait-s", min=0.0, help="EaCO: wait after which a job that cannot be placed gets a reservation"),
    wait_for_faster_type: bool = typer.Option(_EACO.wait_for_faster_type, "--wait-for-faster-type/--no-wait-for-faster-type", help="EaCO, mixed clusters: a job may wait for GPUs of a faster type rather than start on a slower one"),
) -> None:
    """Replay a workload on a simulated cluster with each policy; print and save the metrics."""
    from eaco.report.seed_stats import parse_seeds
    from eaco.report.seeds_report import seed_dir
    from eaco.report.tables import idle_cluster_note, metrics_table, speed_table
    from eaco.energy.grid import grid_settings_from_options
    from eaco.sim.cost import with_costs, with_ownership
    from eaco.study.sizing import NodeShape, SizingOutcome, SizingTarget, parse_node_range, search_smallest
    from eaco.sim.metrics import with_common_end
    from eaco.sim.runner import SLEEP_MODES
    from eaco.sim.runner import simulate as run_one
    from eaco.policies.custom import is_custom
    from eaco.policies.registry import policy_label, policy_names
    from eaco.model.cluster import ClusterSpec
    from eaco.setup import build_cluster, load_environment, load_named_workload

    # built-in names (any case), or FILE.py:Class for a policy of your own (kept as written)
    names = [p.strip() if is_custom(p) else p.strip().lower() for p in policies.split(",") if p.strip()]
    unknown = [p for p in names if not is_custom(p) and p not in policy_names()]
    if not names or unknown:
        _fail(f"--policies: unknown {unknown or 'empty list'}; expected names from {', '.join(policy_names())}, "
              "or FILE.py:Class for a policy of your own (docs/policies.md)")
    try:
        labels = {name: policy_label(name) for name in names}
    except InputError as exc:
        _fail(f"--policies: {exc}")
    if len(set(labels.values())) < len(labels):
        _fail(f"--policies: two policies would be labelled alike ({', '.join(labels.values())}); give each class its own name")
    t0 = time.perf_counter()
    try:
        if sleep not in SLEEP_MODES:
            raise InputError("--sleep", f"expected one of {', '.join(SLEEP_MODES)}, got {sleep!r}")
        seed_list = (seed,)
        if seeds is not None:
            if seed != 0:
                raise InputError("--seeds", "give --seed or --seeds, not both")
            seed_list = parse_seeds(seeds)
        env = load_environment(sleep_power_w=sleep_power_w, profiles=profiles)
        clusters: list[tuple[str, ClusterSpec, list[str]]] = []  # (as given, cluster, notes)
        for text in [c.strip() for c in cluster.split(";") if c.strip()] or ["auto"]:
            notes: list[str] = []
            clusters.append((text, build_cluster(text, workload, notes), notes))
        slo_settings = SloSettings(slack_min, slack_max, no_slo_share, high_priority_share, seed=seed_list[0])
        eaco_settings = EacoSettings(
            util_threshold=util_threshold, memory_threshold=memory_threshold, memory_margin_gb=memory_margin_gb,
            max_jobs_per_gpu=max_jobs_per_gpu, observation_epochs=observation_epochs, alpha=alpha,
            confidence_z=confidence_z, unobserved_z=unobserved_z, max_candidates=max_candidates,
            min_speed=min_speed, urgent_slack=urgent_slack,
            urgent_min_speed=urgent_min_speed, late_jobs_best_effort=late_best_effort,
            consolidate=consolidate, consolidate_min_remaining_s=consolidate_min_remaining_s,
            consolidate_shared=consolidate_shared,
            reserve=reserve, reserve_wait_s=reserve_wait_s, wait_for_faster_type=wait_for_faster_type,
        )
        runs = [(labels[name], name, eaco_settings) for name in names]
        if sweep:
            from eaco.policies.variants import parse_sweep

            variants = [(label, "eaco", settings) for label, settings in parse_sweep(sweep, eaco_settings)]
            at = next((i for i, (name, _, _) in enumerate(runs) if name == "eaco"), len(runs))
            runs = runs[:at] + variants + [r for r in runs[at:] if r[0] != "eaco"]
        grid_settings = grid_settings_from_options(price_per_kwh, carbon_g_per_kwh, grid, grid_offset_h, grid_repeat, pue, currency)
        hardware = parse_hardware_cost(hardware_cost_per_gpu, hardware_life_years)
        for _, spec, _ in clusters if hardware.active else ():
            hardware.cluster_cost_per_s(spec)  # every GPU type priced, before anything runs
        sizing: tuple[NodeShape, int, int, SizingTarget] | None = None
        if smallest is not None:
            if len(clusters) > 1:
                raise InputError("--smallest", "sizes one cluster's node shape: give one --cluster")
            target = SizingTarget(DEFAULT_MAX_MISS_SHARE if max_miss_share is None else max_miss_share,
                                  None if max_avg_wait_h is None else max_avg_wait_h * S_PER_H)
            sizing = (NodeShape.of(clusters[0][1]), *parse_node_range(smallest), target)
        elif max_miss_share is not None or max_avg_wait_h is not None:
            raise InputError("--max-miss-share" if max_miss_share is not None else "--max-avg-wait-h", "applies with --smallest")
    except (InputError, FileNotFoundError, KeyError, ValueError) as exc:
        _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
    if env.profiles is not None and env.profiles.skipped:
        err_console.print(f"[yellow]profiles: {len(env.profiles.skipped)} row(s) not usable[/]: {env.profiles.skipped[0]}")

    def load(s: int) -> Workload:
        try:
            wl = load_named_workload(
                workload, env.catalog, seed=s, jobs=jobs, rate_per_h=rate_per_h,
                default_jobs=DEFAULT_GENERATED_JOBS, skip_bad_rows=skip_bad_rows, job_type_rule=job_types,
                priority_qos=tuple(q.strip() for q in slurm_priority_qos.split(",") if q.strip()),
                slurm_timezone=slurm_timezone,
            )
        except (InputError, FileNotFoundError, KeyError, ValueError) as exc:
            _fail(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
        return assign_slos(wl, replace(slo_settings, seed=s)) if slos else wl

    several_seeds = seeds is not None
    # each run's label then names its cluster: fifo@20x8xv100 (over several seeds a sized run keeps
    # its policy's label, so that the seeds summary compares each policy at its own size)
    several = len(clusters) > 1 or (sizing is not None and not several_seeds)
    cluster_text = "; ".join(spec.describe() for _, spec, _ in clusters)
    if sizing is not None:
        cluster_text = f"the fewest of {sizing[1]}-{sizing[2]} nodes of {sizing[0].describe()}"
    per_seed: list[tuple[int, list[Metrics]]] = []
    per_seed_sizing: list[tuple[int, list[SizingOutcome]]] = []
    for s in seed_list:
        wl = load(s)
        console.print(
            (f"seed {s}: " if several_seeds else "")
            + f"workload [bold]{wl.name}[/]: {wl.num_jobs:,} jobs, {wl.total_gpu_hours():,.0f} GPU-hours"
            + (f", {wl.skipped_rows:,} bad rows skipped" if wl.skipped_rows else "")
            + (f" ({_excluded_text(wl)} left out)" if wl.num_excluded else "")
            + "; " + "; ".join(f"cluster [bold]{spec.describe()}[/] ({spec.num_gpus:,} GPUs" + "".join(f"; {n}" for n in notes) + ")"
                               for _, spec, notes in clusters)
            + (f"; set-up {time.perf_counter() - t0:.1f}s" if s == seed_list[0] else "")
        )
        results: list[tuple[SimulationResult, Metrics]] = []
        run_specs: list[ClusterSpec] = []  # per result, its cluster
        searches: list[SizingOutcome] = []  # --smallest: per run, the sizes tried
        with _progress() as progress:

            def run(spec: ClusterSpec, ctext: str, label: str, name: str, settings: EacoSettings,
                    ) -> tuple[SimulationResult, Metrics]:
                shown = f"{label}@{ctext}" if several else label
                described = f"{label}@{ctext}" if several or sizing is not None else label
                task = progress.add_task(f"s{s} {described}" if several_seeds else described, total=wl.num_jobs)

                def on_progress(done: int, total: int, now_s: float) -> None:
                    progress.update(task, completed=done)

                try:
                    result, run_metrics = run_one(spec, wl, name, env, on_progress=on_progress, sleep=sleep, eaco_settings=settings)
                except (PolicyError, ValueError) as exc:
                    _fail(f"policy {shown}: {exc}")
                if shown != name:
                    result, run_metrics = replace(result, policy=shown), replace(run_metrics, policy=shown)
                return result, run_metrics

            if sizing is None:
                for ctext, spec, _ in clusters:
                    for label, name, settings in runs:
                        results.append(run(spec, ctext, label, name, settings))
                        run_specs.append(spec)
            else:
                shape, lo, hi, target = sizing
                for label, name, settings in runs:
                    tried: dict[int, tuple[SimulationResult, Metrics]] = {}

                    def evaluate(spec: ClusterSpec) -> Metrics:
                        tried[spec.num_nodes] = run(spec, spec.name, label, name, settings)  # noqa: B023 (called at once)
                        return tried[spec.num_nodes][1]

                    searches.append(search_smallest(label, shape, evaluate, lo, hi, target))
                    results.append(tried[searches[-1].chosen.num_nodes])
                    run_specs.append(shape.cluster(searches[-1].chosen.num_nodes))
        metrics = with_costs([r for r, _ in results], with_common_end([m for _, m in results]), grid_settings)
        metrics = with_ownership(metrics, run_specs, hardware)
        by_cluster = {spec.name: spec for spec in run_specs}
        idle_notes = [n for spec in by_cluster.values()
                      if (n := idle_cluster_note([m for m, c in zip(metrics, run_specs) if c.name == spec.name], spec.num_nodes, sleep))]
        if several_seeds:
            base = metrics[0]
            console.print(f"seed {s}: " + ", ".join(
                f"{m.policy} {m.energy_kwh:,.0f} kWh" + (f" ({m.energy_kwh / base.energy_kwh:.3f})" if m is not base and base.energy_kwh > 0 else "")
                + (f" on {o.chosen.num_nodes} nodes" if searches else "")
                for m, o in zip(metrics, searches or [None] * len(metrics))))
            if searches:
                per_seed_sizing.append((s, searches))
        else:
            if searches:
                from eaco.report.sizing_report import sizing_table

                console.print(sizing_table(searches, sizing[3]))
            console.print(metrics_table(metrics, title=f"{wl.name} on {cluster_text}", currency=currency))
            console.print(speed_table(metrics))
            for note in idle_notes:
                err_console.print(f"[yellow]{note}[/]")
        meta = {
            "eaco_version": __version__,
            "command": " ".join(["eaco", *sys.argv[1:]]),
            "workload": wl.name,
            "workload_source": wl.source,
            "cluster": cluster_text,
            "cluster_source": "; ".join(spec.name for _, spec, _ in clusters),
            "cluster_notes": [f"{spec.name}: {n}" if several else n for _, spec, notes in clusters for n in notes],
            "seed": s,
            "sleep": sleep,
            "profiles": [str(p) for p in profiles],
            "slos": replace(slo_settings, seed=s).describe() if slos else "as in the trace",
            "eaco_settings": repr(eaco_settings),
            "sweep": sweep or "none",
            "sleep_power_w": env.energy.host.low_power_w,
            "grid": grid_settings.describe() if grid_settings.active else "none (energy only)",
            "hardware": hardware.describe() if hardware.active else "none",
            "python": platform.python_version(),
        }
        if sizing is not None:
            meta["smallest"] = f"fewest of {sizing[1]}-{sizing[2]} nodes of {sizing[0].describe()} with {sizing[3].describe()}"
        if config_record(ctx) is not None:
            meta["config"] = config_record(ctx)
        folder = seed_dir(out, s) if several_seeds else out
        written = _write_simulate_outputs(folder, results, metrics, meta, plots, max(c.num_nodes for c in run_specs),
                                          idle_notes, currency, searches, sizing[3] if sizing else None)
        if not several_seeds:
            console.print(f"wrote {len(written)} files to [bold]{out}[/]: " + ", ".join(p.name for p in written[:4]) + ", ...")
        per_seed.append((s, metrics))
    if several_seeds:
        _write_seed_summary(out, per_seed, meta, plots, per_seed_sizing, sizing[3] if sizing else None)


def _write_simulate_outputs(out: Path, results: list[tuple[SimulationResult, Metrics]], metrics: list[Metrics],
                            meta: dict[str, object], plots: bool, num_nodes: int, idle_notes: list[str],
                            currency: str, searches: list[SizingOutcome] | None = None,
                            target: SizingTarget | None = None) -> list[Path]:
    """One simulate run's files in ``out``: the report first; with ``searches`` (``--smallest``)
    the sizes tried too."""
    from eaco.report.files import write_hourly_energy, write_jobs, write_metrics, write_timeseries
    from eaco.report.sizing_report import plot_sizing, sizing_section, write_sizing_files
    from eaco.report.simulate_report import write_simulate_report

    written = write_metrics(out, metrics, meta)
    sections: list[list[str]] = []
    if searches and target is not None:
        written += write_sizing_files(out, searches, target)
        sections.append(sizing_section(searches, target))
    for result, _ in results:
        written.append(write_jobs(out, result))
        written.append(write_timeseries(out, result))
        written.append(write_hourly_energy(out, result))
    figures = []
    if plots:
        from eaco.report.plots import plot_active_nodes, plot_energy_and_time

        figures.append(plot_active_nodes(out / "active_nodes.png", [r for r, _ in results], num_nodes))
        figures.append(plot_energy_and_time(out / "energy_time.png", metrics))
        if searches and target is not None:
            figures.append(plot_sizing(out / "sizing.png", searches, target))
    report = write_simulate_report(out, metrics, meta, figures, idle_notes, currency, sections)
    return [report, *written, *figures]


def _write_seed_summary(out: Path, per_seed: list[tuple[int, list[Metrics]]], meta: dict[str, object], plots: bool,
                        per_seed_sizing: list[tuple[int, list[SizingOutcome]]] | None = None,
                        target: SizingTarget | None = None) -> None:
    """``eaco simulate --seeds``: print the runs' estimates over the seeds and write the summary
    files at the top of ``out``; with ``--smallest``, each seed's fewest nodes too."""
    from eaco.report.seed_stats import summarise
    from eaco.report.seeds_report import (
        plot_seed_energy, seeds_table, write_seeds_csv, write_seeds_report, write_summary_files,
    )
    from eaco.report.sizing_report import seeds_sizing_section, seeds_sizing_table, write_seeds_sizing

    reference = per_seed[0][1][0].policy
    summaries = summarise(per_seed, reference)
    seeds = [s for s, _ in per_seed]
    meta = {k: v for k, v in meta.items() if k != "seed"} | {"seeds": seeds}
    console.print(seeds_table(summaries, reference, f"{meta['workload']} on {meta['cluster']}: mean ± 95% interval over "
                                                    f"{len(seeds)} seeds; ratios to {reference} [95% interval]"))
    written = [write_seeds_csv(out, per_seed), *write_summary_files(out, summaries, meta, reference)]
    sections: list[list[str]] = []
    if per_seed_sizing and target is not None:
        console.print(seeds_sizing_table(per_seed_sizing, target))
        written.append(write_seeds_sizing(out, per_seed_sizing))
        sections.append(seeds_sizing_section(per_seed_sizing, target))
    figures = [plot_seed_energy(out / "seeds_energy.png", per_seed, summaries, reference)] if plots else []
    written = [write_seeds_report(out, summaries, meta, reference, seeds, figures, sections), *written, *figures]
    console.print(f"wrote {len(written)} files to [bold]{out}[/] ({', '.join(p.name for p in written)}) "
                  f"and each seed's in {out}/seed-N/")


@app.command()
def reproduce(
    ctx: typer.Context,
    config: Optional[Path] = config_option(),
    out: Path = typer.Option(Path("results/reproduce"), "--out", "-o", help="output folder"),
    jobs: int = typer.Option(1000, "--jobs", "-n", help="jobs in the generated workload"),
    rate_per_h: float = typer.Option(6.0, "--rate", help="Poisson arrival rate (jobs per hour)"),
    seed: int = typer.Option(0, "--seed"),
    quick: bool = typer.Option(False, "--quick", help="skip the sensitivity runs, the fewest-nodes search and the Philly trace"),
    profiles: list[Path] = typer.Option(
        [], "--profiles", help="profile store(s) from 'eaco profile': refine co-location data and seed EaCO's history"
    ),
) -> None:
    """The paper's simulation study: 28 and 64 nodes x 8 V100, FIFO, FIFO-packed, Gandiva and
    EaCO on the same workload, the trade-off sweep and the full Philly trace; prints the paper's
    table side by side with ours and writes a Markdown report with figures."""

    from eaco.report.reproduce_report import beyond_paper_table, comparison_table, seeds_table, targets_table, write_reproduce_report
    from eaco.setup import load_environment
    from eaco.study.reproduce import StudyConfig, planned_runs, run_study

    if jobs < 1 or not rate_per_h > 0:
        _fail("--jobs must be >= 1 and --rate > 0")
    config = StudyConfig(num_jobs=jobs, arrival_rate_per_h=rate_per_h, seed=seed, heavy_rate_per_h=2 * rate_per_h)
    if quick:
        config = replace(config, sensitivity=False, philly=False, sizing_nodes=None)
    try:
        env = load_environment(profiles=profiles)
    except (InputError, FileNotFoundError) as exc:
        _fail(str(exc))
    with _progress("simulations") as progress:
        task = progress.add_task("reproduce", total=planned_runs(config))
        first = [True]

        def on_run(description: str) -> None:
            if not first[0]:
                progress.advance(task)
            first[0] = False
            progress.update(task, description=description[:40])

        study = run_study(config, env, on_run=on_run)
        progress.update(task, total=len(study.runs), completed=len(study.runs), description="reproduce")
    for nodes in config.node_counts:
        console.print(comparison_table(study, "main", nodes, f"{nodes} nodes x 8 V100: ours vs paper (normalised to FIFO)"))
    if study.group("beyond-paper"):
        console.print(beyond_paper_table(study))
    if study.group("seeds"):
        console.print(seeds_table(study))
    if study.sizing:
        from eaco.report.sizing_report import sizing_table

        console.print(sizing_table(study.sizing, config.sizing_target))
    console.print(targets_table(study))
    written = write_reproduce_report(out, study, " ".join(["eaco", *sys.argv[1:]]))
    console.print(f"wrote {len(written)} files to [bold]{out}[/] (open {out / 'report.md'}); took {study.wall_s:.0f} s")


@app.command()
def calibrate(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write calibration.json here"),
) -> None:
    """Node power model vs the paper's measured node power (Tables 1-4): fit on the exclusive
    rows, report the co-located rows as held out."""
    from eaco.energy.calibration import format_calibration_table, run_calibration

    try:
        report = run_calibration()
    except (InputError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(format_calibration_table(report))
    if out is not None:
        _write_json(out / "calibration.json", report.to_dict())


def _register_profiler() -> None:
    from eaco.profiler.cli import profile_command

    app.command(
        "profile",
        help="Run real PyTorch training jobs (the zoo's, or your own with --jobs) alone and co-located, measure energy (NVML), write profiles.",
    )(profile_command)


_register_profiler()


def _register_runtime() -> None:
    from eaco.runtime_cli import (
        cancel_command, export_trace_command, logs_command, report_command, serve_command, status_command, submit_command,
    )

    app.command("serve", help="Run the live scheduler daemon (local GPUs, same policies as the simulator).")(serve_command)
    app.command("submit", help="Submit job specs (YAML) to the running daemon; prints their ids.")(submit_command)
    app.command("status", help="Show jobs (or one job) and, with --summary, energy and JCT.")(status_command)
    app.command("cancel", help="Cancel a queued or running job.")(cancel_command)
    app.command("logs", help="Print a job's output.")(logs_command)
    app.command("export-trace", help="Write the jobs the runtime ran as a CSV trace that eaco simulate replays.")(export_trace_command)
    app.command("report", help="Write a report of what the runtime ran: jobs and attempts CSVs, a GPU timeline, energy, report.md.")(report_command)


_register_runtime()


@app.command("predictor-error")
def predictor_error(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="also write predictor_error.json here"),
    profiles: list[Path] = typer.Option([], "--profiles", help="profile store(s) to include in the history"),
) -> None:
    """Leave-one-out error of EaCO's co-location predictor (history H) on every measured
    combination: mean absolute percentage error per GPU type."""
    from eaco.predictor.report import format_predictor_table, predictor_error_report
    from eaco.setup import load_environment

    try:
        env = load_environment(profiles=profiles)
    except (InputError, FileNotFoundError) as exc:
        _fail(str(exc))
    report = predictor_error_report(env.new_predictor())
    console.print(format_predictor_table(report))
    if out is not None:
        _write_json(out / "predictor_error.json", report.to_dict())


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"eaco {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
