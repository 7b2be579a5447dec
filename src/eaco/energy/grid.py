"""What a cluster's energy costs and emits: electricity price and carbon intensity, by the hour.

Operators weigh a schedule in money and carbon, not only kWh. The simulator integrates the
cluster's energy per hour of simulated time exactly (``TimeSeries.energy_per_hour_j``); this
module holds what each hour's energy is worth:

- ``pue``: power usage effectiveness, facility energy / IT energy (cooling, power distribution);
  1.0 counts the servers only, which is what the simulator models. Cost and carbon apply to the
  facility energy (IT energy x PUE).
- a price per kWh (in ``currency``) and a carbon intensity (g CO2e per kWh), each either one
  constant or an hourly series from a CSV file with the columns ``hour`` (0, 1, 2, ... in order)
  and ``price_per_kwh`` and/or ``carbon_g_per_kwh``. Hour ``k`` of the series applies to simulated
  time ``[k + offset_h, k + offset_h + 1)`` hours; past its end the series repeats (a daily or
  weekly profile, the default) or holds its last value (``repeat=False``).

No figure is built in: a price or an intensity is always the user's (their tariff, their grid
operator's data), so every cost and carbon number traces back to what they gave.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from eaco.errors import InputError
from eaco.workloads._csvio import CsvTable

HOUR_COLUMN = "hour"
PRICE_COLUMN = "price_per_kwh"
CARBON_COLUMN = "carbon_g_per_kwh"


@dataclass(frozen=True, slots=True)
class HourlySignal:
    """A value per hour (one value: constant). ``repeat``: past the end the series starts over,
    else its last value holds."""

    values: tuple[float, ...]
    repeat: bool = True
    offset_h: int = 0  # the series' hour 0 is simulated hour ``offset_h`` (may be negative)

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("an hourly signal needs at least one value")

    def at_hour(self, hour: int) -> float:
        """The value for simulated hour ``hour`` (from ``hour`` h to ``hour + 1`` h)."""
        k = hour - self.offset_h
        n = len(self.values)
        if self.repeat:
            return self.values[k % n]
        return self.values[min(max(k, 0), n - 1)]

    def weighted_sum(self, energy_per_hour: Sequence[float]) -> float:
        """sum over hours of energy x value."""
        return sum(e * self.at_hour(h) for h, e in enumerate(energy_per_hour) if e)

    @classmethod
    def constant(cls, value: float) -> "HourlySignal":
        return cls((float(value),))


@dataclass(frozen=True, slots=True)
class GridSettings:
    """Facility overhead, price and carbon intensity (either may be absent)."""

    pue: float = 1.0
    price_per_kwh: HourlySignal | None = None
    carbon_g_per_kwh: HourlySignal | None = None
    currency: str = "USD"
    source: str = ""  # where the signals came from (a file, or "constant"), for the output's metadata

    def __post_init__(self) -> None:
        if not (math.isfinite(self.pue) and self.pue >= 1.0):
            raise InputError("--pue", f"expected a number >= 1 (facility energy / IT energy), got {self.pue}")

    @property
    def active(self) -> bool:
        """Whether there is anything beyond kWh to report."""
        return self.price_per_kwh is not None or self.carbon_g_per_kwh is not None or self.pue != 1.0

    def describe(self) -> str:
        parts = [f"PUE {self.pue:g}"]
        if self.price_per_kwh is not None:
            parts.append(_describe(self.price_per_kwh, f"{self.currency}/kWh"))
        if self.carbon_g_per_kwh is not None:
            parts.append(_describe(self.carbon_g_per_kwh, "g CO2e/kWh"))
        if self.source:
            parts.append(f"from {self.source}")
        return "; ".join(parts)


def _describe(signal: HourlySignal, unit: str) -> str:
    if len(signal.values) == 1:
        return f"{signal.values[0]:g} {unit}"
    mean = sum(signal.values) / len(signal.values)
    how = "repeating" if signal.repeat else "then held"
    return f"{len(signal.values)} hourly values, mean {mean:.4g} {unit} ({how})"


def _number(table: CsvTable, line: int, row: list[str], column: str) -> float:
    """A price may be negative (markets with surplus renewables pay for consumption); an
    intensity may not."""
    text = row[table.index[column]].strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(table.source, f"expected a number, got {text!r}", line=line, field=column) from None
    if not math.isfinite(value):
        raise InputError(table.source, f"expected a finite number, got {text!r}", line=line, field=column)
    if column == CARBON_COLUMN and value < 0:
        raise InputError(table.source, f"expected a carbon intensity >= 0, got {text!r}", line=line, field=column)
    return value


def load_grid_csv(path: str | Path, repeat: bool = True, offset_h: int = 0) -> tuple[HourlySignal | None, HourlySignal | None]:
    """Read hourly prices and/or carbon intensities: ``(price, carbon)``, None for a column the
    file does not have. Raise :class:`InputError` naming the file, line and field."""
    table = CsvTable(Path(path), required=(HOUR_COLUMN,))
    has = [c for c in (PRICE_COLUMN, CARBON_COLUMN) if c in table.index]
    if not has:
        raise InputError(table.source, f"expected a {PRICE_COLUMN} or {CARBON_COLUMN} column besides {HOUR_COLUMN}; "
                                       f"header has: {', '.join(table.columns)}", line=1)
    values: dict[str, list[float]] = {c: [] for c in has}
    for line, row in table.rows():
        err = table.width_error(line, row)
        if err is not None:
            raise err
        expected = len(values[has[0]])
        text = row[table.index[HOUR_COLUMN]].strip()
        if text != str(expected):
            raise InputError(table.source, f"expected hour {expected} (hours count 0, 1, 2, ... in order), got {text!r}",
                             line=line, field=HOUR_COLUMN)
        for c in has:
            values[c].append(_number(table, line, row, c))
    if not values[has[0]]:
        raise InputError(table.source, "no rows after the header; expected one per hour", line=1)

    def signal(column: str) -> HourlySignal | None:
        return HourlySignal(tuple(values[column]), repeat, offset_h) if column in values else None

    return signal(PRICE_COLUMN), signal(CARBON_COLUMN)


def grid_settings_from_options(price_per_kwh: float | None, carbon_g_per_kwh: float | None, grid: Path | None = None,
                               offset_h: int = 0, repeat: bool = True, pue: float = 1.0, currency: str = "USD") -> GridSettings:
    """The cost and carbon settings from command-line options: a CSV, or constants (not both for
    the same quantity). Errors name the option."""
    price = None if price_per_kwh is None else HourlySignal.constant(price_per_kwh)
    carbon = None if carbon_g_per_kwh is None else HourlySignal.constant(carbon_g_per_kwh)
    if carbon_g_per_kwh is not None and not carbon_g_per_kwh >= 0:
        raise InputError("--carbon-g-per-kwh", f"expected a number >= 0, got {carbon_g_per_kwh}")
    source = "constant" if price or carbon else ""
    if grid is not None:
        from_csv = load_grid_csv(grid, repeat=repeat, offset_h=offset_h)
        for name, (given, got) in {"--price-per-kwh": (price, from_csv[0]), "--carbon-g-per-kwh": (carbon, from_csv[1])}.items():
            if given is not None and got is not None:
                raise InputError(name, f"given as well as in {grid}; give one or the other")
        price, carbon = price or from_csv[0], carbon or from_csv[1]
        source = str(grid)
    return GridSettings(pue=pue, price_per_kwh=price, carbon_g_per_kwh=carbon, currency=currency, source=source)
