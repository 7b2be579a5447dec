"""What owning a cluster costs: its hardware, bought and written off over a life.

Operators size a cluster in money: fewer nodes that still meet the deadlines cost less to buy,
whatever they draw. ``eaco simulate --hardware-cost-per-gpu`` prices each GPU of the simulated
cluster with the purchase cost of its server per GPU (the server, its share of network and
racks: whatever the operator counts), written off linearly over ``life_years``; a run then costs
that amortised hardware over the time it covers, plus its electricity (``eaco.energy.grid``).

No price is built in: a cost is always the user's, so every figure traces back to the command
line. The life has a default, ``DEFAULT_LIFE_YEARS`` (4 years, a common write-off period for
servers; an assumption, set it to yours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from eaco.errors import InputError
from eaco.model.cluster import ClusterSpec
from eaco.model.gpu import gpu_type as lookup_gpu_type

DEFAULT_LIFE_YEARS = 4.0
S_PER_YEAR = 365.25 * 24 * 3600.0
ANY_TYPE = "*"  # the price of every GPU type not named
OPTION = "--hardware-cost-per-gpu"


@dataclass(frozen=True, slots=True)
class HardwareCost:
    """Purchase cost per GPU, by GPU type (``ANY_TYPE``: every type not named), and the life
    over which it is written off."""

    per_gpu: dict[str, float] = field(default_factory=dict)
    life_years: float = DEFAULT_LIFE_YEARS

    def __post_init__(self) -> None:
        if not (math.isfinite(self.life_years) and self.life_years > 0):
            raise InputError("--hardware-life-years", f"expected a number of years > 0, got {self.life_years}")
        for t, price in self.per_gpu.items():
            if not (math.isfinite(price) and price >= 0):
                raise InputError(OPTION, f"expected a cost >= 0 for {t}, got {price}")

    @property
    def active(self) -> bool:
        return bool(self.per_gpu)

    def price_of(self, gpu_type: str) -> float:
        """Purchase cost of one GPU of ``gpu_type``; an error naming the option if none was given."""
        got = self.per_gpu.get(gpu_type, self.per_gpu.get(ANY_TYPE))
        if got is None:
            named = ", ".join(sorted(self.per_gpu))
            raise InputError(OPTION, f"no cost for {gpu_type} GPUs (given for: {named}); add {gpu_type}=COST or a plain COST for every type")
        return got

    def cluster_cost_per_s(self, cluster: ClusterSpec) -> float:
        """The cluster's hardware written off per second of its life."""
        return sum(node.num_gpus * self.price_of(node.gpu_type) for node in cluster.nodes) / (self.life_years * S_PER_YEAR)

    def describe(self) -> str:
        prices = ", ".join(f"{'any GPU' if t == ANY_TYPE else t} {p:,.0f}" for t, p in sorted(self.per_gpu.items()))
        return f"hardware per GPU: {prices}; written off over {self.life_years:g} years"


def parse_hardware_cost(text: str | None, life_years: float = DEFAULT_LIFE_YEARS) -> HardwareCost:
    """``"12000"`` (every GPU type) or ``"v100=12000,a100=30000"``, or both (``"9000,a100=30000"``:
    the plain number for the types not named). None or empty: no hardware cost."""
    per_gpu: dict[str, float] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        name, sep, value = part.rpartition("=")
        if sep:
            try:
                key = lookup_gpu_type(name.strip()).name
            except KeyError as exc:
                raise InputError(OPTION, str(exc.args[0])) from None
        else:
            key = ANY_TYPE
        if key in per_gpu:
            raise InputError(OPTION, f"{'a plain cost' if key == ANY_TYPE else key} given twice in {text!r}")
        try:
            per_gpu[key] = float(value)
        except ValueError:
            raise InputError(OPTION, f"expected COST or TYPE=COST such as 12000 or a100=30000, got {part!r}") from None
    return HardwareCost(per_gpu, life_years)
