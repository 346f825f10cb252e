"""What every stage does around its logic: stage its outputs atomically, track, write metrics.

A stage's logic is a plain function ``fn(cfg, out_dir, **inputs) -> metrics``. Wrapped with
:func:`stage`, it

* writes into ``<out_dir>.partial`` and renames it to ``out_dir`` only when it finished, so a
  crash never leaves a half-written output behind (and a rerun finds its checkpoints there);
* runs inside the stage's MLflow run (params = resolved config, metrics = its result);
* writes ``metrics.json`` into the output folder.

Both the CLI command and the KFP component of a stage call the same wrapped function.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from twhin_bert.common import tracking

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

METRICS_FILE = "metrics.json"


def partial_dir(out_dir: str | Path) -> Path:
    """The staging folder of ``out_dir`` (kept after a crash so the rerun can resume)."""
    out = Path(out_dir)
    return out.with_name(out.name + ".partial")


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


def write_metrics(out_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Writes ``metrics.json`` (sorted keys, NaN as null) into ``out_dir``."""
    path = Path(out_dir) / METRICS_FILE
    path.write_text(json.dumps(_jsonable(metrics), indent=2, sort_keys=True) + "\n")
    return path


def read_metrics(out_dir: str | Path) -> dict[str, Any]:
    """Reads a stage's ``metrics.json``."""
    return json.loads((Path(out_dir) / METRICS_FILE).read_text())


def stage(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Decorates a stage's logic ``fn(cfg, out_dir, **inputs) -> metrics``.

    The wrapped function takes ``(cfg, out_dir, *, pipeline_run_id=None, **inputs)``; the
    logic itself receives the staging folder as ``out_dir``.
    """

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(fn)
        def wrapper(
            cfg: Any, out_dir: str | Path, *, pipeline_run_id: str | None = None, **inputs: Any
        ) -> dict[str, Any]:
            out = Path(out_dir)
            staging = partial_dir(out)
            staging.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            with tracking.stage_run(name, cfg, pipeline_run_id):
                metrics = dict(fn(cfg, staging, **inputs))
                metrics.setdefault("wall_seconds", round(time.perf_counter() - t0, 3))
                write_metrics(staging, metrics)
                tracking.log_metrics(metrics)
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            staging.rename(out)
            log.info("%s: wrote %s", name, out)
            return metrics

        wrapper.logic = fn  # type: ignore[attr-defined]  # the unwrapped logic, for tests
        return wrapper

    return deco
