"""Hashtag prediction (the TwHIN-BERT paper's hashtag task): per language, the most frequent hashtags are the classes;
tweets carrying exactly one of them are the examples, with that hashtag removed from the text.

Languages with too few usable tweets (or fewer than two classes left) are skipped and counted.
Scores are macro-F1 per language; the task's headline is their unweighted mean.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twhin_bert.common import holdout
from twhin_bert.common.splits import TRAIN, VALID
from twhin_bert.common.text import remove_hashtags
from twhin_bert.evaluate.benchmarks import score_splits
from twhin_bert.evaluate.classify import Splits
from twhin_bert.evaluate.config import EvaluateConfig, HashtagConfig
from twhin_bert.evaluate.features import FrozenEncoder
from twhin_bert.evaluate.results import Score, TaskResult

log = logging.getLogger(__name__)

METRIC = "macro_f1"


def remove_hashtag(text: str, tag: str) -> str:
    """``text`` without its ``#tag`` occurrences (case-insensitive, whole hashtag only), the
    hashtag rule of ingest's extraction (:func:`twhin_bert.common.text.remove_hashtags`)."""
    return remove_hashtags(text, [tag.lstrip("#")])


def build_hashtag_sets(
    tweets: pd.DataFrame, cfg: HashtagConfig, seed: int, rule: holdout.Holdout | None = None
) -> tuple[dict[str, Splits], dict[str, Any]]:
    """Builds the per-language hashtag classification sets.

    Args:
        tweets: Columns ``text``, ``lang``, ``hashtags`` (list of hashtags without '#'), and
            ``tweet_id`` when ``rule`` is given.
        cfg: Hashtag settings.
        seed: Drives the cap sample and the split.
        rule: build_graph's holdout: when given, its valid/test tweets (never in a mined
            pair) are the validation/test sets and the rest is train; ``cfg.split_fractions`` is unused.

    Returns:
        ``(sets, stats)``: ``sets[lang]`` train/val/test splits (labels = hashtag ids, names =
        hashtags); ``stats`` with ``skipped`` ({lang: reason}) and per-language counts.
    """
    sets: dict[str, Splits] = {}
    skipped: dict[str, str] = {}
    counts: dict[str, dict[str, int]] = {}
    for lang in sorted(tweets["lang"].unique()):
        if lang in cfg.skip_langs:
            continue
        sub = tweets[tweets["lang"] == lang]
        # ingest stored them lower-cased, without '#' (common.text.extract_hashtags)
        tag_lists = [sorted({t.lstrip("#").lower() for t in tags}) for tags in sub["hashtags"]]
        freq = Counter(t for tags in tag_lists for t in tags)
        top = {t for t, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.top_n]}
        texts: list[str] = []
        labels: list[str] = []
        sides: list[int] = []
        side_of = (
            rule.split(sub["tweet_id"].to_numpy()) if rule is not None else np.zeros(len(sub), int)
        )
        multi = empty = 0
        for text, tags, side in zip(sub["text"], tag_lists, side_of, strict=True):
            hit = [t for t in tags if t in top]
            if len(hit) != 1:
                multi += len(hit) > 1
                continue
            clean = remove_hashtag(text, hit[0])
            if not clean:
                empty += 1
                continue
            texts.append(clean)
            labels.append(hit[0])
            sides.append(int(side))
        per_class = Counter(labels)
        keep = {t for t, c in per_class.items() if c >= cfg.min_tweets_per_hashtag}
        pairs = [(x, y, side) for x, y, side in zip(texts, labels, sides, strict=True) if y in keep]
        counts[lang] = {
            "tweets": len(sub),
            "with_one_frequent_hashtag": len(texts),
            "with_several": multi,
            "empty_after_removal": empty,
            "usable": len(pairs),
            "classes": len(keep),
        }
        if len(pairs) < cfg.min_examples or len(keep) < 2:
            skipped[lang] = (
                f"{len(pairs)} usable tweets in {len(keep)} classes (need {cfg.min_examples} and 2)"
            )
            continue
        rng = np.random.default_rng([seed, 29, len(sets)])
        order = rng.permutation(len(pairs))[: cfg.max_examples_per_lang]
        names = [
            t
            for t, _ in sorted(
                Counter(y for _, y, _ in pairs).items(), key=lambda kv: (-kv[1], kv[0])
            )
        ]
        ids = {t: i for i, t in enumerate(names)}
        if rule is not None:  # the holdout decides: train, then valid, then test tweets
            order = order[np.argsort([pairs[i][2] for i in order], kind="stable")]
            n_tr = sum(pairs[i][2] == TRAIN for i in order)
            n_va = sum(pairs[i][2] == VALID for i in order)
        else:
            n_tr = round(cfg.split_fractions[0] * len(order))
            n_va = round(cfg.split_fractions[1] * len(order))
        if min(n_tr, n_va, len(order) - n_tr - n_va) == 0:
            skipped[lang] = (
                f"an empty split (train/valid/test {n_tr}/{n_va}/{len(order) - n_tr - n_va})"
            )
            continue
        x = [pairs[i][0] for i in order]
        y = np.array([ids[pairs[i][1]] for i in order], dtype=np.int64)
        sets[lang] = Splits(
            x[:n_tr],
            y[:n_tr],
            x[n_tr : n_tr + n_va],
            y[n_tr : n_tr + n_va],
            x[n_tr + n_va :],
            y[n_tr + n_va :],
            names,
        )
    return sets, {"skipped": skipped, "by_lang": counts}


def paired_bootstrap_delta(
    by_lang: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], resamples: int, seed: int
) -> dict[str, Any]:
    """The headline difference (mean over languages of macro-F1, model a minus model b) and
    its paired bootstrap interval: each resample draws every language's test tweets with
    replacement and scores both models' predictions on the same draw.

    Args:
        by_lang: ``lang -> (y_true, y_pred_a, y_pred_b)`` on that language's test tweets.
        resamples: Bootstrap resamples.
        seed: Seed of the draws.

    Returns:
        ``delta_points`` (on the full test sets), ``ci95_points`` ([2.5%, 97.5%]),
        ``se_points``, ``resamples`` and ``test_tweets``; differences in points (x100).
    """
    from twhin_bert.evaluate.scoring import classification_score

    def headline(draw: Mapping[str, np.ndarray]) -> float:
        deltas = [
            classification_score(y[i], a[i], METRIC) - classification_score(y[i], b[i], METRIC)
            for (y, a, b), i in ((by_lang[lang], draw[lang]) for lang in by_lang)
        ]
        return 100.0 * float(np.mean(deltas))

    full = headline({lang: np.arange(len(v[0])) for lang, v in by_lang.items()})
    rng = np.random.default_rng([seed, 31])
    boot = np.array(
        [
            headline({lang: rng.integers(0, len(v[0]), len(v[0])) for lang, v in by_lang.items()})
            for _ in range(resamples)
        ]
    )
    return {
        "delta_points": full,
        "ci95_points": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
        if resamples
        else None,
        "se_points": float(boot.std(ddof=1)) if resamples > 1 else None,
        "resamples": resamples,
        "test_tweets": int(sum(len(v[0]) for v in by_lang.values())),
    }


def run_hashtag(
    tweets: pd.DataFrame,
    *,
    encoders: Mapping[str, FrozenEncoder],
    model_dirs: Mapping[str, Path],
    cfg: EvaluateConfig,
    rule: holdout.Holdout | None = None,
) -> TaskResult:
    """Runs hashtag prediction for every model and the TF-IDF floor.

    Returns:
        The task: per model the primary mode's macro-F1 (mean over languages) with its
        feature-based and fine-tuned variants, per-language values and fine-tuning curves;
        the floor's likewise; ``info`` with ``languages``, ``languages_skipped``, counts and
        the paired candidate-minus-baseline difference.
    """
    sets, stats = build_hashtag_sets(tweets, cfg.hashtag, cfg.seed, rule)
    finetune = cfg.finetune.enabled and "hashtag" in cfg.finetune.tasks
    per_lang_model: dict[str, dict[str, Score]] = {m: {} for m in encoders}
    per_lang_floor: dict[str, Score] = {}
    paired: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for lang, splits in sets.items():
        log.info("hashtag %s: %s, %d classes", lang, splits.counts(), len(splits.label_names))
        pm, floor, preds = score_splits(
            splits,
            metric=METRIC,
            encoders=encoders,
            model_dirs=model_dirs,
            cfg=cfg,
            few_shot=False,
            finetune=finetune,
        )
        for m, r in pm.items():
            per_lang_model[m][lang] = r
        per_lang_floor[lang] = floor
        if cfg.candidate in preds and cfg.baseline in preds:
            y = np.asarray(splits.test_labels)
            paired[lang] = (y, np.asarray(preds[cfg.candidate]), np.asarray(preds[cfg.baseline]))
    models = {m: _over_languages(rows, finetune) for m, rows in per_lang_model.items()}
    floor = _over_languages(per_lang_floor, finetune=False)
    floor.variants = {}
    info = {
        "paired_delta": _paired_delta(paired, cfg),
        "split_source": "build_graph holdout" if rule is not None else "evaluate (random)",
        "languages": len(sets),
        "languages_skipped": len(stats["skipped"]),
        "skipped": stats["skipped"],
        "counts": {lang: s.counts() | {"classes": len(s.label_names)} for lang, s in sets.items()},
        "by_lang": stats["by_lang"],
    }
    return TaskResult("hashtag", "hashtag", METRIC, models, {"tfidf": floor}, info)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _over_languages(rows: Mapping[str, Score], finetune: bool) -> Score:
    """The unweighted mean over languages of the per-language scores (the task's headline)."""
    variants = {
        f"feature_{METRIC}": _mean([r.variants.get(f"feature_{METRIC}") for r in rows.values()])
    }
    if finetune:
        variants[f"finetune_{METRIC}"] = _mean(
            [r.variants.get(f"finetune_{METRIC}") for r in rows.values()]
        )
    return Score(
        value=_mean([r.value for r in rows.values()]),
        by_lang={lang: r.value for lang, r in rows.items() if r.value is not None},
        variants=variants,
        training={lang: r.training for lang, r in rows.items()} if finetune else None,
    )


def _paired_delta(
    paired: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], cfg: EvaluateConfig
) -> dict[str, Any] | None:
    if not (paired and cfg.hashtag.bootstrap):
        return None
    delta = paired_bootstrap_delta(paired, cfg.hashtag.bootstrap, cfg.seed)
    log.info(
        "hashtag macro-F1 %s - %s: %+.2f points (95%% CI %s over %d test tweets)",
        cfg.candidate,
        cfg.baseline,
        delta["delta_points"],
        [round(v, 2) for v in delta["ci95_points"]],
        delta["test_tweets"],
    )
    return delta
