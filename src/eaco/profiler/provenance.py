"""Where a profile came from: GPU, driver, software versions, date, the exact command and the host."""

from __future__ import annotations

import datetime as dt
import platform
import shlex
import sys
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from eaco import __version__
from eaco.colocation.profiles import Provenance
from eaco.profiler.gpu_naming import CPU_GPU_TYPE, gpu_type_key
from eaco.profiler.telemetry import GpuDevice


def current_command() -> str:
    """The command line of this process, shell-quoted (``sys.argv``; the interpreter added before a ``.py`` script)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(".py"):
        argv = [sys.executable, *argv]
    return shlex.join(argv)


def collect_provenance(
    devices: Sequence[GpuDevice],
    driver_version: str | None,
    telemetry: str,
    sample_hz: float,
    settings: Mapping[str, Any],
    gpu_type: str | None = None,
    command: str | None = None,
) -> Provenance:
    """``gpu_type``: override the key derived from the NVML name (or ``"cpu"`` without GPUs)."""
    import torch

    names = tuple(d.name for d in devices)
    if gpu_type is None:
        keys = {gpu_type_key(n) for n in names}
        if len(keys) > 1:
            raise ValueError(f"gpus: the chosen GPUs are of different types {sorted(keys)}; profile one type at a time")
        gpu_type = keys.pop() if keys else CPU_GPU_TYPE
    return Provenance(
        created_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        command=command if command is not None else current_command(),
        host=platform.node(),
        gpu_type=gpu_type,
        gpu_names=names,
        driver_version=driver_version,
        cuda_version=torch.version.cuda,
        torch_version=torch.__version__,
        python_version=platform.python_version(),
        eaco_version=__version__,
        telemetry=telemetry,
        sample_hz=sample_hz,
        settings=MappingProxyType(dict(settings)),
    )
