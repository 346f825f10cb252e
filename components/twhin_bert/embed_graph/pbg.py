"""embed_graph: train TwHIN embeddings with PyTorch-BigGraph, evaluate, export.

The recipe, top to bottom:

1. **setup** – build PBG's ``ConfigSchema`` from our config and the build_graph folder
   (its ``graph.json``): entity types ``user``/``tweet`` with the graph's partitions, one relation
   per engagement type with lhs = tweet, rhs = user and the operator on the rhs, so PBG's
   score ``comparator(lhs, op(rhs))`` is the paper's TwHIN score f = (u + r)ᵀt (TwHIN-BERT,
   Zhang et al., KDD 2023) with translation + dot.
2. **train** – ``torchbiggraph.train.train_and_report_stats`` (PBG's own loop: Hogwild!
   workers, row-wise Adagrad, batch (prevalence-proportional) and uniform negatives on both
   sides). Checkpoints go to ``<out>/checkpoint`` – inside the stage's staging folder, which
   survives a crash – and PBG resumes from ``checkpoint_version.txt`` on its own: a killed
   run restarts at the first epoch (or edge chunk) it had not finished.
3. **export** – the last checkpoint's embeddings, in the row order of the graph's entities
   table: user and tweet vectors (float32) with their ids, the relation vectors and the
   model description (operator, comparator, ...), laid out as
   :class:`~twhin_bert.common.artifacts.GraphEmbeddings`; the graph's holdout rule (tweets
   kept out for evaluation) is passed on beside them.
4. **evaluate** – link prediction on the edges of the ``eval_split`` split (test by default):
   each edge's tweet is ranked among ``eval_candidates`` random tweets (known positives of
   that user filtered out) by our score computed from the exported vectors, and by train-set
   popularity (degree) on the same candidates; MRR, Hits@1, Hits@10 for both, reported under
   ``link_prediction.`` (not evaluate's engagement HITS@10: another task, on the tweets of
   build_graph's evaluation holdout).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from twhin_bert.common import fingerprint as fp
from twhin_bert.common import lifetime, ranking, splits, tracking
from twhin_bert.common.artifacts import Graph, GraphEmbeddings
from twhin_bert.common.compute import resolve_cpus
from twhin_bert.common.memory import large_blocks_returned
from twhin_bert.common.metrics import LINK_PREDICTION, METRICS_FILE
from twhin_bert.common.stage import stage
from twhin_bert.embed_graph.config import EmbedGraphConfig
from twhin_bert.embed_graph.worker import seed_worker

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
FINGERPRINT_FILE = "twhin_fingerprint.json"
USER, TWEET = "user", "tweet"


def _unpack_optional(type_: Any) -> Any:
    """``X`` for ``Optional[X]`` (raises TypeError otherwise), by structure, not identity."""
    args = typing.get_args(type_)
    if typing.get_origin(type_) is typing.Union and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    raise TypeError("Not an optional type")


_PBG_NOISY_MODULES = ("torchbiggraph", "torchbiggraph.tensorlist", "torchbiggraph.train")


@contextlib.contextmanager
def _quiet_pbg() -> Iterator[None]:
    """Silences PBG's own deprecation chatter (pkg_resources, TypedStorage, float(loss)), which
    is not ours to fix, in this process and in its workers (they import torchbiggraph afresh:
    only the environment reaches them). Restores PBG's thread setting of this process."""
    import torch

    threads = torch.get_num_threads()  # PBG sets 1 thread in this process
    before = os.environ.get("PYTHONWARNINGS")
    ours = [f"ignore::UserWarning:{m}" for m in _PBG_NOISY_MODULES]
    os.environ["PYTHONWARNINGS"] = ",".join([before, *ours] if before else ours)
    try:
        with warnings.catch_warnings():
            for m in _PBG_NOISY_MODULES:
                warnings.filterwarnings("ignore", category=UserWarning, module=re.escape(m) + "$")
            yield
    finally:
        torch.set_num_threads(threads)
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before


def _import_pbg() -> None:
    """Imports torchbiggraph quietly (it imports the deprecated pkg_resources) and fixes its
    config (de)serialiser.

    PBG's ``schema.unpack_optional`` recognises ``Optional[X]`` with ``type_ is Optional[X]``,
    which only holds while ``typing``'s small LRU cache still holds that object; in a process
    that has done much typing work (pydantic, pyarrow, ...) ``parse_config`` then fails with
    "NotImplementedError: Unknown type: typing.Optional[int]". The replacement compares the
    structure instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import torchbiggraph.schema
        import torchbiggraph.train

    torchbiggraph.schema.unpack_optional = _unpack_optional


def read_graph(graph: Path) -> dict[str, Any]:
    """Reads and checks a build_graph folder's metadata (``graph.json``)."""
    path = Path(graph) / Graph.META
    meta = Graph(graph).meta()
    if meta.get("lhs") != TWEET or meta.get("rhs") != USER:
        raise ValueError(
            f"{path}: expected lhs=tweet, rhs=user, got {meta.get('lhs')}/{meta.get('rhs')}"
        )
    return meta


def pbg_config_dict(
    cfg: EmbedGraphConfig, meta: dict[str, Any], graph: Path, checkpoint: Path
) -> dict[str, Any]:
    """PBG's config (as the dict ``parse_config`` takes) for our config and graph."""
    p = int(meta["num_partitions"])
    return {
        "entities": {USER: {"num_partitions": p}, TWEET: {"num_partitions": p}},
        "relations": [
            # lhs = tweet, rhs = user: PBG applies the operator to the rhs, i.e. the user.
            {"name": name, "lhs": TWEET, "rhs": USER, "operator": cfg.operator}
            for name in meta["relations"]
        ],
        "dimension": cfg.dimension,
        "init_scale": cfg.init_scale,
        "global_emb": False,  # exported vectors are then exactly what the score uses
        "comparator": cfg.comparator,
        "loss_fn": cfg.loss_fn,
        "margin": cfg.margin,
        "lr": cfg.lr,
        "entity_path": str(graph / meta["paths"]["entity_path"]),
        "edge_paths": [str(graph / meta["paths"]["train"])],
        "checkpoint_path": str(checkpoint),
        "num_epochs": cfg.num_epochs,
        "num_edge_chunks": cfg.num_edge_chunks,
        "max_edges_per_chunk": cfg.max_edges_per_chunk,
        "batch_size": cfg.batch_size,
        "num_batch_negs": cfg.num_batch_negs,
        "num_uniform_negs": cfg.num_uniform_negs,
        "workers": resolve_cpus(cfg.workers, "workers"),
        "eval_fraction": cfg.pbg_eval_fraction,
        "hogwild_delay": cfg.hogwild_delay,
    }


def _fingerprint(pbg: dict[str, Any], graph: Path, seed: int) -> str:
    """What a checkpoint must match to be resumed: the model's settings (not workers, paths or
    eval knobs) and the graph folder's contents (not its path: a resubmitted pipeline reads
    the same graph from a new run folder; another graph at the old path must not resume)."""
    skip = {
        "workers",
        "hogwild_delay",
        "eval_fraction",
        "checkpoint_path",
        "entity_path",
        "edge_paths",
    }
    key = {k: v for k, v in pbg.items() if k not in skip}
    key["seed"] = seed
    return fp.fingerprint(key, {"graph": fp.folder_fingerprint(graph, ignore={METRICS_FILE})})


def checkpoint_folder(
    cfg: EmbedGraphConfig, out: Path, graph: Path, meta: dict[str, Any]
) -> tuple[Path, str]:
    """Where PBG checkpoints for this graph and model, and the fingerprint it must carry.

    ``out/checkpoint`` in the staging folder, or with ``cfg.checkpoint_dir`` (a persistent
    volume) one folder per fingerprint there, which a retried pod or a resubmitted run of the
    same graph and model finds again.
    """
    checkpoint = (out / CHECKPOINT_DIR).resolve()
    key = _fingerprint(pbg_config_dict(cfg, meta, graph, checkpoint), graph, cfg.seed)
    if cfg.checkpoint_dir:
        checkpoint = (Path(cfg.checkpoint_dir) / f"pbg-{key}").resolve()
    return checkpoint, key


def checkpoint_version(checkpoint: Path) -> int:
    """PBG's committed checkpoint version (completed iterations; 0 = none)."""
    f = Path(checkpoint) / "checkpoint_version.txt"
    return int(f.read_text().strip() or 0) if f.is_file() else 0


def prepare_checkpoint(checkpoint: Path, fingerprint: str) -> int:
    """Keeps a previous run's checkpoint if it was made for the same model and graph.

    Returns:
        The checkpoint version PBG will resume from (0 = fresh start).
    """
    fp_file = checkpoint / FINGERPRINT_FILE
    if checkpoint.exists():
        old = json.loads(fp_file.read_text()).get("fingerprint") if fp_file.is_file() else None
        if old != fingerprint and any(p.name != lifetime.LOCK_FILE for p in checkpoint.iterdir()):
            log.warning(
                "%s: checkpoint made for another config or graph; starting over", checkpoint
            )
            for p in checkpoint.iterdir():
                if p.name != lifetime.LOCK_FILE:  # held by this run
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
    checkpoint.mkdir(parents=True, exist_ok=True)
    fp_file.write_text(json.dumps({"fingerprint": fingerprint}) + "\n")
    return checkpoint_version(checkpoint)


def train_pbg(cfg: EmbedGraphConfig, pbg: dict[str, Any], resumed_version: int) -> dict[str, Any]:
    """Runs PBG's training loop, logging each bucket's loss; returns training figures."""
    import torch
    from torchbiggraph.config import parse_config
    from torchbiggraph.train import train_and_report_stats
    from torchbiggraph.util import SubprocessInitializer

    config = parse_config(pbg)
    torch.manual_seed(cfg.seed)
    init = SubprocessInitializer()
    init.register(seed_worker, cfg.seed)
    trained = 0
    losses: dict[int, list[tuple[float, int]]] = {}
    n_buckets = int(pbg["entities"][USER]["num_partitions"]) ** 2
    first_new = resumed_version * n_buckets
    t0 = time.perf_counter()
    with _quiet_pbg():
        for index, _before, stats, _after in train_and_report_stats(config, subprocess_init=init):
            # PBG numbers buckets 1.. per iteration i as i * n_buckets + 1 ..(i + 1) * n_buckets.
            if index <= first_new:
                continue  # replayed stats of iterations done before a restart
            trained += stats.count
            losses.setdefault((index - 1) // n_buckets, []).append(
                (stats.metrics["loss"], stats.count)
            )
            tracking.log_metrics({"pbg_bucket_loss": stats.metrics["loss"]}, step=index)
            log.info(
                "PBG iteration %d (bucket %d of %d): %d edges, loss %.4f",
                (index - 1) // n_buckets + 1,
                (index - 1) % n_buckets + 1,
                n_buckets,
                stats.count,
                stats.metrics["loss"],
            )
    seconds = time.perf_counter() - t0
    per_iter = {
        it: sum(v * c for v, c in xs) / max(1, sum(c for _, c in xs)) for it, xs in losses.items()
    }
    for it, loss in sorted(per_iter.items()):
        tracking.log_metrics({"pbg_loss": loss}, step=it)
    return {"seconds": seconds, "edges_trained": trained, "loss_by_iteration": per_iter}


def load_embeddings(checkpoint: Path, entity: str, num_partitions: int) -> np.ndarray:
    """All partitions of one entity type from the last checkpoint, in the graph's entities
    table's row order."""
    from torchbiggraph.checkpoint_storage import CHECKPOINT_STORAGES

    storage = CHECKPOINT_STORAGES.make_instance(str(checkpoint))
    version = storage.load_version()
    parts = [storage.load_entity_partition(version, entity, p)[0] for p in range(num_partitions)]
    return np.concatenate([t.numpy() for t in parts]).astype(np.float32, copy=False)


def load_relation_vectors(
    checkpoint: Path, relations: list[str], operator: str, dimension: int
) -> dict[str, np.ndarray]:
    """Each relation's operator parameter (translation / diagonal vector; zeros for none)."""
    from torchbiggraph.checkpoint_storage import CHECKPOINT_STORAGES

    storage = CHECKPOINT_STORAGES.make_instance(str(checkpoint))
    state, _ = storage.load_model(storage.load_version())
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(relations):
        if operator == "none":
            out[name] = np.zeros(dimension, np.float32)
            continue
        prefix = f"relations/{i}/operator/rhs/"
        hits = [k for k in (state or {}) if k.startswith(prefix)]
        if len(hits) != 1:
            raise RuntimeError(
                f"{checkpoint}: no rhs operator parameter {prefix}* in the model file"
            )
        out[name] = state[hits[0]].numpy().astype(np.float32)
    return out


def _apply_operator(u: np.ndarray, r: np.ndarray, operator: str) -> np.ndarray:
    if operator == "translation":
        return u + r
    if operator == "diagonal":
        return u * r
    return u


def _compare(query: Any, cands: Any, comparator: str) -> Any:
    """Scores ``cands [E, K, d]`` against ``query [E, d]`` (torch), higher = better."""
    import torch

    if comparator == "cos":
        query = torch.nn.functional.normalize(query, dim=-1)
        cands = torch.nn.functional.normalize(cands, dim=-1)
    if comparator in ("dot", "cos"):
        return torch.einsum("ed,ekd->ek", query, cands)
    sq = ((cands - query[:, None, :]) ** 2).sum(-1)
    return -sq if comparator == "squared_l2" else -sq.sqrt()


def iter_split(
    graph: Path, meta: dict[str, Any], split: str, chunk_edges: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One split's edges as global rows ``(user_row, tweet_row, relation)``, bucket by bucket
    and at most ``chunk_edges`` at a time (PBG's own chunking of a bucket)."""
    from torchbiggraph.graph_storages import EDGE_STORAGES

    p = int(meta["num_partitions"])
    base = {
        e: np.concatenate([[0], np.cumsum(meta["entities"][e]["partition_counts"])])
        for e in (USER, TWEET)
    }
    storage = EDGE_STORAGES.make_instance(str(graph / meta["paths"][split]))
    for lp in range(p):
        for rp in range(p):
            n = storage.get_number_of_edges(lp, rp)
            chunks = max(1, -(-n // chunk_edges))
            for c in range(chunks):
                edges = storage.load_chunk_of_edges(lp, rp, c, chunks)
                yield (
                    edges.rhs.to_tensor().numpy() + base[USER][rp],
                    edges.lhs.to_tensor().numpy() + base[TWEET][lp],
                    edges.get_relation_type_as_vector().numpy(),
                )


def split_size(graph: Path, meta: dict[str, Any], split: str) -> int:
    """The number of edges of a split (from the buckets' headers; nothing is loaded)."""
    from torchbiggraph.graph_storages import EDGE_STORAGES

    p = int(meta["num_partitions"])
    storage = EDGE_STORAGES.make_instance(str(graph / meta["paths"][split]))
    return sum(storage.get_number_of_edges(lp, rp) for lp in range(p) for rp in range(p))


def sample_eval_edges(
    graph: Path, meta: dict[str, Any], cfg: EmbedGraphConfig
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.random.Generator]:
    """At most ``cfg.eval_max_edges`` edges of ``cfg.eval_split`` (seeded), gathered while the
    split streams by a chunk at a time, so the split is never whole in memory.

    Returns:
        ``(user_row, tweet_row, relation)`` of the drawn edges, in the order drawn, and the
        generator the draw used (the candidates are drawn from it next).
    """
    rng = np.random.default_rng(cfg.seed + 1)
    chunk = cfg.max_edges_per_chunk
    total = split_size(graph, meta, cfg.eval_split)
    pick = (
        rng.choice(total, cfg.eval_max_edges, replace=False)
        if total > cfg.eval_max_edges
        else np.arange(total)
    )
    order = np.argsort(pick, kind="stable")
    at = pick[order]  # positions in the split's streamed order, ascending
    out = tuple(np.empty(pick.size, dtype=np.int64) for _ in range(3))
    offset = 0
    for cols in iter_split(graph, meta, cfg.eval_split, chunk):
        lo, hi = np.searchsorted(at, [offset, offset + len(cols[0])])
        for dst, col in zip(out, cols, strict=True):
            dst[order[lo:hi]] = col[at[lo:hi] - offset]
        offset += len(cols[0])
    return out, rng  # type: ignore[return-value]


def known_edges_and_degree(
    graph: Path, meta: dict[str, Any], users: np.ndarray, n_tweets: int, chunk_edges: int
) -> tuple[np.ndarray, np.ndarray]:
    """The known edges of ``users`` (sorted keys ``user_row * n_tweets + tweet_row``, every
    split) and each tweet's train degree, read a chunk at a time: memory holds one chunk and
    what the evaluated users need, not the whole graph."""
    wanted = np.unique(users)
    keys: list[np.ndarray] = []
    degree = np.zeros(n_tweets, dtype=np.int64)
    for name in splits.NAMES:
        for u, t, _ in iter_split(graph, meta, name, chunk_edges):
            if name == splits.NAMES[0]:
                degree += np.bincount(t, minlength=n_tweets)
            mine = np.isin(u, wanted)
            keys.append(u[mine].astype(np.int64) * n_tweets + t[mine])
    known = np.unique(np.concatenate(keys)) if keys else np.empty(0, np.int64)
    return known, degree


def link_prediction(
    users: np.ndarray,
    tweets: np.ndarray,
    rel_vectors: np.ndarray,
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    rng: np.random.Generator,
    known: np.ndarray,
    train_degree: np.ndarray,
    cfg: EmbedGraphConfig,
    relations: list[str],
) -> dict[str, Any]:
    """MRR / Hits@1 / Hits@10 of the embeddings and of popularity on the same candidates.

    Ties are scored by :mod:`twhin_bert.common.ranking`'s rule (the expectation under a
    uniformly random tie-break; popularity ties often). These rank an evaluated edge's tweet
    among ``eval_candidates`` random tweets: link prediction, not evaluate's engagement task.

    Args:
        users: User embeddings ``[U, d]``.
        tweets: Tweet embeddings ``[T, d]``.
        rel_vectors: Relation operator parameters ``[R, ...]`` (index = relation id).
        test: The evaluated edges ``(user_row, tweet_row, relation)``: the sample
            :func:`sample_eval_edges` draws.
        rng: The generator of that draw; the candidates are drawn from it.
        known: Sorted int64 keys ``user_row * T + tweet_row`` of every known edge (filtered
            out of the candidates).
        train_degree: Train-split degree of each tweet (the popularity score).
        cfg: Evaluation knobs (candidates, max edges, seed, operator, comparator).
        relations: Relation names (for the per-relation breakdown).

    Returns:
        ``mrr``, ``hits@1``, ``hits@10`` and ``popularity_*`` twins, the count of evaluated
        edges, and ``by_relation`` (the stage reports them under ``link_prediction.``).
    """
    import torch

    u, t, r = test
    n_tweets = tweets.shape[0]
    cand = rng.integers(0, n_tweets, size=(u.size, cfg.eval_candidates))
    keys = u[:, None].astype(np.int64) * n_tweets + cand
    pos_in_known = np.searchsorted(known, keys).clip(max=max(known.size - 1, 0))
    valid = known[pos_in_known] != keys if known.size else np.ones_like(keys, bool)

    tw = torch.from_numpy(tweets)
    query = torch.from_numpy(_apply_operator(users[u], rel_vectors[r], cfg.operator))
    chunk = max(1, 2**22 // (cfg.eval_candidates * tweets.shape[1]))
    greater, ties = np.empty(u.size, np.int64), np.empty(u.size, np.int64)
    for s in range(0, u.size, chunk):
        q = query[s : s + chunk]
        pos = _compare(q, tw[torch.from_numpy(t[s : s + chunk])][:, None, :], cfg.comparator)[:, 0]
        sc = _compare(q, tw[torch.from_numpy(cand[s : s + chunk])], cfg.comparator)
        rows = slice(s, s + chunk)
        greater[rows], ties[rows] = ranking.rank_counts(pos.numpy(), sc.numpy(), valid[rows])
    model_counts = (greater, ties)
    pop_counts = ranking.rank_counts(train_degree[t], train_degree[cand], valid)

    def summary(counts: tuple[np.ndarray, np.ndarray], m: Any = slice(None)) -> dict[str, float]:
        g, tie = counts[0][m], counts[1][m]
        at1, at10 = ranking.hits_at(g, tie, [1, 10])
        return {
            "mrr": ranking.mean_reciprocal_rank(g, tie),
            "hits@1": float(at1),
            "hits@10": float(at10),
        }

    model, pop = summary(model_counts), summary(pop_counts)
    by_relation = {
        name: {
            "edges": int((r == i).sum()),
            "mrr": summary(model_counts, r == i)["mrr"],
            "popularity_mrr": summary(pop_counts, r == i)["mrr"],
        }
        for i, name in enumerate(relations)
        if (r == i).any()
    }
    return {
        **model,
        **{f"popularity_{k}": v for k, v in pop.items()},
        "mrr_lift_over_popularity": model["mrr"] - pop["mrr"],
        "eval_edges": int(u.size),
        "eval_candidates": cfg.eval_candidates,
        "eval_filtered_share": float(1.0 - valid.mean()) if valid.size else 0.0,
        "by_relation": by_relation,
    }


def export(
    out: Path, graph: Path, meta: dict[str, Any], cfg: EmbedGraphConfig, checkpoint: Path
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Writes the user and tweet vectors with their ids, the relations and the model."""
    p = int(meta["num_partitions"])
    entities = Graph(graph).entities(columns=["entity_type", "id"])
    output = GraphEmbeddings(out)
    arrays = {}
    for entity, stem in ((USER, output.USERS), (TWEET, output.TWEETS)):
        emb = load_embeddings(checkpoint, entity, p)
        ids = pc.filter(entities.column("id"), pc.equal(entities.column("entity_type"), entity))
        if len(ids) != emb.shape[0]:
            raise RuntimeError(
                f"{checkpoint}: {emb.shape[0]} {entity} embeddings but {len(ids)} {entity} "
                f"rows in {graph / Graph.ENTITIES}"
            )
        output.table(stem).write(ids, emb)
        arrays[entity] = emb
    rel = load_relation_vectors(checkpoint, meta["relations"], cfg.operator, cfg.dimension)
    (out / output.RELATIONS).write_text(
        json.dumps({k: [float(x) for x in v] for k, v in rel.items()}) + "\n"
    )
    model = {
        "dimension": cfg.dimension,
        "operator": cfg.operator,
        "operator_side": USER,
        "comparator": cfg.comparator,
        "score": "comparator(tweet, op_r(user)); translation + dot: (u + r)ᵀt",
        "relations": meta["relations"],
        "files": output.files(),
    }
    (out / output.MODEL).write_text(json.dumps(model, indent=2) + "\n")
    return arrays[USER], arrays[TWEET], rel


@stage("embed_graph")
def run_embed_graph(cfg: EmbedGraphConfig, out_dir: Path, *, graph: Path) -> dict[str, Any]:
    """Trains PBG embeddings of a build_graph folder, evaluates and exports them.

    Args:
        cfg: The stage config.
        out_dir: Staging output folder; PBG's checkpoint lives in ``out_dir/checkpoint`` so a
            rerun after a crash resumes from it.
        graph: The build_graph stage's folder.

    Returns:
        Metrics: link prediction under ``link_prediction.`` (``link_prediction.mrr``,
        ``link_prediction.hits@10``, ``link_prediction.popularity_mrr``...: ranks among random
        tweets, not evaluate's engagement HITS@10), training figures (edges/s, loss per PBG
        iteration: an epoch, or one chunk of each bucket where max_edges_per_chunk splits
        them; resumed checkpoint version) and the time spent outside PBG training.
    """
    t_start = time.perf_counter()
    _import_pbg()
    out = Path(out_dir)
    graph = Path(graph).resolve()
    meta = read_graph(graph)
    checkpoint, fingerprint = checkpoint_folder(cfg, out, graph, meta)
    pbg = pbg_config_dict(cfg, meta, graph, checkpoint)
    # One writer per checkpoint folder while PBG trains (a retried pod whose predecessor
    # still runs fails at once instead of training into the same files). Each chunk's edge
    # tensors go back to the system when PBG frees them (its workers start inside).
    with lifetime.hold_folder(checkpoint, "embed_graph"), large_blocks_returned():
        return _train_and_export(cfg, out, graph, meta, pbg, checkpoint, fingerprint, t_start)


def _train_and_export(
    cfg: EmbedGraphConfig,
    out: Path,
    graph: Path,
    meta: dict[str, Any],
    pbg: dict[str, Any],
    checkpoint: Path,
    fingerprint: str,
    t_start: float,
) -> dict[str, Any]:
    resumed = prepare_checkpoint(checkpoint, fingerprint)
    if resumed:
        log.info("embed_graph: resuming from PBG checkpoint version %d in %s", resumed, checkpoint)
    t_setup = time.perf_counter() - t_start

    train = train_pbg(cfg, pbg, resumed)
    version = checkpoint_version(checkpoint)

    t0 = time.perf_counter()
    users, tweets, rel = export(out, graph, meta, cfg, checkpoint)
    rule = GraphEmbeddings(out).copy_holdout_from(Graph(graph))  # mine_pairs, evaluate honour it
    t_export = time.perf_counter() - t0

    t0 = time.perf_counter()
    sample, rng = sample_eval_edges(graph, meta, cfg)
    known, train_degree = known_edges_and_degree(
        graph, meta, sample[0], tweets.shape[0], cfg.max_edges_per_chunk
    )
    rel_matrix = np.stack([rel[name] for name in meta["relations"]])
    lp = link_prediction(
        users, tweets, rel_matrix, sample, rng, known, train_degree, cfg, meta["relations"]
    )
    t_eval = time.perf_counter() - t0

    if not cfg.keep_checkpoint:
        shutil.rmtree(checkpoint)
    elif checkpoint != (out / CHECKPOINT_DIR).resolve():
        shutil.move(checkpoint, out / CHECKPOINT_DIR)  # the trained model joins the output
    outside = t_setup + t_export + t_eval
    # PBG's chunking: as many chunks as needed for <= max_edges_per_chunk edges per chunk.
    chunks = cfg.num_edge_chunks or max(
        1, -(-int(meta["buckets"]["train"][0]) // cfg.max_edges_per_chunk)
    )
    log.info(
        "embed_graph: MRR %.4f (popularity %.4f), Hits@10 %.4f (popularity %.4f)",
        lp["mrr"],
        lp["popularity_mrr"],
        lp["hits@10"],
        lp["popularity_hits@10"],
    )
    return {
        LINK_PREDICTION: lp,
        "users": int(users.shape[0]),
        "tweets": int(tweets.shape[0]),
        "dimension": cfg.dimension,
        "pbg_resumed_from_version": resumed,
        "pbg_checkpoint_version": version,
        "pbg_iterations_run": version - resumed,
        "pbg_edges_trained": train["edges_trained"],
        "pbg_edges_per_second": train["edges_trained"] / max(train["seconds"], 1e-9),
        "pbg_final_loss": (
            train["loss_by_iteration"][max(train["loss_by_iteration"])]
            if train["loss_by_iteration"]
            else float("nan")
        ),
        "pbg_first_loss": (
            train["loss_by_iteration"][min(train["loss_by_iteration"])]
            if train["loss_by_iteration"]
            else float("nan")
        ),
        "seconds": {
            "setup": t_setup,
            "pbg_train": train["seconds"],
            "export": t_export,
            "evaluate": t_eval,
        },
        "outside_pbg_share": outside / max(train["seconds"], 1e-9),
        "epochs_completed": version // chunks,
        "eval_holdout": rule.as_dict() if rule is not None else None,
    }
