"""Metrics shared between stages: names, flattening, MLflow keys and ``metrics.json``.

A metric name that crosses a stage boundary (evaluate writes it, the promotion gate and the
run summary read it) is built here, once. Nested metric mappings are flattened to dotted
keys by one function, and one function turns any such key into a legal MLflow key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"

#: evaluate's ``metrics.json`` section with the candidate's key metrics (the gate reads it).
PRIMARY = "primary"
#: evaluate's sections ``{"name", PRIMARY}`` for its baseline model (the champion when
#: retraining) and for the untouched base encoder; the gate compares with them.
BASELINE = "baseline"
BASE = "base"
#: evaluate's ``metrics.json`` sections of every model's and every floor's results per task
#: (``models.<model>.<task>.<metric>``, ``floors.<task>.<floor>.<metric>``).
MODELS = "models"
FLOORS = "floors"
#: evaluate's ``metrics.json`` section of the references on demo data
#: (``references.<task>.<reference>.<metric>``: the planted topic, known or read from text).
REFERENCES = "references"
#: The engagement-prediction cutoff evaluate reports by default (the paper's HITS@10).
DEFAULT_K = 10


def hits_key(k: int = DEFAULT_K) -> str:
    """A HITS@k value inside one task's results: ``hits@10``."""
    return f"hits@{k}"


def engagement_hits_key(k: int = DEFAULT_K) -> str:
    """evaluate's primary engagement metric: ``engagement_hits@10`` (the gate's default)."""
    return f"engagement_{hits_key(k)}"


#: The primary engagement metric at the default cutoff.
ENGAGEMENT_HITS = engagement_hits_key()
#: evaluate's primary hashtag metric.
HASHTAG_MACRO_F1 = "hashtag_macro_f1"


def benchmark_key(benchmark: str, metric: str) -> str:
    """evaluate's primary metric of an external benchmark: ``sentiment_macro_recall``."""
    return f"{benchmark}_{metric}"


#: embed_graph's link-prediction metrics (ranks among all tweets, not evaluate's task).
LINK_PREDICTION = "link_prediction"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves of a nested mapping under dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def flat_numeric(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested mapping, dotted keys (bools as 0/1, NaN and inf dropped)."""
    return {
        k: float(v)
        for k, v in flatten(metrics, prefix).items()
        if isinstance(v, bool) or (isinstance(v, int | float) and math.isfinite(float(v)))
    }


_MLFLOW_ILLEGAL = re.compile(r"[^\w\-. :/]")


def mlflow_key(key: str) -> str:
    """A legal MLflow param, metric or tag key (letters, digits, ``_ - . space : /``).

    ``@`` becomes ``_at_`` (``hits@10`` -> ``hits_at_10``), any other illegal character ``_``.
    """
    return _MLFLOW_ILLEGAL.sub(lambda m: "_at_" if m.group() == "@" else "_", key)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy / torch scalars
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    return v


def to_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``value`` with numpy scalars as numbers and NaN/inf as null."""
    return json.dumps(_jsonable(value), **kwargs)


def write_metrics(out_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Writes ``metrics.json`` (sorted keys, NaN as null) into ``out_dir``."""
    path = Path(out_dir) / METRICS_FILE
    path.write_text(to_json(metrics, indent=2, sort_keys=True) + "\n")
    return path


def read_metrics(out_dir: str | Path) -> dict[str, Any]:
    """Reads a stage's ``metrics.json``.

    Raises:
        ArtifactError: Missing, or not a JSON object (names the file; a ``FileNotFoundError``
            and a ``ValueError``).
    """
    from twhin_bert.common.artifacts import read_json_object

    return read_json_object(Path(out_dir) / METRICS_FILE)
