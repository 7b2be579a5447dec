"""``eaco serve``: build the runtime (GPUs, policy, store, backend), start the API, run the loop."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eaco.policies.base import Policy
from eaco.policies.registry import PolicyContext, make_policy
from eaco.runtime.accounting import measured_cpu_util
from eaco.runtime.api import ApiServer
from eaco.runtime.engine import Runtime
from eaco.runtime.gpus import GpuInventory
from eaco.runtime.layout import StateLayout
from eaco.runtime.local_backend import LocalBackend
from eaco.runtime.store import Store


@dataclass(frozen=True, slots=True)
class ServeOptions:
    state_dir: Path
    inventory: GpuInventory
    policy_name: str = "eaco"
    tick_s: float = 0.2
    exit_when_idle: bool = False  # stop once no job is queued or running (tests, batch use)


def build_runtime(options: ServeOptions, policy_factory: Callable[[PolicyContext], Policy] | None = None) -> tuple[Runtime, "object"]:
    from eaco.setup import load_environment

    env = load_environment()
    ctx = env.policy_context()
    policy = policy_factory(ctx) if policy_factory else make_policy(options.policy_name, ctx)
    layout = StateLayout(options.state_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    store = Store(layout.db)
    runtime = Runtime(layout, store, LocalBackend(), policy, options.inventory, env.catalog, env.energy,
                      cpu_util=measured_cpu_util(), tick_s=options.tick_s)
    return runtime, env


def serve(options: ServeOptions, stop: threading.Event | None = None,
          policy_factory: Callable[[PolicyContext], Policy] | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``). Jobs keep running when the daemon stops; the next
    daemon on the same state folder re-attaches them."""
    runtime, env = build_runtime(options, policy_factory)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    api = ApiServer(runtime.layout, runtime.catalog, runtime.inventory, lambda: runtime.accountant.totals)
    api.start()
    try:
        runtime.run(stop, exit_when_idle=options.exit_when_idle)
    finally:
        api.stop()
        runtime.store.close()
