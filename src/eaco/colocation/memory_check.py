"""Cross-check of the memory estimates against Gavel's pairs: does "sum of estimates > GPU memory"
separate the pairs Gavel could not run (``[0, 0]``) from those it ran?

Gavel's GPUs: K80 (12 GB per die) and P100 (16 GB) as in :mod:`eaco.model.gpu`; Gavel's V100s were
16 GB cards (AWS p3), not the 32 GB variant we model, so the V100 check uses ``GAVEL_V100_MEMORY_GB``.
Run ``python -m eaco.colocation.memory_check`` to print the table quoted in docs/colocation.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from eaco.colocation.catalog import JobCatalog, load_catalog
from eaco.colocation.gavel import GAVEL_GPU_TYPES, GavelThroughputs, load_gavel_throughputs
from eaco.model.gpu import GPU_TYPES

GAVEL_V100_MEMORY_GB = 16.0


@dataclass(frozen=True, slots=True)
class MemoryAgreement:
    gpu_type: str
    memory_gb: float
    unrunnable_over: int  # Gavel [0, 0] and our estimate says it does not fit   (agree)
    unrunnable_under: int  # Gavel [0, 0] but our estimate says it fits         (not memory, or underestimate)
    runnable_over: int  # Gavel ran it but our estimate says it does not fit     (overestimate)
    runnable_under: int  # Gavel ran it and our estimate says it fits           (agree)


def memory_agreement(catalog: JobCatalog, gavel: GavelThroughputs) -> tuple[MemoryAgreement, ...]:
    out = []
    for gpu in GAVEL_GPU_TYPES:
        cap = GAVEL_V100_MEMORY_GB if gpu == "v100" else GPU_TYPES[gpu].memory_gb
        counts = [0, 0, 0, 0]
        names = gavel.job_types(gpu)
        for i, a in enumerate(names):
            for b in names[i:]:
                pair = gavel.pair(gpu, a, b)
                if pair is None:
                    continue
                over = catalog.get(a).memory_gb + catalog.get(b).memory_gb > cap
                counts[(0 if pair.runnable else 2) + (1 if over else 0)] += 1
        runnable_under, runnable_over, unrunnable_under, unrunnable_over = counts
        out.append(MemoryAgreement(gpu, cap, unrunnable_over, unrunnable_under, runnable_over, runnable_under))
    return tuple(out)


def main() -> None:
    print("gpu   GB  | [0,0] & over  [0,0] & fits | ran & over  ran & fits")
    for m in memory_agreement(load_catalog(), load_gavel_throughputs()):
        print(
            f"{m.gpu_type:5s} {m.memory_gb:4.0f} | {m.unrunnable_over:12d} {m.unrunnable_under:13d} |"
            f" {m.runnable_over:10d} {m.runnable_under:11d}"
        )


if __name__ == "__main__":
    main()
