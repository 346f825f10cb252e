"""The pretrain stage's checkpoints: where they live, which run they belong to, save and resume.

Every ``checkpoint_every`` steps ``engine.save_checkpoint`` stores weights, optimizer, LR
schedule and, in its ``client_state``, the training state (step, data position, log). Folders
are keyed by the contents of the inputs and the config, never their paths (see
:mod:`twhin_bert.common.fingerprint`), so a retried pod or a resubmitted run finds them on a
shared ``checkpoint_dir``; each checkpoint is trusted only once its ``complete.json`` matches its
files (a torn newest checkpoint falls back to the one before).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twhin_bert.common import fingerprint as fp
from twhin_bert.common import lifetime
from twhin_bert.common.artifacts import Ingested, Pairs
from twhin_bert.common.stage import METRICS_FILE
from twhin_bert.pretrain.config import PretrainConfig
from twhin_bert.pretrain.inputs import PretrainInputs

log = logging.getLogger(__name__)

#: The checkpoint folder inside the staging folder when no ``checkpoint_dir`` is set.
CHECKPOINTS = "checkpoints"
#: Written into a checkpoint's folder once every rank's files are complete.
COMPLETE_FILE = "complete.json"
#: The fingerprint of the inputs and settings a checkpoint folder's checkpoints belong to.
FINGERPRINT_FILE = "fingerprint.json"
#: Never fewer checkpoints kept: a torn newest one falls back to the one before.
MIN_KEPT = 2
#: Config fields that do not change what is trained (left out of the fingerprint).
BOOKKEEPING = frozenset(
    {
        "checkpoint_every",
        "keep_checkpoints",
        "checkpoint_dir",
        "log_every",
        "threads",
        "keep_checkpoints_after",
        "num_gpus",
        "num_nodes",
    }
)
#: What a checkpoint that cannot be loaded raises (it is passed over for the one before).
_LOAD_ERRORS = (RuntimeError, OSError, EOFError, ValueError, KeyError)


@dataclass(frozen=True)
class CheckpointFolder:
    """One run's checkpoint folder and the fingerprint its checkpoints must carry.

    Attributes:
        path: The folder (``step<N>`` subfolders, DeepSpeed's ``latest``, the fingerprint).
        fingerprint: Of the objective, the config and the contents of the inputs.
    """

    path: Path
    fingerprint: str

    def tags(self) -> list[tuple[int, Path]]:
        """The checkpoint folders ``step<N>``, oldest first."""
        if not self.path.is_dir():
            return []
        return sorted(
            (int(m.group(1)), p)
            for p in self.path.iterdir()
            if p.is_dir() and (m := re.fullmatch(r"step(\d+)", p.name))
        )

    def resume(self, engine: Any, world: int, rank: int) -> dict[str, Any] | None:
        """Loads the newest complete checkpoint of this fingerprint into ``engine``.

        A folder holding another fingerprint's checkpoints is emptied (one log line); a torn
        newest checkpoint (cut short, truncated, unloadable) is passed over, with one log line,
        for the one before it; checkpoints newer than the one loaded are removed, since
        training rewrites them.

        Returns:
            The loaded checkpoint's client state, or ``None`` for a fresh start.
        """
        self._claim(world, rank)
        loaded, client = 0, None
        for step, tag in reversed(self.tags()):
            client, problem = self._load(engine, tag)
            if problem is None:
                loaded = step
                break
            log.warning("pretrain: checkpoint %s %s; trying the one before", tag, problem)
        _barrier(world)
        if rank == 0:
            for step, tag in self.tags():
                if step > loaded:
                    shutil.rmtree(tag, ignore_errors=True)
        return client

    def _claim(self, world: int, rank: int) -> None:
        """Empties the folder if it holds another fingerprint's checkpoints; records ours."""
        key_file = self.path / FINGERPRINT_FILE
        saved = json.loads(key_file.read_text()).get("fingerprint") if key_file.is_file() else None
        if saved != self.fingerprint and (saved is not None or self.tags()):
            log.warning(
                "pretrain: %s holds checkpoints of other inputs or settings; starting over",
                self.path,
            )
            _barrier(world)  # every rank has read the folder before it is emptied
            if rank == 0:
                _clear(self.path)
        if rank == 0:
            self.path.mkdir(parents=True, exist_ok=True)
            key_file.write_text(json.dumps({"fingerprint": self.fingerprint}) + "\n")
        _barrier(world)

    def _load(self, engine: Any, tag: Path) -> tuple[dict[str, Any] | None, str | None]:
        """``(client state, None)``, or ``(None, why the checkpoint cannot be used)``."""
        problem = _incomplete(tag)
        if problem is not None:
            return None, problem
        try:
            _, client = engine.load_checkpoint(str(self.path), tag=tag.name)
        except _LOAD_ERRORS as e:
            return None, f"cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0]})"
        if client is None:
            return None, "cannot be loaded"
        if client.get("fingerprint") != self.fingerprint:
            return None, "was written for other inputs or settings"
        return client, None

    def save(
        self, engine: Any, step: int, client: dict[str, Any], *, world: int, rank: int, keep: int
    ) -> None:
        """Saves checkpoint ``step<step>`` (every rank), marks it complete once every rank's
        files are written, and keeps the ``keep`` newest (at least :data:`MIN_KEPT`)."""
        client = {**client, "fingerprint": self.fingerprint}
        engine.save_checkpoint(str(self.path), tag=f"step{step}", client_state=client)
        _barrier(world)  # every rank's files are written
        if rank == 0:
            _mark_complete(self.path / f"step{step}")
            self._prune(max(MIN_KEPT, keep))

    def _prune(self, keep: int) -> None:
        """Keeps the ``keep`` newest complete checkpoints (and anything newer)."""
        tags = self.tags()
        complete = [s for s, p in tags if (p / COMPLETE_FILE).is_file()]
        if len(complete) <= keep:
            return
        for s, p in tags:
            if s < complete[-keep]:
                shutil.rmtree(p, ignore_errors=True)


def checkpoint_folder(
    cfg: PretrainConfig, out_dir: Path, inputs: PretrainInputs
) -> CheckpointFolder:
    """Where this run's checkpoints live, and the fingerprint they must carry.

    A shared ``checkpoint_dir`` (a persistent volume that outlives the pod) holds one folder
    per (objective, config, input contents): stage 2 and the MLM-only twin of one run never
    meet, while a retried pod or a resubmitted pipeline -- the same artifacts under new
    paths -- finds its own. Without it: ``out_dir/checkpoints`` in the staging folder.
    """
    key = fingerprint(cfg, inputs)
    if cfg.checkpoint_dir:
        return CheckpointFolder(Path(cfg.checkpoint_dir) / f"{inputs.objective}-{key}", key)
    return CheckpointFolder(out_dir / CHECKPOINTS, key)


def fingerprint(cfg: PretrainConfig, inputs: PretrainInputs) -> str:
    """What must match for a checkpoint to be resumed: the objective, the config (not its
    bookkeeping fields) and the contents of the inputs (never their paths)."""
    keep = cfg.model_dump(mode="json", exclude=set(BOOKKEEPING))
    start: str | None = None
    if inputs.init_from is not None:  # a model folder, or a name of a released model
        p = inputs.init_from
        start = fp.model_fingerprint(p) if p.is_dir() else str(p)
    pairs = inputs.pairs
    contents = {
        "tweets": fp.file_fingerprint(Ingested(inputs.ingested).tweets_path()),
        "tokenizer": fp.path_fingerprint(inputs.tokenizer, ignore={METRICS_FILE}),
        "pairs": fp.file_fingerprint(Pairs(pairs).pairs_path()) if pairs is not None else None,
        "init_from": start,
    }
    return fp.fingerprint([inputs.objective, keep], contents)


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _mark_complete(tag: Path) -> None:
    """Records the fingerprint of every file of a fully written checkpoint."""
    files = {
        f.relative_to(tag).as_posix(): fp.file_fingerprint(f)
        for f in sorted(tag.rglob("*"))
        if f.is_file() and f.name != COMPLETE_FILE
    }
    tmp = tag / (COMPLETE_FILE + ".tmp")
    tmp.write_text(json.dumps({"files": files}, indent=1) + "\n")
    os.replace(tmp, tag / COMPLETE_FILE)


def _incomplete(tag: Path) -> str | None:
    """Why a checkpoint folder cannot be trusted (``None``: its files are as saved)."""
    marker = tag / COMPLETE_FILE
    if not marker.is_file():
        return f"is incomplete (no {COMPLETE_FILE}: its save was cut short)"
    for name, want in json.loads(marker.read_text())["files"].items():
        f = tag / name
        if not f.is_file():
            return f"lacks {name}"
        if fp.file_fingerprint(f) != want:
            return f"has a torn or changed {name}"
    return None


def _clear(folder: Path) -> None:
    """Empties a checkpoint folder except its lock file (held by this run)."""
    for p in folder.iterdir():
        if p.name == lifetime.LOCK_FILE:
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()
