"""The embed stage: batch-embed tweets with an encoder into CLS, mean and Combined vectors.

The vectors and the length batching are :mod:`twhin_bert.common.encoder`'s. This stage
streams a tweets Parquet in chunks (bounded memory), writes memory-mapped arrays row-aligned
with the tweet ids, and saves its progress after each chunk so an interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twhin_bert.common import fingerprint as fp
from twhin_bert.common import schemas
from twhin_bert.common.artifacts import Embeddings, Ingested
from twhin_bert.common.compute import use_threads
from twhin_bert.common.encoder import (
    INT8_CALIBRATION_TEXTS,
    KINDS,
    PadStats,
    embed_ids,
    encoder_of,
    load_encoder,
    pooling_excluded_ids,
    quantize_int8,
    tokenize,
)

# Re-exported for evaluate/features.py until it imports twhin_bert.common.encoder.
from twhin_bert.common.encoder import embed_texts as embed_texts
from twhin_bert.common.memory import no_kernel_cache_per_shape, release_free_memory
from twhin_bert.common.progress import progress
from twhin_bert.common.stage import stage
from twhin_bert.embed.config import EmbedConfig

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"


def _open_tweets(path: Path) -> tuple[pq.ParquetFile, str]:
    """Opens a tweets Parquet: our ``tweets`` artifact, or any file with an id and a text column."""
    f = (
        schemas.check(path, "tweets")
        if _is_tweets_artifact(path)
        else schemas.open_parquet(str(path))
    )
    names = f.schema_arrow.names
    id_col = next((c for c in ("tweet_id", "id") if c in names), None)
    if id_col is None or "text" not in names:
        raise schemas.SchemaError(
            f"{path}: expected columns 'tweet_id' (or 'id') and 'text', found {names}"
        )
    return f, id_col


def _is_tweets_artifact(path: Path) -> bool:
    try:
        meta = pq.read_schema(str(path)).metadata or {}
    except (OSError, pa.ArrowInvalid) as e:
        raise schemas.SchemaError(f"{path}: not a readable Parquet file ({e})") from e
    return meta.get(schemas.SCHEMA_KEY, b"").startswith(b"tweets/")


def _open_outputs(out: Path, n: int, dim: int, mode: str) -> dict[str, np.ndarray]:
    shapes = {"cls": (n, dim), "mean": (n, dim), "combined": (n, 2 * dim)}
    files = Embeddings(out)
    return {
        k: np.lib.format.open_memmap(
            files.vectors_path(k), mode=mode, dtype=np.float32, shape=shapes[k]
        )
        if mode == "w+"
        else np.load(files.vectors_path(k), mmap_mode="r+")
        for k in KINDS
    }


def _resume_point(out: Path, fingerprint: str) -> int:
    """Rows already embedded by an interrupted run with the same input contents and settings."""
    p = out / PROGRESS_FILE
    if not p.is_file() or not all(Embeddings(out).vectors_path(k).is_file() for k in KINDS):
        return 0
    saved = json.loads(p.read_text())
    if saved.get("fingerprint") != fingerprint:
        log.warning("embed: %s was written for other tweets, model or settings; starting over", p)
        return 0
    return int(saved["rows_done"])


def _save_progress(out: Path, fingerprint: str, rows_done: int) -> None:
    tmp = out / (PROGRESS_FILE + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "rows_done": rows_done}))
    os.replace(tmp, out / PROGRESS_FILE)


@stage("embed")
def run_embed(cfg: EmbedConfig, out_dir: Path, *, model: Path, ingested: Path) -> dict:
    """Embeds every tweet of a Parquet file into CLS, mean and Combined arrays.

    Streams the tweets in chunks of ``cfg.chunk_size`` (bounded memory), writes the arrays as
    memory-mapped ``.npy`` files row-aligned with the ids (schema ``ids``: row ``i`` of each
    array is tweet ``ids[i]``, the input's order; layout: :class:`Embeddings`), and saves its
    progress after each chunk so an interrupted run resumes where it stopped.

    Args:
        cfg: The stage config.
        out_dir: Output folder (the staging folder when called through the stage wrapper).
        model: A Hugging Face encoder folder (pretrain's output).
        ingested: An ingest folder (:class:`Ingested`), or a tweets Parquet file.

    Returns:
        Metrics: tweets, tweets per second, padding share, tokens per tweet, dimensions.
    """
    with no_kernel_cache_per_shape():  # before the model's first kernel
        return _embed(cfg, Path(out_dir), model, ingested)


def _embed(cfg: EmbedConfig, out: Path, model: Path, ingested: Path) -> dict:
    """:func:`run_embed`'s work."""
    use_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    path = Ingested(ingested).tweets_path()
    f, id_col = _open_tweets(path)
    n = f.metadata.num_rows
    enc_model, tokenizer = load_encoder(model, cfg.device)
    if cfg.quantize == "int8":
        if next(encoder_of(enc_model).parameters()).device.type != "cpu":
            raise ValueError("embed: quantize=int8 runs on the CPU only; set device: cpu")
        first = next(f.iter_batches(batch_size=INT8_CALIBRATION_TEXTS, columns=["text"]), None)
        calibration = first.column("text").to_pylist() if first is not None else []
        enc_model = quantize_int8(enc_model, tokenizer, calibration, max_length=cfg.max_length)
    dim = encoder_of(enc_model).config.hidden_size
    # The resume key: the contents of tweets and model (never their paths: a retried pod
    # mounts them elsewhere; another model copied to the same path must not be resumed) and
    # the settings that shape the rows (the device type decides bf16 or fp32).
    fingerprint = fp.fingerprint(
        {
            "rows": n,
            "dim": dim,
            "max_length": cfg.max_length,
            "chunk_size": cfg.chunk_size,
            "quantize": cfg.quantize,
            "device": next(encoder_of(enc_model).parameters()).device.type,
        },
        {"tweets": fp.file_fingerprint(path), "model": fp.model_fingerprint(model)},
    )
    start = _resume_point(out, fingerprint)
    arrays = _open_outputs(out, n, dim, "r+" if start else "w+")
    if start:
        log.info("embed: resuming at row %d of %d", start, n)
    stats = PadStats()
    row, t0 = 0, time.perf_counter()
    bar = progress(total=n, initial=start, desc="embed", unit="tweet")
    # The ids are written as the chunks stream by (all of them, resumed chunks included), so
    # the whole id column is never in memory.
    ids_out = schemas.writer(Embeddings(out).ids_path(), "ids")
    try:
        for batch in f.iter_batches(columns=["text", id_col], batch_size=cfg.chunk_size):
            size = batch.num_rows
            chunk_ids = batch.column(1).cast(pa.string())
            if chunk_ids.null_count:
                bad = row + chunk_ids.to_pylist().index(None) + 1
                raise ValueError(f"{path}: row {bad}: {id_col} is null (expected an id)")
            ids_out.write_table(pa.table({"id": chunk_ids}).cast(ids_out.schema))
            if row + size <= start:
                row += size
                continue
            texts = batch.column(0).to_pylist()
            if None in texts:
                bad = row + texts.index(None) + 1
                raise ValueError(f"{path}: row {bad}: text is null (expected a string)")
            ids = tokenize(tokenizer, texts, cfg.max_length)
            res = embed_ids(
                enc_model,
                ids,
                pad_id=tokenizer.pad_token_id,
                special_ids=pooling_excluded_ids(tokenizer),
                batch_size=cfg.batch_size,
                stats=stats,
            )
            for k in KINDS:
                arrays[k][row : row + size] = res[k]
                arrays[k].flush()
            row += size
            _save_progress(out, fingerprint, row)
            bar.update(size)
            release_free_memory()  # else the allocators keep each chunk's pages
    finally:
        ids_out.close()
        bar.close()
    seconds = time.perf_counter() - t0
    del arrays
    (out / PROGRESS_FILE).unlink(missing_ok=True)
    done = n - start
    return {
        "tweets": n,
        "embedded_this_run": done,
        "resumed_from_row": start,
        "tweets_per_second": done / seconds if seconds > 0 else 0.0,
        "padding_share": stats.padding_share,
        "tokens_per_tweet": stats.tokens / done if done else 0.0,
        "dim_cls": dim,
        "dim_combined": 2 * dim,
        "device": str(next(encoder_of(enc_model).parameters()).device),
    }
