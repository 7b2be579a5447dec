"""``eaco profile``: run the profiling experiment from the command line.

The lead registers :func:`profile_command` on the main app (``app.command("profile")(profile_command)``).
Defaults are tiny (small images, narrow models, a few steps) so that a CPU run finishes in well under
a minute; docs/profiler.md gives the command for a real GPU run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from eaco.energy.host_power import HostPowerModel
from eaco.errors import InputError
from eaco.profiler.experiment import JobSettings, ProfilerError, parse_models, parse_sets
from eaco.profiler.members import check_members, parse_job_files, spec_members, zoo_members

DEFAULT_MODELS = "alexnet,resnet18,resnet50,vgg16"


def _parse_gpus(text: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError("--gpus", f"expected comma-separated GPU indices, got {text!r}") from None
    if any(i < 0 for i in out):
        raise InputError("--gpus", f"expected indices >= 0, got {text!r}")
    return out


def profile_command(
    models: Optional[str] = typer.Option(None, "--models", "-m",
                                         help="comma-separated zoo models: alexnet, resnet18, resnet50, vgg16, transformer_lm,"
                                              f" lstm_lm, ncf, or 'none' (default without --jobs: {DEFAULT_MODELS})"),
    jobs: Optional[str] = typer.Option(None, "--jobs", "-j",
                                       help="comma-separated job spec files (YAML, as for 'eaco submit'): your own training"
                                            " scripts, profiled under their names, alone and in sets with the models"),
    sets: str = typer.Option("all", "--sets", "-s",
                             help="sets to run together: pairs, triples, quads, all, none, or sizes (e.g. 'pairs,all')"),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="batch size of every job (over all its GPUs)"),
    epochs: int = typer.Option(2, "--epochs", "-e", help="epochs per job (epoch 0 counts as warm-up when >1)"),
    steps_per_epoch: int = typer.Option(4, "--steps-per-epoch", help="training steps per epoch"),
    image_size: int = typer.Option(64, "--image-size", help="side of the synthetic images (224 = ImageNet)"),
    width_mult: float = typer.Option(0.25, "--width-mult", help="scale of every channel/hidden size (1 = published model)"),
    seq_len: int = typer.Option(32, "--seq-len", help="tokens per sequence (language models)"),
    vocab_size: int = typer.Option(2000, "--vocab-size", help="vocabulary size (language models)"),
    num_classes: int = typer.Option(100, "--num-classes", help="classes (image models; 1000 = ImageNet)"),
    amp: bool = typer.Option(False, "--amp/--no-amp", help="mixed precision"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    workers: int = typer.Option(1, "--workers", help="DataLoader worker processes per job"),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads per job (0 = torch default: all cores)"),
    gpus: str = typer.Option("", "--gpus", help="GPU indices every job uses, e.g. '0' or '0,1,2,3,4,5,6,7' (default: all)"),
    gpu_type: Optional[str] = typer.Option(None, "--gpu-type", help="override the GPU type key derived from NVML"),
    sample_hz: float = typer.Option(10.0, "--sample-hz", help="telemetry samples per second"),
    host_idle_w: float = typer.Option(HostPowerModel().idle_power_w, "--host-idle-w", help="host power at 0% CPU (W)"),
    host_max_w: float = typer.Option(HostPowerModel().max_power_w, "--host-max-w", help="host power at 100% CPU (W)"),
    timeout_s: float = typer.Option(3600.0, "--timeout-s", help="time limit of one run (s)"),
    out: Path = typer.Option(Path("results/profile"), "--out", "-o", help="output folder"),
    resume: bool = typer.Option(False, "--resume/--no-resume",
                                help="keep the runs an earlier, interrupted command saved in --out with the same settings and GPUs"),
    time_budget_s: Optional[float] = typer.Option(None, "--time-budget-s",
                                                  help="start no new run after this many seconds (exit 3; --resume goes on)"),
    report_only: bool = typer.Option(False, "--report-only",
                                     help="run nothing: write the report of the profile in --out again from its saved files"),
) -> None:
    """Train zoo jobs and your own (--jobs) alone and together; measure time, power, energy and utilisation; write profiles."""
    from eaco.profiler.pipeline import ProfileConfig, ProfileIncomplete, rebuild_report, run_profile

    console = Console(stderr=True, emoji=False)
    if report_only:
        try:
            files = rebuild_report(out)
        except (InputError, ProfilerError, OSError) as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=2) from None
        for name, path in files.items():
            console.print(f"{name}: {path}")
        return
    try:
        model_text = models if models is not None else ("none" if jobs else DEFAULT_MODELS)
        model_names = () if model_text.strip().lower() == "none" else parse_models(model_text)
        settings = JobSettings(batch_size=batch_size, epochs=epochs, steps_per_epoch=steps_per_epoch,
                               image_size=image_size, num_classes=num_classes, seq_len=seq_len, vocab_size=vocab_size,
                               width_mult=width_mult, amp=amp, device=device, workers=workers, threads=threads)
        for name, value in (("--batch-size", batch_size), ("--epochs", epochs), ("--steps-per-epoch", steps_per_epoch)):
            if value < 1:
                raise InputError(name, f"expected >= 1, got {value}")
        if device not in ("auto", "cpu", "cuda"):
            raise InputError("--device", f"expected auto, cpu or cuda, got {device!r}")
        members = check_members(zoo_members(model_names, settings) + (spec_members(parse_job_files(jobs)) if jobs else ()))
        set_list = parse_sets(sets, [m.name for m in members])
        if not sample_hz > 0:
            raise InputError("--sample-hz", f"expected > 0, got {sample_hz}")
        if time_budget_s is not None and not time_budget_s >= 0:
            raise InputError("--time-budget-s", f"expected >= 0, got {time_budget_s}")
        cfg = ProfileConfig(members=members, sets=set_list, settings=settings, out_dir=out, sample_hz=sample_hz,
                            gpus=_parse_gpus(gpus), gpu_type=gpu_type,
                            host_model=HostPowerModel(idle_power_w=host_idle_w, max_power_w=host_max_w),
                            timeout_s=timeout_s, resume=resume, time_budget_s=time_budget_s)
        result = run_profile(cfg, console)
    except ProfileIncomplete as exc:
        console.print(f"[yellow]time budget spent:[/] {exc}")
        raise typer.Exit(code=3) from None
    except (InputError, KeyError, ValueError, ProfilerError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    console.print(f"profile store: {result.store_path}")
    for name, path in result.files.items():
        console.print(f"{name}: {path}")
    for c in result.store.colocated:
        console.print(f"{'+'.join(c.members)}: energy saved {100 * c.energy_saved_frac:+.1f}% vs alone;"
                      f" speeds {', '.join(f'{s:.2f}' for s in c.speeds)}")
