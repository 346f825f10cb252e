"""Typed results of the evaluate stage: one :class:`TaskResult` per task, one :class:`Score`
per model, floor or reference on it, and :class:`EvaluationResult` over all tasks.

The tasks write these; ``metrics.json``, ``curves.json``, the report and the primary metrics
the promotion gate reads are all built from them. ``metrics.json`` keeps one layout:
``models.<model>.<task>.<metric>``, ``floors.<task>.<floor>.<metric>``,
``references.<task>.<reference>.<metric>`` (demo data), ``info.<task>``, ``primary`` (the
candidate's key metrics, named by :mod:`twhin_bert.common.metrics`), ``ablation``,
``baseline`` and ``base``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from twhin_bert.common.metrics import (
    BASE,
    BASELINE,
    FLOORS,
    HASHTAG_MACRO_F1,
    MODELS,
    PRIMARY,
    REFERENCES,
    benchmark_key,
    engagement_hits_key,
)

if TYPE_CHECKING:
    from twhin_bert.evaluate.config import EvaluateConfig

TaskKind = Literal["engagement", "hashtag", "benchmark"]


@dataclass
class Score:
    """One model's (or one floor's) result on one task.

    Attributes:
        value: The headline number: median over seeds (engagement), mean over languages
            (hashtag), the primary-mode variant's test score (benchmarks); None if no value.
        seeds: The value of each seed (engagement).
        by_lang: The value per language (engagement: languages with enough test users).
        curve: HITS@k for k = 1..curve_max_k (engagement), median over seeds.
        few_shot: Score per labelled examples per class (benchmarks), median over seeds.
        variants: Scores of the variants under their ``metrics.json`` keys
            (``feature_macro_f1``, ``finetune_val_macro_f1``, ``tfidf_macro_f1``...).
        training: Per-epoch training curves (the engagement projection model; fine-tuning).
        best_epochs: The epoch kept on validation, per seed (engagement).
    """

    value: float | None
    seeds: list[float] = field(default_factory=list)
    by_lang: dict[str, float] = field(default_factory=dict)
    curve: dict[str, float] = field(default_factory=dict)
    few_shot: dict[str, float] = field(default_factory=dict)
    variants: dict[str, float | None] = field(default_factory=dict)
    training: Any = None
    best_epochs: list[int] = field(default_factory=list)

    def metrics(self, metric: str, *, by_lang: bool = False) -> dict[str, Any]:
        """The ``metrics.json`` leaf: ``{metric: value}``, the variants, and the seeds,
        per-language values, few-shot curve and best epochs where there are any (curves
        go to ``curves.json``). ``by_lang`` keeps an empty per-language mapping too."""
        out: dict[str, Any] = {metric: self.value, **self.variants}
        if self.seeds:
            out["seeds"] = list(self.seeds)
        if self.by_lang or by_lang:
            out["by_lang"] = dict(self.by_lang)
        if self.few_shot:
            out["few_shot"] = dict(self.few_shot)
        if self.best_epochs:
            out["best_epochs"] = list(self.best_epochs)
        return out


@dataclass
class TaskResult:
    """Every model and floor on one task, scored on the same split.

    Attributes:
        name: ``engagement``, ``hashtag`` or the benchmark's name.
        kind: Which task family.
        metric: The metric of ``Score.value`` (``hits@10``, ``macro_f1``, ``macro_recall``...).
        models: Model name -> its score (the candidate first).
        floors: Floor name (``random``, ``popularity``, ``tfidf``) -> its score.
        info: Counts, splits used and notes (``metrics.json`` ``info``).
        references: Reference name -> its score (engagement on demo data: what a known or
            text-read planted topic reaches; never a model, never gated on).
    """

    name: str
    kind: TaskKind
    metric: str
    models: dict[str, Score]
    floors: dict[str, Score]
    info: dict[str, Any] = field(default_factory=dict)
    references: dict[str, Score] = field(default_factory=dict)

    @property
    def primary_key(self) -> str:
        """This task's name in ``primary`` (the promotion gate's metric names)."""
        if self.kind == "engagement":
            return engagement_hits_key(int(self.metric.removeprefix("hits@")))
        if self.kind == "hashtag":
            return HASHTAG_MACRO_F1
        return benchmark_key(self.name, self.metric)

    def model_metrics(self, model: str) -> dict[str, Any]:
        """``metrics.json`` ``models.<model>.<task>``."""
        return self.models[model].metrics(self.metric, by_lang=self.kind == "hashtag")

    def floor_metrics(self) -> dict[str, dict[str, Any]]:
        """``metrics.json`` ``floors.<task>``."""
        return {
            f: s.metrics(self.metric, by_lang=self.kind == "hashtag")
            for f, s in self.floors.items()
        }

    def reference_metrics(self) -> dict[str, dict[str, Any]]:
        """``metrics.json`` ``references.<task>``."""
        return {r: s.metrics(self.metric) for r, s in self.references.items()}


@dataclass
class EvaluationResult:
    """All tasks of one evaluation, and the roles of the models in it."""

    models: list[str]
    candidate: str
    baseline: str
    base: str
    tasks: list[TaskResult] = field(default_factory=list)

    def task(self, kind: TaskKind) -> list[TaskResult]:
        """The tasks of one family, in run order."""
        return [t for t in self.tasks if t.kind == kind]

    def primary(self, model: str) -> dict[str, float | None]:
        """One model's key metrics: ``engagement_hits@k``, ``hashtag_macro_f1``,
        ``<benchmark>_<metric>``."""
        return {t.primary_key: t.models[model].value for t in self.tasks if model in t.models}

    def ablation(self) -> dict[str, float | None]:
        """Candidate vs ablation twin: relative HITS lift, macro-F1 deltas in points."""
        a, b = self.primary(self.candidate), self.primary(self.baseline)
        out: dict[str, float | None] = {}
        for task in self.tasks:
            key = task.primary_key
            va, vb = a.get(key), b.get(key)
            if va is None or vb is None:
                continue
            if task.kind == "engagement":
                out[f"{key}_relative_lift"] = (va - vb) / vb if vb > 0 else None
                out[f"{key}_baseline"] = vb
            else:
                out[f"{key}_delta"] = 100.0 * (va - vb)  # points
        paired = [t.info.get("paired_delta") or {} for t in self.task("hashtag")]
        ci = paired[0].get("ci95_points") if paired else None
        if ci:  # how much of the difference is test-set noise
            out[f"{HASHTAG_MACRO_F1}_delta_ci95_low"] = ci[0]
            out[f"{HASHTAG_MACRO_F1}_delta_ci95_high"] = ci[1]
        return out

    def info(self) -> dict[str, Any]:
        """``metrics.json`` ``info``: counts per task."""
        out: dict[str, Any] = {}
        for t in self.tasks:
            if t.kind == "benchmark":
                out.setdefault("benchmarks", {})[t.name] = t.info
            else:
                out[t.name] = t.info
        n_bench = len(self.task("benchmark"))
        out["counts"] = {"models": len(self.models), "benchmarks": n_bench}
        return out

    def metrics(self) -> dict[str, Any]:
        """The stage's ``metrics.json``."""
        out: dict[str, Any] = {
            MODELS: {n: {t.name: t.model_metrics(n) for t in self.tasks} for n in self.models},
            FLOORS: {t.name: t.floor_metrics() for t in self.tasks},
            "info": self.info(),
            PRIMARY: self.primary(self.candidate),
        }
        if any(t.references for t in self.tasks):
            out[REFERENCES] = {t.name: t.reference_metrics() for t in self.tasks if t.references}
        if self.baseline in self.models:
            out["ablation"] = self.ablation()
            # The baseline's key metrics on the same split: when the baseline is the champion
            # (retraining), register_model's gate compares like with like from these.
            out[BASELINE] = {"name": self.baseline, PRIMARY: self.primary(self.baseline)}
        if self.base in self.models:
            # The untouched base encoder on the same split: what continued training must
            # beat (register_model's gate can require it, gate.require_beat_base).
            out[BASE] = {"name": self.base, PRIMARY: self.primary(self.base)}
        return out

    def curves(self) -> dict[str, Any]:
        """``curves.json``: HITS@k and projection training per model and floor (engagement),
        fine-tuning curves per model (hashtag per language, benchmarks)."""
        out: dict[str, Any] = {}
        for t in self.task("engagement"):
            scores = {
                **t.models,
                **{f"floor:{f}": s for f, s in t.floors.items()},
                **{f"reference:{r}": s for r, s in t.references.items()},
            }
            out["engagement"] = {
                n: {"hits_curve": s.curve, "train_curve": s.training} for n, s in scores.items()
            }
        for t in self.task("hashtag"):
            out["hashtag_finetune"] = {n: s.training for n, s in t.models.items()}
        for t in self.task("benchmark"):
            for n, s in t.models.items():
                out.setdefault("benchmark_finetune", {}).setdefault(n, {})[t.name] = s.training
        return out


def primary_metric_names(cfg: EvaluateConfig, benchmarks: list[str]) -> list[str]:
    """The names evaluate will write under ``primary`` with this config and these benchmark
    folders (``path`` or ``name=path``): what a promotion gate may name.

    Args:
        cfg: The evaluate config (engagement on/off and its k, hashtags on/off, the
            benchmark metrics).
        benchmarks: The benchmark folders of the run.

    Raises:
        BenchmarkError: Two benchmark folders with the same name.
    """
    from twhin_bert.evaluate.benchmarks import benchmark_names

    names = []
    if cfg.engagement.enabled:
        names.append(engagement_hits_key(cfg.engagement.k))
    if cfg.hashtag.enabled:
        names.append(HASHTAG_MACRO_F1)
    for name, folder in benchmark_names(benchmarks):
        names.append(benchmark_key(name, cfg.benchmarks.metric_for(name, folder)))
    return names
