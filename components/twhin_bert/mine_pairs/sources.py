"""The pair sources besides FAISS search, and the bookkeeping they share.

* social: neighbour lists -> thresholded, self-free, deduplicated, capped pairs;
* hashtag (HICL, Tan et al.): tweets sharing a frequent hashtag, the hashtag removed/noised;
* translation (TPP, Mishra & Haghighi): pairs read from a parallel-tweets JSONL file;
* mixing: how many pairs of each source the final set takes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from twhin_bert.common.io import open_uri
from twhin_bert.common.text import normalise_text, remove_hashtags
from twhin_bert.mine_pairs.config import HashtagSourceConfig

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- social


class PairAccumulator:
    """Collects neighbour candidates batch by batch as canonical (lo, hi) row pairs.

    Self-pairs and pairs under the threshold are dropped on the way in; (a, b) and (b, a)
    collapse into one pair (highest score kept) in :meth:`finish`.
    """

    def __init__(self, n: int, min_similarity: float) -> None:
        self.n = n
        self.min_similarity = min_similarity
        self._keys: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self.candidates = 0
        self.self_pairs = 0
        self.below_threshold = 0
        self.missing = 0

    def add(self, first_row: int, scores: np.ndarray, ids: np.ndarray) -> None:
        """Adds one search batch: ``scores``/``ids`` are ``[b, k]`` for rows ``first_row...``."""
        b, k = ids.shape
        rows = np.repeat(np.arange(first_row, first_row + b, dtype=np.int64), k)
        ids = ids.reshape(-1).astype(np.int64)
        scores = scores.reshape(-1)
        self.candidates += ids.size
        found = ids >= 0
        self.missing += int((~found).sum())
        is_self = found & (ids == rows)
        self.self_pairs += int(is_self.sum())
        keep = found & ~is_self
        low = keep & (scores < self.min_similarity)
        self.below_threshold += int(low.sum())
        keep &= ~low
        lo = np.minimum(rows[keep], ids[keep])
        hi = np.maximum(rows[keep], ids[keep])
        self._keys.append(lo * self.n + hi)
        self._scores.append(scores[keep].astype(np.float32))

    def finish(
        self, max_pairs_per_tweet: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Deduplicated pairs ``(rows_a, rows_b, scores)``, best first, optionally capped.

        With a cap, pairs are taken best first while both their tweets have fewer than
        ``max_pairs_per_tweet`` pairs.
        """
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.int64)
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0, np.float32)
        # Best score first, then one row per key.
        order = np.lexsort((-scores, keys))
        keys, scores = keys[order], scores[order]
        first = np.ones(len(keys), bool)
        first[1:] = keys[1:] != keys[:-1]
        self.duplicates = int((~first).sum())
        keys, scores = keys[first], scores[first]
        order = np.argsort(-scores, kind="stable")
        keys, scores = keys[order], scores[order]
        a, b = keys // self.n, keys % self.n
        self.capped = 0
        if max_pairs_per_tweet is not None and len(keys):
            keep = _greedy_cap(a, b, self.n, max_pairs_per_tweet)
            self.capped = int((~keep).sum())
            a, b, scores = a[keep], b[keep], scores[keep]
        return a, b, scores


def _greedy_cap(a: np.ndarray, b: np.ndarray, n: int, cap: int) -> np.ndarray:
    """Mask of the pairs kept when, best first, a pair is taken while both its tweets have
    fewer than ``cap`` pairs taken (one pass over the pairs)."""
    counts = [0] * n
    keep = np.zeros(len(a), bool)
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        if counts[x] < cap and counts[y] < cap:
            keep[i] = True
            counts[x] += 1
            counts[y] += 1
    return keep


# ---------------------------------------------------------------- hashtag (HICL)


@dataclass
class HashtagPairs:
    """Hashtag pairs as tweet row numbers with their altered texts."""

    rows_a: np.ndarray
    rows_b: np.ndarray
    tags: list[str]
    text_a: list[str]
    text_b: list[str]
    stats: dict[str, int] = field(default_factory=dict)


def alter_hashtags(
    text: str, tags: list[str], cfg: HashtagSourceConfig, rng: np.random.Generator, pool: list[str]
) -> str:
    """Removes (or, in ``noise`` mode, sometimes replaces with a random other hashtag from
    ``pool``) every occurrence of ``tags`` in ``text``."""
    lowered = {t.lower() for t in tags}
    candidates = [p for p in pool if p not in lowered]

    def sub() -> str:
        if cfg.text_mode == "noise" and candidates and rng.random() < cfg.noise_prob:
            return "#" + candidates[int(rng.integers(len(candidates)))]
        return ""

    return remove_hashtags(text, tags, sub)


def _sample_pairs(m: int, cap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``cap`` distinct unordered index pairs out of ``m`` items (all when they fit)."""
    total = m * (m - 1) // 2
    if total <= cap:
        i, j = np.triu_indices(m, 1)
        return i.astype(np.int64), j.astype(np.int64)
    keys = np.zeros(0, np.int64)
    while len(keys) < cap:
        need = int((cap - len(keys)) * 1.3) + 8
        i = rng.integers(0, m, need)
        j = rng.integers(0, m, need)
        ok = i != j
        lo, hi = np.minimum(i[ok], j[ok]), np.maximum(i[ok], j[ok])
        keys = np.unique(np.concatenate([keys, lo * m + hi]))
    keys = rng.permutation(keys)[:cap]
    return keys // m, keys % m


def hashtag_pairs(
    texts: Sequence[str],
    hashtags: Sequence[list[str] | None],
    cfg: HashtagSourceConfig,
    rng: np.random.Generator,
) -> HashtagPairs:
    """Pairs of tweets sharing a frequent hashtag, with the shared hashtags taken out.

    Args:
        texts: Tweet texts (row order); only the paired rows are read.
        hashtags: Each tweet's hashtags (lower-case, no '#'); walked once, then only the
            paired rows are read.
        cfg: Hashtag source settings.
        rng: The stage's seeded generator.

    Returns:
        The pairs, deduplicated across hashtags (a pair sharing two frequent hashtags appears
        once, both removed), with counts in ``stats``.
    """
    by_tag: dict[str, list[int]] = {}
    for row, tags in enumerate(hashtags):
        for t in set(tags or ()):
            by_tag.setdefault(t, []).append(row)
    frequent = sorted(t for t, rows in by_tag.items() if len(rows) >= cfg.min_hashtag_count)
    n = len(texts)
    seen: set[int] = set()
    rows_a: list[int] = []
    rows_b: list[int] = []
    tags_out: list[str] = []
    for tag in frequent:
        members = np.asarray(by_tag[tag], np.int64)
        i, j = _sample_pairs(len(members), cfg.max_pairs_per_hashtag, rng)
        for a, b in zip(members[i].tolist(), members[j].tolist(), strict=True):
            key = min(a, b) * n + max(a, b)
            if key in seen:
                continue
            seen.add(key)
            rows_a.append(a)
            rows_b.append(b)
            tags_out.append(tag)
    freq_set = set(frequent)
    text_a: list[str] = []
    text_b: list[str] = []
    keep: list[int] = []
    empty = 0
    for idx, (a, b) in enumerate(zip(rows_a, rows_b, strict=True)):
        # The two rows' tags, read for this pair only: no set per tweet is kept.
        shared = sorted(set(hashtags[a] or ()) & set(hashtags[b] or ()) & freq_set)
        ta = alter_hashtags(texts[a], shared, cfg, rng, frequent)
        tb = alter_hashtags(texts[b], shared, cfg, rng, frequent)
        if not ta or not tb:
            empty += 1
            continue
        keep.append(idx)
        text_a.append(ta)
        text_b.append(tb)
    stats = {
        "hashtags_seen": len(by_tag),
        "hashtags_frequent": len(frequent),
        "pairs_sampled": len(rows_a),
        "dropped_empty_text": empty,
    }
    ka = np.asarray(rows_a, np.int64)[keep] if keep else np.zeros(0, np.int64)
    kb = np.asarray(rows_b, np.int64)[keep] if keep else np.zeros(0, np.int64)
    return HashtagPairs(ka, kb, [tags_out[i] for i in keep], text_a, text_b, stats)


# ---------------------------------------------------------------- translation (TPP)


@dataclass
class TranslationPairs:
    """Parallel tweets read from a file."""

    text_a: list[str]
    text_b: list[str]
    lang_a: list[str]
    lang_b: list[str]
    invalid: dict[str, int]
    rows_read: int


def read_parallel(uri: str, max_pairs: int | None = None) -> TranslationPairs:
    """Reads a parallel-tweets JSONL file ``{text_a, lang_a, text_b, lang_b}`` (local or gs://).

    Rows that are not JSON objects or lack a non-empty ``text_a``/``text_b`` are counted by
    reason (and the first few logged with file and line), not kept.

    Raises:
        FileNotFoundError: The file does not exist (message names it).
        ValueError: Not one row of the file is valid.
    """
    out = TranslationPairs([], [], [], [], {}, 0)
    shown = 0

    def bad(line_no: int, reason: str) -> None:
        nonlocal shown
        out.invalid[reason] = out.invalid.get(reason, 0) + 1
        if shown < 5:
            log.warning("%s:%d: skipped parallel row (%s)", uri, line_no, reason)
            shown += 1

    try:
        ctx = open_uri(uri, "rb")
        f = ctx.__enter__()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{uri}: parallel-tweets file not found") from e
    try:
        for line_no, raw in enumerate(f, start=1):
            if max_pairs is not None and len(out.text_a) >= max_pairs:
                break
            if not raw.strip():
                continue
            out.rows_read += 1
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad(line_no, "not_json")
                continue
            if not isinstance(row, dict):
                bad(line_no, "not_an_object")
                continue
            ta, tb = row.get("text_a"), row.get("text_b")
            if (
                not isinstance(ta, str)
                or not isinstance(tb, str)
                or not ta.strip()
                or not tb.strip()
            ):
                bad(line_no, "missing_text")
                continue
            out.text_a.append(normalise_text(ta))
            out.text_b.append(normalise_text(tb))
            out.lang_a.append(str(row.get("lang_a") or "und"))
            out.lang_b.append(str(row.get("lang_b") or "und"))
    finally:
        ctx.__exit__(None, None, None)
    if out.rows_read and not out.text_a:
        raise ValueError(
            f"{uri}: no valid parallel-tweets row (expected JSON objects with non-empty "
            f"'text_a' and 'text_b'; invalid by reason: {out.invalid})"
        )
    return out


# ---------------------------------------------------------------- mixing


def allocate(
    available: Mapping[str, int], weights: Mapping[str, float], total: int | None
) -> dict[str, int]:
    """How many pairs each source contributes to the final set.

    With ``total``: shares proportional to the weights; a source with fewer pairs than its
    share gives all it has and the rest is spread over the others by weight (water-filling).
    Without: every ``social`` pair, and ``weight / social weight x social count`` of each other
    source (all of them when there are no social pairs).

    Args:
        available: Pairs each source has.
        weights: Weight of each source (0 = not used).
        total: Final set size, or None.

    Returns:
        Pairs to take per source (never more than available).
    """
    take = {s: 0 for s in available}
    if total is None:
        n_social = available.get("social", 0)
        w_social = weights.get("social", 0.0)
        for s, n in available.items():
            w = weights.get(s, 0.0)
            if s == "social":
                take[s] = n if w > 0 else 0
            elif w <= 0:
                take[s] = 0
            elif n_social == 0 or w_social <= 0:
                take[s] = n  # nothing to size against: the other sources are all there is
            else:
                take[s] = min(n, math.floor(w / w_social * n_social))
        return take
    active = {s for s, n in available.items() if n > 0 and weights.get(s, 0.0) > 0}
    remaining = total
    while active:
        w_sum = sum(weights[s] for s in active)
        share = {s: remaining * weights[s] / w_sum for s in active}
        short = {s for s in active if available[s] <= share[s]}
        if not short:
            floors = {s: math.floor(share[s]) for s in active}
            left = remaining - sum(floors.values())
            for s in sorted(active, key=lambda s: share[s] - floors[s], reverse=True)[:left]:
                floors[s] += 1
            take.update(floors)
            break
        for s in short:
            take[s] = available[s]
            remaining -= available[s]
        active -= short
    return take
