"""The mine_pairs stage: positive tweet pairs for the contrastive (social) objective.

Reads top to bottom:
1. social — L2-normalise the graph's tweet embeddings, build the FAISS index (trained on a
   seeded sample, filled in batches), search every tweet's k nearest neighbours (cosine),
   keep the pairs above the threshold, drop self-pairs, deduplicate, cap per tweet; measure
   recall@k against exact ``IndexFlatIP`` search on random queries;
2. hashtag (HICL) — tweets sharing a frequent hashtag, the hashtag removed/noised;
3. translation (TPP) — pairs from a parallel-tweets file, when one is given;
4. mix the sources by their weights, write the pairs (schema ``pairs``);
5. with a planted-truth file (demo data): precision of social pairs vs random pairs.

Tweets that build_graph held out for evaluation (its holdout rule, in the embed_graph folder)
are removed first: no source pairs them, so stage 2 never trains on a test tweet.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twhin_bert.common import schemas
from twhin_bert.common.artifacts import GraphEmbeddings, Ingested, Pairs
from twhin_bert.common.stage import stage
from twhin_bert.demo_data.truth import topic_codes
from twhin_bert.mine_pairs import index as faiss_index
from twhin_bert.mine_pairs.config import MinePairsConfig
from twhin_bert.mine_pairs.sources import PairAccumulator, allocate, hashtag_pairs, read_parallel

log = logging.getLogger(__name__)

SOURCES = ("social", "hashtag", "translation")
#: Pairs gathered and written at a time (one row group of pairs.parquet each).
PAIR_CHUNK = 65536


class _Column(Sequence):
    """Row access to an Arrow array without a Python object per row (hashtag_pairs reads a
    few rows' texts and walks the hashtags once)."""

    def __init__(self, values: pa.Array) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        return self.values[i].as_py()

    def __iter__(self) -> Iterator[Any]:
        for lo in range(0, len(self.values), PAIR_CHUNK):
            yield from self.values.slice(lo, PAIR_CHUNK).to_pylist()


def _pair_chunk(
    parts: dict[str, dict[str, Any]],
    source: np.ndarray,
    within: np.ndarray,
    tweet_ids: pa.Array,
    texts: pa.Array,
) -> pa.Table:
    """The pairs of one chunk: row ``r`` is pair ``within[r]`` of source ``source[r]``."""
    pieces, positions = [], []
    for code, name in enumerate(parts):
        at = np.flatnonzero(source == code)
        if not at.size:
            continue
        cols, idx = parts[name], pa.array(within[at], pa.int64())
        if "row_a" in cols:  # social: tweet rows, texts from the tweets
            ra, rb = pa.array(cols["row_a"][within[at]]), pa.array(cols["row_b"][within[at]])
            a_ids, b_ids = tweet_ids.take(ra), tweet_ids.take(rb)
            a_text, b_text = texts.take(ra), texts.take(rb)
        else:
            a_ids = pa.array(cols["tweet_a"], pa.string()).take(idx)
            b_ids = pa.array(cols["tweet_b"], pa.string()).take(idx)
            a_text = pa.array(cols["text_a"], pa.string()).take(idx)
            b_text = pa.array(cols["text_b"], pa.string()).take(idx)
        pieces.append(
            pa.table(
                {
                    "tweet_a": a_ids,
                    "tweet_b": b_ids,
                    "score": pa.array(np.asarray(cols["score"], np.float32)).take(idx),
                    "source": pa.array([name] * at.size, pa.string()),
                    "text_a": a_text,
                    "text_b": b_text,
                }
            )
        )
        positions.append(at)
    chunk = pa.concat_tables(pieces)
    inverse = np.empty(len(source), np.int64)
    inverse[np.concatenate(positions)] = np.arange(len(source))
    return (
        chunk.take(pa.array(inverse))
        .select(schemas.schema("pairs").names)
        .cast(schemas.schema("pairs"))
    )


@stage("mine_pairs")
def run_mine_pairs(
    cfg: MinePairsConfig,
    out_dir: Path,
    *,
    ingested: Path,
    graph_embeddings: Path,
    parallel: str | None = None,
    truth: str | None = None,
) -> dict[str, Any]:
    """Mines social, hashtag and translation pairs and writes them (:class:`Pairs`).

    Args:
        cfg: Stage config.
        out_dir: Output (staging) folder.
        ingested: The ingest folder (:class:`Ingested`).
        graph_embeddings: The embed_graph folder (:class:`GraphEmbeddings`: tweet vectors and ids).
        parallel: Optional parallel-tweets JSONL file (local or gs://) for the translation source.
        truth: Optional planted-truth Parquet ``(tweet_id, topic)`` (demo data) to score pairs.

    Returns:
        Metrics: pairs per source, index used, recall@k vs exact search, truth precision.
    """
    rng = np.random.default_rng(cfg.seed)
    threads = faiss_index.set_threads(cfg.threads)
    # Tweets held out for evaluation (build_graph's rule) are in no pair of any source.
    rule = GraphEmbeddings(graph_embeddings).holdout()
    # The texts stay in Arrow: a pair's texts are taken by row when its chunk is written.
    tweet_ids, texts, hashtags, read, held = _training_tweets(Path(ingested), rule)
    metrics: dict[str, Any] = {"tweets": read, "faiss_threads": threads}
    if rule is not None:
        metrics["tweets_eval_holdout"] = held

    parts: dict[str, dict[str, Any]] = {}  # source -> columns of its candidate pairs

    # 1. social
    social_rows: tuple[np.ndarray, np.ndarray] | None = None
    indexed_rows = np.zeros(0, np.int64)
    if cfg.social.enabled and cfg.weights.social > 0:
        a, b, scores, indexed_rows, social_metrics = _social_pairs(
            cfg, Path(graph_embeddings), tweet_ids, rng, Path(ingested)
        )
        metrics["social"] = social_metrics
        social_rows = (a, b)
        # rows only: ids and texts are taken by row when a chunk is written
        parts["social"] = {"score": scores, "row_a": a, "row_b": b}

    # 2. hashtag (HICL)
    if cfg.hashtag.enabled and cfg.weights.hashtag > 0:
        hp = hashtag_pairs(_Column(texts), _Column(hashtags), cfg.hashtag, rng)
        metrics["hashtag"] = {**hp.stats, "pairs": len(hp.rows_a)}
        parts["hashtag"] = {
            "tweet_a": tweet_ids.take(pa.array(hp.rows_a)),
            "tweet_b": tweet_ids.take(pa.array(hp.rows_b)),
            "score": np.ones(len(hp.rows_a), np.float32),
            "text_a": hp.text_a,
            "text_b": hp.text_b,
        }

    # 3. translation (TPP)
    if parallel and cfg.translation.enabled and cfg.weights.translation > 0:
        tp = read_parallel(parallel, cfg.translation.max_pairs)
        n = len(tp.text_a)
        metrics["translation"] = {"rows_read": tp.rows_read, "pairs": n, "invalid": tp.invalid}
        parts["translation"] = {
            "tweet_a": [f"tpp:{i}:a" for i in range(n)],
            "tweet_b": [f"tpp:{i}:b" for i in range(n)],
            "score": np.ones(n, np.float32),
            "text_a": tp.text_a,
            "text_b": tp.text_b,
        }

    # 4. mix and write: the order is a seeded permutation of all chosen pairs; rows are
    # gathered and written PAIR_CHUNK at a time, so only indices are held for every pair.
    available = {s: len(parts[s]["score"]) for s in parts}
    weights = cfg.weights.model_dump()
    take = allocate(available, weights, cfg.total_pairs)
    chosen: dict[str, np.ndarray] = {}
    for s in parts:
        n_avail = available[s]
        chosen[s] = (
            np.sort(rng.choice(n_avail, size=take[s], replace=False))
            if take[s] < n_avail
            else np.arange(n_avail)
        )
    source = np.concatenate(
        [np.full(len(chosen[s]), i, np.int8) for i, s in enumerate(parts)] or [np.zeros(0, np.int8)]
    )
    within = np.concatenate([chosen[s] for s in parts] or [np.zeros(0, np.int64)])
    total = len(source)
    order = rng.permutation(total) if parts else np.zeros(0, np.int64)
    out_path = out_dir / Pairs.PAIRS
    with schemas.writer(out_path, "pairs") as w:
        for lo in range(0, total, PAIR_CHUNK):
            rows = order[lo : lo + PAIR_CHUNK]
            w.write_table(_pair_chunk(parts, source[rows], within[rows], tweet_ids, texts))
        if total == 0:
            w.write_table(schemas.schema("pairs").empty_table())
            log.warning("mine_pairs: no pair mined from any source (check thresholds and inputs)")
    metrics["available"] = {s: available.get(s, 0) for s in SOURCES}
    metrics["pairs"] = {"total": total, **{s: len(chosen.get(s, ())) for s in SOURCES}}
    metrics["weights"] = weights

    # Written: the truth check below needs only the social rows and the tweet ids.
    del order, source, within, parts, texts, hashtags

    # 5. planted truth (demo data)
    if truth:
        kept = None
        if social_rows is not None:
            kept = (social_rows[0], social_rows[1], chosen["social"])
        metrics["truth"] = _truth_precision(truth, tweet_ids, kept, indexed_rows, rng)
    log.info("mine_pairs: %s", metrics["pairs"])
    return metrics


def _training_tweets(
    ingested: Path, rule: Any, batch_rows: int = 1 << 16
) -> tuple[pa.Array, pa.Array, pa.Array, int, int]:
    """``(tweet ids, texts, hashtags, tweets read, tweets held out)`` of the tweets a pair may
    use, read in one streaming pass: the held-out rows are dropped batch by batch, so memory
    holds the kept columns once (never the whole file beside a filtered copy of it)."""
    f = schemas.check(Ingested(ingested).tweets_path(), "tweets")
    columns = ["tweet_id", "text", "hashtags"]
    parts: list[pa.RecordBatch] = []
    read = held = 0
    for rb in f.iter_batches(columns=columns, batch_size=batch_rows):
        read += rb.num_rows
        if rule is not None:
            out = rule.held_out(rb.column("tweet_id"))
            held += int(out.sum())
            rb = rb.filter(pa.array(~out))
        parts.append(rb)
    schema = pa.schema([f.schema_arrow.field(c) for c in columns])
    cols = [pa.concat_arrays([rb.column(i) for rb in parts]) if parts else
            pa.array([], type=schema.field(i).type) for i in range(len(columns))]  # fmt: skip
    return cols[0], cols[1], cols[2], read, held


def _engagement_counts(ingested: Path, ids: pa.Array) -> np.ndarray:
    """Engagements of each tweet in ``ids`` (from the ingest folder's engagements), counted
    in one streaming pass: one counter per id is held, not the engagements."""
    f = schemas.check(Ingested(ingested).engagements_path(), "engagements")
    counts = np.zeros(len(ids), np.int64)
    lookup = pc.SetLookupOptions(value_set=ids)
    for rb in f.iter_batches(columns=["tweet_id"], batch_size=1 << 18):
        pos = pc.index_in(rb.column(0), options=lookup).drop_null().to_numpy()
        counts += np.bincount(pos, minlength=len(ids))
    return counts


def _social_pairs(
    cfg: MinePairsConfig,
    emb_dir: Path,
    tweet_ids: pa.Array,
    rng: np.random.Generator,
    ingested: Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """FAISS k-NN pairs. Returns ``(tweet_rows_a, tweet_rows_b, scores, indexed_tweet_rows, metrics)``."""
    sc = cfg.social
    files = GraphEmbeddings(emb_dir).table(GraphEmbeddings.TWEETS)
    vec_path = files.vectors_path
    ids, emb = files.read()
    # Only tweets with a text can be trained on: index those.
    to_tweet = pc.index_in(ids, value_set=tweet_ids)
    has_text = pc.is_valid(to_tweet).to_numpy(zero_copy_only=False)
    few = np.zeros(len(ids), bool)
    if sc.min_engagements > 1:
        few = _engagement_counts(ingested, ids) < sc.min_engagements
    low_degree = int((has_text & few).sum())
    has_text = has_text & ~few
    emb_rows = np.flatnonzero(has_text)
    tweet_rows = to_tweet.filter(pa.array(has_text)).to_numpy(zero_copy_only=False).astype(np.int64)
    n, d = len(emb_rows), int(emb.shape[1])
    contiguous = n == emb.shape[0]
    zero_vectors = 0

    def batches(size: int) -> Iterator[np.ndarray]:
        nonlocal zero_vectors
        for i in range(0, n, size):
            raw = emb[i : i + size] if contiguous else emb[emb_rows[i : i + size]]
            bad = ~np.isfinite(raw).all(axis=1)
            if bad.any():
                row = int(emb_rows[i + int(np.flatnonzero(bad)[0])])
                raise ValueError(f"{vec_path}: row {row} (id {ids[row]}) holds NaN/inf values")
            x, zeros = faiss_index.normalize(raw)
            zero_vectors += zeros
            yield x

    metrics: dict[str, Any] = {
        "vectors": n,
        "dim": d,
        "embeddings_without_text": int(emb.shape[0] - n - low_degree),
        "below_min_engagements": low_degree,
    }
    if n < 2:
        log.warning("%s: fewer than 2 embedded tweets with text; no social pairs", vec_path)
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32), tweet_rows, {**metrics, "pairs": 0}

    on_gpu = faiss_index.gpu_count(sc.use_gpu) > 0
    index_string = (
        faiss_index.derive_index_string(n, d, gpu=on_gpu) if sc.index == "auto" else sc.index
    )
    nprobe = sc.nprobe if sc.nprobe is not None else faiss_index.derive_nprobe(index_string, n)
    search_params = sc.search_params or faiss_index.derive_search_params(index_string)
    sample = np.sort(rng.choice(n, size=min(sc.train_size, n), replace=False))
    train_raw = emb[sample] if contiguous else emb[emb_rows[sample]]
    train_x, _ = faiss_index.normalize(train_raw)
    built = faiss_index.build_index(
        lambda: batches(sc.add_batch_size),
        n,
        d,
        train_x,
        index_string=index_string,
        nprobe=nprobe,
        search_params=search_params,
        use_gpu=sc.use_gpu,
    )
    del train_x
    zero_vectors_seen = zero_vectors  # counted on the add pass only
    k = min(sc.k, n)
    n_recall = min(sc.recall_queries, n)
    recall_rows = np.sort(rng.choice(n, size=n_recall, replace=False))
    approx_recall = np.full((n_recall, k), -1, np.int64)
    acc = PairAccumulator(n, sc.min_similarity)

    def on_batch(first: int, scores: np.ndarray, found: np.ndarray) -> None:
        acc.add(first, scores, found)
        lo, hi = np.searchsorted(recall_rows, [first, first + len(found)])
        if hi > lo:
            approx_recall[lo:hi] = found[recall_rows[lo:hi] - first]

    search_seconds = faiss_index.search_all(
        built.index, lambda: batches(sc.query_batch_size), n, k, on_batch
    )
    built.index = None  # free it before the exact pass
    a, b, scores = acc.finish(sc.max_pairs_per_tweet)

    recall = None
    if n_recall:
        q_raw = emb[recall_rows] if contiguous else emb[emb_rows[recall_rows]]
        queries, _ = faiss_index.normalize(q_raw)
        _, exact_ids = faiss_index.exact_knn(queries, lambda: batches(sc.add_batch_size), d, k)
        recall = faiss_index.recall_at_k(approx_recall, exact_ids, k)
        log.info("mine_pairs: %s nprobe=%s recall@%d=%.4f", index_string, nprobe, k, recall)

    metrics.update(
        {
            "index": index_string,
            "nprobe": nprobe,
            "search_params": search_params,
            "device": built.device,
            "k": k,
            f"recall@{k}": recall,
            "recall_at_k": recall,
            "recall_queries": n_recall,
            "train_size": built.train_size,
            "train_seconds": round(built.train_seconds, 3),
            "add_seconds": round(built.add_seconds, 3),
            "search_seconds": round(search_seconds, 3),
            "queries_per_second": round(n / max(search_seconds, 1e-9), 1),
            "zero_vectors": zero_vectors_seen,
            "candidates": acc.candidates,
            "self_pairs_dropped": acc.self_pairs,
            "below_threshold": acc.below_threshold,
            "duplicates_dropped": acc.duplicates,
            "capped": acc.capped,
            "pairs": len(a),
            "mean_score": float(scores.mean()) if len(scores) else None,
        }
    )
    return tweet_rows[a], tweet_rows[b], scores, tweet_rows, metrics


def _truth_precision(
    truth: str,
    tweet_ids: pa.Array,
    social: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    indexed_rows: np.ndarray,
    rng: np.random.Generator,
    chunk: int = 1 << 20,
) -> dict[str, Any]:
    """Share of social pairs whose tweets share a planted topic, beside random pairs'.

    ``social`` is ``(rows a, rows b, the chosen pairs' positions)``. Pairs are scored
    ``chunk`` at a time, so the check adds a few arrays of one chunk to the stage's memory.
    """
    topic_of = topic_codes(truth, tweet_ids)  # topic code per tweet row, -1 = unknown

    def precision(pairs: Iterator[tuple[np.ndarray, np.ndarray]]) -> tuple[float | None, int]:
        same = known_n = 0
        for a, b in pairs:
            ta, tb = topic_of[a], topic_of[b]
            known = (ta >= 0) & (tb >= 0)
            same += int(np.count_nonzero(ta[known] == tb[known]))
            known_n += int(np.count_nonzero(known))
        return (same / known_n if known_n else None), known_n

    def social_pairs(a: np.ndarray, b: np.ndarray, at: np.ndarray) -> Iterator[tuple]:
        for lo in range(0, len(at), chunk):
            sel = at[lo : lo + chunk]
            yield a[sel], b[sel]

    pool = indexed_rows if len(indexed_rows) >= 2 else np.arange(len(tweet_ids))

    def random_pairs(n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            ra = pool[rng.integers(0, len(pool), m)]
            rb = pool[rng.integers(0, len(pool), m)]
            ok = ra != rb
            yield ra[ok], rb[ok]

    out: dict[str, Any] = {}
    n_social = 0
    if social is not None and len(social[2]):
        out["social_precision"], out["social_pairs_evaluated"] = precision(social_pairs(*social))
        n_social = len(social[2])
    n_rand = max(n_social, 1000)
    out["random_precision"], out["random_pairs_evaluated"] = precision(random_pairs(n_rand))
    if out.get("social_precision") is not None and out["random_precision"]:
        out["lift"] = out["social_precision"] / out["random_precision"]
    return out
