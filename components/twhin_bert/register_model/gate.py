"""The promotion gate: compare a challenger's key metrics with the champion's.

Pure functions over metric mappings (no MLflow here) plus the encoding of metrics and
verdicts as model-version tags, so the registry code and the tests share one spelling.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twhin_bert.common.metrics import mlflow_key
from twhin_bert.register_model.config import GateConfig

#: Model-version tags written by register_model (read back by the gate and the registry CLI).
TAG_METRICS = "key_metrics"  # JSON {metric: value} of evaluate's `primary`
TAG_METRIC_PREFIX = "metric."  # one readable tag per key metric, for the MLflow UI
TAG_VERDICT = "gate.verdict"  # "passed" | "failed"
TAG_REASONS = "gate.reasons"  # JSON list of human-readable lines
TAG_COMPARISON = "gate.comparison"  # JSON {metric: {challenger, champion, delta, ...}}
TAG_CHAMPION = "gate.champion_version"  # the version compared against, or "none"

PASSED, FAILED = "passed", "failed"

# Absolute slack so that "equal" (min_delta 0.0) survives float round-off.
_EPS = 1e-12


@dataclass
class GateVerdict:
    """The gate's decision on one challenger."""

    passed: bool
    reasons: list[str]
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)
    champion_version: str | None = None

    @property
    def verdict(self) -> str:
        """``"passed"`` or ``"failed"``."""
        return PASSED if self.passed else FAILED

    def to_tags(self) -> dict[str, str]:
        """The verdict as model-version tags."""
        return {
            TAG_VERDICT: self.verdict,
            TAG_REASONS: json.dumps(self.reasons),
            TAG_COMPARISON: json.dumps(self.comparison, sort_keys=True),
            TAG_CHAMPION: self.champion_version or "none",
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (register_model's ``Registration``, ``registry show``)."""
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "reasons": self.reasons,
            "champion_version": self.champion_version,
            "comparison": self.comparison,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> GateVerdict | None:
        """Reads a verdict back from version tags; None when the version was never gated."""
        if TAG_VERDICT not in tags:
            return None
        champion = tags.get(TAG_CHAMPION, "none")
        return cls(
            passed=tags[TAG_VERDICT] == PASSED,
            reasons=json.loads(tags.get(TAG_REASONS, "[]")),
            comparison=json.loads(tags.get(TAG_COMPARISON, "{}")),
            champion_version=None if champion == "none" else champion,
        )


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(float(v)) else None


def evaluate_gate(
    cfg: GateConfig,
    challenger: Mapping[str, float | None],
    champion: Mapping[str, float | None] | None,
    champion_version: str | None,
) -> GateVerdict:
    """Compares the challenger's key metrics with the champion's.

    Each configured metric passes when ``improvement >= min_delta``, where improvement is
    ``challenger - champion`` (or its negative for lower-is-better metrics). The challenger
    passes when every metric passes. With no champion (the first model) it passes, recorded so.

    Args:
        cfg: The gate's metrics, margins and policy for missing champion values.
        challenger: The new version's key metrics (evaluate's ``primary``).
        champion: The champion's key metrics (from its tags), or None when there is none.
        champion_version: The champion's version, or None.

    Returns:
        The verdict, one reason line per metric, and the per-metric comparison.
    """
    if champion is None:
        missing = [m.name for m in cfg.metrics if _finite(challenger.get(m.name)) is None]
        if missing:
            return GateVerdict(
                False,
                [
                    f"{n}: challenger has no value (evaluate's primary metrics lack it)"
                    for n in missing
                ],
                {},
                None,
            )
        return GateVerdict(True, ["no champion to beat: first model, passes the gate"], {}, None)

    reasons: list[str] = []
    comparison: dict[str, dict[str, Any]] = {}
    passed = True
    for m in cfg.metrics:
        new, old = _finite(challenger.get(m.name)), _finite(champion.get(m.name))
        row: dict[str, Any] = {
            "challenger": new,
            "champion": old,
            "min_delta": m.min_delta,
            "higher_is_better": m.higher_is_better,
        }
        if new is None:
            row["passed"] = False
            reasons.append(f"{m.name}: FAIL, challenger has no value (evaluate's primary lacks it)")
        elif old is None:
            row["passed"] = cfg.on_missing_champion_metric == "pass"
            verdict = "pass" if row["passed"] else "FAIL"
            reasons.append(
                f"{m.name}: {verdict}, champion v{champion_version} has no recorded value "
                f"(on_missing_champion_metric={cfg.on_missing_champion_metric})"
            )
        else:
            delta = new - old
            improvement = delta if m.higher_is_better else -delta
            row.update(delta=delta, improvement=improvement)
            row["passed"] = improvement >= m.min_delta - _EPS
            direction = "higher" if m.higher_is_better else "lower"
            verdict = "pass" if row["passed"] else "FAIL"
            cmp = ">=" if row["passed"] else "<"
            reasons.append(
                f"{m.name}: {verdict}, {_fmt(new)} vs champion v{champion_version} {_fmt(old)} "
                f"(improvement {improvement:+.4g} {cmp} min_delta {m.min_delta:+.4g}, "
                f"{direction} is better)"
            )
        passed = passed and row["passed"]
        comparison[m.name] = row
    return GateVerdict(passed, reasons, comparison, champion_version)


def beats_base(
    cfg: GateConfig, challenger: Mapping[str, float | None], base: Mapping[str, float | None] | None
) -> tuple[bool, list[str]]:
    """``gate.require_beat_base``: every gate metric clears its ``min_delta`` over the untouched
    base encoder's value on the same split (evaluate's ``base.primary``), as over a champion's.

    Returns:
        Whether the challenger beats the base, and one reason line per metric.
    """
    if base is None:
        return False, ["base: FAIL, require_beat_base is set but evaluate scored no base model"]
    ok, lines = True, []
    for m in cfg.metrics:
        new, old = _finite(challenger.get(m.name)), _finite(base.get(m.name))
        if new is None or old is None:
            ok = False
            lines.append(f"{m.name}: FAIL vs base, a value is missing ({new} vs {old})")
            continue
        improvement = new - old if m.higher_is_better else old - new
        better = improvement >= m.min_delta - _EPS
        ok = ok and better
        lines.append(
            f"{m.name}: {'pass' if better else 'FAIL'} vs base {_fmt(new)} vs {_fmt(old)} "
            f"(improvement {improvement:+.4g}, min_delta {m.min_delta:+.4g})"
        )
    return ok, lines


def _tag_key(metric: str) -> str:
    """A metric name as a legal MLflow tag key (``@`` -> ``_at_``, other odd chars -> ``_``)."""
    return TAG_METRIC_PREFIX + mlflow_key(metric)


def metrics_to_tags(primary: Mapping[str, float | None]) -> dict[str, str]:
    """Key metrics as version tags: one JSON tag (exact names) plus one readable tag each."""
    tags = {TAG_METRICS: json.dumps(dict(primary), sort_keys=True)}
    for k, v in primary.items():
        tags[_tag_key(k)] = "null" if v is None else repr(float(v))
    return tags


def metrics_from_tags(tags: Mapping[str, str]) -> dict[str, float | None] | None:
    """Key metrics of a version from its tags; None when it has none recorded."""
    raw = tags.get(TAG_METRICS)
    return None if raw is None else json.loads(raw)
