"""The embed stage: batch-embed tweets with an encoder into CLS, mean and Combined vectors.

Three vectors per tweet, from the encoder's last hidden states (SPEC 2.4, 2.5):

* ``cls``: the vector at position 0 (``<s>``/``[CLS]``), the pretraining objective's embedding;
* ``mean``: the mean of the vectors of the tweet's own tokens, special and padding tokens
  excluded (``<unk>`` counts as the tweet's own: it stands for text; a tweet with no own
  token gets zeros);
* ``combined``: ``cls`` concatenated with ``mean`` ("Combined" in the paper's engagement task).

Speed comes from batching by length: a chunk of tweets is tokenized at once, sorted by token
count and cut into batches of neighbours, so a batch pads to nearly its own length; results go
back to the input order. The forward runs under ``torch.inference_mode`` (bf16 autocast on
CUDA) with SDPA attention, and padding and pooling are tensor operations, not Python loops.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from twhin_bert.common import fingerprint as fp
from twhin_bert.common import schemas
from twhin_bert.common.artifacts import Embeddings, Ingested
from twhin_bert.common.progress import progress
from twhin_bert.common.stage import stage
from twhin_bert.embed.config import EmbedConfig

log = logging.getLogger(__name__)

KINDS = Embeddings.KINDS
PROGRESS_FILE = "progress.json"
#: A batch holds texts whose token counts differ by less than this (bounded padding).
BUCKET_WIDTH = 8


@dataclass
class PadStats:
    """Token counts of the batches actually run (to report the padding share)."""

    tokens: int = 0  # real tokens, special tokens included
    positions: int = 0  # batch rows x padded length, summed over batches

    @property
    def padding_share(self) -> float:
        """Share of the computed positions that were padding."""
        return 1.0 - self.tokens / self.positions if self.positions else 0.0


def resolve_device(device: str | None) -> Any:
    """``None``/``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.lru_cache(maxsize=2)
def _load_cached(model_dir: str, device: str, stamp: tuple) -> tuple[Any, Any]:
    del stamp  # part of the cache key only: a rewritten folder is loaded again
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    kwargs = {"local_files_only": True, "attn_implementation": "sdpa"}
    try:  # BERT/XLM-R: no pooler; we pool ourselves (and exports may not carry one)
        model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False, **kwargs)
    except TypeError:  # an encoder class without that argument
        model = AutoModel.from_pretrained(model_dir, **kwargs)
    model.eval().to(device)
    return model, tokenizer


def load_encoder(model_dir: str | Path, device: str | None = None) -> tuple[Any, Any]:
    """Loads a Hugging Face encoder folder's model and tokenizer, offline.

    The last two loads are cached (keyed by folder, device and the files' mtimes and sizes),
    so repeated ``embed_texts(model_dir, ...)`` calls do not reload the weights.

    Args:
        model_dir: A folder ``AutoModel`` and ``AutoTokenizer`` load (BERT/XLM-R style).
        device: ``"cpu"``, ``"cuda"``, ``None``/``"auto"``.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode on the device.
    """
    p = Path(model_dir)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p}: not a Hugging Face model folder (no config.json)")
    stamp = tuple(
        sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in p.iterdir() if f.is_file())
    )
    return _load_cached(str(p.resolve()), str(resolve_device(device)), stamp)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, wrapped in the tokenizer's special tokens, cut at ``max_length``."""
    if not texts:
        return []
    return tokenizer(
        list(texts),
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]


def pooling_excluded_ids(tokenizer: Any) -> list[int]:
    """Ids left out of the mean: the special tokens (``<s>``, ``</s>``, ``<pad>``, ``<mask>``...)
    except ``<unk>``, which stands for real tweet text the vocabulary lacks (an emoji-only
    tweet must not pool to nothing)."""
    return [i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]


def length_batches(
    lengths: np.ndarray, batch_size: int, bucket_width: int = BUCKET_WIDTH
) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first.

    Texts are sorted by length (stable), cut into buckets of ``bucket_width`` token lengths,
    and each bucket into batches of at most ``batch_size``: a text is padded by fewer than
    ``bucket_width`` tokens, however few texts there are.
    """
    order = np.argsort(-lengths, kind="stable")
    bucket = (lengths[order] - 1) // bucket_width
    starts = [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), len(order)]
    return [
        order[i : min(i + batch_size, end)]
        for start, end in itertools.pairwise(starts)
        for i in range(start, end, batch_size)
    ]


def _encoder(model: Any) -> Any:
    # A model with a task head (e.g. ...ForMaskedLM) exposes its encoder as base_model.
    return getattr(model, "base_model", model)


def embed_ids(
    model: Any,
    ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    special_ids: Sequence[int],
    batch_size: int = 64,
    stats: PadStats | None = None,
) -> dict[str, np.ndarray]:
    """Embeds already tokenized texts (each with its special tokens), batching by length.

    Args:
        model: A transformers encoder (its ``last_hidden_state`` is pooled).
        ids: Token ids per text.
        pad_id: The padding id.
        special_ids: Ids excluded from the mean (see :func:`pooling_excluded_ids`).
        batch_size: Sequences per forward pass.
        stats: Padding counters to update, if given.

    Returns:
        ``{"cls", "mean", "combined"}`` float32 arrays in the order of ``ids``.
    """
    import torch

    encoder = _encoder(model)
    device = next(encoder.parameters()).device
    hidden = encoder.config.hidden_size
    n = len(ids)
    cls_out = np.zeros((n, hidden), dtype=np.float32)
    mean_out = np.zeros((n, hidden), dtype=np.float32)
    if n == 0:
        return {"cls": cls_out, "mean": mean_out, "combined": np.zeros((0, 2 * hidden), np.float32)}
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
    if lengths.min() == 0:
        raise ValueError(f"embed: text {int(lengths.argmin())} has no tokens at all")
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long, device=device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    was_training = encoder.training
    encoder.eval()  # no dropout, even for a model handed over in training mode
    with torch.inference_mode(), autocast:
        for idx in length_batches(lengths, batch_size):
            lens = lengths[idx]
            width = int(lens.max())
            # Right-pad without a per-row loop: fill the "real token" cells of the grid row-major.
            real = np.arange(width)[None, :] < lens[:, None]
            grid = np.full((len(idx), width), pad_id, dtype=np.int64)
            grid[real] = np.fromiter(
                (t for i in idx for t in ids[i]), dtype=np.int64, count=int(lens.sum())
            )
            input_ids = torch.from_numpy(grid).to(device, non_blocking=True)
            attention = torch.from_numpy(real).to(device, non_blocking=True)
            h = encoder(input_ids=input_ids, attention_mask=attention.long()).last_hidden_state
            h = h.float()
            keep = (attention & ~torch.isin(input_ids, special)).unsqueeze(-1).float()
            mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
            cls_out[idx] = h[:, 0].cpu().numpy()
            mean_out[idx] = mean.cpu().numpy()
            if stats is not None:
                stats.tokens += int(lens.sum())
                stats.positions += len(idx) * width
    encoder.train(was_training)
    return {"cls": cls_out, "mean": mean_out, "combined": np.concatenate([cls_out, mean_out], 1)}


def embed_texts(
    model_dir: str | Path | None,
    texts: list[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    device: str | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> dict[str, np.ndarray]:
    """Embeds texts into CLS, mean (non-special tokens) and Combined (CLS ‖ mean) vectors.

    Args:
        model_dir: A Hugging Face encoder folder (ignored when ``model`` and ``tokenizer``
            are given).
        texts: The texts, in any order; results keep it.
        batch_size: Sequences per forward pass (texts are batched by token length).
        max_length: Longest tokenized text, special tokens included.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available); only used to load.
        model: An already loaded encoder (used as is, on its own device).
        tokenizer: An already loaded tokenizer.

    Returns:
        ``{"cls": [n, d], "mean": [n, d], "combined": [n, 2d]}``, float32, in input order.
    """
    if model is None or tokenizer is None:
        if model_dir is None:
            raise ValueError("embed_texts: give model_dir or both model and tokenizer")
        loaded_model, loaded_tok = load_encoder(model_dir, device)
        model = model if model is not None else loaded_model
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
    ids = tokenize(tokenizer, texts, max_length)
    return embed_ids(
        model,
        ids,
        pad_id=tokenizer.pad_token_id,
        special_ids=pooling_excluded_ids(tokenizer),
        batch_size=batch_size,
    )


def _open_tweets(path: Path) -> tuple[pq.ParquetFile, str]:
    """Opens a tweets Parquet: our ``tweets`` artifact, or any file with an id and a text column."""
    f = schemas.check(path, "tweets") if _is_tweets_artifact(path) else pq.ParquetFile(str(path))
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
def run_embed(cfg: EmbedConfig, out_dir: Path, *, model: Path, tweets: Path) -> dict:
    """Embeds every tweet of a Parquet file into CLS, mean and Combined arrays.

    Streams the tweets in chunks of ``cfg.chunk_size`` (bounded memory), writes the arrays as
    memory-mapped ``.npy`` files row-aligned with the ids (schema ``ids``: row ``i`` of each
    array is tweet ``ids[i]``, the input's order; layout: :class:`Embeddings`), and saves its
    progress after each chunk so an interrupted run resumes where it stopped.

    Args:
        cfg: The stage config.
        out_dir: Output folder (the staging folder when called through the stage wrapper).
        model: A Hugging Face encoder folder (pretrain's output).
        tweets: A tweets Parquet file, or an ingest folder (:class:`Ingested`).

    Returns:
        Metrics: tweets, tweets per second, padding share, tokens per tweet, dimensions.
    """
    import torch

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = Ingested(tweets).tweets_path()
    f, id_col = _open_tweets(path)
    n = f.metadata.num_rows
    enc_model, tokenizer = load_encoder(model, cfg.device)
    dim = _encoder(enc_model).config.hidden_size
    # The resume key: the contents of tweets and model (never their paths: a retried pod
    # mounts them elsewhere; another model copied to the same path must not be resumed) and
    # the settings that shape the rows (the device type decides bf16 or fp32).
    fingerprint = fp.fingerprint(
        {
            "rows": n,
            "dim": dim,
            "max_length": cfg.max_length,
            "chunk_size": cfg.chunk_size,
            "device": next(_encoder(enc_model).parameters()).device.type,
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
    for batch in f.iter_batches(columns=["text"], batch_size=cfg.chunk_size):
        size = batch.num_rows
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
    bar.close()
    seconds = time.perf_counter() - t0
    del arrays

    ids_col = f.read(columns=[id_col]).column(0).cast(pa.string())
    if ids_col.null_count:
        bad = next(i for i, v in enumerate(ids_col.to_pylist()) if v is None) + 1
        raise ValueError(f"{path}: row {bad}: {id_col} is null (expected an id)")
    Embeddings(out).write_ids(ids_col)
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
        "device": str(next(_encoder(enc_model).parameters()).device),
    }
