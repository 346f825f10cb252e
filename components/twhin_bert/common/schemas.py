"""The documented schemas of the artifacts stages exchange, with their versions.

Each Parquet artifact carries its schema name and version in the file's key-value metadata
(``twhin_bert.schema = "<name>/<version>"``); readers check it and name the file when it
does not match. The folder layouts (file names) are in :mod:`twhin_bert.common.artifacts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_KEY = b"twhin_bert.schema"

TS = pa.timestamp("ms", tz="UTC")

#: name -> (version, arrow schema)
SCHEMAS: dict[str, tuple[int, pa.Schema]] = {
    # ingest -> tweets: one row per unique tweet, text normalised.
    "tweets": (
        1,
        pa.schema(
            [
                pa.field("tweet_id", pa.string(), nullable=False),
                pa.field("author_id", pa.string()),  # null for text-only sources
                pa.field("text", pa.string(), nullable=False),  # normalised (@user, http)
                pa.field("lang", pa.string(), nullable=False),  # ISO 639-1 or "und"
                pa.field("hashtags", pa.list_(pa.string()), nullable=False),  # lower-case, no '#'
                pa.field("created_at", TS),
            ]
        ),
    ),
    # ingest -> engagements: one row per unique (user, tweet, type).
    "engagements": (
        1,
        pa.schema(
            [
                pa.field("user_id", pa.string(), nullable=False),
                pa.field("tweet_id", pa.string(), nullable=False),
                pa.field(
                    "engagement_type", pa.string(), nullable=False
                ),  # fave|retweet|reply|quote
                pa.field("engaged_at", TS),
            ]
        ),
    ),
    # ingest -> quarantine: every row that did not make it, and why.
    "quarantine": (
        1,
        pa.schema(
            [
                pa.field("kind", pa.string(), nullable=False),  # tweets | engagements
                pa.field("source", pa.string(), nullable=False),  # file URI
                pa.field("row", pa.int64(), nullable=False),  # 1-based line / row number
                pa.field("reason", pa.string(), nullable=False),
                pa.field("raw", pa.string()),  # the raw row, as text (bytes escaped)
            ]
        ),
    ),
    # mine_pairs -> pairs: positive pairs for the contrastive objective.
    "pairs": (
        1,
        pa.schema(
            [
                pa.field("tweet_a", pa.string(), nullable=False),
                pa.field("tweet_b", pa.string(), nullable=False),
                pa.field("score", pa.float32(), nullable=False),
                pa.field("source", pa.string(), nullable=False),  # social | hashtag | translation
                pa.field("text_a", pa.string()),  # null: use the tweet's text
                pa.field("text_b", pa.string()),
            ]
        ),
    ),
    # build_graph -> entities: our ids <-> PBG (entity type, partition, offset).
    "entities": (
        1,
        pa.schema(
            [
                pa.field("entity_type", pa.string(), nullable=False),  # user | tweet
                pa.field("id", pa.string(), nullable=False),
                pa.field("partition", pa.int32(), nullable=False),
                pa.field("offset", pa.int64(), nullable=False),
                pa.field("degree", pa.int64(), nullable=False),
            ]
        ),
    ),
    # embed_graph / embed -> <name>.ids.parquet beside <name>.npy (row i of the .npy).
    "ids": (1, pa.schema([pa.field("id", pa.string(), nullable=False)])),
}

ENGAGEMENT_TYPES = ("fave", "retweet", "reply", "quote")

# Folder layouts, file names and readers: one class per stage output in common/artifacts.py.


class SchemaError(ValueError):
    """An artifact whose schema is not the one expected (names the file)."""


def schema(name: str) -> pa.Schema:
    """The arrow schema of ``name`` with its version in the metadata."""
    version, s = SCHEMAS[name]
    return s.with_metadata({SCHEMA_KEY: f"{name}/{version}".encode()})


def writer(path: str | Path, name: str) -> pq.ParquetWriter:
    """A streaming Parquet writer for schema ``name``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(str(path), schema(name), compression="zstd")


def write_table(table: pa.Table, path: str | Path, name: str) -> None:
    """Writes ``table`` cast to schema ``name`` (columns in schema order)."""
    s = schema(name)
    try:
        table = table.select(s.names).cast(s)
    except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise SchemaError(f"{path}: cannot write as {name}: {e}") from e
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path), compression="zstd")


def open_parquet(source: Any) -> pq.ParquetFile:
    """Opens a Parquet file (a path or a binary file object) for streaming reads.

    Every streaming reader in the project opens Parquet here, with Arrow's ``pre_buffer``
    off: with it on (pyarrow's default), ``iter_batches`` keeps every column chunk it has
    read in the reader's read cache until the reader is closed, so a pass over a file holds
    the file's compressed columns by its end (measured: +330 KB per 8,192 tweets, so about
    40 MB over 1M; a production tweets file would not fit). Off, each batch's pages are
    freed once used.
    """
    return pq.ParquetFile(source, pre_buffer=False)


def check(path: str | Path, name: str) -> pq.ParquetFile:
    """Opens ``path`` and checks that it carries schema ``name`` at our version.

    Raises:
        SchemaError: Missing file, other schema, or newer version (message names the file).
    """
    try:
        f = open_parquet(str(path))
    except (OSError, pa.ArrowInvalid) as e:
        raise SchemaError(f"{path}: not a readable Parquet file ({e})") from e
    meta = f.schema_arrow.metadata or {}
    tag = meta.get(SCHEMA_KEY, b"").decode()
    version, expected = SCHEMAS[name]
    if tag != f"{name}/{version}":
        raise SchemaError(
            f"{path}: expected a '{name}/{version}' artifact, found '{tag or 'none'}'"
        )
    missing = set(expected.names) - set(f.schema_arrow.names)
    if missing:
        raise SchemaError(f"{path}: {name} artifact lacks columns {sorted(missing)}")
    return f


def read_table(path: str | Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """Reads a whole (small) artifact after :func:`check`."""
    check(path, name)
    return pq.read_table(str(path), columns=columns)
