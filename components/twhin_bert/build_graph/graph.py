"""build_graph: ingested engagements -> the TwHIN in PyTorch-BigGraph's input format.

Reads the ingested engagements in batches, keeps the configured engagement types (one PBG
relation each) inside the time window, applies the degree filters, splits the edges into
train/valid/test and writes, with torchbiggraph's own storage classes:

* ``pbg/entity_count_{user,tweet}_{p}.txt`` (``ENTITY_STORAGES``),
* ``pbg/{train,valid,test}/edges_{lhs_p}_{rhs_p}.h5`` (``EDGE_STORAGES``: PBG's HDF5 buckets),

plus the entities table (our ids <-> PBG partition/offset; schema ``entities``), the
relations, the graph's metadata (counts, partitions, relative paths) and the holdout rule:
the layout of :class:`~twhin_bert.common.artifacts.Graph`.

Evaluation holdout: a seeded hash of the tweet id keeps ``holdout_valid_fraction +
holdout_test_fraction`` of the tweets out of the graph altogether, so that no later training
stage sees their engagements (see :mod:`twhin_bert.common.holdout`); the rule is written
beside the graph for mine_pairs and evaluate.

Orientation: PBG applies a relation's operator to the *right-hand side* entity and scores
``comparator(lhs, op(rhs))``. The paper's TwHIN score is f = (u + r)ᵀt (TwHIN-BERT, Zhang et
al., KDD 2023), a translation on the user, so
every edge is stored as lhs = tweet, rhs = user: PBG then computes tᵀ(u + r) = (u + r)ᵀt.

All the work is vectorised (pyarrow dictionary encoding, numpy bincount/argsort), so 10M
edges convert in seconds. Reading the engagements (the CPU-heavy part: checks, filters and
dictionary encoding) runs on ``workers`` processes (0 = every CPU of the pod), pieces of row
groups in parallel, merged in file order: the graph is the same for every ``workers``.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twhin_bert.build_graph.config import BuildGraphConfig
from twhin_bert.common import holdout, splits
from twhin_bert.common.artifacts import Graph, Ingested
from twhin_bert.common.compute import resolve_cpus
from twhin_bert.common.parallel import ordered_map
from twhin_bert.common.schemas import ENGAGEMENT_TYPES, check, open_parquet
from twhin_bert.common.stage import stage

log = logging.getLogger(__name__)

LHS, RHS = "tweet", "user"  # see the module docstring: translation lands on the user side
SPLITS = splits.NAMES
GRAPH_FORMAT = "twhin_graph/1"


class GraphInputError(ValueError):
    """Input engagements that cannot make a graph (names the file and what was expected)."""


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def parse_instant(value: str | None) -> datetime | None:
    """An ISO 8601 instant (``Z`` or an offset; naive = UTC), or None for '' / an unresolved
    KFP placeholder (``{{$.pipeline_job_schedule_time_utc}}`` outside a recurring run)."""
    if not value or "{{" in value:
        return None
    try:
        return _utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def first_instant(*candidates: str) -> str | None:
    """The first candidate that is an ISO 8601 instant (KFP placeholders that the runner left
    unresolved are skipped), or None.

    Raises:
        GraphInputError: The first candidate is set but is not an instant (a user's typo).
    """
    given = candidates[0] if candidates else ""
    if given and "{{" not in given and parse_instant(given) is None:
        raise GraphInputError(
            f"window_end {given!r}: expected an ISO 8601 instant, e.g. 2026-11-30T00:00:00Z"
        )
    return next((c for c in candidates if parse_instant(c) is not None), None)


def resolve_window(cfg: BuildGraphConfig, window_end: str | None) -> tuple[BuildGraphConfig, str]:
    """Applies ``window_days`` (if set) and labels the data window.

    Args:
        cfg: The stage config.
        window_end: End of the rolling window (ISO 8601); None: now.

    Returns:
        The config with ``start``/``end`` set for a rolling window, and the window's label
        (``start/end`` as ISO instants, ``*`` for an open side).

    Raises:
        GraphInputError: A ``window_end`` that is not an ISO 8601 instant.
    """
    if cfg.window_days is not None:
        end = parse_instant(first_instant(window_end or "")) or datetime.now(UTC)
        start = end - timedelta(days=cfg.window_days)
        cfg = cfg.model_copy(update={"start": start, "end": end, "window_days": None})
    label = "/".join(
        _utc(t).isoformat(timespec="seconds").replace("+00:00", "Z") if t else "*"
        for t in (cfg.start, cfg.end)
    )
    return cfg, label


def read_edges(
    path: Path, cfg: BuildGraphConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pa.Array, pa.Array, dict[str, int]]:
    """Reads engagements into integer edge arrays, pieces of row groups in parallel.

    The file is cut into pieces of whole row groups of about ``batch_rows`` rows, and up to
    ``cfg.workers`` processes check, filter and dictionary-encode them (the CPU-heavy part,
    :func:`_read_piece`); the pieces come back in file order and one dictionary is built
    over them (:func:`_unify`), in the order of first appearance, whatever the pieces or
    workers: a parallel read returns exactly the arrays of a serial one. (Only which bad
    row an error names first may depend on the pieces, when a batch holds several.) A file
    of one piece is read in this process: shipping a piece's ids back from a worker costs
    about what encoding them does, so only large inputs gain.

    Args:
        path: An engagements Parquet (schema ``engagements``).
        cfg: The stage config (relations, time window, batch size, workers).

    Returns:
        ``(user_idx, tweet_idx, rel_idx, user_ids, tweet_ids, dropped)``: int64 indices into
        the id dictionaries ``user_ids``/``tweet_ids`` (arrow string arrays), the PBG relation
        index of each edge and counts of rows dropped by reason.

    Raises:
        GraphInputError: An unknown engagement type or a null id (names file and row).
    """
    meta = check(path, "engagements").metadata
    pieces: list[_EdgePiece] = []
    row0, rows, groups = 0, 0, []
    for g in range(meta.num_row_groups):
        groups.append(g)
        rows += meta.row_group(g).num_rows
        if rows >= cfg.batch_rows:
            pieces.append(_EdgePiece(str(path), groups, row0, cfg))
            row0, rows, groups = row0 + rows, 0, []
    if groups:
        pieces.append(_EdgePiece(str(path), groups, row0, cfg))
    dropped = {"relation_not_configured": 0, "outside_time_window": 0}
    users: list[pa.DictionaryArray] = []
    tweets: list[pa.DictionaryArray] = []
    rels: list[np.ndarray] = []
    workers = min(resolve_cpus(cfg.workers, "workers"), len(pieces))
    for part in ordered_map(_read_piece, pieces, workers, label=_EdgePiece.label):
        users += part.users
        tweets += part.tweets
        rels += part.rels
        for reason, n in part.dropped.items():
            dropped[reason] += n
    if not rels:
        raise GraphInputError(f"{path}: no engagements")
    u, user_ids = _unify(users)
    t, tweet_ids = _unify(tweets)
    return u, t, np.concatenate(rels).astype(np.int64), user_ids, tweet_ids, dropped


@dataclass
class _EdgePiece:
    """Consecutive row groups of the engagements file: a unit of parallel work."""

    path: str
    row_groups: list[int]
    row0: int  # rows of the file before the piece
    cfg: BuildGraphConfig

    def label(self) -> str:
        return f"{self.path} (row groups {self.row_groups[0]}-{self.row_groups[-1]})"


@dataclass
class _PieceEdges:
    """A piece's kept edges: dictionary-encoded ids, relation indices, drop counts."""

    users: list[pa.DictionaryArray]
    tweets: list[pa.DictionaryArray]
    rels: list[np.ndarray]
    dropped: dict[str, int]


def _read_piece(piece: _EdgePiece) -> _PieceEdges:
    """Checks, filters and dictionary-encodes one piece, batch by batch (in a worker)."""
    cfg, path = piece.cfg, piece.path
    f = open_parquet(path)
    rel_of = {name: i for i, name in enumerate(cfg.relations)}
    # Lookup table over the known types: PBG relation index, -1 for "known, not configured".
    known = pa.array(list(ENGAGEMENT_TYPES))
    rel_lookup = np.array([rel_of.get(t, -1) for t in ENGAGEMENT_TYPES], dtype=np.int8)
    start = pa.scalar(_utc(cfg.start), pa.timestamp("ms", tz="UTC")) if cfg.start else None
    end = pa.scalar(_utc(cfg.end), pa.timestamp("ms", tz="UTC")) if cfg.end else None
    out = _PieceEdges([], [], [], {"relation_not_configured": 0, "outside_time_window": 0})
    dropped = out.dropped
    row0 = piece.row0
    cols = ["user_id", "tweet_id", "engagement_type", "engaged_at"]
    for batch in f.iter_batches(
        batch_size=cfg.batch_rows, row_groups=piece.row_groups, columns=cols
    ):
        type_idx = pc.index_in(batch.column("engagement_type"), value_set=known)
        if type_idx.null_count:
            bad = int(pc.index(pc.is_null(type_idx), True).as_py())
            raise GraphInputError(
                f"{path}: row {row0 + bad + 1}: engagement_type "
                f"{batch.column('engagement_type')[bad].as_py()!r} is not one of "
                f"{list(ENGAGEMENT_TYPES)}"
            )
        for col in ("user_id", "tweet_id"):
            if batch.column(col).null_count:
                bad = int(pc.index(pc.is_null(batch.column(col)), True).as_py())
                raise GraphInputError(
                    f"{path}: row {row0 + bad + 1}: {col} is null (expected an id)"
                )
        rel = rel_lookup[type_idx.to_numpy(zero_copy_only=False)]
        keep = rel >= 0
        dropped["relation_not_configured"] += int((~keep).sum())
        if start is not None or end is not None:
            at = batch.column("engaged_at")
            in_window = pa.array(np.ones(len(batch), dtype=bool))
            if start is not None:
                in_window = pc.and_kleene(in_window, pc.greater_equal(at, start))
            if end is not None:
                in_window = pc.and_kleene(in_window, pc.less(at, end))
            # A missing timestamp is outside any configured window.
            window = pc.fill_null(in_window, False).to_numpy(zero_copy_only=False)
            dropped["outside_time_window"] += int((keep & ~window).sum())
            keep &= window
        mask = pa.array(keep)
        out.users.append(pc.filter(batch.column("user_id"), mask).dictionary_encode())
        out.tweets.append(pc.filter(batch.column("tweet_id"), mask).dictionary_encode())
        out.rels.append(rel[keep])
        row0 += len(batch)
    return out


def _unify(chunks: list[pa.DictionaryArray]) -> tuple[np.ndarray, pa.Array]:
    """One dictionary over all batches: int64 indices and the dictionary."""
    table = pa.table({"c": pa.chunked_array(chunks, pa.dictionary(pa.int32(), pa.string()))})
    col = table.unify_dictionaries().column("c")
    dictionary = col.chunk(0).dictionary if col.num_chunks else pa.array([], pa.string())
    idx = [c.indices.to_numpy(zero_copy_only=False) for c in col.chunks]
    return np.concatenate(idx).astype(np.int64) if idx else np.zeros(0, np.int64), dictionary


def degree_filter(
    u: np.ndarray, t: np.ndarray, n_users: int, n_tweets: int, min_user: int, min_tweet: int
) -> tuple[np.ndarray, int]:
    """Edges kept by the degree filters, applied until both hold (k-core style).

    Returns:
        The boolean keep-mask over edges and the number of filter rounds.
    """
    keep = np.ones(u.size, dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        du = np.bincount(u[keep], minlength=n_users)
        dt = np.bincount(t[keep], minlength=n_tweets)
        new = keep & (du[u] >= min_user) & (dt[t] >= min_tweet)
        if new.sum() == keep.sum() or (min_user <= 1 and min_tweet <= 1):
            return new, rounds
        keep = new


def assign_partitions(
    n: int, num_partitions: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced random partitions: ``(partition, offset)`` per entity."""
    order = rng.permutation(n)
    part = np.empty(n, dtype=np.int32)
    off = np.empty(n, dtype=np.int64)
    part[order] = np.arange(n) % num_partitions
    off[order] = np.arange(n) // num_partitions
    return part, off


def split_edges(
    u: np.ndarray, t: np.ndarray, cfg: BuildGraphConfig, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Assigns each edge a split (0 train, 1 valid, 2 test).

    Valid and test edges whose user or tweet would have no train edge go back to train
    (counted): shallow embeddings of entities never seen in training are random, so such
    edges would only measure noise.

    Returns:
        The split of each edge and how many valid/test edges were moved back to train.
    """
    n = u.size
    split = np.zeros(n, dtype=np.int8)
    perm = rng.permutation(n)
    n_test = round(n * cfg.test_fraction)
    n_valid = round(n * cfg.valid_fraction)
    split[perm[:n_test]] = 2
    split[perm[n_test : n_test + n_valid]] = 1
    train = split == 0
    du = np.bincount(u[train], minlength=int(u.max(initial=-1)) + 1)
    dt = np.bincount(t[train], minlength=int(t.max(initial=-1)) + 1)
    cold = ~train & ((du[u] == 0) | (dt[t] == 0))
    split[cold] = 0
    return split, int(cold.sum())


def write_buckets(
    path: Path,
    lhs_part: np.ndarray,
    lhs_off: np.ndarray,
    rhs_part: np.ndarray,
    rhs_off: np.ndarray,
    rel: np.ndarray,
    num_partitions: int,
) -> list[int]:
    """Writes one split's edges as PBG HDF5 buckets ``edges_{lhs_p}_{rhs_p}.h5``.

    The files are exactly what torchbiggraph's ``FileEdgeStorage`` reads (int64 datasets
    ``lhs``, ``rhs``, ``rel`` and its ``format_version`` attribute; written to a temporary
    name, then renamed, as PBG does), but each dataset is written in one contiguous piece:
    PBG's own appender (``save_edges``) allocates 50 MiB HDF5 chunks per dataset, which makes
    a 100-edge bucket a 150 MB file and dominates conversion time on small graphs. Every
    bucket is written, empty ones included (PBG loads all P² of them each epoch).

    Returns:
        The edge count of each bucket, row-major over (lhs_p, rhs_p).
    """
    import h5py
    from torchbiggraph.graph_storages import EDGE_STORAGES, FORMAT_VERSION, FORMAT_VERSION_ATTR

    storage = EDGE_STORAGES.make_instance(str(path))
    storage.prepare()
    bucket = lhs_part.astype(np.int64) * num_partitions + rhs_part
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(num_partitions**2 + 1))
    counts = []
    for b in range(num_partitions**2):
        idx = order[bounds[b] : bounds[b + 1]]
        target = storage.get_edges_file(b // num_partitions, b % num_partitions)
        tmp = target.with_name(f"{target.stem}.tmp{target.suffix}")
        with h5py.File(tmp, "w") as hf:
            hf.attrs[FORMAT_VERSION_ATTR] = FORMAT_VERSION
            for name, values in (("lhs", lhs_off), ("rhs", rhs_off), ("rel", rel)):
                hf.create_dataset(name, data=values[idx].astype(np.int64))
        tmp.rename(target)
        counts.append(int(idx.size))
    return counts


@stage("build_graph")
def run_build_graph(
    cfg: BuildGraphConfig, out_dir: Path, *, ingested: Path, window_end: str | None = None
) -> dict[str, Any]:
    """Builds the TwHIN from an ingest folder and writes it in PBG's input format.

    Args:
        cfg: The stage config.
        out_dir: Staging output folder (see module docstring for its layout).
        ingested: The ingest stage's folder (its engagements).
        window_end: End of a rolling ``window_days`` window (ISO 8601; default now).

    Returns:
        Metrics: entity/edge counts, split sizes, rows dropped by reason.

    Raises:
        GraphInputError: Unknown engagement types, or no edge left after filtering.
    """
    with warnings.catch_warnings():  # torchbiggraph imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        from torchbiggraph.graph_storages import ENTITY_STORAGES

    cfg, window = resolve_window(cfg, window_end)
    src = Ingested(ingested).engagements_path()
    out = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    u, t, r, user_ids, tweet_ids, dropped = read_edges(src, cfg)
    n_read = int(u.size) + sum(dropped.values())
    held = holdout.split_of(
        tweet_ids, cfg.holdout_valid_fraction, cfg.holdout_test_fraction, cfg.seed
    )
    in_graph = held[t] == splits.TRAIN
    dropped["eval_holdout"] = int((~in_graph).sum())
    u, t, r = u[in_graph], t[in_graph], r[in_graph]
    keep, rounds = degree_filter(
        u, t, len(user_ids), len(tweet_ids), cfg.min_user_degree, cfg.min_tweet_degree
    )
    dropped["degree_filter"] = int((~keep).sum())
    u, t, r = u[keep], t[keep], r[keep]
    if u.size == 0:
        raise GraphInputError(
            f"{src}: no edge left after filtering ({n_read} rows read, dropped {dropped}); "
            "check relations, the time window and the degree minimums"
        )
    # Compact the ids to the entities that kept at least one edge.
    used_u, u = np.unique(u, return_inverse=True)
    used_t, t = np.unique(t, return_inverse=True)
    n_users, n_tweets = used_u.size, used_t.size
    split, moved = split_edges(u, t, cfg, rng)

    p = cfg.num_partitions
    u_part, u_off = assign_partitions(n_users, p, rng)
    t_part, t_off = assign_partitions(n_tweets, p, rng)
    pbg = out / Graph.PBG_DIR
    entity_storage = ENTITY_STORAGES.make_instance(str(pbg))
    entity_storage.prepare()
    for name, part in ((RHS, u_part), (LHS, t_part)):
        for i, count in enumerate(np.bincount(part, minlength=p)):
            entity_storage.save_count(name, i, int(count))

    buckets: dict[str, list[int]] = {}
    # Shuffle once so that each bucket's edges are in random order (PBG shuffles too, but
    # within a bucket; this also mixes relation types and splits nothing else).
    perm = rng.permutation(u.size)
    u, t, r, split = u[perm], t[perm], r[perm], split[perm]
    for s, name in enumerate(SPLITS):
        m = split == s
        buckets[name] = write_buckets(
            pbg / name, t_part[t[m]], t_off[t[m]], u_part[u[m]], u_off[u[m]], r[m], p
        )

    # The entities table, rows ordered by (type, partition, offset) == embedding row order.
    deg_u = np.bincount(u, minlength=n_users)
    deg_t = np.bincount(t, minlength=n_tweets)
    tables = []
    for name, ids, part, off, deg in (
        (RHS, user_ids.take(pa.array(used_u)), u_part, u_off, deg_u),
        (LHS, tweet_ids.take(pa.array(used_t)), t_part, t_off, deg_t),
    ):
        order = np.lexsort((off, part))
        tables.append(
            pa.table(
                {
                    "entity_type": pa.array(np.full(order.size, name)),
                    "id": ids.take(pa.array(order)),
                    "partition": pa.array(part[order]),
                    "offset": pa.array(off[order]),
                    "degree": pa.array(deg[order]),
                }
            )
        )
    Graph(out).write_entities(pa.concat_tables(tables))

    edge_counts = {name: int(sum(b)) for name, b in buckets.items()}
    relations = [
        {
            "name": name,
            "index": i,
            "lhs": LHS,
            "rhs": RHS,
            "edges": {s: int(((r == i) & (split == k)).sum()) for k, s in enumerate(SPLITS)},
        }
        for i, name in enumerate(cfg.relations)
    ]
    (out / Graph.RELATIONS).write_text(json.dumps(relations, indent=2) + "\n")
    graph = {
        "format": GRAPH_FORMAT,
        "lhs": LHS,
        "rhs": RHS,
        "num_partitions": p,
        "window": window,
        "relations": list(cfg.relations),
        "entities": {
            RHS: {
                "count": int(n_users),
                "partition_counts": np.bincount(u_part, minlength=p).tolist(),
            },
            LHS: {
                "count": int(n_tweets),
                "partition_counts": np.bincount(t_part, minlength=p).tolist(),
            },
        },
        "edges": edge_counts,
        "buckets": buckets,
        "paths": {
            "entity_path": Graph.PBG_DIR,
            **{s: f"{Graph.PBG_DIR}/{s}" for s in SPLITS},
            "entities": Graph.ENTITIES,
            "relations": Graph.RELATIONS,
        },
    }
    (out / Graph.META).write_text(json.dumps(graph, indent=2) + "\n")
    if cfg.holdout_valid_fraction + cfg.holdout_test_fraction > 0:
        holdout.write_rule(out, cfg.holdout_valid_fraction, cfg.holdout_test_fraction, cfg.seed)
    log.info(
        "build_graph: %d users, %d tweets, edges %s (dropped %s)",
        n_users,
        n_tweets,
        edge_counts,
        dropped,
    )
    return {
        "window": window,
        "rows_read": n_read,
        "users": int(n_users),
        "tweets": int(n_tweets),
        "edges": int(u.size),
        "edges_train": edge_counts["train"],
        "edges_valid": edge_counts["valid"],
        "edges_test": edge_counts["test"],
        "cold_edges_moved_to_train": moved,
        "eval_holdout_tweets": {
            "valid": int((held == splits.VALID).sum()),
            "test": int((held == splits.TEST).sum()),
        },
        "degree_filter_rounds": rounds,
        "dropped": dropped,
        "num_partitions": p,
        "edges_by_relation": {rel["name"]: sum(rel["edges"].values()) for rel in relations},
    }
