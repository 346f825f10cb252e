"""Runs a whole pipeline on this machine with KFP's local runner (``twhin-bert run``).

Tasks run as subprocesses with this Python (``SubprocessRunner(use_venv=False)``); artifacts
land under ``<workdir>/pipeline_root/<run>/<task>/<output>``; MLflow uses
``MLFLOW_TRACKING_URI`` or a SQLite store at ``<workdir>/mlflow.db``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from twhin_bert.common import tracking
from twhin_bert.common.errors import RunFailed
from twhin_bert_pipelines.config import PipelineConfig
from twhin_bert_pipelines.submit import PipelineName, build

log = logging.getLogger(__name__)

# What KFP's executor logs about itself in every task: where it loads the component from, and
# the whole executor input as indented JSON (hundreds of lines per task).
_EXECUTOR = "[KFP Executor "
_EXECUTOR_CHATTER = (
    "Looking for component",
    "Loading KFP component",
    "Wrote executor output file",
    "Did not write output file",
)


# The local runner's listing of a finished task's outputs (its metadata can be hundreds of
# metrics long); the ANSI colour codes around the task name are optional.
_OUTPUTS = re.compile(r" - INFO - Task \S+ outputs:$")


class ExecutorChatterFilter(io.TextIOBase):
    """A stdout that drops KFP executor boilerplate from the task logs the local runner streams.

    Only KFP's own lines go: the executor-input JSON (from ``Got executor_input:`` to its
    closing brace at column 0), the lines in ``_EXECUTOR_CHATTER``, and the runner's
    ``Task '...' outputs:`` blocks (every artifact's URI and its whole metadata dict; the run
    summary lists where the outputs are). Everything a task itself prints (progress,
    warnings, tracebacks) passes through unchanged.
    """

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self._buffer = ""
        self._in_json = False
        self._in_outputs = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if self._keep(line):
                self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._buffer and self._keep(self._buffer):
            self.target.write(self._buffer)
        self._buffer = ""
        self.target.flush()

    def _keep(self, line: str) -> bool:
        bare = line.strip()
        if self._in_outputs:
            if line.startswith(" "):  # the block's artifact lines are indented
                return False
            self._in_outputs = False
        if _OUTPUTS.search(line):
            self._in_outputs = True
            return False
        if self._in_json:
            if bare == "}" and not line.startswith(" " * 5):
                self._in_json = False
            return False
        if _EXECUTOR in line and "Got executor_input:" in line:
            self._in_json = True
            return False
        return not (_EXECUTOR in line and any(c in line for c in _EXECUTOR_CHATTER))


def prepare_environment(workdir: Path) -> str:
    """Points this process and its task subprocesses at the work dir and MLflow store.

    Returns:
        The MLflow tracking URI in use.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["TWHIN_BERT_HOME"] = str(workdir)
    uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking.default_tracking_uri(workdir)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    tracking.configure(workdir)  # create the store and experiment once, before tasks race
    return uri


@contextlib.contextmanager
def _quiet_executor(quiet: bool) -> Iterator[None]:
    if not quiet:
        yield
        return
    stream = ExecutorChatterFilter(sys.stdout)
    try:
        with contextlib.redirect_stdout(stream):
            yield
    finally:
        stream.flush()


def run_local(
    cfg: PipelineConfig, workdir: Path, which: PipelineName = "pretrain", *, quiet: bool = True
) -> dict[str, Any]:
    """Runs pipeline ``which`` through ``kfp.local`` and collects where its outputs are.

    Args:
        cfg: The pipeline config (its ``inputs`` must name the data).
        workdir: Work dir for artifacts and the default MLflow store.
        which: ``pretrain`` or ``retrain``.
        quiet: Drop KFP's executor boilerplate (executor-input JSON) from the streamed task
            logs (:class:`ExecutorChatterFilter`); the tasks' own output always shows.

    Returns:
        ``{"run_dir", "tasks": {task: {output: path}}, "tracking_uri", "seconds"}``.

    Raises:
        RuntimeError: A task failed (the message names the run folder to look into).
    """
    from kfp import local

    workdir = workdir.resolve()
    uri = prepare_environment(workdir)
    root = workdir / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    t0 = time.perf_counter()
    pipeline_fn = build(cfg, which)
    # The tasks (subprocesses) find their run's id here, as cluster pods do from their label.
    before_id = os.environ.get(tracking.PIPELINE_RUN_ENV)
    os.environ[tracking.PIPELINE_RUN_ENV] = uuid.uuid4().hex
    try:
        with warnings.catch_warnings(), _quiet_executor(quiet):
            # The local runner ignores images, resources and node selection (they are for the
            # cluster) and says so once per task; that is expected here.
            warnings.filterwarnings("ignore", message=".*no effect in the current local runner.*")
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            pipeline_fn()
    except RuntimeError as e:
        new = sorted(p for p in root.iterdir() if p.name not in before)
        where = new[-1] if new else root
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # kfp colours task names
        raise RunFailed(f"pipeline failed; task outputs and logs under {where}: {plain}") from e
    finally:
        if before_id is None:
            os.environ.pop(tracking.PIPELINE_RUN_ENV, None)
        else:
            os.environ[tracking.PIPELINE_RUN_ENV] = before_id
    seconds = time.perf_counter() - t0
    new_runs = sorted(
        (p for p in root.iterdir() if p.name not in before), key=lambda p: p.stat().st_mtime
    )
    run_dir = new_runs[-1]
    tasks = {
        task.name: {
            out.name: str(out)
            for out in sorted(task.iterdir())
            if out.name != "executor_output.json"
        }
        for task in sorted(run_dir.iterdir())
        if task.is_dir()
    }
    summary = {
        "run_dir": str(run_dir),
        "tasks": tasks,
        "tracking_uri": uri,
        "seconds": round(seconds, 1),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
