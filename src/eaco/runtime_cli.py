"""Typer commands of the live runtime: ``eaco serve``, ``submit``, ``status``, ``cancel``, ``logs``."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from eaco.errors import InputError
from eaco.runtime.errors import ApiError

DEFAULT_STATE_DIR = Path(os.environ.get("EACO_RUNTIME_DIR", str(Path.home() / ".eaco" / "runtime")))

StateDirOption = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="the runtime's state folder (env EACO_RUNTIME_DIR)")


LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (it may be replaced, e.g. in tests)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_daemon_logging(level: int) -> None:
    """The daemon's messages (``eaco.runtime`` loggers) on stderr, one line each with the time."""
    logger = logging.getLogger("eaco.runtime")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(handler)
        logger.propagate = False


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _client(state_dir: Path):  # type: ignore[no-untyped-def]
    from eaco.runtime.client import RuntimeClient

    try:
        return RuntimeClient(state_dir)
    except ApiError as exc:
        _fail(str(exc))


def serve_command(
    state_dir: Path = StateDirOption,
    gpus: str = typer.Option("nvml", "--gpus", help="'nvml' (find GPUs; nvml:TYPE or nvml:0,2 to use some of them) or COUNTxTYPE, e.g. 2xv100 (declared; CPU machines)"),
    policy: str = typer.Option("eaco", "--policy", "-p", help="eaco, fifo, fifo-packed, gandiva, or FILE.py:Class for a policy of your own (docs/policies.md)"),
    tick_s: float = typer.Option(0.2, "--tick-s", min=0.01, help="main loop period (s)"),
    exit_when_idle: bool = typer.Option(False, "--exit-when-idle", help="stop once no job is queued or running"),
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", min=0, max=65535,
        help="serve Prometheus metrics on 127.0.0.1:PORT (0: a free port; the address goes to <state>/metrics.json); default off",
    ),
    backend: str = typer.Option("local", "--backend", help="'local' (processes on this machine) or 'ray' (a Ray cluster)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join ('auto' or host:port); default: start a local one with the --gpus GPUs"),
    ray_gpu_type: Optional[str] = typer.Option(None, "--ray-gpu-type", help="GPU type of Ray nodes that declare none (eaco_type_<type> resource); default: what the state folder recorded, else v100; nodes may differ"),
    api: str = typer.Option("tcp", "--api", help="API transport: 'tcp' (127.0.0.1, a free port) or 'unix' (<state>/api.sock, mode 0600)"),
    alone_first: bool = typer.Option(
        True, "--alone-first/--share-unmeasured",
        help="a job whose exclusive epoch time is unknown (none declared, none measured for its workload) runs alone until it has measured one (default), or may share at once",
    ),
    profiles: list[Path] = typer.Option(
        [], "--profiles",
        help="profile store(s) from 'eaco profile': measured co-locations seed EaCO's history; jobs profiled with --jobs become job types specs may name",
    ),
    ray_files: str = typer.Option(
        "shared", "--ray-files",
        help="--backend ray: 'shared' (the nodes see the state folder: NFS or one host) or 'node' (each attempt's report, "
             "log and stop file on its node, copied to the daemon through Ray; docs/runtime_ray.md)",
    ),
    ray_checkpoint_sync: str = typer.Option(
        "60", "--ray-checkpoint-sync", metavar="SECONDS|end|off",
        help="--ray-files node: copy a running job's checkpoint folder to the daemon every SECONDS, and when its attempt "
             "ends, so that a job moved to another node resumes ('end': only when an attempt ends; 'off': no relay)",
    ),
    eaco_setting: list[str] = typer.Option(
        [], "--eaco-setting", metavar="NAME=VALUE",
        help="EaCO: change one setting, NAME=VALUE (repeat for several; e.g. alpha=0.5, util_threshold=0.7, "
             "wait_for_faster_type=false; the names of eaco simulate's EaCO options, docs/eaco.md)",
    ),
    log_level: str = typer.Option(
        "info", "--log-level",
        help="what the daemon prints on stderr: 'info' (every job event: submitted, started and with whom it shares, undone, moved, finished, failed), 'warning' or 'debug'",
    ),
) -> None:
    """Run the runtime daemon (API on 127.0.0.1 or a Unix socket, with a token; state in SQLite)."""
    level = LOG_LEVELS.get(log_level.strip().lower())
    if level is None:
        _fail(f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    configure_daemon_logging(level)
    from eaco.policies.registry import policy_label
    from eaco.runtime.api import check_transport
    from eaco.runtime.daemon import ServeOptions, serve
    from eaco.runtime.gpus import discover_gpus

    try:
        policy_label(policy)  # a built-in name, or FILE.py:Class loaded now: refused before anything starts
    except (InputError, KeyError) as exc:
        _fail(f"--policy: {exc.args[0] if isinstance(exc, KeyError) else exc}")
    eaco_settings, changed = None, ""
    if eaco_setting:
        from eaco.policies.eaco import EacoSettings
        from eaco.policies.variants import describe_changes, parse_settings

        if policy.strip().lower() != "eaco":
            _fail(f"--eaco-setting: applies to --policy eaco, not {policy!r}")
        try:
            eaco_settings, changes = parse_settings(eaco_setting, EacoSettings(), "--eaco-setting")
        except InputError as exc:
            _fail(str(exc))
        changed = f" ({describe_changes(changes)})"
    backend = backend.strip().lower()
    if backend not in ("local", "ray"):
        _fail(f"--backend: expected 'local' or 'ray', got {backend!r}")
    ray_files = ray_files.strip().lower()
    if ray_files not in ("shared", "node"):
        _fail(f"--ray-files: expected 'shared' or 'node', got {ray_files!r}")
    if ray_files == "node" and backend != "ray":
        _fail("--ray-files applies to --backend ray")
    checkpoint_sync_s = parse_checkpoint_sync(ray_checkpoint_sync)
    try:
        api = check_transport(api)
    except InputError as exc:
        _fail(str(exc))
    inventory = None
    if backend == "ray" and ":" in gpus:
        _fail("--gpus: nvml:TYPE / nvml:INDICES choose GPUs for the local backend; a local Ray instance takes "
              "every GPU of the machine (--gpus nvml) or declared ones (COUNTxTYPE)")
    if backend == "local" or ray_address is None:
        try:
            inventory = discover_gpus(gpus)
        except InputError as exc:
            _fail(str(exc))
        where = "a local Ray instance with " if backend == "ray" else ""
        typer.echo(f"eaco serve: {where}{inventory.describe()}, policy {policy}{changed}, state {state_dir}", err=True)
    else:
        typer.echo(f"eaco serve: Ray cluster {ray_address}, policy {policy}{changed}, state {state_dir}", err=True)
    try:
        serve(ServeOptions(state_dir, inventory, policy.strip(), tick_s, exit_when_idle, metrics_port,
                           backend, ray_address, ray_gpu_type, api, alone_first, tuple(profiles),
                           ray_shared_files=ray_files == "shared", eaco_settings=eaco_settings,
                           ray_checkpoint_sync_s=checkpoint_sync_s))
    except InputError as exc:
        _fail(str(exc))


def parse_checkpoint_sync(text: str) -> float | None:
    """--ray-checkpoint-sync: SECONDS (> 0), 'end' (0: only when an attempt ends) or 'off' (None)."""
    value = text.strip().lower()
    if value == "off":
        return None
    if value == "end":
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        _fail(f"--ray-checkpoint-sync: expected a number of seconds > 0, 'end' or 'off', got {text!r}")
    return seconds


def submit_command(
    specs: list[Path] = typer.Argument(..., help="job spec(s) (YAML)", metavar="SPEC..."),
    state_dir: Path = StateDirOption,
) -> None:
    """Submit job specs; prints one job id per spec, in order. Every spec is checked first: a bad
    one is refused with its file and field named, and then none is submitted."""
    from eaco.runtime.spec import load_spec

    nothing = "; nothing submitted" if len(specs) > 1 else ""
    for spec in specs:
        try:
            load_spec(spec)  # a clear error before any request
        except InputError as exc:
            _fail(str(exc) + nothing)
    client = _client(state_dir)
    if len(specs) > 1:  # what only the daemon can check (its job types and GPUs), for all before any
        for spec in specs:
            try:
                client.check(spec)
            except ApiError as exc:
                _fail(str(exc) + nothing)
    for i, spec in enumerate(specs):
        try:
            job_id = client.submit(spec)
        except ApiError as exc:
            _fail(f"{exc}" + (f" (the {i} spec(s) before it were submitted: their ids are above)" if i else ""))
        typer.echo(str(job_id))


def status_command(
    job_id: Optional[int] = typer.Argument(None, help="one job (default: all)"),
    state_dir: Path = StateDirOption,
    summary: bool = typer.Option(False, "--summary", help="energy and JCT summary (tables; with --json: JSON)"),
    gpus: bool = typer.Option(False, "--gpus", help="each GPU now: node, type, its jobs, memory, utilisation, power"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    show_all: bool = typer.Option(False, "--all", help="every job the state folder has seen (default: the active ones and the --last ended)"),
    last: int = typer.Option(20, "--last", min=0, help="how many of the latest ended jobs to list beside the active ones"),
    price_per_kwh: Optional[float] = typer.Option(None, "--price-per-kwh", help="--summary: electricity price (--currency per kWh): cost of the run and of each job"),
    carbon_g_per_kwh: Optional[float] = typer.Option(None, "--carbon-g-per-kwh", help="--summary: grid carbon intensity (g CO2e per kWh): emissions of the run and of each job"),
    pue: float = typer.Option(1.0, "--pue", help="--summary: power usage effectiveness: cost and carbon apply to energy x PUE"),
    currency: str = typer.Option("USD", "--currency", help="currency of --price-per-kwh (a label)"),
    grid: Optional[Path] = typer.Option(
        None, "--grid",
        help="--summary: CSV of hourly prices/intensities (columns hour, price_per_kwh and/or carbon_g_per_kwh); "
             "hour h = the h-th UTC hour since 1970-01-01, so a 24-row series is a UTC day (docs/runtime.md)"),
    grid_offset_h: int = typer.Option(0, "--grid-offset-h", help="--grid: shift the series by this many hours (-1 for a series in UTC+1 local time)"),
    grid_repeat: bool = typer.Option(True, "--grid-repeat/--grid-hold", help="--grid: past its last hour the series repeats, or holds its last value"),
) -> None:
    """Show jobs (state, GPUs, epochs, attempts), one job in detail (its attempts and events), or the summary."""
    from eaco.energy.grid import grid_settings_from_options
    from eaco.runtime.summary import add_costs

    try:
        grid_settings = grid_settings_from_options(price_per_kwh, carbon_g_per_kwh, grid, grid_offset_h, grid_repeat,
                                                   pue=pue, currency=currency)
    except InputError as exc:
        _fail(str(exc))
    if grid_settings.active and not summary:
        _fail("--price-per-kwh, --carbon-g-per-kwh, --grid and --pue apply to --summary")
    if gpus and (summary or job_id is not None):
        _fail("--gpus shows the GPUs; give it without --summary or a job id")
    client = _client(state_dir)
    try:
        if gpus:
            payload = client.gpus()
            typer.echo(json.dumps(payload, indent=2) if as_json else format_gpus(payload))
            return
        if summary:
            payload = client.summary()
            if grid_settings.active:
                payload = add_costs(payload, grid_settings, client.energy_hours())
        elif job_id is not None:
            payload = client.job(job_id)
        elif show_all:
            payload = {"jobs": client.jobs()}
        else:
            listed, omitted = client.recent_jobs(last)
            payload = {"jobs": listed, "ended_omitted": omitted}
    except ApiError as exc:
        _fail(str(exc))
    if summary and not as_json:
        typer.echo(format_summary(payload))
        return
    if as_json or summary:
        typer.echo(json.dumps(payload, indent=2))
        return
    if job_id is not None:
        typer.echo(format_job(payload))
        return
    typer.echo(f"{'id':>4} {'name':<20} {'state':<10} {'gpus':<8} {'epochs':>6} {'tries':>5} {'undos':>5} {'moves':>5}")
    for j in payload["jobs"]:
        gpus = ",".join(str(g) for g in (j["gpus"] or [])) or "-"
        typer.echo(f"{j['job_id']:>4} {j['name'][:20]:<20} {j['state']:<10} {gpus:<8} {j['epochs_done']:>6} {j['attempts']:>5} "
                   f"{j['undos']:>5} {j.get('migrations', 0):>5}")
    if payload.get("ended_omitted"):
        typer.echo(f"({payload['ended_omitted']} older ended jobs not shown: --all, or --last N)")


def _fmt(value: object, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def format_gpus(payload: dict) -> str:  # type: ignore[type-arg]
    """``eaco status --gpus``: one line per GPU as of the daemon's last tick."""
    rows = payload.get("gpus") or []
    if not rows:
        return "no GPU state yet (the daemon has not completed a tick)"
    lines = [f"{'gpu':>4} {'node':<10} {'type':<6} {'jobs':<16} {'memory GB':>13} {'util est':>8} {'power W':>8} {'util':>5}"]
    for g in rows:
        jobs = ",".join(str(j) for j in g["jobs"]) or "-"
        memory = f"{g['memory_reserved_gb']:.1f}/{g['memory_gb']:.0f}"
        measured_util = "-" if g.get("util_measured") is None else f"{g['util_measured']:.0%}"
        lines.append(f"{g['gpu']:>4} {g['node'][:10]:<10} {g['gpu_type']:<6} {jobs[:16]:<16} {memory:>13} "
                     f"{g['util_estimate']:>8.0%} {_fmt(g.get('power_w'), '.0f'):>8} {measured_util:>5}")
    shared = sum(1 for g in rows if len(g["jobs"]) > 1)
    lines.append(f"{len(rows)} GPUs: {sum(1 for g in rows if g['jobs'])} busy, {shared} shared; as of {_when(payload.get('time_unix'))}"
                 + ("" if any(g.get("power_w") is not None for g in rows) else "; power not measured (no NVML)"))
    return "\n".join(lines)


def _when(unix: float | None) -> str:
    return "-" if unix is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))


def format_job(payload: dict) -> str:  # type: ignore[type-arg]
    """One job in detail (``eaco status JOB_ID``; ``--json`` for JSON): its state and times, its
    attempts and its events, oldest first."""
    j = payload["job"]
    gpus = ",".join(str(g) for g in (j["gpus"] or [])) or "-"
    end = j["finish_unix"]
    jct = end - j["first_start_unix"] if end and j["first_start_unix"] else None
    lines = [
        f"job {j['job_id']} {j['name']}: {j['state']}" + (" (cancel requested)" if j.get("cancel_requested") and j["state"] in ("running", "stopping") else ""),
        f"  submitted {_when(j['submit_unix'])}   first started {_when(j['first_start_unix'])}   ended {_when(end)}",
        f"  JCT {_fmt(jct)} s   run {_fmt(j['run_time_s'])} s   shared {_fmt(j['colocated_s'])} s   energy {_fmt(j['energy_j'], ',.0f')} J",
        f"  epochs done {j['epochs_done']}   GPUs {gpus}   attempts {j['attempts']}   undos {j['undos']}   moves {j.get('migrations', 0)}"
        + ("   exclusive only" if j.get("exclusive_only") else ""),
    ]
    if j.get("exit_code") is not None or j.get("reason"):
        lines.append(f"  exit code {_fmt(j.get('exit_code'), 'd')}" + (f"   {j['reason']}" if j.get("reason") else ""))
    if payload.get("attempts"):
        lines += ["", f"  {'attempt':>7}  {'GPUs':<8} {'started':<19}  {'ended':<19}  {'exit':>4}  {'outcome':<10} shared"]
        for a in payload["attempts"]:
            lines.append(f"  {a['attempt']:>7}  {','.join(map(str, a['gpus'])):<8} {_when(a['start_unix']):<19}  {_when(a['end_unix']):<19}  "
                         f"{_fmt(a['exit_code'], 'd'):>4}  {a['outcome']:<10} {'yes' if a['colocated'] else 'no'}")
    if payload.get("events"):
        lines += ["", "  events:"]
        lines += [f"  {_when(e['time_unix'])}  {e['kind']:<18} {e['detail']}".rstrip() for e in payload["events"]]
    return "\n".join(lines)


def format_summary(summary: dict) -> str:  # type: ignore[type-arg]
    """The energy and JCT summary as plain tables (``eaco status --summary``; ``--json`` for JSON)."""
    lines = [f"{'id':>4} {'name':<20} {'state':<10} {'JCT s':>9} {'run s':>9} {'wait s':>8} {'shared s':>9} {'energy J':>10} {'tries':>5} {'undos':>5} {'moves':>5} {'alone epoch s':>13}"]
    for j in summary["jobs"]:
        lines.append(f"{j['job_id']:>4} {j['name'][:20]:<20} {j['state']:<10} {_fmt(j['jct_s']):>9} {_fmt(j['run_time_s']):>9} "
                     f"{_fmt(j['waiting_s']):>8} {_fmt(j['colocated_s']):>9} {_fmt(j['energy_j'], ',.0f'):>10} {j['attempts']:>5} {j['undos']:>5} "
                     f"{j.get('migrations', 0):>5} {_fmt(j.get('exclusive_epoch_s'), '.3g'):>13}")
    counts = ", ".join(f"{n} {s}" for s, n in summary["counts"].items() if n)
    lines += ["", f"jobs: {counts or 'none'}; co-located: {summary['colocated_jobs']}; undos: {summary['undos']}; moves: {summary.get('migrations', 0)}; "
              f"mean JCT {_fmt(summary['mean_jct_s'])} s, max {_fmt(summary['max_jct_s'])} s"]
    energy = summary.get("energy")
    if energy:
        lines.append(f"energy over {energy['duration_s']:.0f} s: {energy['total_j']:,.0f} J ({energy['total_kwh']:.4f} kWh) = "
                     f"GPU busy {energy['gpu_busy_j']:,.0f} + GPU idle {energy['gpu_idle_j']:,.0f} + host {energy['host_j']:,.0f} J")
        if energy.get("model_gpu_error_pct") is not None:
            lines.append(f"energy model vs NVML on the GPUs: {energy['model_gpu_error_pct']:+.1f} %")
        lines.append(energy["label"])
        split = energy.get("shared_gpu_split_s") or {}
        if split.get("measured", 0.0) + split.get("declared", 0.0) > 0:
            from eaco.runtime.summary import shared_split_sentence

            lines.append(shared_split_sentence(split["measured"], split["declared"]))
    costs = summary.get("costs")
    if costs:
        lines.append(f"cost and carbon ({costs['settings']}): " + "; ".join(
            f"{what} {_priced(costs[key], costs['currency'])}"
            for what, key in (("cluster", "cluster"), ("attributed to jobs", "attributed")) if costs.get(key)))
        if costs.get("hourly"):
            lines.append("hourly prices/intensities: the cluster per hour; each job at the energy-weighted mean over the hours it ran")
    return "\n".join(lines)


def _priced(p: dict, currency: str) -> str:  # type: ignore[type-arg]
    parts = [f"{p['facility_kwh']:.4f} kWh x PUE"]
    if p.get("cost") is not None:
        parts.append(f"{p['cost']:,.4f} {currency}")
    if p.get("carbon_kg") is not None:
        parts.append(f"{p['carbon_kg']:,.4f} kg CO2e")
    return ", ".join(parts)


def cancel_command(job_id: int = typer.Argument(...), state_dir: Path = StateDirOption) -> None:
    """Cancel a job (a running one is stopped: SIGTERM, then SIGKILL)."""
    try:
        state = _client(state_dir).cancel(job_id)
    except ApiError as exc:
        _fail(str(exc))
    typer.echo(f"job {job_id}: {state}" + (" (cancel requested)" if state in ("running", "stopping") else ""))


def logs_command(
    job_id: int = typer.Argument(...),
    state_dir: Path = StateDirOption,
    tail_bytes: int = typer.Option(65536, "--tail-bytes", min=0, help="show at most this many bytes from the end"),
    follow: bool = typer.Option(False, "--follow", "-f", help="then print new output as it comes, until the job has ended (Ctrl-C stops)"),
    poll_s: float = typer.Option(0.5, "--poll-s", min=0.05, help="--follow: seconds between looks"),
) -> None:
    """Print a job's output (every attempt); with --follow, go on printing it as it grows."""
    from eaco.runtime.store import ACTIVE_STATES

    client = _client(state_dir)
    try:
        text, end = client.logs_tail(job_id, tail_bytes)
        typer.echo(text, nl=False)
        if not follow:
            return
        while True:
            ended = client.job(job_id)["job"]["state"] not in ACTIVE_STATES  # read before the log: nothing is missed
            text, end = client.logs_from(job_id, end, partial=ended)
            if text:
                typer.echo(text, nl=False)
            elif ended:
                return
            else:
                time.sleep(poll_s)
    except ApiError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return



def export_trace_command(
    out: Path = typer.Option(Path("runtime_trace.csv"), "--out", "-o", help="the CSV trace to write"),
    state_dir: Path = StateDirOption,
    states: str = typer.Option("finished", "--states", help="jobs ended so, comma-separated: finished, failed, cancelled"),
    profiles: list[Path] = typer.Option([], "--profiles", help="the profile store(s) the daemon was served with (their job types)"),
    as_json: bool = typer.Option(False, "--json", help="print what was written as JSON"),
) -> None:
    """Write the jobs the runtime ran as a CSV trace that 'eaco simulate -w csv:FILE' replays
    (their measured exclusive epoch times, deadlines, GPU counts; what really happened beside)."""
    from eaco.runtime.trace_export import describe, export_trace, summary_json
    from eaco.setup import load_environment

    try:
        env = load_environment(profiles=profiles)
        result = export_trace(state_dir, out, env.catalog, tuple(s.strip().lower() for s in states.split(",") if s.strip()))
    except InputError as exc:
        _fail(str(exc))
    typer.echo(summary_json(result) if as_json else describe(result))


def report_command(
    state_dir: Path = StateDirOption,
    out: Path = typer.Option(Path("results/runtime"), "--out", "-o", help="output folder"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write timeline.png"),
) -> None:
    """Write what the runtime ran as files: report.md, jobs.csv, attempts.csv, energy_hourly.csv,
    summary.json and a timeline of the attempts on each GPU (timeline.png). Reads the state
    folder; the daemon may be running or not."""
    from eaco.report.runtime_report import write_runtime_report

    try:
        got = write_runtime_report(state_dir, out, plots=plots)
    except InputError as exc:
        _fail(str(exc))
    typer.echo(f"{got.jobs} jobs, {got.attempts} attempts, {got.colocated_jobs} co-located, {got.energy_kwh:.4f} kWh accounted")
    typer.echo(f"wrote {len(got.files)} files to {out} (open {out / 'report.md'}): " + ", ".join(f.name for f in got.files))
