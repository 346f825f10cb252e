"""FAISS helpers of the social pair source: index strings, build, search, exact recall.

Vectors are L2-normalised and searched with the inner-product metric, so scores are cosine
similarities. The same code runs on CPU (faiss-cpu) and on every GPU of the machine
(faiss-gpu: sharded index, float16 lookup tables for PQ).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from twhin_bert.common.compute import resolve_cpus
from twhin_bert.common.progress import progress

log = logging.getLogger(__name__)

#: Below this many vectors exact search is cheap enough: ``auto`` picks ``Flat``.
FLAT_BELOW = 20_000
#: From this many vectors on ``auto`` compresses the vectors (OPQ + IVF-PQ) instead of IVF-Flat.
PQ_FROM = 2_000_000
#: PQ sub-quantizer counts tried, largest first (all supported by GPU IVF-PQ).
_PQ_M = (64, 48, 32, 28, 24, 20, 16, 12, 8, 4, 2, 1)


def nlist_for(n: int, scale: float = 4.0) -> int:
    """IVF list count for ``n`` vectors: the power of two nearest ``scale``·sqrt(n), clamped so
    every list gets >= 39 training points and at most 65,536 lists (the paper's production
    value)."""
    target = scale * math.sqrt(max(n, 1))
    nlist = 2 ** round(math.log2(target))
    while nlist > 1 and nlist * 39 > n:
        nlist //= 2
    return int(max(1, min(nlist, 65_536)))


def pq_m_for(d: int) -> int:
    """The largest supported PQ sub-quantizer count that divides ``d`` (at most 64)."""
    for m in _PQ_M:
        if d % m == 0 and d // m >= 1:
            return m
    return 1


def derive_index_string(n: int, d: int, gpu: bool = False) -> str:
    """A sensible FAISS index-factory string for ``n`` vectors of dimension ``d``.

    ``Flat`` (exact) below 20K vectors. On the CPU up to 2M vectors (``d`` a multiple of 4):
    ``IVF{nlist},PQ{d/2}x4fs,RFlat`` with nlist ~ sqrt(n) -- 4-bit fast-scan PQ codes of two
    dimensions each (SIMD in-register lookups) shortlist ``k_factor_rf x k`` candidates that
    are re-ranked exactly. Codes of 2 dimensions rank well enough that a 10 x k shortlist
    keeps recall, and the whole is faster than ``PQ{d/4}x4fs`` with a 32 x k shortlist or
    ``IVF,Flat`` at equal recall (``twhin-bert bench mine`` on 1M x 256 compares them; its
    figures are in docs/RESULTS.md). On GPUs (fast-scan and re-ranking are CPU-only)
    ``IVF{nlist},Flat`` with nlist ~ 4·sqrt(n). From 2M vectors on, everywhere,
    ``OPQ{m},IVF{nlist},PQ{m}`` with m dividing d (64 for 256-d, the paper's layout
    ``OPQ64,IVF65536,PQ64`` at a billion vectors).

    Args:
        n: Number of vectors to index.
        d: Their dimension.
        gpu: The index will live on GPUs (faiss-gpu).

    Returns:
        The index-factory string.
    """
    if n < FLAT_BELOW:
        return "Flat"
    nlist = nlist_for(n)
    if n < PQ_FROM:
        if not gpu and d % 4 == 0:
            return f"IVF{fast_scan_nlist_for(n)},PQ{d // 2}x4fs,RFlat"
        return f"IVF{nlist},Flat"
    m = pq_m_for(d)
    return f"OPQ{m},IVF{nlist},PQ{m}"


def fast_scan_nlist_for(n: int) -> int:
    """IVF list count of the fast-scan layout: ~sqrt(n) (scanning 4-bit codes is cheap, so
    fewer, longer lists train faster at the same recall)."""
    return nlist_for(n, scale=1.0)


#: Vectors a query scans in the re-ranked fast-scan layout (sets its default nprobe).
FAST_SCAN_PROBED = 4096


def derive_nprobe(index_string: str, n: int) -> int | None:
    """Default nprobe of an IVF index string for ``n`` vectors (None: not IVF), at most every
    list. The re-ranked fast-scan layout probes the lists that hold about
    ``FAST_SCAN_PROBED`` vectors (at least 4 lists): with nlist ~ sqrt(n) that is 4 of 1,024
    lists at 1M vectors and more, smaller lists at small n, where few lists miss neighbours.
    Other IVF layouts probe 1/16 of the lists, at least 8."""
    import re

    m = re.search(r"IVF(\d+)", index_string)
    if not m:
        return None
    nlist = int(m.group(1))
    if "fs" in index_string and "RFlat" in index_string:
        probe = max(4, round(FAST_SCAN_PROBED * nlist / max(n, 1)))
    else:
        probe = max(8, nlist // 16)
    return int(min(nlist, probe))


def derive_search_params(index_string: str) -> str:
    """Default extra search settings: re-rank 10 x k candidates behind an ``RFlat``, the knee
    of ``twhin-bert bench mine``'s sweep on 1M x 256 (its figures: docs/RESULTS.md)."""
    return "k_factor_rf=10" if "RFlat" in index_string else ""


def set_threads(threads: int) -> int:
    """Sets FAISS's OpenMP threads (0 = every CPU this process may use); returns the count."""
    import faiss

    n = resolve_cpus(threads)
    faiss.omp_set_num_threads(n)
    return n


def normalize(x: np.ndarray) -> tuple[np.ndarray, int]:
    """L2-normalised float32 copy of ``x`` and how many rows were zero (left as zeros)."""
    x = np.ascontiguousarray(x, dtype=np.float32).copy()
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    norms[zero] = 1.0
    x /= norms
    return x, int(zero.sum())


@dataclass
class BuiltIndex:
    """A trained, filled index and how it was made."""

    index: Any
    index_string: str
    nprobe: int | None
    device: str  # "cpu" or "gpu:<count>"
    train_seconds: float
    add_seconds: float
    train_size: int


def gpu_count(use_gpu: bool) -> int:
    """GPUs faiss-gpu sees (0 without faiss-gpu or when ``use_gpu`` is off)."""
    import faiss

    if not use_gpu or not hasattr(faiss, "get_num_gpus"):
        return 0
    return int(faiss.get_num_gpus())


def _set_params(index: Any, nprobe: int | None, extra: str, on_gpu: bool) -> None:
    import faiss

    ps = faiss.GpuParameterSpace() if on_gpu else faiss.ParameterSpace()
    if nprobe is not None:
        ps.set_index_parameter(index, "nprobe", nprobe)
    if extra.strip():
        ps.set_index_parameters(index, extra.strip())


def build_index(
    batches: Callable[[], Iterator[np.ndarray]],
    n: int,
    d: int,
    train_sample: np.ndarray,
    *,
    index_string: str,
    nprobe: int | None,
    search_params: str = "",
    use_gpu: bool = True,
) -> BuiltIndex:
    """Trains an inner-product index on ``train_sample`` and adds every batch.

    Args:
        batches: Called once; yields the L2-normalised float32 vectors in row order.
        n: Total number of vectors (for the progress bar).
        d: Dimension.
        train_sample: L2-normalised float32 training vectors.
        index_string: FAISS index-factory string.
        nprobe: IVF lists probed per query (None: leave FAISS's default).
        search_params: Extra ``ParameterSpace`` settings ("k_factor_rf=4,...").
        use_gpu: Use every visible GPU (sharded) when faiss-gpu has any.

    Returns:
        The filled index with timings.

    Raises:
        ValueError: The index string is not a valid FAISS factory string for ``d``.
    """
    import time

    import faiss

    try:
        index = faiss.index_factory(d, index_string, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(
            f"index '{index_string}' is not a valid FAISS factory string for d={d}: {e}"
        ) from e
    ngpu = gpu_count(use_gpu)
    ivf = _try_extract_ivf(index)
    if ngpu and ivf is not None:
        # Train the coarse quantizer's k-means on the GPUs too.
        ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
    t0 = time.perf_counter()
    if not index.is_trained:
        log.info("training %s on %d vectors", index_string, len(train_sample))
        index.train(train_sample)
    train_seconds = time.perf_counter() - t0
    if ngpu:
        co = faiss.GpuMultipleClonerOptions()
        co.shard = True
        co.useFloat16LookupTables = True  # PQ64 tables only fit shared memory in float16
        index = faiss.index_cpu_to_all_gpus(index, co=co)
    _set_params(index, nprobe, search_params, on_gpu=ngpu > 0)
    t0 = time.perf_counter()
    with progress(total=n, desc="index add", unit="vec") as bar:
        for xb in batches():
            index.add(xb)
            bar.update(len(xb))
    add_seconds = time.perf_counter() - t0
    return BuiltIndex(
        index=index,
        index_string=index_string,
        nprobe=nprobe,
        device=f"gpu:{ngpu}" if ngpu else "cpu",
        train_seconds=train_seconds,
        add_seconds=add_seconds,
        train_size=len(train_sample),
    )


def _try_extract_ivf(index: Any) -> Any | None:
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def exact_knn(
    queries: np.ndarray, batches: Callable[[], Iterator[np.ndarray]], d: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` of ``queries`` over the database, one chunk at a time.

    Each chunk goes into an ``IndexFlatIP`` and the per-chunk results are merged in a heap,
    so memory stays at one chunk however large the database is.

    Returns:
        ``(scores, ids)``, each ``[len(queries), k]``, ids = row numbers in the database.
    """
    import faiss

    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    offset = 0
    for xb in batches():
        flat = faiss.IndexFlatIP(d)
        flat.add(xb)
        kk = min(k, len(xb))
        dist, ids = flat.search(queries, kk)
        if kk < k:  # pad so the heap sees k columns
            pad = k - kk
            dist = np.hstack([dist, np.full((len(queries), pad), -np.inf, np.float32)])
            ids = np.hstack([ids, np.full((len(queries), pad), -1, np.int64)])
        ids = np.where(ids >= 0, ids + offset, -1)
        heap.add_result(np.ascontiguousarray(dist), np.ascontiguousarray(ids))
        offset += len(xb)
    heap.finalize()
    return heap.D, heap.I


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int | None = None) -> float:
    """Mean share of the exact top-``k`` ids found in the approximate top-``k`` (k-recall@k).

    Args:
        approx: ``[q, >=k]`` ids from the index under test (-1 = no result).
        exact: ``[q, >=k]`` ids from exact search.
        k: Cut-off; default the width of ``exact``.

    Returns:
        The recall in [0, 1] (1.0 for zero queries).
    """
    approx = np.asarray(approx)
    exact = np.asarray(exact)
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(
            f"recall_at_k: {approx.shape[0]} approximate vs {exact.shape[0]} exact rows"
        )
    k = int(k or exact.shape[1])
    if approx.shape[0] == 0:
        return 1.0
    a, e = approx[:, :k], exact[:, :k]
    valid = e >= 0
    hits = (e[:, :, None] == a[:, None, :]).any(axis=2) & valid
    return float(hits.sum() / max(valid.sum(), 1))


def search_all(
    index: Any,
    batches: Callable[[], Iterator[np.ndarray]],
    n: int,
    k: int,
    on_batch: Callable[[int, np.ndarray, np.ndarray], None],
) -> float:
    """Searches every vector against ``index`` in batches (progress bar) and hands each batch's
    ``(first_row, scores, ids)`` to ``on_batch``.

    Returns:
        Wall seconds spent searching.
    """
    import time

    seconds = 0.0
    row = 0
    with progress(total=n, desc="search", unit="q") as bar:
        for xq in batches():
            t0 = time.perf_counter()
            dist, ids = index.search(xq, k)
            seconds += time.perf_counter() - t0
            on_batch(row, dist, ids)
            row += len(xq)
            bar.update(len(xq))
    return seconds
