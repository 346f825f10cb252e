"""What every stage does around its logic: guard and stage its outputs, track, write metrics.

A stage's logic is a plain function ``fn(cfg, out_dir, **inputs) -> metrics``. Wrapped with
:func:`stage`, it

* refuses, before anything else, an ``out_dir`` it must not replace (one line, exit code 2
  from the CLI): an existing file, a symbolic link, the current directory or one of its
  parents, a folder that contains or lies inside one of the stage's inputs, or a non-empty
  folder without this stage's marker file ``.twhin-bert-stage.json``. An empty folder is
  fine (KFP creates output folders before the task runs);
* writes into ``<out_dir>.partial`` (marker first) and renames it to ``out_dir`` only when it
  finished, so a crash never leaves a half-written output behind (and a rerun finds its
  checkpoints there); a ``.partial`` folder is only reused when it carries this stage's
  marker;
* runs inside the stage's MLflow run (params = resolved config, metrics = its result);
* writes ``metrics.json`` into the output folder.

What happens to ``<out_dir>.partial`` when the logic fails:

* a bad-input failure (a ``ValueError`` such as a config, schema or input error, or a
  missing file: exit code 2) removes the staging folder *if this call created it*; fixing
  the input changes the inputs' fingerprint, so nothing in it could be resumed anyway;
* any other failure (a crash, a kill, a full disk) keeps it, and so does a bad-input
  failure in a staging folder left by an earlier run: it may hold checkpoints to resume.

The stage's inputs are its keyword arguments: paths, strings naming existing local paths or
globs, and lists or mappings of them (``gs://`` URIs are remote and never collide with a
local output). Both the CLI command and the KFP component of a stage call the same wrapped
function.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import glob
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from twhin_bert import __version__
from twhin_bert.common import tracking
from twhin_bert.common.errors import BAD_INPUT_ERRORS
from twhin_bert.common.io import _has_glob, is_gcs
from twhin_bert.common.lifetime import hold_dir

# Re-exported: stages and tests import them from here (their home is common/metrics.py).
from twhin_bert.common.metrics import METRICS_FILE as METRICS_FILE
from twhin_bert.common.metrics import read_metrics as read_metrics
from twhin_bert.common.metrics import to_json, write_metrics

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

MARKER_FILE = ".twhin-bert-stage.json"
MIN_FREE_MB_ENV = "TWHIN_BERT_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 100


class OutputFolderError(ValueError):
    """An output folder the stage refuses to write (the message is one line naming it)."""


def partial_dir(out_dir: str | Path) -> Path:
    """The staging folder of ``out_dir`` (kept after a crash so the rerun can resume)."""
    out = Path(out_dir)
    return out.with_name(out.name + ".partial")


def config_hash(cfg: Any) -> str:
    """A short sha256 of a config (pydantic model or JSON-able value)."""
    text = (
        cfg.model_dump_json()
        if hasattr(cfg, "model_dump_json")
        else to_json(cfg, sort_keys=True, default=str)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    """The stage marker of ``folder``, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("stage"), str) else None


def write_marker(folder: str | Path, name: str, cfg: Any, *, finished: bool = False) -> Path:
    """Writes (atomically) the marker that says ``folder`` is stage ``name``'s output.

    Args:
        folder: The staging or output folder.
        name: Stage name.
        cfg: The stage's config (its hash is recorded).
        finished: Whether the stage completed (set just before the folder is published).

    Returns:
        The marker file.
    """
    path = Path(folder) / MARKER_FILE
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    previous = read_marker(folder) or {}
    marker = {
        "stage": name,
        "config_sha256": config_hash(cfg),
        "version": __version__,
        "started": previous.get("started", now) if previous.get("stage") == name else now,
        "finished": now if finished else None,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _local_inputs(value: Any, nested: bool = False) -> Iterator[Path]:
    """The local paths among a stage's keyword-argument values (see the module docstring)."""
    if isinstance(value, Path):
        yield value
    elif isinstance(value, str):
        s = value.strip()
        if s.startswith("file://"):
            s = s[len("file://") :]
        if not s or "\n" in s or is_gcs(s) or "://" in s:
            return
        if _has_glob(s):
            yield from (Path(m) for m in glob.glob(os.path.expanduser(s), recursive=True))
        elif Path(s).expanduser().exists():
            yield Path(s).expanduser()
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _local_inputs(v, nested)
    elif isinstance(value, Mapping) and not nested:
        # One level only: ``models={"twhin_bert": path}``, not a whole config mapping.
        for v in value.values():
            yield from _local_inputs(v, nested=True)


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_owned(name: str, folder: Path, what: str) -> None:
    if folder.is_symlink():
        raise OutputFolderError(
            f"{what} {folder} is a symbolic link; give the real folder or a new path"
        )
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputFolderError(
            f"{what} {folder} is an existing file; the stage writes a folder there and "
            "will not delete the file"
        )
    if not any(folder.iterdir()):
        return
    marker = read_marker(folder)
    if marker is None:
        raise OutputFolderError(
            f"{what} {folder} is a non-empty folder that no twhin-bert stage wrote (it has no "
            f"{MARKER_FILE}); the stage would replace it: choose a new or empty folder"
        )
    if marker["stage"] != name:
        raise OutputFolderError(
            f"{what} {folder} holds the output of stage {marker['stage']!r}, not {name!r}; "
            "choose another folder"
        )


def check_out_dir(name: str, out_dir: str | Path, inputs: Mapping[str, Any]) -> None:
    """Refuses an output folder that the stage must not create or replace.

    Args:
        name: Stage name.
        out_dir: The output folder asked for.
        inputs: The stage's keyword arguments (its inputs).

    Raises:
        OutputFolderError: ``out_dir`` is a file, a symbolic link, the current directory or
            one of its parents, contains or lies inside an input, or is a non-empty folder
            (or has a non-empty staging folder) without this stage's marker.
    """
    out = Path(out_dir)
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if _within(cwd, resolved):
        raise OutputFolderError(
            f"output folder {out} is the current directory or one of its parents; the stage "
            "replaces its output folder: give a new sub-folder"
        )
    staging = partial_dir(out)
    for value in inputs.values():
        for inp in _local_inputs(value):
            src = inp.resolve()
            for target in (resolved, staging.resolve()):
                if target == src:
                    rel = "is"
                elif _within(target, src):
                    rel = "lies inside"
                elif _within(src, target):
                    rel = "contains"
                else:
                    continue
                raise OutputFolderError(
                    f"output folder {out} {rel} the input {inp}; write outputs elsewhere"
                )
    _check_owned(name, out, "output folder")
    _check_owned(name, staging, "staging folder")


def check_free_space(folder: str | Path) -> None:
    """Refuses to start when the file system of ``folder`` is (nearly) full.

    The minimum is ``$TWHIN_BERT_MIN_FREE_MB`` (default 100 MB; 0 turns the check off):
    some writers (PyTorch-BigGraph's checkpoints, memory-mapped arrays) crash the process on
    a full disk instead of raising an error.

    Raises:
        OSError: ENOSPC, naming the folder and the free space.
    """
    need_mb = float(os.environ.get(MIN_FREE_MB_ENV, DEFAULT_MIN_FREE_MB))
    probe = Path(folder).resolve()
    while not probe.exists():
        probe = probe.parent
    free_mb = shutil.disk_usage(probe).free / 2**20
    if free_mb < need_mb:
        raise OSError(
            errno.ENOSPC,
            f"only {free_mb:.1f} MB free, the stage needs at least {need_mb:g} MB "
            f"(${MIN_FREE_MB_ENV})",
            str(folder),
        )


def _publish(name: str, staging: Path, out: Path, inputs: Mapping[str, Any]) -> None:
    check_out_dir(name, out, inputs)  # again: something may have landed there meanwhile
    if out.exists():
        shutil.rmtree(out)  # empty, or this stage's own earlier output
    staging.rename(out)


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
            check_out_dir(name, out, inputs)
            staging = partial_dir(out)
            check_free_space(staging)
            created = not staging.exists()
            staging.mkdir(parents=True, exist_ok=True)
            with hold_dir(staging, name):  # one writer per output; the kernel frees it on death
                return _run(fn, name, cfg, out, staging, created, pipeline_run_id, inputs)

        wrapper.logic = fn  # type: ignore[attr-defined]  # the unwrapped logic, for tests
        return wrapper

    return deco


def _run(
    fn: Callable[..., dict[str, Any]],
    name: str,
    cfg: Any,
    out: Path,
    staging: Path,
    created: bool,
    pipeline_run_id: str | None,
    inputs: Mapping[str, Any],
) -> dict[str, Any]:
    """The stage's logic in its staging folder under its MLflow run; publishes the output."""
    write_marker(staging, name, cfg)
    t0 = time.perf_counter()
    with tracking.stage_run(name, cfg, pipeline_run_id, out_dir=out):
        try:
            metrics = dict(fn(cfg, staging, **inputs))
        except BAD_INPUT_ERRORS:
            if created and staging.is_dir():
                shutil.rmtree(staging, ignore_errors=True)  # the original error matters
            raise
        except OSError as e:
            if e.filename is None:  # e.g. pyarrow's: say where the disk was full
                e.filename = str(staging)
            raise
        metrics.setdefault("wall_seconds", round(time.perf_counter() - t0, 3))
        write_metrics(staging, metrics)
        tracking.log_metrics(metrics)
        write_marker(staging, name, cfg, finished=True)
        _publish(name, staging, out, inputs)
    log.info("%s: wrote %s", name, out)
    return metrics
