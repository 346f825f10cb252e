"""Language re-sampling, as in XLM-R and TwHIN-BERT: languages drawn by frequency**alpha.

A language of share ``f_l`` is drawn with probability ``q_l = f_l^alpha / sum_k f_k^alpha``
(alpha 0.7 in the paper): rare languages up, frequent ones down. A stream does it by giving
each row of language ``l`` an expected number of copies ``r_l = M q_l / n_l`` (``n_l`` rows
of ``l``, ``M`` the size wanted, by default the input's): ``floor(r_l)`` copies plus one more
with probability ``frac(r_l)`` (:func:`draw_copies`), so nothing has to be held in memory.
Used by train_tokenizer (its corpus) and pretrain (tweets in stage 1, pairs in stage 2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from twhin_bert.common import schemas

#: The language of a row whose language is unknown.
UNKNOWN = "und"


def count_languages(path: str | Path) -> Counter[str]:
    """Tweets per language of a tweets Parquet (reads only the ``lang`` column).

    Args:
        path: A Parquet of schema ``tweets`` (``Ingested(folder).tweets_path()``).

    Returns:
        Rows per language (a null language counts as ``und``).
    """
    f = schemas.check(path, "tweets")
    counts: Counter[str] = Counter()
    for batch in f.iter_batches(columns=["lang"], batch_size=65536):
        vc = pc.value_counts(batch.column(0))
        for item in vc.to_pylist():
            counts[item["values"] or UNKNOWN] += item["counts"]
    return counts


def language_probabilities(counts: Mapping[str, int], alpha: float) -> dict[str, float]:
    """Re-sampling probabilities ``q_l = f_l^alpha / sum_k f_k^alpha`` with ``f_l = n_l / N``.

    Args:
        counts: Rows per language (languages with no rows are ignored).
        alpha: The exponent (1 keeps the natural mix, 0 makes all languages equal).

    Returns:
        Probability per language, summing to 1.

    Raises:
        ValueError: No rows at all.
    """
    total = sum(n for n in counts.values() if n > 0)
    if total == 0:
        raise ValueError("language_probabilities: no rows to re-sample")
    weights = {lang: (n / total) ** alpha for lang, n in counts.items() if n > 0}
    z = sum(weights.values())
    return {lang: w / z for lang, w in weights.items()}


def copy_rates(
    counts: Mapping[str, int], alpha: float, corpus_size: int | None = None
) -> dict[str, float]:
    """Expected copies per row of each language so that the output follows the re-sampling.

    Args:
        counts: Rows per language in the input.
        alpha: Re-sampling exponent.
        corpus_size: Output size ``M`` wanted (None: the input's size, so an epoch keeps its
            length).

    Returns:
        ``r_l = M q_l / n_l`` per language.
    """
    q = language_probabilities(counts, alpha)
    m = sum(n for n in counts.values() if n > 0) if corpus_size is None else corpus_size
    return {lang: m * p / counts[lang] for lang, p in q.items()}


def draw_copies(
    langs: Sequence[str], rates: Mapping[str, float], rng: np.random.Generator
) -> np.ndarray:
    """Copies of each row: ``floor(r_l)`` plus one with probability ``frac(r_l)``.

    Args:
        langs: The language of each row (every one a key of ``rates``).
        rates: :func:`copy_rates`.
        rng: The random stream to draw from (one uniform per row).

    Returns:
        int64 copies per row.
    """
    r = np.fromiter((rates[lang] for lang in langs), dtype=np.float64, count=len(langs))
    return np.floor(r).astype(np.int64) + (rng.random(len(r)) < r % 1.0)
