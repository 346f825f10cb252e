"""Social engagement prediction (the TwHIN-BERT paper's task), frozen encoder.

Protocol, as in the TwHIN-BERT paper, with our documented choices:

- Data: engaged (user, tweet) pairs from the ingest folder, deduplicated over engagement
  types. Users without an embed_graph user embedding are skipped and
  counted; engagements with unknown tweets are dropped and counted.
- Split: *by tweet*, each engagement following its tweet. The split is build_graph's holdout
  (passed on in the embed_graph folder, 0.8/0.1/0.1 by default): valid and test tweets
  were kept out of the graph, hence out of the user embeddings, the mined pairs and stage-2
  training, so neither model has seen their engagements. Without a holdout the engaged tweets
  are split here (``cfg.split_fractions``, seeded), with a warning.
- Model: ``h_u = W_uᵀ e_u``, ``h_t = W_tᵀ e_t`` (both linear, to 128-d, no bias),
  ``P(t|u) = σ(h_uᵀ h_t)``. User and tweet features are z-scored with train statistics first
  (the frozen encoders' features have arbitrary scale; this makes one LR fit every model).
- Loss: negative sampling, ``-log σ(s⁺) - Σ log σ(-s⁻)`` with ``negatives`` tweets per positive
  drawn from train tweets ∝ (train engagement count)^0.75; Adam, LR 1e-3, batch 512; up to
  ``epochs`` epochs, stopping after ``patience`` epochs without a better validation HITS@k;
  the epoch with the best validation HITS@k is kept.
- Test: each test user (≥1 engagement with a test tweet) gets one of its engaged test tweets
  (seeded) + ``candidates - 1`` random tweets from the pool (the test split by default), never
  a tweet the user engaged with; when the pool is smaller the user gets all of it
  (``mean_candidates`` is reported). HITS@k with random tie-breaking in expectation.
- Seeds: ``seeds`` runs (initialisation, negatives, candidate draws); the median is reported,
  overall, per language of the positive tweet, and as a HITS@k curve.
- Floors on the same candidates: random (k / n), popularity (leave-one-out engagement count of
  each candidate within the evaluated split — transductive, hence a strong floor) and the same
  projection model over TF-IDF (char 2-4-gram, SVD-reduced) tweet vectors.
- References, on demo data only (its planted topics): the same projection model over the
  planted topic and over the topic a supervised classifier reads from the text
  (:func:`planted_topic_references`): how much room the data leaves above the models.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twhin_bert.common.artifacts import HOLDOUT_FILE, GraphEmbeddings, Ingested
from twhin_bert.common.metrics import hits_key
from twhin_bert.common.ranking import hits_at, positive_ranks
from twhin_bert.common.splits import TEST, TRAIN, VALID
from twhin_bert.evaluate.config import EngagementConfig
from twhin_bert.evaluate.features import zscore
from twhin_bert.evaluate.results import Score, TaskResult
from twhin_bert.evaluate.sample import read_engagements, read_tweets

log = logging.getLogger(__name__)


class EngagementDataError(ValueError):
    """Inputs of the engagement task that do not fit together (names the file)."""


@dataclass
class EngagementData:
    """Engaged pairs as indices into ``tweet_ids`` / ``user_ids``, and the tweet split."""

    tweet_ids: np.ndarray
    texts: list[str]
    langs: np.ndarray
    split: np.ndarray  # per tweet: TRAIN / VALID / TEST
    user_ids: np.ndarray
    user_emb: np.ndarray
    pairs: np.ndarray  # [n, 2] (user index, tweet index), unique
    counts: dict[str, Any] = field(default_factory=dict)


def split_by_tweet(n_tweets: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Assigns each of ``n_tweets`` tweets to TRAIN / VALID / TEST in the given fractions (seeded).

    Returns:
        ``int8[n_tweets]`` split ids; exactly ``round(f_train * n)`` train and
        ``round(f_val * n)`` validation tweets, the rest test.
    """
    rng = np.random.default_rng([seed, 11])
    perm = rng.permutation(n_tweets)
    n_tr = round(fractions[0] * n_tweets)
    n_va = round(fractions[1] * n_tweets)
    out = np.full(n_tweets, TEST, dtype=np.int8)
    out[perm[:n_tr]] = TRAIN
    out[perm[n_tr : n_tr + n_va]] = VALID
    return out


def load_engagement_data(
    ingested: Path,
    graph_embeddings: Path,
    cfg: EngagementConfig,
    seed: int,
    max_tweets: int | None = None,
) -> EngagementData:
    """Reads the ingest and embed_graph folders and splits the engaged tweets by tweet.

    ``max_tweets`` caps the tweets read (evaluate's ``max_tweets``: a seeded sample by hash
    of the id, with only their engagements, in bounded memory; :mod:`.sample`).
    """
    ingest, graph = Ingested(ingested), GraphEmbeddings(graph_embeddings)
    tweet_table = read_tweets(ingest, ["tweet_id", "text", "lang"], max_tweets, seed)
    sampled = tweet_table.column("tweet_id").combine_chunks() if max_tweets else None
    tweets = tweet_table.to_pandas()
    eng = read_engagements(ingest, ["user_id", "tweet_id"], sampled).to_pandas()
    ids, vectors = graph.users(mmap=False)
    user_emb = vectors.astype(np.float32, copy=False)
    user_ids = ids.to_numpy(zero_copy_only=False)
    n_raw = len(eng)
    eng = eng.drop_duplicates(["user_id", "tweet_id"])
    counts: dict[str, Any] = {"engagements": n_raw, "engaged_pairs": len(eng)}
    if max_tweets is not None:
        counts["tweets_sampled"] = len(tweets)
    tweet_index = {t: i for i, t in enumerate(tweets["tweet_id"])}
    user_index = {u: i for i, u in enumerate(user_ids)}
    t_idx = eng["tweet_id"].map(tweet_index)
    u_idx = eng["user_id"].map(user_index)
    counts["pairs_unknown_tweet"] = int(t_idx.isna().sum())
    no_user = u_idx.isna() & t_idx.notna()
    counts["pairs_user_without_embedding"] = int(no_user.sum())
    counts["users_without_embedding"] = int(eng.loc[u_idx.isna(), "user_id"].nunique())
    ok = t_idx.notna() & u_idx.notna()
    pairs_all = np.stack([u_idx[ok].to_numpy(np.int64), t_idx[ok].to_numpy(np.int64)], axis=1)
    if pairs_all.shape[0] == 0:
        raise EngagementDataError(
            f"{ingest.engagements_path()}: no engagement joins a tweet of {ingest.tweets_path()} "
            f"and a user of {graph.table(graph.USERS).ids_path}"
        )
    # Keep the engaged tweets only, renumbered.
    used = np.unique(pairs_all[:, 1])
    remap = np.full(len(tweets), -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    pairs = np.stack([pairs_all[:, 0], remap[pairs_all[:, 1]]], axis=1)
    sub = tweets.iloc[used]
    rule = graph.holdout()
    if rule is not None:  # build_graph's holdout: test tweets were never in the graph
        split = rule.split(sub["tweet_id"].to_numpy())
        counts["split_source"] = "build_graph holdout"
    else:
        log.warning(
            "%s: no %s; splitting the engaged tweets here, so test tweets may have been in "
            "the graph (and in mined pairs) the models were trained on",
            graph.path,
            HOLDOUT_FILE,
        )
        split = split_by_tweet(used.size, cfg.split_fractions, seed)
        counts["split_source"] = "evaluate (random, not held out of training)"
    counts |= {
        "pairs": int(pairs.shape[0]),
        "tweets": int(used.size),
        "users": int(np.unique(pairs[:, 0]).size),
        **{
            f"tweets_{n}": int((split == s).sum())
            for s, n in ((TRAIN, "train"), (VALID, "val"), (TEST, "test"))
        },
    }
    return EngagementData(
        tweet_ids=sub["tweet_id"].to_numpy(),
        texts=sub["text"].tolist(),
        langs=sub["lang"].to_numpy(),
        split=split,
        user_ids=user_ids,
        user_emb=user_emb,
        pairs=pairs,
        counts=counts,
    )


class NegativeSampler:
    """Draws tweet indices with probability ∝ frequency^power among ``candidates``."""

    def __init__(self, candidates: np.ndarray, freq: np.ndarray, power: float) -> None:
        w = np.asarray(freq, dtype=np.float64) ** power
        if w.sum() <= 0:
            raise ValueError("negative sampler: all weights are zero")
        self.candidates = np.asarray(candidates)
        self.p = w / w.sum()
        self._cdf = np.cumsum(self.p)

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """``size`` draws (with replacement)."""
        u = rng.random(size)
        pos = np.minimum(np.searchsorted(self._cdf, u, side="right"), self.candidates.size - 1)
        return self.candidates[pos]


#: A padding candidate's score: float32, so float32 score arrays stay float32.
NEG_INF = np.float32(-np.inf)


@dataclass
class EvalSet:
    """Candidates per evaluated user; column 0 is the positive, -1 pads short rows."""

    users: np.ndarray
    candidates: np.ndarray  # [n_users, n_cand] tweet indices, -1 = padding
    langs: np.ndarray  # language of each user's positive tweet
    popularity: np.ndarray  # [n_users, n_cand] leave-one-out popularity scores (padding -inf)


def build_eval_set(
    data: EngagementData, which: int, cfg: EngagementConfig, rng: np.random.Generator
) -> EvalSet:
    """One positive per user of split ``which`` + up to ``candidates - 1`` random negatives,
    for at most ``cfg.max_users`` users (a seeded sample)."""
    in_split = data.split[data.pairs[:, 1]] == which
    pairs = data.pairs[in_split]
    pool = (
        np.flatnonzero(data.split == which)
        if cfg.candidate_pool == "split"
        else np.arange(data.split.size)
    )
    engaged: dict[int, set[int]] = {}
    for u, t in data.pairs:
        engaged.setdefault(int(u), set()).add(int(t))
    split_count = np.bincount(pairs[:, 1], minlength=data.split.size).astype(np.float64)
    users = np.unique(pairs[:, 0])
    if cfg.max_users is not None and users.size > cfg.max_users:  # bounded rows (config)
        users = np.sort(rng.choice(users, cfg.max_users, replace=False))
    order = rng.permutation(pairs.shape[0])  # random positive per user: first in shuffled order
    first: dict[int, int] = {}
    for i in order:
        first.setdefault(int(pairs[i, 0]), int(pairs[i, 1]))
    n_neg = cfg.candidates - 1
    # users x candidates is the largest array of the task: int32 rows (tweet rows fit), no
    # wider than the pool can fill (a positive and negatives from the pool, or from all)
    width = min(n_neg + 1, pool.size + 1)
    cand = np.full((users.size, width), -1, dtype=np.int32)
    for r, u in enumerate(users):
        pos = first[int(u)]
        mine = engaged[int(u)]
        cand[r, 0] = pos
        if pool.size <= 4 * n_neg + len(mine):
            avail = np.fromiter((t for t in pool if int(t) not in mine), dtype=np.int64)
            negs = rng.choice(avail, size=min(n_neg, avail.size), replace=False)
        else:  # rejection sampling from a large pool
            got: list[int] = []
            seen: set[int] = set()
            while len(got) < n_neg:
                for t in rng.choice(pool, size=2 * n_neg):
                    t = int(t)
                    if t not in mine and t not in seen:
                        seen.add(t)
                        got.append(t)
                        if len(got) == n_neg:
                            break
            negs = np.asarray(got, dtype=np.int64)
        negs = negs[: width - 1]
        cand[r, 1 : 1 + negs.size] = negs
    cand = cand[
        :, : int((cand >= 0).sum(1).max(initial=1))
    ]  # drop all-padding columns (small pools)
    # counts are integers: float32 holds them exactly (up to 2^24), so ties stay ties
    pop = np.where(cand >= 0, split_count.astype(np.float32)[np.maximum(cand, 0)], NEG_INF)
    pop[:, 0] -= 1.0  # leave the user's own engagement out
    return EvalSet(users=users, candidates=cand, langs=data.langs[cand[:, 0]], popularity=pop)


def _ranks(scores: np.ndarray, ev: EvalSet) -> tuple[np.ndarray, np.ndarray]:
    s = np.where(ev.candidates >= 0, scores, NEG_INF)
    return positive_ranks(s, np.zeros(s.shape[0], dtype=np.int64))


def _train_projection(
    xu: np.ndarray,
    xt: np.ndarray,
    data: EngagementData,
    val: EvalSet,
    cfg: EngagementConfig,
    seed: int,
) -> tuple[Any, list[dict[str, float]]]:
    """Trains W_u, W_t; returns the best-on-validation model and the per-epoch curve.

    Runs on one CPU thread: the model is two small matrices, and thread start-up costs more
    than these matmuls on a shared machine.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_projection_inner(xu, xt, data, val, cfg, seed)
    finally:
        torch.set_num_threads(threads)


def _train_projection_inner(
    xu: np.ndarray,
    xt: np.ndarray,
    data: EngagementData,
    val: EvalSet,
    cfg: EngagementConfig,
    seed: int,
) -> tuple[Any, list[dict[str, float]]]:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 5])
    wu = torch.nn.Linear(xu.shape[1], cfg.dim, bias=False)
    wt = torch.nn.Linear(xt.shape[1], cfg.dim, bias=False)
    model = torch.nn.ModuleDict({"user": wu, "tweet": wt})
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    XU, XT = torch.from_numpy(xu), torch.from_numpy(xt)
    train = data.pairs[data.split[data.pairs[:, 1]] == TRAIN]
    train_tweets = np.flatnonzero(data.split == TRAIN)
    freq = np.bincount(train[:, 1], minlength=data.split.size)[train_tweets]
    sampler = NegativeSampler(train_tweets[freq > 0], freq[freq > 0], cfg.negative_power)
    logsig = torch.nn.functional.logsigmoid
    best_state, best_val, best_epoch, curve = None, -1.0, 0, []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, n = 0.0, 0
        shuffled = train[rng.permutation(train.shape[0])]
        for i in range(0, shuffled.shape[0], cfg.batch_size):
            batch = shuffled[i : i + cfg.batch_size]
            neg = torch.from_numpy(sampler.sample((batch.shape[0], cfg.negatives), rng))
            hu = wu(XU[torch.from_numpy(batch[:, 0])])  # [B, d]
            # h_uᵀ (W_t e_t) = (W_tᵀ h_u)ᵀ e_t: one projection back per user instead of one
            # projection per candidate tweet (1 + K of them), the same scores for a tenth of
            # the arithmetic
            q = hu @ wt.weight  # [B, tweet features]
            s_pos = (q * XT[torch.from_numpy(batch[:, 1])]).sum(-1)
            s_neg = torch.einsum("bf,bkf->bk", q, XT[neg])
            loss = -(logsig(s_pos) + logsig(-s_neg).sum(-1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * batch.shape[0]
            n += batch.shape[0]
        val_hits = _evaluate(model, XU, XT, val, [cfg.k])[0][0]
        curve.append({"epoch": epoch, "loss": total / max(n, 1), "val_hits": float(val_hits)})
        if val_hits > best_val or best_state is None:  # NaN-safe: the first epoch always counts
            best_val, best_state, best_epoch = val_hits, copy.deepcopy(model.state_dict()), epoch
        elif cfg.patience is not None and epoch - best_epoch >= cfg.patience:
            break
    model.load_state_dict(best_state)
    return model, curve


#: Users scored at once against the evaluated tweets (bounds the score block's memory).
SCORE_BLOCK_USERS = 1024


def _evaluate(
    model: Any, XU: Any, XT: Any, ev: EvalSet, ks: list[int]
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    import torch

    model.eval()
    used = np.unique(ev.candidates[ev.candidates >= 0])
    pos = np.zeros(XT.shape[0], dtype=np.int64)
    pos[used] = np.arange(used.size)
    cols = pos[np.maximum(ev.candidates, 0)]  # each candidate's column among the used tweets
    # float32: the projections' dot products are float32, so nothing is lost
    scores = np.empty(ev.candidates.shape, dtype=np.float32)
    with torch.no_grad():
        hu = model["user"](XU[torch.from_numpy(ev.users)])
        ht_used = model["tweet"](XT[torch.from_numpy(used)])  # each candidate tweet once
        # A block of users at a time: [users, distinct candidates] whole would grow with
        # users x tweets (1.6 GB of float64 at 100x the demo) for the few it keeps per user.
        for lo in range(0, ev.users.size, SCORE_BLOCK_USERS):
            block = (hu[lo : lo + SCORE_BLOCK_USERS] @ ht_used.T).float().numpy()
            scores[lo : lo + SCORE_BLOCK_USERS] = np.take_along_axis(
                block, cols[lo : lo + SCORE_BLOCK_USERS], axis=1
            )
    g, t = _ranks(scores, ev)
    return hits_at(g, t, ks), (g, t)


def tfidf_tweet_features(data: EngagementData, dim: int, seed: int) -> np.ndarray:
    """The floor's tweet vectors: TF-IDF (fit on train tweets) through a sparse random
    projection to ``dim`` (Johnson-Lindenstrauss: dot products are kept in expectation; far
    cheaper than an SVD and just as good a floor)."""
    from sklearn.random_projection import SparseRandomProjection

    from twhin_bert.evaluate.classify import tfidf_vectorizer

    train_texts = [t for t, s in zip(data.texts, data.split, strict=True) if s == TRAIN]
    vec = tfidf_vectorizer().fit(train_texts)
    x = vec.transform(data.texts)
    if x.shape[1] <= dim:  # already small: no projection needed
        return np.asarray(x.toarray(), dtype=np.float32)
    proj = SparseRandomProjection(n_components=dim, dense_output=True, random_state=seed).fit(x)
    return np.asarray(proj.transform(x), dtype=np.float32)


#: ``text_topic`` holds log(p + this): an unlikely topic stays finite.
TOPIC_PROBA_FLOOR = 1e-3
#: Folds of the cross-fitted topic classifier behind ``text_topic``.
TOPIC_FOLDS = 5


def planted_topic_references(
    data: EngagementData, truth: str, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reference tweet vectors from demo data's planted topics: how much room the data leaves
    above the models.

    - ``planted_topic``: the one-hot planted topic, beside the one-hot language (knows what no
      text says: an upper reference).
    - ``text_topic``: the log-probabilities of the planted topic that a logistic regression
      reads from the text (the TF-IDF floor's n-grams), fit on the train tweets' planted
      topics, beside the one-hot language. Each train tweet's probabilities come from the
      fold that did not see it (:data:`TOPIC_FOLDS` folds), so the projection model does not
      learn from remembered labels. Not a bound (a better classifier may read more), but what a
      supervised reading of the topic gets.

    Args:
        data: From :func:`load_engagement_data`.
        truth: The demo's planted-topics Parquet (``tweet_id``, ``topic``).
        seed: Seed of the folds.

    Returns:
        The reference vectors by name, and counts for ``info``: the planted topics and the
        share of held-out (validation and test) tweets whose topic the classifier reads right.

    Raises:
        EngagementDataError: An engaged tweet without a planted topic (the truth file is
            not from the same demo data), or train tweets of fewer than 2 topics.
    """
    import warnings

    import pyarrow as pa
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from twhin_bert.demo_data.truth import topic_codes
    from twhin_bert.evaluate.classify import tfidf_vectorizer

    topic = topic_codes(truth, pa.array(data.tweet_ids.astype(str), pa.string()))
    unknown = np.flatnonzero(topic < 0)
    if unknown.size:
        raise EngagementDataError(
            f"{truth}: no planted topic for {unknown.size} of {topic.size} engaged tweets "
            f"(first: {str(data.tweet_ids[unknown[0]])!r}); expected the truth of the same "
            "demo data"
        )
    _, topic = np.unique(topic, return_inverse=True)
    lang_names, lang = np.unique(data.langs.astype(str), return_inverse=True)
    lang_1hot = np.eye(lang_names.size, dtype=np.float32)[lang]
    train = np.flatnonzero(data.split == TRAIN)
    cols = np.unique(topic[train])  # topics with no train tweet keep probability 0
    if cols.size < 2 or train.size < TOPIC_FOLDS:
        raise EngagementDataError(
            f"{truth}: {train.size} train tweets of {cols.size} planted topic(s); the text_topic "
            f"reference needs at least {TOPIC_FOLDS} tweets of 2 topics"
        )
    x = tfidf_vectorizer().fit(np.asarray(data.texts, dtype=object)[train]).transform(data.texts)
    clf = LogisticRegression(max_iter=2000)
    proba = np.zeros((topic.size, int(topic.max()) + 1), dtype=np.float64)
    proba[:, cols] = clf.fit(x[train], topic[train]).predict_proba(x)
    folds = StratifiedKFold(TOPIC_FOLDS, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a topic with fewer train tweets than folds is fine
        warnings.simplefilter("ignore", UserWarning)
        proba[np.ix_(train, cols)] = cross_val_predict(
            clf, x[train], topic[train], cv=folds, method="predict_proba"
        )
    topic_1hot = np.eye(proba.shape[1], dtype=np.float32)[topic]
    text_topic = np.log(proba + TOPIC_PROBA_FLOOR).astype(np.float32)
    held_out = data.split != TRAIN
    info = {
        "planted_topics": int(proba.shape[1]),
        "text_topic_accuracy": float((proba[held_out].argmax(1) == topic[held_out]).mean())
        if held_out.any()
        else None,
    }
    refs = {
        "planted_topic": np.hstack([topic_1hot, lang_1hot]),
        "text_topic": np.hstack([text_topic, lang_1hot]),
    }
    return refs, info


def _summarise(
    results: list[dict[str, Any]], cfg: EngagementConfig, langs: list[np.ndarray]
) -> Score:
    """Median over seeds of HITS@k, the curve and per-language HITS@k."""
    ks = list(range(1, cfg.curve_max_k + 1))
    curves = np.stack([r["curve"] for r in results])
    by_lang: dict[str, float] = {}
    for lang in sorted(set(np.concatenate(langs).tolist())):
        vals = [
            float(hits_at(r["g"][lg == lang], r["t"][lg == lang], [cfg.k])[0])
            for r, lg in zip(results, langs, strict=True)
            if (lg == lang).sum() >= cfg.min_users_per_lang
        ]
        if vals:
            by_lang[lang] = float(np.median(vals))
    trained = "train_curve" in results[0]
    return Score(
        value=float(np.median([r["curve"][cfg.k - 1] for r in results])),
        seeds=[float(r["curve"][cfg.k - 1]) for r in results],
        by_lang=by_lang,
        curve={str(k): float(v) for k, v in zip(ks, np.median(curves, axis=0), strict=True)},
        training=results[0]["train_curve"] if trained else None,
        best_epochs=[int(np.argmax([c["val_hits"] for c in r["train_curve"]]) + 1) for r in results]
        if trained
        else [],
    )


def run_engagement(
    data: EngagementData,
    tweet_features: Mapping[str, np.ndarray],
    cfg: EngagementConfig,
    seed: int,
    references: Mapping[str, np.ndarray] | None = None,
) -> TaskResult:
    """Trains and tests the projection model on each feature set, plus the floors.

    Args:
        data: From :func:`load_engagement_data`.
        tweet_features: ``name -> [n_tweets, d]`` tweet features aligned with ``data.texts``
            (the models' Combined embeddings; ``tfidf`` is added here as a floor).
        cfg: Engagement settings.
        seed: Base seed (seed ``s`` of the run uses ``seed + s``).
        references: Reference tweet vectors scored the same way but kept apart from the
            models and floors (:func:`planted_topic_references`; demo data only).

    Returns:
        The task: HITS@k of each feature set (seeds, per language, curve, training curve),
        of the floors ``random``, ``popularity`` and ``tfidf`` on the same candidates and of
        the references; ``info`` holds the counts.
    """
    references = dict(references or {})
    clash = set(references) & {*tweet_features, "tfidf", "popularity", "random"}
    if clash:
        raise ValueError(f"reference names {sorted(clash)} are taken by models or floors")
    feats = dict(tweet_features)
    feats["tfidf"] = tfidf_tweet_features(data, cfg.tfidf_dim, seed)
    feats |= references
    train_mask = data.split[data.pairs[:, 1]] == TRAIN
    train_users = np.unique(data.pairs[train_mask, 0])
    ks = list(range(1, cfg.curve_max_k + 1))
    raw: dict[str, list[dict[str, Any]]] = {n: [] for n in [*feats, "popularity", "random"]}
    test_langs: list[np.ndarray] = []
    n_users = n_cands = 0
    for s in range(cfg.seeds):
        rng = np.random.default_rng([seed + s, 3])
        val = build_eval_set(data, VALID, cfg, rng)
        test = build_eval_set(data, TEST, cfg, rng)
        for which, ev in (("validation", val), ("test", test)):
            if ev.users.size == 0:
                raise EngagementDataError(
                    f"no {which} users: {data.counts.get('tweets', 0)} engaged tweets are too few for "
                    f"a {cfg.split_fractions} split by tweet"
                )
        test_langs.append(test.langs)
        n_users, n_cands = test.users.size, float((test.candidates >= 0).sum(1).mean())
        for name, xt_raw in feats.items():
            import torch

            train_tweets = np.flatnonzero(data.split == TRAIN)
            (_, xt) = zscore(xt_raw[train_tweets], xt_raw)
            (_, xu) = zscore(data.user_emb[train_users], data.user_emb)
            model, curve = _train_projection(xu, xt, data, val, cfg, seed + s)
            curve_vals, (g, t) = _evaluate(
                model, torch.from_numpy(xu), torch.from_numpy(xt), test, ks
            )
            raw[name].append({"curve": curve_vals, "g": g, "t": t, "train_curve": curve})
            log.info("engagement %s seed %d: HITS@%d %.4f", name, s, cfg.k, curve_vals[cfg.k - 1])
        g, t = positive_ranks(test.popularity, np.zeros(test.users.size, dtype=np.int64))
        raw["popularity"].append({"curve": hits_at(g, t, ks), "g": g, "t": t})
        const = np.where(test.candidates >= 0, 0.0, -np.inf)
        g, t = positive_ranks(const, np.zeros(test.users.size, dtype=np.int64))
        raw["random"].append({"curve": hits_at(g, t, ks), "g": g, "t": t})
    summary = {n: _summarise(r, cfg, test_langs) for n, r in raw.items()}
    return TaskResult(
        name="engagement",
        kind="engagement",
        metric=hits_key(cfg.k),
        models={n: summary[n] for n in tweet_features},
        floors={n: summary[n] for n in ("tfidf", "popularity", "random")},
        references={n: summary[n] for n in references},
        info=data.counts | {"test_users": int(n_users), "mean_candidates": n_cands},
    )
