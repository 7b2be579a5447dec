"""A profile next to the paper's V100 measurements (Tables 1-4, ``shared/data/paper/``).

The paper trained its four jobs (J1 AlexNet, J2 ResNet-18, J3 ResNet-50, J4 VGG-16) for about 35
hours on an 8 x V100 node, alone and in six sets; a profile runs minutes, on whatever GPU it has.
So absolute energy and time are not compared, only what carries over between such runs:

- per job alone: mean GPU utilisation;
- per set the paper measured: the energy saved against the members alone
  (``1 - set energy / sum of the members' energy alone``), the mean JCT against the members'
  mean JCT alone, and the set's mean GPU utilisation.

Rows exist only for models and sets present in both; the rest of the profile is not compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from eaco.colocation.profiles import ProfileStore
from eaco.measurements.paper import PaperTables


@dataclass(frozen=True, slots=True)
class ExclusiveComparison:
    job: str  # the paper's name (J1..J4)
    model: str
    paper_gpu_util: float  # 0..1
    ours_gpu_util: float | None  # None without GPU telemetry


@dataclass(frozen=True, slots=True)
class SetComparison:
    job_set: str  # "J1+J3"
    models: tuple[str, ...]  # sorted
    paper_energy_saved_frac: float
    ours_energy_saved_frac: float
    paper_jct_vs_alone: float  # mean JCT together / mean JCT alone - 1
    ours_jct_vs_alone: float
    paper_gpu_util: float
    ours_gpu_util: float | None


@dataclass(frozen=True, slots=True)
class PaperComparison:
    exclusive: tuple[ExclusiveComparison, ...]
    sets: tuple[SetComparison, ...]
    paper_sets_not_profiled: tuple[str, ...]  # e.g. "J1+J2+J3" when the profile has no such set

    def summary(self) -> str:
        """One sentence per finding, from the numbers (empty when nothing is comparable)."""
        if not self.sets:
            return ""
        saves_p = sum(1 for s in self.sets if s.paper_energy_saved_frac > 0)
        saves_o = sum(1 for s in self.sets if s.ours_energy_saved_frac > 0)
        lo_p = min(s.paper_energy_saved_frac for s in self.sets)
        hi_p = max(s.paper_energy_saved_frac for s in self.sets)
        lo_o = min(s.ours_energy_saved_frac for s in self.sets)
        hi_o = max(s.ours_energy_saved_frac for s in self.sets)
        same = sum(1 for s in self.sets if (s.paper_energy_saved_frac > 0) == (s.ours_energy_saved_frac > 0))
        lines = [
            f"Energy saved by sharing: the paper {saves_p} of {len(self.sets)} sets "
            f"({100 * lo_p:.1f} to {100 * hi_p:.1f} %), this profile {saves_o} of {len(self.sets)} "
            f"({100 * lo_o:.1f} to {100 * hi_o:.1f} %); same sign in {same} of {len(self.sets)}.",
        ]
        worst_p = max(self.sets, key=lambda s: s.paper_jct_vs_alone)
        worst_o = max(self.sets, key=lambda s: s.ours_jct_vs_alone)
        lines.append(f"Largest JCT increase: the paper {worst_p.job_set} ({100 * worst_p.paper_jct_vs_alone:+.1f} %), "
                     f"this profile {worst_o.job_set} ({100 * worst_o.ours_jct_vs_alone:+.1f} %).")
        return " ".join(lines)


def compare_with_paper(store: ProfileStore, paper: PaperTables) -> PaperComparison:
    by_model = {r.model: r for r in paper.exclusive}
    alone = {e.job_type: e for e in store.exclusive}
    exclusive = tuple(
        ExclusiveComparison(by_model[e.job_type].job, e.job_type, by_model[e.job_type].gpu_util_avg, e.gpu_util_mean)
        for e in store.exclusive if e.job_type in by_model
    )
    ours_sets = {tuple(sorted(c.members)): c for c in store.colocated}
    sets: list[SetComparison] = []
    missing: list[str] = []
    for row in paper.colocated:
        models = tuple(sorted(paper.models(row)))
        name = "+".join(row.job_set)
        c = ours_sets.get(models)
        if c is None or any(m not in alone for m in models):
            missing.append(name)
            continue
        p_alone = [by_model[m] for m in models]
        p_energy_alone = sum(r.energy_kwh for r in p_alone)
        p_jct_alone = sum(r.jct_h for r in p_alone) / len(p_alone)
        o_jct_alone = sum(alone[m].jct_s for m in c.members) / len(c.members)
        sets.append(SetComparison(
            job_set=name, models=models,
            paper_energy_saved_frac=1.0 - row.energy_kwh / p_energy_alone,
            ours_energy_saved_frac=c.energy_saved_frac,
            paper_jct_vs_alone=row.avg_jct_h / p_jct_alone - 1.0,
            ours_jct_vs_alone=(sum(c.member_jct_s) / len(c.member_jct_s)) / o_jct_alone - 1.0,
            paper_gpu_util=row.gpu_util_avg,
            ours_gpu_util=c.gpu_util_mean,
        ))
    return PaperComparison(exclusive, tuple(sets), tuple(missing))
