"""Which GPUs the runtime may use: found through NVML, or declared (tests, CPU-only machines)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec, NodeSpec
from eaco.model.gpu import gpu_type as lookup_gpu_type


@dataclass(frozen=True, slots=True)
class GpuInventory:
    """The GPUs of this machine that jobs run on, all of one type (``gpu_type``; a Ray cluster's
    inventory may hold several, one per node, ``gpu_type`` being its main one).

    ``device_indices[g]`` is what ``CUDA_VISIBLE_DEVICES`` gets for the policy's GPU ``g``.
    ``declared`` is True when they were declared rather than found (no real GPU behind them:
    jobs then run on the CPU and GPU power is modelled, never measured).
    """

    gpu_type: str
    device_indices: tuple[int, ...]
    declared: bool

    def cluster(self) -> ClusterSpec:
        """One node with these GPUs: what the policy sees."""
        return ClusterSpec((NodeSpec(0, self.gpu_type, len(self.device_indices)),), name=f"local-{self.describe()}")

    def describe(self) -> str:
        return f"{len(self.device_indices)}x{self.gpu_type}" + (" (declared)" if self.declared else "")

    def node_name(self, gpu: int) -> str:
        """The name of the machine that holds the policy's GPU ``gpu`` (this one: ``local``)."""
        return "local"

    def gpu_types(self) -> tuple[str, ...]:
        """Every GPU type the runtime has, the main type first."""
        return tuple(dict.fromkeys([self.gpu_type, *(n.gpu_type for n in self.cluster().nodes)]))

    def largest_node_gpus(self, gpu_type: str | None = None) -> int:
        """The most GPUs one node has (of ``gpu_type``; None: of any type); 0 if none."""
        return max((n.num_gpus for n in self.cluster().nodes if gpu_type is None or n.gpu_type == gpu_type), default=0)


_DECLARED = re.compile(r"^\s*(\d+)\s*x\s*([A-Za-z0-9_]+)\s*$")


def declared_gpus(text: str, option: str = "--gpus") -> GpuInventory:
    """``"2xv100"``: two V100s numbered 0 and 1."""
    m = _DECLARED.match(text)
    if not m:
        raise InputError(option, f"expected COUNTxTYPE such as 2xv100, or 'nvml'; got {text!r}")
    count = int(m.group(1))
    if count < 1:
        raise InputError(option, f"expected at least one GPU, got {count}")
    try:
        t = lookup_gpu_type(m.group(2)).name
    except KeyError as exc:
        raise InputError(option, str(exc.args[0])) from None
    return GpuInventory(t, tuple(range(count)), declared=True)


def nvml_gpus(option: str = "--gpus") -> GpuInventory:
    """Every GPU NVML reports; they must be of one type the model knows."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        raise InputError(option, "NVML is not available (pip install nvidia-ml-py); declare GPUs instead, e.g. 2xv100") from None
    from eaco.profiler.gpu_naming import gpu_type_key

    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses
        raise InputError(option, f"NVML could not start ({exc}); declare GPUs instead, e.g. 2xv100") from None
    try:
        count = pynvml.nvmlDeviceGetCount()
        names = []
        for i in range(count):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
    finally:
        pynvml.nvmlShutdown()
    if not names:
        raise InputError(option, "NVML found no GPU; declare GPUs instead, e.g. 2xv100")
    keys = {gpu_type_key(n) for n in names}
    if len(keys) != 1:
        raise InputError(option, f"GPUs of different types ({', '.join(sorted(keys))}); the local runtime needs one type")
    key = keys.pop()
    try:
        t = lookup_gpu_type(key).name
    except KeyError as exc:
        raise InputError(option, f"GPU {names[0]!r}: {exc.args[0]}") from None
    return GpuInventory(t, tuple(range(len(names))), declared=False)


def discover_gpus(text: str) -> GpuInventory:
    return nvml_gpus() if text.strip().lower() == "nvml" else declared_gpus(text)
