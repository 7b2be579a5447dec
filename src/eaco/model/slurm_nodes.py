"""A cluster from Slurm's node list (``sinfo``): simulate your own cluster as it is configured.

Produce the file on the cluster::

    sinfo --Node --format="%N|%G" > nodes.txt

Each line names a node (or, without ``--Node``, a Slurm host list such as ``gpu[01-04,07]``) and
its generic resources (``gpu:a100:8(S:0-1)``, ``gpu:tesla_v100-sxm2-32gb:4,shard:8``, ``gpu:8``,
``(null)``). ``|``-separated, or separated by spaces (``--format="%N %G"``); the header
(``NODELIST|GRES``, ``HOSTNAMES``) is optional; with a header the columns are found by name, and
without one they are the first two. Blank lines and ``#`` comments are skipped.

Rules (docs/workloads.md, "Slurm node lists"):

- a node appears once in the cluster however many partitions list it; listed twice with different
  GPUs is an error;
- GPUs are the ``gpu`` entries of the GRES (``gres/shard``, ``mps``, ``gpumem`` are not GPUs);
  nodes without GPUs are left out (and counted);
- a typed entry's model maps to our GPU type when its name contains exactly one (``a100``,
  ``nvidia_h100_80gb_hbm3``, ``tesla_v100-sxm2-32gb``); an untyped entry, or a model that maps
  to none (``rtx_a6000``), takes ``default_gpu_type`` (``-c sinfo:nodes.txt:v100``) and is an
  error without it;
- a node with GPUs of two types is an error (the simulator gives each node one GPU type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec, NodeSpec
from eaco.model.gpu import GPU_TYPES, gpu_type_from_model

NODE_HEADERS = ("NODELIST", "HOSTNAMES", "NODE_LIST", "NODES")
GRES_HEADERS = ("GRES",)
NO_GRES = frozenset({"", "(null)", "n/a", "none"})
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
_MAX_HOSTS = 1_000_000


@dataclass(frozen=True, slots=True)
class SinfoCluster:
    """The cluster read from a node list, with what was left out."""

    cluster: ClusterSpec
    node_names: tuple[str, ...]  # the name of each node of ``cluster``, in its order
    without_gpus: int  # nodes listed without GPUs (left out)
    defaulted: tuple[str, ...]  # nodes whose GPU type came from ``default_gpu_type``


def _split_top(text: str, sep: str, open_ch: str, close_ch: str) -> list[str]:
    """``text`` split at ``sep`` outside ``open_ch``...``close_ch``; ValueError when unbalanced."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced {close_ch!r} in {text!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced {open_ch!r} in {text!r}")
    parts.append(text[start:])
    return parts


def expand_hostlist(text: str) -> list[str]:
    """Slurm host-list syntax -> host names: ``gpu[01-03,07],login1`` -> ``gpu01, gpu02, gpu03,
    gpu07, login1``; ranges keep the zero padding of their start; several bracket groups in one
    name multiply (``r[1-2]n[1-2]`` -> 4 names). ValueError for anything else."""
    hosts: list[str] = []
    for part in _split_top(text.strip(), ",", "[", "]"):
        part = part.strip()
        if not part:
            raise ValueError(f"empty name in host list {text!r}")
        hosts.extend(_expand_one(part))
        if len(hosts) > _MAX_HOSTS:
            raise ValueError(f"host list {text!r} expands to more than {_MAX_HOSTS:,} names")
    return hosts


def _expand_one(name: str) -> list[str]:
    open_at = name.find("[")
    if open_at < 0:
        if "]" in name:
            raise ValueError(f"unbalanced ']' in {name!r}")
        return [name]
    close_at = name.find("]", open_at)
    if close_at < 0:
        raise ValueError(f"unbalanced '[' in {name!r}")
    head, inner, tail = name[:open_at], name[open_at + 1:close_at], name[close_at + 1:]
    suffixes = _expand_one(tail) if tail else [""]
    out: list[str] = []
    for item in inner.split(","):
        m = _RANGE.match(item.strip())
        if m is None:
            raise ValueError(f"expected a number or a range such as 01-08 in [{inner}], got {item!r}")
        first, last = m.group(1), m.group(2) or m.group(1)
        lo, hi = int(first), int(last)
        if hi < lo:
            raise ValueError(f"range {item!r} runs backwards in {name!r}")
        if hi - lo >= _MAX_HOSTS:
            raise ValueError(f"range {item!r} is larger than {_MAX_HOSTS:,} names")
        width = len(first)
        for k in range(lo, hi + 1):
            out.extend(f"{head}{k:0{width}d}{s}" for s in suffixes)
    return out


def parse_gres_gpus(text: str) -> list[tuple[str | None, int]]:
    """The GPU entries of a GRES string as (model or None, count): ``gpu:a100:8(S:0-1),shard:8``
    -> ``[("a100", 8)]``; ``gpu:8`` -> ``[(None, 8)]``; ``(null)`` -> ``[]``. ValueError for a
    count that is not a whole number."""
    if text.strip().lower() in NO_GRES:
        return []
    out: list[tuple[str | None, int]] = []
    for entry in _split_top(text.strip(), ",", "(", ")"):
        entry = entry.split("(", 1)[0].strip()  # drop "(S:0-1)", "(IDX:0-3)"
        parts = [p for p in entry.split(":") if p.lower() != "no_consume"]
        if not parts or parts[0].strip().lower() != "gpu":
            continue
        if len(parts) == 1:
            out.append((None, 1))
            continue
        count_text = parts[-1].strip()
        if not count_text.isdigit():
            if len(parts) == 2:  # "gpu:a100": one GPU of that model
                out.append((count_text, 1))
                continue
            raise ValueError(f"expected a GPU count in {entry!r}, got {count_text!r}")
        model = ":".join(parts[1:-1]).strip() or None
        out.append((model, int(count_text)))
    return out


def split_spec(spec: str) -> tuple[str, str | None]:
    """``PATH`` or ``PATH:TYPE`` (TYPE a known GPU type) -> (path, default type or None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.strip().lower() in GPU_TYPES:
        return head, tail.strip().lower()
    return spec, None


def load_sinfo_cluster(path: str | Path, default_gpu_type: str | None = None) -> SinfoCluster:
    """Read a ``sinfo`` node list (see the module docstring). Errors name the file, line and
    column."""
    src = str(path)
    default = None
    if default_gpu_type is not None:
        default = default_gpu_type.strip().lower()
        if default not in GPU_TYPES:
            raise InputError(src, f"unknown default GPU type {default_gpu_type!r}; expected one of: {', '.join(sorted(GPU_TYPES))}")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(src, f"cannot read the node list: {exc.strerror or exc}") from None
    node_col, gres_col = 0, 1
    seen: dict[str, tuple[str, int, int]] = {}  # name -> (GPU type, GPUs, line)
    order: list[str] = []
    without: set[str] = set()
    defaulted: list[str] = []
    header_done = False
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|")] if "|" in line else line.split()
        if not header_done:
            header_done = True
            upper = [f.upper() for f in fields]
            if any(u in NODE_HEADERS for u in upper):
                node_col = next(i for i, u in enumerate(upper) if u in NODE_HEADERS)
                gres_col = next((i for i, u in enumerate(upper) if u in GRES_HEADERS), -1)
                if gres_col < 0:
                    raise InputError(src, "the header has no GRES column: write the node list with "
                                          'sinfo --Node --format="%N|%G"', line_no)
                continue
        if len(fields) <= max(node_col, gres_col):
            raise InputError(src, f"expected a node name and its GRES (sinfo --Node --format=\"%N|%G\"), got {line!r}", line_no)
        try:
            names = expand_hostlist(fields[node_col])
        except ValueError as exc:
            raise InputError(src, str(exc), line_no, "NODELIST") from None
        try:
            entries = parse_gres_gpus(fields[gres_col])
        except ValueError as exc:
            raise InputError(src, str(exc), line_no, "GRES") from None
        types: set[str] = set()
        count = 0
        used_default = False
        for model, n in entries:
            if n <= 0:
                continue
            t = gpu_type_from_model(model) if model else None
            if t is None:
                if default is None:
                    what = f"GPU model {model!r} is none of ours" if model else "GPUs without a type"
                    raise InputError(src, f"{what} ({', '.join(sorted(GPU_TYPES))}); give the type to use "
                                          f"as -c sinfo:{src}:TYPE", line_no, "GRES")
                t, used_default = default, True
            types.add(t)
            count += n
        if len(types) > 1:
            raise InputError(src, f"node {names[0]!r} has GPUs of several types ({', '.join(sorted(types))}); "
                                  "the simulator gives each node one GPU type", line_no, "GRES")
        for name in names:
            if not types:
                if name in seen:
                    raise InputError(src, f"node {name!r} is listed without GPUs here but with {seen[name][1]} "
                                          f"on line {seen[name][2]}", line_no, "GRES")
                without.add(name)
                continue
            t = next(iter(types))
            if name in without:
                raise InputError(src, f"node {name!r} is listed with GPUs here but without on an earlier line", line_no, "GRES")
            if name in seen:
                if seen[name][:2] != (t, count):
                    raise InputError(src, f"node {name!r} is listed with {count} x {t} here but with "
                                          f"{seen[name][1]} x {seen[name][0]} on line {seen[name][2]}", line_no, "GRES")
                continue
            seen[name] = (t, count, line_no)
            order.append(name)
            if used_default:
                defaulted.append(name)
    if not order:
        raise InputError(src, f"no node with GPUs in the node list ({len(without)} without GPUs); expected lines such as "
                              "'gpu01|gpu:a100:8' from sinfo --Node --format=\"%N|%G\"")
    nodes = tuple(NodeSpec(i, seen[name][0], seen[name][1]) for i, name in enumerate(order))
    cluster = ClusterSpec(nodes, name=f"sinfo:{Path(src).name}")
    return SinfoCluster(cluster, tuple(order), len(without), tuple(defaulted))
