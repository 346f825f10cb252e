"""``twhin-bert bench mine``: recall@10 and queries/s of the mining index vs exact search.

The data: ``n`` clustered ``dim``-d vectors, a Gaussian mixture with ``centres`` centres and
a shared anisotropic covariance (a decaying spectrum, as learned embeddings have), unit
length (cosine = inner product), plus ``queries`` held-out vectors from the same mixture.
The baseline: exact ``IndexFlatIP`` search of the same queries, in the same run, timed in
rounds that alternate with the index's. The index:
what mine_pairs itself builds -- by default the index string, nprobe and search settings
that ``mine_pairs.social.index: auto`` derives for ``n`` vectors on the CPU (for 1M x 256:
``IVF1024,PQ128x4fs,RFlat``, nprobe 4, ``k_factor_rf=10``), or the ``index``/``settings``
given (a pipeline config's). That first setting is the result; further settings in the
sweep are printed beside it for context. Training time is timed apart.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import numpy as np

from twhin_bert.common.bench import report

log = logging.getLogger(__name__)


def clustered_vectors(
    n: int, dim: int, centres: int, seed: int, *, spread: float = 0.6, chunk: int = 100_000
) -> np.ndarray:
    """``n`` unit vectors from a Gaussian mixture (float32, generated chunk-wise).

    Each point is ``centre + spread · (z ⊙ s) Q`` with ``z`` standard normal, ``s`` a spectrum
    decaying as ``exp(-i/32)`` (normalised to unit energy) and ``Q`` a random rotation, then
    L2-normalised. Peak memory is the output plus one chunk.
    """
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    spectrum = np.exp(-np.arange(dim) / 32.0).astype(np.float32)
    spectrum /= np.linalg.norm(spectrum)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    basis = (spectrum[:, None] * q.astype(np.float32)) * spread
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        labels = rng.integers(0, centres, m)
        x = rng.standard_normal((m, dim), dtype=np.float32) @ basis
        x += c[labels]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[i : i + m] = x
    return out


def _timed_search(index: Any, xq: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Wall seconds of one search of ``xq``, and the ids found."""
    t0 = time.perf_counter()
    _, ids = index.search(xq, k)
    return time.perf_counter() - t0, ids


def main(
    quick: bool = False,
    n: int = 1_000_000,
    dim: int = 256,
    k: int = 10,
    centres: int = 1000,
    queries: int = 2000,
    index: str = "auto",
    settings: str | None = None,
    sweep: str = "nprobe=4,k_factor_rf=8;nprobe=4,k_factor_rf=12;nprobe=8,k_factor_rf=16;nprobe=8,k_factor_rf=32",
    train_size: int = 0,
    min_recall: float = 0.95,
    min_speedup: float = 100.0,
    repeats: int = 5,
    threads: int = 0,
    train_threads: int = 1,
    seed: int = 0,
    gpu: bool = False,
) -> dict[str, Any]:
    """Runs the benchmark and prints the table and the JSON summary.

    Args:
        quick: Smoke-test sizes (100K vectors, 500 queries).
        n: Database vectors.
        dim: Dimension.
        k: Neighbours per query (recall@k).
        centres: Mixture components.
        queries: Held-out queries timed for both exact and the index.
        index: FAISS factory string; ``auto`` = what mine_pairs derives for ``n`` vectors on
            the CPU (:func:`twhin_bert.mine_pairs.index.derive_index_string`).
        settings: The index's search settings (``nprobe=..,k_factor_rf=..``), the result;
            default: mine_pairs' derived nprobe and search parameters for ``index``.
        sweep: ``;``-separated further FAISS ParameterSpace settings, shown for context.
        train_size: Training sample (0 = 64 per IVF list, at most n).
        min_recall: Recall@k goal.
        min_speedup: Speed-up over exact search goal (queries/s ratio).
        repeats: Timed rounds; each times exact search on a quarter of the queries and
            every setting on all of them (the best time per query of each side is kept).
        threads: FAISS threads for adding and searching (0 = CPU count).
        train_threads: FAISS threads while training (0 = CPU count). Default 1: k-means and
            PQ training run many short parallel sections that stall when the cores are shared.
        seed: Data and sampling seed.
        gpu: Search both indexes on every GPU faiss-gpu sees (sharded, as mine_pairs does);
            ``auto`` then derives mine_pairs' GPU index. Training stays on the CPU.

    Returns:
        The JSON summary (also printed last).
    """
    import faiss

    from twhin_bert.mine_pairs import index as mining

    if quick:
        n, queries = min(n, 100_000), min(queries, 500)
    nthreads = mining.set_threads(threads)
    if index == "auto":
        index = mining.derive_index_string(n, dim, gpu=gpu)
    if gpu and not mining.gpu_count(True):
        raise ValueError("bench mine: gpu=true but faiss sees no GPU (install the [gpu] extra)")
    if settings is None:  # what mine_pairs sets for this index
        nprobe = mining.derive_nprobe(index, n)
        settings = ",".join(
            p
            for p in (f"nprobe={nprobe}" if nprobe else "", mining.derive_search_params(index))
            if p
        )
    extra = [p.strip() for p in sweep.split(";") if p.strip() and p.strip() != settings]
    trials = [settings, *extra] if "IVF" in index else [settings]  # a sweep needs an IVF

    t0 = time.perf_counter()
    data = clustered_vectors(n + queries, dim, centres, seed)
    xb, xq = data[:n], data[n:].copy()
    gen_s = time.perf_counter() - t0

    # Baseline: exact search, same queries, same run (the ground truth; timed below).
    flat = faiss.IndexFlatIP(dim)
    flat.add(xb)
    if gpu:
        flat = faiss.index_cpu_to_all_gpus(flat)
    _, gt = flat.search(xq, k)

    ann = faiss.index_factory(dim, index, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed + 1)
    m = faiss.extract_index_ivf(ann).nlist if "IVF" in index else 1024
    n_train = min(n, train_size or 64 * m)
    sample = xb[np.sort(rng.choice(n, n_train, replace=False))]
    mining.set_threads(train_threads)
    t0 = time.perf_counter()
    ann.train(sample)
    train_s = time.perf_counter() - t0
    mining.set_threads(threads)
    del sample
    t0 = time.perf_counter()
    for i in range(0, n, 200_000):
        ann.add(xb[i : i + 200_000])
    add_s = time.perf_counter() - t0
    if gpu:
        co = faiss.GpuMultipleClonerOptions()
        co.shard, co.useFloat16LookupTables = True, True
        ann = faiss.index_cpu_to_all_gpus(ann, co=co)
    del data, xb
    gc.collect()

    # Rounds alternate exact search (on a quarter of the queries: its time is linear in them)
    # and every setting, each side keeping its best time per query, so that a slow spell of
    # a shared machine falls on both sides rather than on one.
    ps = faiss.GpuParameterSpace() if gpu else faiss.ParameterSpace()
    xq_exact = xq[: max(1, queries // 4)]
    exact_best = float("inf")
    best = [float("inf")] * len(trials)
    found: list[Any] = [None] * len(trials)
    for _ in range(repeats):
        sec, _ = _timed_search(flat, xq_exact, k)
        exact_best = min(exact_best, sec / len(xq_exact))
        for i, setting in enumerate(trials):
            if setting:
                ps.set_index_parameters(ann, setting)
            sec, found[i] = _timed_search(ann, xq, k)
            best[i] = min(best[i], sec / queries)
    del flat
    gc.collect()
    exact_qps = 1.0 / exact_best
    rows: list[dict[str, Any]] = [
        {
            "index": "Flat (exact)",
            "settings": "-",
            "recall@k": 1.0,
            "queries/s": exact_qps,
            "speedup": 1.0,
        }
    ]
    for setting, sec, ids in zip(trials, best, found, strict=True):
        rows.append(
            {
                "index": index if setting == settings else f"{index} (sweep)",
                "settings": setting or "-",
                "recall@k": _recall(ids, gt, k),
                "queries/s": 1.0 / sec,
                "speedup": exact_best / sec,
            }
        )
    chosen = rows[1]  # the configured setting is the result; the sweep is context
    met = chosen["recall@k"] >= min_recall and chosen["speedup"] >= min_speedup
    figures = {
        "n": n,
        "dim": dim,
        "k": k,
        "queries": queries,
        "centres": centres,
        "threads": nthreads,
        "train_threads": train_threads,
        "index": index,
        "settings": chosen["settings"],
        f"recall@{k}": chosen["recall@k"],
        "qps": chosen["queries/s"],
        "exact_qps": exact_qps,
        "speedup": chosen["speedup"],
        "train_seconds": train_s,
        "train_size": n_train,
        "add_seconds": add_s,
        "generate_seconds": gen_s,
    }
    goal = f"recall@{k} >= {min_recall} at >= {min_speedup:g}x exact IndexFlatIP queries/s"
    return report("mine", rows, figures, goal, met)


def _recall(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    from twhin_bert.mine_pairs.index import recall_at_k

    return recall_at_k(ids, gt, k)
