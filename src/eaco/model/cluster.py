"""Nodes and clusters (homogeneous or mixed GPU generations)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from eaco.errors import InputError
from eaco.model.gpu import gpu_type as lookup_gpu_type


@dataclass(frozen=True, slots=True)
class NodeSpec:
    node_id: int
    gpu_type: str
    num_gpus: int


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A cluster: nodes, each with ``num_gpus`` GPUs of one type.

    GPUs are numbered 0..N-1 across nodes in node order; ``gpu_node[g]`` is the node of GPU g.
    """

    nodes: tuple[NodeSpec, ...]
    name: str = "cluster"

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("a cluster needs at least one node")
        for i, node in enumerate(self.nodes):
            if node.node_id != i:
                raise ValueError(f"node ids must be 0..n-1 in order; node {i} has id {node.node_id}")
            if node.num_gpus < 1:
                raise ValueError(f"node {i} has {node.num_gpus} GPUs; expected >= 1")
            lookup_gpu_type(node.gpu_type)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def num_gpus(self) -> int:
        return sum(n.num_gpus for n in self.nodes)

    @property
    def gpu_types(self) -> tuple[str, ...]:
        return tuple(sorted({n.gpu_type for n in self.nodes}))

    def gpu_node(self) -> list[int]:
        out: list[int] = []
        for node in self.nodes:
            out.extend([node.node_id] * node.num_gpus)
        return out

    def describe(self) -> str:
        groups: dict[tuple[int, str], int] = {}
        for n in self.nodes:
            groups[(n.num_gpus, n.gpu_type)] = groups.get((n.num_gpus, n.gpu_type), 0) + 1
        return " + ".join(f"{c}x{g}x{t}" for (g, t), c in groups.items())

    @classmethod
    def homogeneous(cls, num_nodes: int, gpus_per_node: int, gpu_type: str) -> "ClusterSpec":
        t = lookup_gpu_type(gpu_type).name
        return cls(
            tuple(NodeSpec(i, t, gpus_per_node) for i in range(num_nodes)),
            name=f"{num_nodes}x{gpus_per_node}x{t}",
        )

    @classmethod
    def parse(cls, text: str) -> "ClusterSpec":
        """Parse ``"28x8xv100"`` or a mixed ``"20x8xv100,8x4xa100"`` (nodes x GPUs x type)."""
        nodes: list[NodeSpec] = []
        for part in text.split(","):
            pieces = part.strip().lower().split("x")
            if len(pieces) != 3:
                raise InputError(
                    "--cluster", f"expected NODESxGPUSxTYPE such as 28x8xv100, got {part!r}"
                )
            try:
                count, per_node = int(pieces[0]), int(pieces[1])
            except ValueError:
                raise InputError(
                    "--cluster", f"node and GPU counts must be integers in {part!r}"
                ) from None
            try:
                t = lookup_gpu_type(pieces[2]).name
            except KeyError as exc:
                raise InputError("--cluster", str(exc.args[0])) from None
            if count < 1 or per_node < 1:
                raise InputError("--cluster", f"counts must be >= 1 in {part!r}")
            for _ in range(count):
                nodes.append(NodeSpec(len(nodes), t, per_node))
        return cls(tuple(nodes), name=text)

    @classmethod
    def from_philly_machines(cls, path: Path, gpu_type: str = "v100") -> "ClusterSpec":
        """Build the Philly cluster from its machine list (machines with 0 GPUs are dropped).

        Philly mixed P100 and P40 GPUs and the trace does not say which machine had which;
        every machine gets ``gpu_type``.
        """
        t = lookup_gpu_type(gpu_type).name
        nodes: list[NodeSpec] = []
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            for line, row in enumerate(reader, start=2):
                raw = row.get("number of GPUs")
                try:
                    n = int(raw)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise InputError(
                        str(path), f"expected an integer GPU count, got {raw!r}", line, "number of GPUs"
                    ) from None
                if n > 0:
                    nodes.append(NodeSpec(len(nodes), t, n))
        return cls(tuple(nodes), name=f"philly-{len(nodes)}-machines-{t}")

    @classmethod
    def from_alibaba_nodes(cls, path: Path, unknown_gpu_type: str = "v100") -> "ClusterSpec":
        """Build the Alibaba GPU-sharing cluster from its node list (columns sn, gpu, model).

        Models map to our GPU types by dropping a memory suffix (``V100M32`` -> ``v100``);
        ``G2``/``G3`` are anonymised in the trace and become ``unknown_gpu_type`` (an assumption).
        Nodes with no GPU are dropped.
        """
        t_unknown = lookup_gpu_type(unknown_gpu_type).name
        nodes: list[NodeSpec] = []
        with open(path, newline="") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                raw = row.get("gpu")
                try:
                    n = int(raw)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise InputError(str(path), f"expected an integer GPU count, got {raw!r}", line, "gpu") from None
                if n <= 0:
                    continue
                model = (row.get("model") or "").strip()
                base = model.upper().split("M")[0] if model.upper().startswith("V100") else model
                try:
                    t = lookup_gpu_type(base).name
                except KeyError:
                    if model.upper() in ("G2", "G3"):
                        t = t_unknown
                    else:
                        raise InputError(str(path), f"unknown GPU model {model!r}", line, "model") from None
                nodes.append(NodeSpec(len(nodes), t, n))
        return cls(tuple(nodes), name=f"alibaba-{len(nodes)}-nodes")
