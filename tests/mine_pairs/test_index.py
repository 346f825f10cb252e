"""FAISS helpers: index-string derivation, recall@k, exact search, pair bookkeeping, mixing."""

from __future__ import annotations

import numpy as np
import pytest
from twhin_bert.mine_pairs import index as fi
from twhin_bert.mine_pairs.config import HashtagSourceConfig
from twhin_bert.mine_pairs.sources import PairAccumulator, allocate, alter_hashtags


@pytest.mark.parametrize(
    ("n", "d", "expected"),
    [
        (2_000, 256, "Flat"),
        (19_999, 64, "Flat"),
        (100_000, 256, "IVF256,PQ128x4fs,RFlat"),
        (1_000_000, 256, "IVF1024,PQ128x4fs,RFlat"),  # what bench mine measures
        (1_000_000, 30, "IVF4096,Flat"),  # d not a multiple of 4: no fast-scan layout
        (10_000_000, 256, "OPQ64,IVF16384,PQ64"),
        (1_000_000_000, 256, "OPQ64,IVF65536,PQ64"),  # the paper's index
        (10_000_000, 100, "OPQ20,IVF16384,PQ20"),  # m divides d
        (10_000_000, 7, "OPQ1,IVF16384,PQ1"),
    ],
)
def test_derive_index_string(n: int, d: int, expected: str) -> None:
    s = fi.derive_index_string(n, d)
    assert s == expected
    import faiss

    faiss.index_factory(d, s, faiss.METRIC_INNER_PRODUCT)  # valid for FAISS


def test_gpu_layout_and_derived_search_settings() -> None:
    # fast-scan codes and RFlat re-ranking are CPU-only: on GPUs, IVF-Flat below 2M
    assert fi.derive_index_string(1_000_000, 256, gpu=True) == "IVF4096,Flat"
    assert fi.derive_index_string(10_000_000, 256, gpu=True) == "OPQ64,IVF16384,PQ64"
    assert fi.derive_nprobe("IVF1024,PQ128x4fs,RFlat", 10**6) == 4
    assert fi.derive_nprobe("IVF128,PQ128x4fs,RFlat", 20_000) == 26  # smaller lists, more probed
    assert fi.derive_search_params("IVF1024,PQ128x4fs,RFlat") == "k_factor_rf=10"
    assert fi.derive_search_params("IVF4096,Flat") == ""


def test_nlist_keeps_enough_training_points() -> None:
    assert fi.nlist_for(25_000) * 39 <= 25_000
    assert fi.fast_scan_nlist_for(25_000) * 39 <= 25_000
    assert fi.derive_nprobe("IVF4096,Flat", 10**6) == 256
    assert fi.derive_nprobe("IVF64,Flat", 10**4) == 8
    assert fi.derive_nprobe("Flat", 10) is None


def test_recall_at_k_known_values() -> None:
    exact = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert fi.recall_at_k(exact, exact) == 1.0
    approx = np.array([[3, 2, 9, 9], [7, -1, -1, -1]])  # order does not matter, -1 = missing
    assert fi.recall_at_k(approx, exact) == pytest.approx((2 + 1) / 8)
    assert fi.recall_at_k(approx, exact, k=2) == pytest.approx(0.0)  # top-2: {0,1} vs {3,2}
    assert fi.recall_at_k(np.zeros((0, 4), int), np.zeros((0, 4), int)) == 1.0
    with pytest.raises(ValueError, match="rows"):
        fi.recall_at_k(exact[:1], exact)


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((20, d)).astype(np.float32)
    x = c[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    return fi.normalize(x)[0]


def test_exact_knn_chunked_equals_one_flat_index() -> None:
    import faiss

    x = _clustered(3000, 16)
    q = x[:50]
    flat = faiss.IndexFlatIP(16)
    flat.add(x)
    d_ref, i_ref = flat.search(q, 5)
    d, i = fi.exact_knn(q, lambda: (x[j : j + 700] for j in range(0, 3000, 700)), 16, 5)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-5)


def test_recall_of_built_indexes() -> None:
    """Exhaustive IVF probing is exact (recall 1); a 1-byte PQ code is not."""
    x = _clustered(4000, 32)
    q = x[::40]
    _, gt = fi.exact_knn(q, lambda: iter([x]), 32, 10)

    def recall(index_string: str, nprobe: int | None) -> float:
        built = fi.build_index(
            lambda: iter([x]),
            len(x),
            32,
            x,
            index_string=index_string,
            nprobe=nprobe,
            use_gpu=False,
        )
        assert built.device == "cpu"
        _, ids = built.index.search(q, 10)
        return fi.recall_at_k(ids, gt)

    assert recall("IVF16,Flat", 16) == pytest.approx(1.0)
    assert recall("IVF16,Flat", 1) < 1.0
    assert recall("PQ2x4", None) < 0.8


def test_build_index_rejects_bad_string() -> None:
    x = _clustered(100, 8)
    with pytest.raises(ValueError, match="not a valid FAISS factory string"):
        fi.build_index(lambda: iter([x]), 100, 8, x, index_string="NoSuchIndex", nprobe=None)


def test_pair_accumulator_threshold_self_dedupe_cap() -> None:
    acc = PairAccumulator(n=5, min_similarity=0.5)
    # row 0: self, 1 (0.9), 2 (0.4 < threshold); row 1: self, 0 (0.95 -> duplicate of (0,1)), 2
    ids = np.array([[0, 1, 2], [1, 0, 2], [2, 3, 4], [3, 2, -1]])
    scores = np.array(
        [[1.0, 0.9, 0.4], [1.0, 0.95, 0.8], [1.0, 0.7, 0.6], [1.0, 0.7, 0.0]], np.float32
    )
    acc.add(0, scores[:2], ids[:2])
    acc.add(2, scores[2:], ids[2:])
    a, b, s = acc.finish()
    pairs = {(int(x), int(y)): float(z) for x, y, z in zip(a, b, s, strict=True)}
    assert pairs == pytest.approx({(0, 1): 0.95, (1, 2): 0.8, (2, 3): 0.7, (2, 4): 0.6})
    assert list(s) == sorted(s, reverse=True)
    assert acc.self_pairs == 4 and acc.below_threshold == 1 and acc.missing == 1
    assert acc.duplicates == 2  # (1,0) and (3,2)
    # cap 1, best first: (0,1) taken; (1,2) out (1 is full); (2,3) taken; (2,4) out (2 is full).
    acc.finish(max_pairs_per_tweet=1)
    a, b, _ = acc.finish(max_pairs_per_tweet=1)
    assert {(int(x), int(y)) for x, y in zip(a, b, strict=True)} == {(0, 1), (2, 3)}


def test_allocate() -> None:
    w = {"social": 1.0, "hashtag": 0.3, "translation": 0.1}
    assert allocate({"social": 1000, "hashtag": 5000, "translation": 50}, w, None) == {
        "social": 1000,
        "hashtag": 300,
        "translation": 50,
    }
    assert allocate({"social": 0, "hashtag": 70, "translation": 5}, w, None) == {
        "social": 0,
        "hashtag": 70,
        "translation": 5,
    }
    got = allocate({"social": 10_000, "hashtag": 10_000, "translation": 10}, w, 1400)
    assert got == {"social": 1069, "hashtag": 321, "translation": 10}
    assert sum(got.values()) == 1400
    assert allocate({"social": 3, "hashtag": 4, "translation": 0}, w, 100) == {
        "social": 3,
        "hashtag": 4,
        "translation": 0,
    }


def test_alter_hashtags_remove_and_noise() -> None:
    rng = np.random.default_rng(0)
    cfg = HashtagSourceConfig()
    text = "Go #Football team #football2 and #FOOTBALL!"
    assert (
        alter_hashtags(text, ["football"], cfg, rng, ["football", "x"])
        == "Go team #football2 and !"
    )
    noisy = HashtagSourceConfig(text_mode="noise", noise_prob=1.0)
    out = alter_hashtags(text, ["football"], noisy, rng, ["football", "tennis"])
    assert out == "Go #tennis team #football2 and #tennis!"


@pytest.mark.gpu
def test_gpu_index_recall_against_exact_search() -> None:
    """``make test-gpu``: the index builds on the GPU (faiss-gpu) and finds the neighbours of
    exact search."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
        pytest.skip("faiss-gpu not installed or sees no GPU")
    x = _clustered(20_000, 64)
    q = x[::100]
    _, gt = fi.exact_knn(q, lambda: iter([x]), 64, 10)
    built = fi.build_index(
        lambda: iter([x]), len(x), 64, x, index_string="IVF64,Flat", nprobe=16, use_gpu=True
    )
    assert built.device.startswith("gpu:")
    _, ids = built.index.search(q, 10)
    assert fi.recall_at_k(ids, gt) >= 0.95
