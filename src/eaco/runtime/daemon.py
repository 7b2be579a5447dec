"""``eaco serve``: build the runtime (GPUs, policy, store, backend), start the API, run the loop."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eaco.errors import InputError
from eaco.policies.base import Policy
from eaco.policies.eaco import EacoSettings
from eaco.policies.registry import PolicyContext, make_policy
from eaco.runtime.accounting import measured_cpu_util
from eaco.runtime.api import ApiServer
from eaco.runtime.checkpoint_relay import SYNC_S
from eaco.runtime.engine import Runtime
from eaco.runtime.gpu_meter import open_gpu_meter
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.layout import StateLayout
from eaco.runtime.local_backend import LocalBackend
from eaco.runtime.lock import StateLock
from eaco.runtime.store import Store
from eaco.runtime.wrapper import read_json_dict, write_json_atomic

log = logging.getLogger("eaco.runtime")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    state_dir: Path
    inventory: GpuInventory | None  # Ray backend: the GPUs of a local Ray it starts (no ray_address), else None
    policy_name: str = "eaco"
    tick_s: float = 0.2
    exit_when_idle: bool = False  # stop once no job is queued or running (tests, batch use)
    metrics_port: int | None = None  # Prometheus endpoint on 127.0.0.1: None = off, 0 = a free port
    backend: str = "local"  # "local" (processes on this machine) or "ray"
    ray_address: str | None = None  # Ray cluster to join ("auto", "host:port"); None starts a local one
    # GPU type of Ray nodes without an eaco_type_<type> marker (None: the state folder's, else v100)
    ray_gpu_type: str | None = None
    api: str = "tcp"  # API transport: "tcp" (127.0.0.1, random port) or "unix" (<state>/api.sock)
    alone_first: bool = True  # a job with no known exclusive epoch time runs alone until it measured one
    # profile stores from ``eaco profile``: measured co-locations seed EaCO's history, and the
    # jobs profiled there (``--jobs``) become job types that specs may name
    profiles: tuple[Path, ...] = ()
    ray_shared_files: bool = True  # Ray: the nodes see the state folder (else node-local files, runtime_ray.md)
    # node-local files: a running job's checkpoint folder copied to the daemon this often (0: only
    # when an attempt ends; None: no checkpoint relay)
    ray_checkpoint_sync_s: float | None = SYNC_S
    eaco_settings: EacoSettings | None = None  # EaCO's settings (None: the defaults)


def build_runtime(options: ServeOptions, policy_factory: Callable[[PolicyContext], Policy] | None = None) -> tuple[Runtime, "object"]:
    from eaco.setup import load_environment

    if options.backend == "ray":
        from eaco.runtime.ray_runtime import build_ray_runtime

        return build_ray_runtime(options.state_dir, options.policy_name, options.tick_s,
                                 options.ray_address, options.ray_gpu_type, policy_factory,
                                 local_gpus=options.inventory if options.ray_address is None else None,
                                 alone_first=options.alone_first, profiles=options.profiles,
                                 shared_files=options.ray_shared_files, eaco_settings=options.eaco_settings,
                                 checkpoint_sync_s=options.ray_checkpoint_sync_s)
    if options.backend != "local":
        raise InputError("--backend", f"expected 'local' or 'ray', got {options.backend!r}")
    if options.inventory is None:
        raise InputError("--gpus", "the local backend needs GPUs (found through NVML or declared)")

    env = load_environment(profiles=options.profiles)
    ctx = env.policy_context(options.eaco_settings)
    policy = policy_factory(ctx) if policy_factory else make_policy(options.policy_name, ctx)
    layout = StateLayout(options.state_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    store = Store(layout.db)
    _keep_gpus(layout, store, options.inventory)
    meter, why = open_gpu_meter(options.inventory)
    if meter is None:
        log.info("GPU energy is modelled: %s", why)
    runtime = Runtime(layout, store, LocalBackend(), policy, options.inventory, env.catalog, env.energy,
                      cpu_util=measured_cpu_util(), tick_s=options.tick_s, gpu_meter=meter, alone_first=options.alone_first)
    return runtime, env


def _keep_gpus(layout: StateLayout, store: Store, inventory: GpuInventory) -> None:
    """Refuse GPUs other than the last daemon's while jobs still hold some of them (their rows
    name GPUs by the policy's numbering, which the devices behind it would no longer match);
    otherwise record these for the next start."""
    saved, now = read_json_dict(layout.gpus_file), inventory.to_json()
    if saved is not None and saved != now:
        holding = [r.job_id for r in store.jobs(("running", "stopping"))]
        if holding:
            raise InputError(
                "--gpus",
                f"the state folder {layout.root} was served with {_gpus_text(saved)}, now {_gpus_text(now)}, while jobs "
                f"{', '.join(str(j) for j in holding)} still hold GPUs: serve with the same --gpus until they end "
                "(eaco cancel them there if they need not finish), then change",
            )
    write_json_atomic(layout.gpus_file, now)


def _gpus_text(record: dict[str, object]) -> str:
    """``2xv100 (devices 0,1, declared)`` from a :meth:`GpuInventory.to_json` record."""
    devices = [str(i) for i in record.get("device_indices") or ()]  # type: ignore[attr-defined]
    return (f"{len(devices)}x{record.get('gpu_type')} (devices {','.join(devices)}"
            f"{', declared' if record.get('declared') else ''})")


def serve(options: ServeOptions, stop: threading.Event | None = None,
          policy_factory: Callable[[PolicyContext], Policy] | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``). Jobs keep running when the daemon stops; the next
    daemon on the same state folder re-attaches them. A second daemon on a state folder that one
    already serves is refused (InputError naming ``--state-dir``) before it touches anything."""
    lock = StateLock(options.state_dir)
    lock.acquire()
    try:
        _serve_locked(options, stop, policy_factory)
    finally:
        lock.release()


def _serve_locked(options: ServeOptions, stop: threading.Event | None,
                  policy_factory: Callable[[PolicyContext], Policy] | None) -> None:
    runtime, env = build_runtime(options, policy_factory)
    stop = stop or threading.Event()
    metrics = None
    if options.metrics_port is not None:
        from eaco.runtime.metrics import MetricsServer

        metrics = MetricsServer(runtime.layout, lambda: runtime.snapshot, options.metrics_port)
        try:
            metrics.start()  # before the API: a client that found api.json finds metrics.json too
        except OSError as exc:
            runtime.store.close()
            raise InputError("--metrics-port", f"cannot serve metrics on 127.0.0.1:{options.metrics_port}: {exc.strerror or exc}") from None
    if threading.current_thread() is threading.main_thread():  # before api.json tells clients we are up
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        api = ApiServer(runtime.layout, runtime.catalog, lambda: runtime.inventory, lambda: runtime.accountant.totals, options.api,
                        snapshot=lambda: runtime.snapshot)
        api.start()
    except BaseException:
        if metrics is not None:
            metrics.stop()
        runtime.store.close()
        raise
    try:
        runtime.run(stop, exit_when_idle=options.exit_when_idle)
    finally:
        api.stop()
        if metrics is not None:
            metrics.stop()
        runtime.store.close()
