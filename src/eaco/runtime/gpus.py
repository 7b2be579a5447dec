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

    def to_json(self) -> dict[str, object]:
        """What the local backend records in the state folder (equal records: the same GPUs)."""
        return {"gpu_type": self.gpu_type, "device_indices": list(self.device_indices), "declared": self.declared}

    def gpu_types(self) -> tuple[str, ...]:
        """Every GPU type the runtime has, the main type first."""
        return tuple(dict.fromkeys([self.gpu_type, *(n.gpu_type for n in self.cluster().nodes)]))

    def largest_node_gpus(self, gpu_type: str | None = None) -> int:
        """The most GPUs one node has (of ``gpu_type``; None: of any type); 0 if none."""
        return max((n.num_gpus for n in self.cluster().nodes if gpu_type is None or n.gpu_type == gpu_type), default=0)

    def spans_nodes(self) -> bool:
        """Whether one job may run on GPUs of several nodes (a process group per node; the Ray
        backend). This machine's GPUs: one node, no."""
        return False

    def most_gpus_per_job(self, gpu_type: str | None = None) -> int:
        """The most GPUs one job can get (of ``gpu_type``; None: of any one type): the largest
        node's, or every GPU of the type when a job may span nodes; 0 if none."""
        if not self.spans_nodes():
            return self.largest_node_gpus(gpu_type)
        totals: dict[str, int] = {}
        for n in self.cluster().nodes:
            totals[n.gpu_type] = totals.get(n.gpu_type, 0) + n.num_gpus
        return totals.get(gpu_type, 0) if gpu_type is not None else max(totals.values(), default=0)


_DECLARED = re.compile(r"^\s*(\d+)\s*x\s*([A-Za-z0-9_]+)\s*$")


def declared_gpus(text: str, option: str = "--gpus") -> GpuInventory:
    """``"2xv100"``: two V100s numbered 0 and 1."""
    m = _DECLARED.match(text)
    if not m:
        raise InputError(option, f"expected COUNTxTYPE such as 2xv100, or 'nvml' (or nvml:TYPE, nvml:0,1); got {text!r}")
    count = int(m.group(1))
    if count < 1:
        raise InputError(option, f"expected at least one GPU, got {count}")
    try:
        t = lookup_gpu_type(m.group(2)).name
    except KeyError as exc:
        raise InputError(option, str(exc.args[0])) from None
    return GpuInventory(t, tuple(range(count)), declared=True)


def nvml_gpus(option: str = "--gpus", select: str = "") -> GpuInventory:
    """The GPUs NVML reports, all of one type the model knows.

    ``select`` picks some: a GPU type (``"a100"``: every board of that type, on a machine that
    mixes types) or NVML indices (``"0,2"``); empty: all of them."""
    return select_nvml_gpus(_nvml_names(option), select, option)


def _nvml_names(option: str) -> list[str]:
    """The name of every GPU NVML reports, by NVML index (PCI bus order)."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        raise InputError(option, "NVML is not available (pip install nvidia-ml-py); declare GPUs instead, e.g. 2xv100") from None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # pynvml raises NVMLError subclasses
        raise InputError(option, f"NVML could not start ({exc}); declare GPUs instead, e.g. 2xv100") from None
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
    finally:
        pynvml.nvmlShutdown()
    return names


def select_nvml_gpus(names: list[str], select: str = "", option: str = "--gpus") -> GpuInventory:
    """The inventory for the GPUs named ``names`` (NVML's, by index) that ``select`` picks (see
    :func:`nvml_gpus`). The local runtime runs one GPU type: a machine that mixes types must pick one."""
    from eaco.profiler.gpu_naming import gpu_type_key

    if not names:
        raise InputError(option, "NVML found no GPU; declare GPUs instead, e.g. 2xv100")
    keys = [gpu_type_key(n) for n in names]
    listing = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
    select = select.strip().lower()
    if not select:
        indices = list(range(len(names)))
    elif re.fullmatch(r"\d+(\s*,\s*\d+)*", select):
        indices = [int(x) for x in select.split(",")]
        bad = [i for i in indices if i >= len(names)]
        if bad:
            raise InputError(option, f"no GPU {bad[0]}: NVML reports {len(names)} ({listing})")
        if len(set(indices)) != len(indices):
            raise InputError(option, f"GPU indices repeat in {select!r}")
    else:
        indices = [i for i, k in enumerate(keys) if k == select]
        if not indices:
            raise InputError(option, f"no GPU of type {select!r}; NVML reports {listing}")
    chosen = sorted({keys[i] for i in indices})
    if len(chosen) != 1:
        raise InputError(
            option,
            f"GPUs of different types ({', '.join(chosen)}); the local runtime runs one type: pick one with "
            + " or ".join(f"nvml:{k}" for k in chosen) + f", or indices such as nvml:{indices[0]} ({listing})",
        )
    try:
        t = lookup_gpu_type(chosen[0]).name
    except KeyError as exc:
        raise InputError(option, f"GPU {names[indices[0]]!r}: {exc.args[0]}") from None
    return GpuInventory(t, tuple(indices), declared=False)


def discover_gpus(text: str, option: str = "--gpus") -> GpuInventory:
    """``nvml``, ``nvml:TYPE`` or ``nvml:I,J`` (found through NVML), else ``COUNTxTYPE`` (declared)."""
    head, _, select = text.strip().partition(":")
    if head.strip().lower() == "nvml":
        return nvml_gpus(option, select)
    return declared_gpus(text, option)
