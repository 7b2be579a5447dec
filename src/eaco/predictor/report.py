"""How well the history H predicts co-locations it has not seen: leave-one-out error per GPU type.

For every combination recorded in H (a multiset of job types on one GPU type, two or more
members), the regression is refitted without that combination's records and asked to predict it;
each recorded speed is compared with the prediction. ``eaco predictor-error`` prints this table.
The numbers measure the *unseen-set* path of the predictor (the regression); a seen set is
answered from its own records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rich.table import Table

from eaco.predictor.history import CoLocationPredictor, ErrorRow


@dataclass(frozen=True, slots=True)
class PredictorErrorReport:
    """Leave-one-out error of H, one row per GPU type (in GPU type order)."""

    rows: tuple[ErrorRow, ...]
    combinations_in_history: int  # every recorded combination, single-job sets and online ones included
    online_observations: int  # speeds recorded from observed co-locations (not seeded)

    @property
    def combinations(self) -> int:
        """Combinations evaluated (two or more members)."""
        return sum(r.combinations for r in self.rows)

    @property
    def speeds(self) -> int:
        return sum(r.speeds for r in self.rows)

    @property
    def mape(self) -> float:
        """Mean absolute percentage error over every evaluated speed (all GPU types)."""
        n = self.speeds
        return sum(r.mape * r.speeds for r in self.rows) / n if n else float("nan")

    @property
    def within_2std(self) -> float:
        n = self.speeds
        return sum(r.within_2std * r.speeds for r in self.rows) / n if n else float("nan")

    def row(self, gpu_type: str) -> ErrorRow:
        for r in self.rows:
            if r.gpu_type == gpu_type:
                return r
        have = ", ".join(r.gpu_type for r in self.rows) or "none"
        raise KeyError(f"no leave-one-out row for GPU type {gpu_type!r}; have: {have}")

    def to_dict(self) -> dict:
        return {
            "rows": [asdict(r) for r in self.rows],
            "combinations": self.combinations,
            "speeds": self.speeds,
            "mape": self.mape,
            "within_2std": self.within_2std,
            "combinations_in_history": self.combinations_in_history,
            "online_observations": self.online_observations,
        }


def predictor_error_report(predictor: CoLocationPredictor) -> PredictorErrorReport:
    """Run H's leave-one-out evaluation and collect it."""
    return PredictorErrorReport(
        rows=tuple(predictor.leave_one_out()),
        combinations_in_history=len(predictor.combinations()),
        online_observations=predictor.observations,
    )


def format_predictor_table(report: PredictorErrorReport, title: str = "") -> Table:
    """One row per GPU type and an "all" row: combinations, speeds, MAPE, share within 2 std."""
    table = Table(title=title or "History H: leave-one-out error (unseen combinations)")
    for name in ("GPU type", "combinations", "speeds", "MAPE", "within 2 std"):
        table.add_column(name, justify="left" if name == "GPU type" else "right")
    for r in report.rows:
        table.add_row(r.gpu_type, f"{r.combinations:,}", f"{r.speeds:,}", f"{r.mape:.1%}", f"{r.within_2std:.1%}")
    if len(report.rows) > 1:
        table.add_section()
        table.add_row(
            "all", f"{report.combinations:,}", f"{report.speeds:,}", f"{report.mape:.1%}", f"{report.within_2std:.1%}"
        )
    return table
