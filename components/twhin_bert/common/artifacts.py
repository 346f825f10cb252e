"""The artifacts stages exchange: one small class per stage output.

Each class owns its folder's file names, checks its schema (:mod:`twhin_bert.common.schemas`)
when it reads, and maps ids to rows. A stage reads its inputs and writes its output through
these classes, so no artifact file name is spelled anywhere else::

    tweets = Ingested(folder).tweets(columns=["tweet_id", "text"])
    ids, vectors = GraphEmbeddings(folder).users()
    primary = Evaluation(folder).primary()

Every reader names the file in its error when the artifact is missing or malformed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twhin_bert.common import schemas

if TYPE_CHECKING:
    from twhin_bert.common.holdout import Holdout

#: build_graph's evaluation holdout rule, passed on by embed_graph (see common/holdout.py).
HOLDOUT_FILE = "holdout.json"


class ArtifactError(FileNotFoundError, ValueError):
    """A stage output that is missing or malformed (names the path; a bad input, exit 2)."""


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object (the message names the file when it does not)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ArtifactError(f"{path}: missing") from e
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


class Artifact:
    """A stage's output folder.

    Args:
        path: The folder (local path).
    """

    #: The stage that writes this artifact (named in errors).
    stage = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _required(self, name: str) -> Path:
        f = self.path / name
        if not f.is_file():
            raise ArtifactError(f"{f}: missing (expected the {self.stage} stage's output folder)")
        return f


class Ingested(Artifact):
    """ingest: ``tweets.parquet``, ``engagements.parquet``, ``quarantine.parquet``.

    ``path`` may also be a tweets Parquet file itself (then :meth:`tweets_path` is that file
    and there are no engagements).
    """

    stage = "ingest"
    TWEETS = "tweets.parquet"
    ENGAGEMENTS = "engagements.parquet"
    QUARANTINE = "quarantine.parquet"
    FILES = (TWEETS, ENGAGEMENTS, QUARANTINE)

    def tweets_path(self) -> Path:
        """The tweets Parquet: ``path/tweets.parquet``, or ``path`` when it is a file."""
        if self.path.is_file():
            return self.path
        return self._required(self.TWEETS)

    def tweets(self, columns: list[str] | None = None) -> pa.Table:
        """The tweets (schema ``tweets``), optionally only ``columns``."""
        return schemas.read_table(self.tweets_path(), "tweets", columns)

    def engagements_path(self) -> Path:
        """``engagements.parquet`` (must exist)."""
        return self._required(self.ENGAGEMENTS)

    def engagements(self, columns: list[str] | None = None) -> pa.Table:
        """The engagements (schema ``engagements``), optionally only ``columns``."""
        return schemas.read_table(self.engagements_path(), "engagements", columns)

    def writers(self) -> dict[str, pq.ParquetWriter]:
        """Streaming writers ``{"tweets", "engagements"}`` into the folder (created)."""
        return {
            "tweets": schemas.writer(self.path / self.TWEETS, "tweets"),
            "engagements": schemas.writer(self.path / self.ENGAGEMENTS, "engagements"),
        }

    def quarantine_path(self) -> Path:
        """Where ingest writes its quarantine."""
        return self.path / self.QUARANTINE

    def write(self, tweets: pa.Table, engagements: pa.Table | None = None) -> None:
        """Writes whole tables (demo and benchmark data); without engagements, tweets only."""
        schemas.write_table(tweets, self.path / self.TWEETS, "tweets")
        if engagements is not None:
            schemas.write_table(engagements, self.path / self.ENGAGEMENTS, "engagements")


def _holdout(folder: Path) -> Holdout | None:
    from twhin_bert.common.holdout import read_rule

    return read_rule(folder)


class Graph(Artifact):
    """build_graph: ``graph.json``, ``entities.parquet``, ``relations.json``, ``pbg/``,
    ``holdout.json``."""

    stage = "build_graph"
    META = "graph.json"
    ENTITIES = "entities.parquet"
    RELATIONS = "relations.json"
    PBG_DIR = "pbg"

    def meta(self) -> dict[str, Any]:
        """``graph.json``: counts, partitions, relations, relative paths."""
        return read_json_object(self._required(self.META))

    def entities(self, columns: list[str] | None = None) -> pa.Table:
        """Our ids <-> PBG (type, partition, offset); rows in embedding row order."""
        return schemas.read_table(self._required(self.ENTITIES), "entities", columns)

    def write_entities(self, table: pa.Table) -> None:
        """Writes ``entities.parquet``."""
        schemas.write_table(table, self.path / self.ENTITIES, "entities")

    def holdout(self) -> Holdout | None:
        """The evaluation holdout rule, or None when the graph keeps no tweet out."""
        return _holdout(self.path)


class IdVectors:
    """``<stem>.npy`` (float32 ``[N, d]``) with ``<stem>.ids.parquet`` (row ``i`` = id ``i``)."""

    def __init__(self, folder: Path, stem: str) -> None:
        self.vectors_path = folder / f"{stem}.npy"
        self.ids_path = folder / f"{stem}.ids.parquet"

    def ids(self) -> pa.Array:
        """The ids, in row order."""
        if not self.ids_path.is_file():
            raise ArtifactError(f"{self.ids_path}: missing (one id per row of {self.vectors_path})")
        return schemas.read_table(self.ids_path, "ids").column("id").combine_chunks()

    def vectors(self, mmap: bool = True) -> np.ndarray:
        """The ``[N, d]`` array (memory-mapped by default)."""
        try:
            v = np.load(self.vectors_path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"{self.vectors_path}: cannot read embeddings ({e})") from e
        if v.ndim != 2:
            raise ArtifactError(f"{self.vectors_path}: expected a 2-D [N, d] array, got {v.shape}")
        return v

    def read(self, mmap: bool = True) -> tuple[pa.Array, np.ndarray]:
        """``(ids, vectors)``, checked to have one id per row."""
        ids, vectors = self.ids(), self.vectors(mmap)
        if len(ids) != vectors.shape[0]:
            raise ArtifactError(
                f"{self.ids_path}: {len(ids)} ids for {vectors.shape[0]} rows of "
                f"{self.vectors_path} (expected one id per row)"
            )
        return ids, vectors

    def write(self, ids: pa.Array, vectors: np.ndarray) -> None:
        """Writes both files."""
        np.save(self.vectors_path, vectors)
        schemas.write_table(pa.table({"id": ids}), self.ids_path, "ids")


class GraphEmbeddings(Artifact):
    """embed_graph: ``users.npy``/``tweets.npy`` + ids, ``relations.json``, ``model.json``,
    ``holdout.json`` (copied from the graph)."""

    stage = "embed_graph"
    USERS = "users"
    TWEETS = "tweets"
    RELATIONS = "relations.json"
    MODEL = "model.json"

    def table(self, stem: str) -> IdVectors:
        """The ``users`` or ``tweets`` id/vector pair of files."""
        return IdVectors(self.path, stem)

    def users(self, mmap: bool = True) -> tuple[pa.Array, np.ndarray]:
        """``(user ids, [users, d] vectors)``."""
        return self.table(self.USERS).read(mmap)

    def tweets(self, mmap: bool = True) -> tuple[pa.Array, np.ndarray]:
        """``(tweet ids, [tweets, d] vectors)``."""
        return self.table(self.TWEETS).read(mmap)

    def files(self) -> dict[str, str]:
        """File names for ``model.json``'s ``files`` entry."""
        return {
            "users": self.table(self.USERS).vectors_path.name,
            "tweets": self.table(self.TWEETS).vectors_path.name,
            "relations": self.RELATIONS,
        }

    def holdout(self) -> Holdout | None:
        """The evaluation holdout rule passed on from the graph, or None."""
        return _holdout(self.path)

    def copy_holdout_from(self, graph: Graph) -> Holdout | None:
        """Copies the graph's holdout rule beside the embeddings; returns it (None: none)."""
        import shutil

        rule = graph.holdout()
        if rule is not None:
            shutil.copyfile(rule.path, self.path / HOLDOUT_FILE)
        return rule


class Pairs(Artifact):
    """mine_pairs: ``pairs.parquet`` (``path`` may be that file itself)."""

    stage = "mine_pairs"
    PAIRS = "pairs.parquet"

    def pairs_path(self) -> Path:
        """The pairs Parquet: ``path/pairs.parquet``, or ``path`` when it is a file."""
        return self.path if self.path.is_file() else self._required(self.PAIRS)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The pairs (schema ``pairs``)."""
        return schemas.read_table(self.pairs_path(), "pairs", columns)

    def write(self, table: pa.Table) -> Path:
        """Writes ``pairs.parquet``."""
        path = self.path / self.PAIRS
        schemas.write_table(table, path, "pairs")
        return path


class TokenizerFolder(Artifact):
    """train_tokenizer: a Hugging Face fast-tokenizer folder."""

    stage = "train_tokenizer"
    FILE = "tokenizer.json"

    def check(self) -> Path:
        """The folder, after checking it holds ``tokenizer.json`` (a fast tokenizer's)."""
        if not (self.path / self.FILE).is_file():
            raise ArtifactError(f"{self.path}: not a fast-tokenizer folder (no {self.FILE})")
        return self.path

    def load(self) -> Any:
        """The tokenizer (``AutoTokenizer``, offline), after :meth:`check`."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.check()), local_files_only=True)

    def save(self, tokenizer: Any) -> Path:
        """Saves a fast ``tokenizer`` here; returns the folder, checked."""
        tokenizer.save_pretrained(str(self.path))
        return self.check()


class ModelFolder(Artifact):
    """pretrain: a Hugging Face model folder (``config.json``, weights, tokenizer)."""

    stage = "pretrain"
    CONFIG = "config.json"
    #: pretrain's per-step losses beside the model (the evaluate report plots them).
    TRAINING_LOG = "training_log.json"

    def check(self) -> Path:
        """The folder, after checking it holds ``config.json``."""
        if not (self.path / self.CONFIG).is_file():
            raise ArtifactError(f"{self.path}: not a Hugging Face model folder (no config.json)")
        return self.path


class Embeddings(Artifact):
    """embed: ``cls.npy``, ``mean.npy``, ``combined.npy`` + ``ids.parquet`` (tweet ids)."""

    stage = "embed"
    KINDS = ("cls", "mean", "combined")
    IDS = "ids.parquet"

    def vectors_path(self, kind: str) -> Path:
        """``<kind>.npy`` for ``kind`` in :attr:`KINDS`."""
        if kind not in self.KINDS:
            raise ValueError(f"embedding kind {kind!r}; expected one of {self.KINDS}")
        return self.path / f"{kind}.npy"

    def ids_path(self) -> Path:
        """``ids.parquet`` (row ``i`` of every array is tweet ``ids[i]``)."""
        return self.path / self.IDS

    def ids(self) -> pa.Array:
        """The tweet ids, in row order."""
        return schemas.read_table(self._required(self.IDS), "ids").column("id").combine_chunks()

    def vectors(self, kind: str, mmap: bool = True) -> np.ndarray:
        """One kind's ``[N, d]`` array."""
        path = self.vectors_path(kind)
        if not path.is_file():
            raise ArtifactError(f"{path}: missing (expected the embed stage's output folder)")
        return np.load(path, mmap_mode="r" if mmap else None)


class Evaluation(Artifact):
    """evaluate: ``metrics.json`` (``models``, ``primary``, ``ablation``...), ``report.md``,
    ``report.html``."""

    stage = "evaluate"
    REPORT_MD = "report.md"
    REPORT_HTML = "report.html"

    def metrics(self) -> dict[str, Any]:
        """The whole ``metrics.json`` (a JSON object)."""
        from twhin_bert.common.metrics import METRICS_FILE, read_metrics

        self._required(METRICS_FILE)
        return read_metrics(self.path)

    def primary(self) -> dict[str, Any]:
        """The candidate's key metrics (``metrics.json`` ``primary``)."""
        from twhin_bert.common.metrics import PRIMARY

        return dict(self.metrics().get(PRIMARY) or {})


class Registration(Artifact):
    """register_model: ``registration.json`` (name, version, aliases, gate verdict)."""

    stage = "register_model"
    FILE = "registration.json"

    def read(self) -> dict[str, Any]:
        """``registration.json`` as a mapping."""
        return read_json_object(self._required(self.FILE))

    def write(self, info: dict[str, Any]) -> Path:
        """Writes ``registration.json``."""
        path = self.path / self.FILE
        path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        return path
