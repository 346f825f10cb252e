"""Deterministic generator of a realistic demo TwHIN: users, tweets, engagements, planted truth.

The planted world, in the order it is drawn from one ``np.random.default_rng(seed)``:

1. Topics (communities) with Zipf-like sizes, in groups of three neighbours (:mod:`.vocab`).
2. Users with a language (skewed, English first), a heavy-tailed (Pareto) authoring weight and
   engagement activity, and interests: 1 to ``max_interests`` topics (the first by topic size,
   the others often from the same group) with Dirichlet weights.
3. Tweets: an author drawn by authoring weight, a topic from the author's interests (or any),
   the author's language (mostly), a time in the window with a daily rhythm, a heavy-tailed
   popularity (author weight x log-normal) and a snowflake id that grows with time.
4. Engagements, one per (user, tweet): a user drawn by activity (capped so that nobody expects
   more than a tenth of all tweets); for a share ``interest_follow`` of them a topic from the
   user's interests and a tweet of that topic (mostly in the user's language) by popularity,
   for the rest any tweet by popularity (noise); a type (fave/retweet/reply/quote) at the
   configured rates; a log-normal delay after the tweet, inside the window. No self-engagement.
5. Text: a sentence per tweet in its language, only weakly topical (generic sentences, phrases
   shared within a topic group or borrowed from a neighbour), hashtags correlated with the
   topic, @mentions, t.co URLs and emoji; translation pairs render one content in two languages.

Everything is vectorised except the per-tweet string assembly; files are written in chunks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from twhin_bert.demo_data import vocab
from twhin_bert.demo_data.config import DemoDataConfig
from twhin_bert.demo_data.folder import DemoFolder

log = logging.getLogger(__name__)

ENGAGEMENT_TYPES = ("fave", "retweet", "reply", "quote")
#: Twitter's snowflake epoch (ms since 1970), so ids grow with time like real tweet ids.
SNOWFLAKE_EPOCH_MS = 1288834974657
#: Share of tweets posted in each UTC hour (a daily rhythm: quiet nights, busy evenings).
DIURNAL = np.array(
    [3, 2, 1.5, 1, 1, 1.2, 2, 3, 4, 4.5, 5, 5, 5.5, 5.5, 5, 5, 5.5, 6, 6.5, 7, 7, 6.5, 5.5, 4.5]
)
#: Probabilities of a topic's hashtags 1-3 and of its localised name as a hashtag.
TOPIC_TAG_P = np.array([0.4, 0.2, 0.15, 0.25])
URL_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CHUNK_ROWS = 200_000
#: Most engagements a single user expects, as a share of all tweets: beyond that a heavy user
#: would exhaust the tweets of their interests and fall back to noise.
MAX_USER_TWEET_SHARE = 0.1
#: Fewest tweets of a topic in a language for users to favour that language within the topic.
MIN_LANG_GROUP = 30


def generate_demo(
    out_dir: Path,
    *,
    users: int = 2000,
    tweets: int = 10000,
    seed: int = 0,
    days: int = 28,
    engagements_per_tweet: float = 10.0,
    parallel_pairs: int = 300,
) -> dict[str, int]:
    """Writes a demo TwHIN into ``out_dir`` (see :func:`generate` for the files).

    Args:
        out_dir: Output folder (created).
        users: Number of users.
        tweets: Number of tweets.
        seed: Seed; the same arguments give byte-identical files.
        days: Length of the time window in days.
        engagements_per_tweet: Mean engagements drawn per tweet (a few duplicates are dropped).
        parallel_pairs: Number of translation pairs in ``parallel.jsonl``.

    Returns:
        Counts: users, tweets, engagements, parallel_pairs, topics, languages, authors,
        engaged_users, engaged_tweets.
    """
    cfg = DemoDataConfig(
        users=users,
        tweets=tweets,
        seed=seed,
        days=days,
        engagements_per_tweet=engagements_per_tweet,
        parallel_pairs=parallel_pairs,
    )
    return generate(cfg, Path(out_dir))


@dataclass
class _World:
    """The planted users, topics and interests (arrays indexed by user / topic / interest row)."""

    topic_group: np.ndarray  # [K] group index of each topic
    topic_pop: np.ndarray  # [K] topic size weights (sum 1)
    user_lang: np.ndarray  # [U] language index
    author_w: np.ndarray  # [U] authoring weight (Pareto)
    activity: np.ndarray  # [U] engagement activity (Pareto)
    int_user: np.ndarray  # [R] interest rows, sorted by user then topic
    int_topic: np.ndarray  # [R]
    int_weight: np.ndarray  # [R] sums to 1 per user
    int_sampler: _GroupSampler


@dataclass
class _Tweets:
    """Tweets sorted by creation time."""

    author: np.ndarray  # [T] user index
    topic: np.ndarray  # [T]
    lang: np.ndarray  # [T] language index
    created_ms: np.ndarray  # [T] ms since 1970
    popularity: np.ndarray  # [T]
    ids: np.ndarray  # [T] int64 snowflakes


class _GroupSampler:
    """Draws one row per query group with probability proportional to the row's weight.

    Rows are sorted by group; each row's key is ``group + cumulative share within the group``
    (the last row of a group exactly ``group + 1``), so a draw for group ``g`` is a binary
    search of ``g + u``, ``u ~ U[0, 1)``, over all groups at once.
    """

    def __init__(self, group: np.ndarray, weight: np.ndarray, n_groups: int) -> None:
        order = np.lexsort((np.arange(len(group)), group))
        self.rows = order
        g = group[order].astype(np.float64)
        w = weight[order].astype(np.float64)
        self.count = np.bincount(group, minlength=n_groups)
        total = np.bincount(group, weights=weight, minlength=n_groups)
        cs = np.cumsum(w)
        start = np.concatenate([[0.0], np.cumsum(total)[:-1]])
        gi = group[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            within = (cs - start[gi]) / total[gi]
        self.key = g + np.clip(within, 0.0, 1.0)
        last = np.flatnonzero(np.r_[gi[1:] != gi[:-1], True]) if len(gi) else np.array([], int)
        self.key[last] = g[last] + 1.0
        self.nonempty = (self.count > 0) & (total > 0)

    def sample(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Row indices (into the original arrays) for query ``groups`` (all non-empty)."""
        pos = np.searchsorted(self.key, groups.astype(np.float64) + u, side="right")
        return self.rows[np.minimum(pos, len(self.rows) - 1)]


def generate(cfg: DemoDataConfig, out_dir: Path) -> dict[str, int]:
    """Generates the demo TwHIN described by ``cfg`` into ``out_dir``.

    Files written:
        ``tweets.jsonl`` ({tweet_id, author_id, text, created_at, lang}, by time),
        ``engagements.jsonl`` ({user_id, tweet_id, engagement_type, engaged_at}, by time),
        ``parallel.jsonl`` ({text_a, lang_a, text_b, lang_b} translation pairs),
        ``truth/tweet_topics.parquet`` (tweet_id, topic), ``truth/user_interests.parquet``
        (user_id, topic, weight), ``truth/topics.json`` (names, groups, hashtags) and
        ``demo.json`` (the config and the counts).

    Args:
        cfg: Sizes, seed and rates.
        out_dir: Output folder (created).

    Returns:
        The counts (also in ``demo.json``).
    """
    vocab.check_vocab()
    out_dir = Path(out_dir)
    folder = DemoFolder(out_dir)
    folder.truth.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    start_ms = _parse_start(cfg.start)

    world = _plant_world(cfg, rng)
    tw = _draw_tweets(cfg, rng, world, start_ms)
    eng_user, eng_tweet, eng_type, eng_ms = _draw_engagements(cfg, rng, world, tw, start_ms)
    texts = _render_tweets(cfg, rng, world, tw)
    pairs = _render_parallel(cfg, rng)

    user_ids = _user_ids(cfg.users, rng)
    tweet_ids = tw.ids
    _write_tweets(folder.tweets, tweet_ids, user_ids[tw.author], texts, tw)
    _write_engagements(
        folder.engagements, user_ids[eng_user], tweet_ids[eng_tweet], eng_type, eng_ms
    )
    with folder.parallel.open("w", encoding="utf-8") as f:
        for row in pairs:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    _write_truth(folder.truth, tweet_ids, tw, user_ids, world)

    counts = {
        "users": cfg.users,
        "tweets": cfg.tweets,
        "engagements": len(eng_user),
        "parallel_pairs": len(pairs),
        "topics": len(vocab.TOPICS),
        "languages": int(np.count_nonzero(np.bincount(tw.lang))),
        "authors": int(np.count_nonzero(np.bincount(tw.author))),
        "engaged_users": int(np.count_nonzero(np.bincount(eng_user))),
        "engaged_tweets": int(np.count_nonzero(np.bincount(eng_tweet))),
    }
    summary: dict[str, Any] = {
        "counts": counts,
        "config": cfg.model_dump(),
        "window": {"start": cfg.start, "end": _iso_ms(np.array([start_ms + _window_ms(cfg)]))[0]},
        "tweets_per_language": {
            vocab.LANGS[i]: int(c) for i, c in enumerate(np.bincount(tw.lang, minlength=7))
        },
        "engagements_per_type": {
            t: int(c)
            for t, c in zip(ENGAGEMENT_TYPES, np.bincount(eng_type, minlength=4), strict=True)
        },
        "files": DemoFolder.files(),
    }
    folder.summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log.info("demo TwHIN in %s: %s", out_dir, counts)
    return counts


# ----------------------------------------------------------------------------- the world


def _parse_start(start: str) -> int:
    try:
        dt = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"start: expected an ISO 8601 UTC time, got {start!r}") from e
    if dt.utcoffset() is None:
        raise ValueError(f"start: {start!r} has no time zone; write it as ...Z")
    return round(dt.timestamp() * 1000)


def _window_ms(cfg: DemoDataConfig) -> int:
    return cfg.days * 86_400_000


def _plant_world(cfg: DemoDataConfig, rng: np.random.Generator) -> _World:
    k, n_users, m = len(vocab.TOPICS), cfg.users, cfg.max_interests
    group_names = [g.name for g in vocab.GROUPS]
    topic_group = np.array([group_names.index(t.group) for t in vocab.TOPICS])
    # Zipf-like topic sizes in a random order.
    topic_pop = 1.0 / (rng.permutation(k) + 1.0) ** 0.6
    topic_pop /= topic_pop.sum()

    user_lang = rng.choice(len(vocab.LANGS), size=n_users, p=np.array(vocab.LANG_SHARES))
    # Heavy tails, capped so that no single account holds more than a few % of the data.
    author_w = np.minimum(rng.pareto(1.3, n_users) + 1.0, 60.0)
    activity = _cap_share(
        np.minimum(rng.pareto(1.3, n_users) + 1.0, 100.0),
        total=cfg.tweets * cfg.engagements_per_tweet,
        most=MAX_USER_TWEET_SHARE * cfg.tweets,
    )

    # Interests: slot 0 by topic size; later slots from the same group half of the time.
    slots = np.empty((n_users, m), dtype=np.int64)
    slots[:, 0] = rng.choice(k, size=n_users, p=topic_pop)
    members = np.argsort(topic_group, kind="stable")
    g_count = np.bincount(topic_group)
    g_start = np.concatenate([[0], np.cumsum(g_count)[:-1]])
    g0 = topic_group[slots[:, 0]]
    for j in range(1, m):
        same = rng.random(n_users) < 0.5
        in_group = members[g_start[g0] + (rng.random(n_users) * g_count[g0]).astype(np.int64)]
        anywhere = rng.choice(k, size=n_users, p=topic_pop)
        slots[:, j] = np.where(same, in_group, anywhere)
    n_int = rng.integers(1, m + 1, size=n_users)
    weights = rng.gamma(1.0, size=(n_users, m)) * (np.arange(m)[None, :] < n_int[:, None])
    weights[:, 0] += 1e-9  # every user keeps at least one interest
    key = (np.arange(n_users)[:, None] * k + slots).ravel()
    w = weights.ravel()
    keep = w > 0
    order = np.argsort(key[keep], kind="stable")
    ks, ws = key[keep][order], w[keep][order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    ukey, uw = ks[starts], np.add.reduceat(ws, starts)
    int_user, int_topic = ukey // k, ukey % k
    uw /= np.bincount(int_user, weights=uw, minlength=n_users)[int_user]
    return _World(
        topic_group=topic_group,
        topic_pop=topic_pop,
        user_lang=user_lang,
        author_w=author_w,
        activity=activity,
        int_user=int_user,
        int_topic=int_topic,
        int_weight=uw,
        int_sampler=_GroupSampler(int_user, uw, n_users),
    )


def _cap_share(weight: np.ndarray, total: float, most: float) -> np.ndarray:
    """Lowers the largest weights until none expects more than ``most`` of ``total`` draws."""
    for _ in range(50):
        cap = most * weight.sum() / total
        if weight.max() <= cap * (1 + 1e-9):
            break
        weight = np.minimum(weight, cap)
    return weight


def _draw_tweets(
    cfg: DemoDataConfig, rng: np.random.Generator, world: _World, start_ms: int
) -> _Tweets:
    n, k, n_langs = cfg.tweets, len(vocab.TOPICS), len(vocab.LANGS)
    author = rng.choice(cfg.users, size=n, p=world.author_w / world.author_w.sum())
    on_topic = rng.random(n) < cfg.author_on_topic
    own = world.int_topic[world.int_sampler.sample(author, rng.random(n))]
    anywhere = rng.choice(k, size=n, p=world.topic_pop)
    topic = np.where(on_topic, own, anywhere)
    same_lang = rng.random(n) < 0.9
    other_lang = rng.choice(n_langs, size=n, p=np.array(vocab.LANG_SHARES))
    lang = np.where(same_lang, world.user_lang[author], other_lang)
    day = rng.integers(0, cfg.days, size=n)
    hour = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
    ms_in_hour = rng.integers(0, 3_600_000, size=n)
    created = start_ms + day * 86_400_000 + hour * 3_600_000 + ms_in_hour
    popularity = world.author_w[author] ** 0.5 * rng.lognormal(0.0, cfg.popularity_sigma, n)

    order = np.lexsort((np.arange(n), created))
    created = created[order]
    # Snowflake ids: time in the high bits, the tweet's rank in the low 22 (unique, time-ordered).
    ids = ((created - SNOWFLAKE_EPOCH_MS) << 22) | (np.arange(n, dtype=np.int64) & 0x3FFFFF)
    if n > 1 and not np.all(np.diff(ids) > 0):
        raise ValueError(f"tweets={n}: snowflake ids collide; use fewer than 4194304 tweets per ms")
    return _Tweets(
        author=author[order],
        topic=topic[order],
        lang=lang[order],
        created_ms=created,
        popularity=popularity[order],
        ids=ids,
    )


def _draw_engagements(
    cfg: DemoDataConfig, rng: np.random.Generator, world: _World, tw: _Tweets, start_ms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = round(cfg.tweets * cfg.engagements_per_tweet)
    k, n_langs, n_tweets = len(vocab.TOPICS), len(vocab.LANGS), cfg.tweets
    samplers = (
        _GroupSampler(tw.topic * n_langs + tw.lang, tw.popularity, k * n_langs),
        _GroupSampler(tw.topic, tw.popularity, k),
        _GroupSampler(np.zeros(n_tweets, dtype=np.int64), tw.popularity, 1),
    )
    # One engagement per (user, tweet). Interest-driven and noise engagements are drawn
    # separately, each in rounds until its share of n distinct pairs is reached (popular
    # tweets repeat more among interest-driven draws, so a mixed draw would lose signal to
    # the dedup), keeping the first draw of each pair.
    n_follow = round(n * cfg.interest_follow)
    users: list[np.ndarray] = []
    tweets: list[np.ndarray] = []
    seen = np.empty(0, dtype=np.int64)
    for follow, target in ((True, n_follow), (False, n)):
        for _ in range(8):
            need = target - len(seen)
            if need <= 0:
                break
            user, tweet = _draw_user_tweet(
                cfg, rng, world, tw, samplers, int(need * 1.25) + 64, follow=follow
            )
            key = user.astype(np.int64) * n_tweets + tweet
            # Nobody engages with their own tweets here.
            new = _first_unseen(key, seen) & (tw.author[tweet] != user)
            idx = np.flatnonzero(new)[:need]
            users.append(user[idx])
            tweets.append(tweet[idx])
            seen = np.sort(np.concatenate([seen, key[idx]]))
    user, tweet = np.concatenate(users), np.concatenate(tweets)
    m = len(user)
    if m < n:
        log.warning("only %d distinct user-tweet pairs drawn of %d asked for", m, n)

    rates = np.array([cfg.type_rates[t] for t in ENGAGEMENT_TYPES], dtype=np.float64)
    etype = rng.choice(len(ENGAGEMENT_TYPES), size=m, p=rates / rates.sum())
    # Delay after the tweet: log-normal around half an hour, heavy tail; kept in the window.
    delay = np.maximum(1000, rng.lognormal(np.log(1_800_000), 1.7, m)).astype(np.int64)
    fallback = rng.random(m)
    created = tw.created_ms[tweet]
    end = start_ms + _window_ms(cfg)
    engaged = created + delay
    late = engaged > end
    room = np.maximum(end - created[late] - 1000, 0)
    engaged[late] = created[late] + 1000 + (fallback[late] * room).astype(np.int64)

    order = np.lexsort((tweet, user, engaged))
    return user[order], tweet[order], etype[order], engaged[order]


def _first_unseen(key: np.ndarray, seen_sorted: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key that is not in ``seen_sorted`` (sort-based)."""
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.ones(len(ks), dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    if len(seen_sorted):
        pos = np.minimum(np.searchsorted(seen_sorted, ks), len(seen_sorted) - 1)
        first &= seen_sorted[pos] != ks
    mask = np.zeros(len(key), dtype=bool)
    mask[order[first]] = True
    return mask


def _draw_user_tweet(
    cfg: DemoDataConfig,
    rng: np.random.Generator,
    world: _World,
    tw: _Tweets,
    samplers: tuple[_GroupSampler, _GroupSampler, _GroupSampler],
    n: int,
    *,
    follow: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (user, tweet) draws: interest-driven (``follow``) or by popularity alone (noise)."""
    by_topic_lang, by_topic, overall = samplers
    n_langs = len(vocab.LANGS)
    user = rng.choice(cfg.users, size=n, p=world.activity / world.activity.sum())
    if not follow:
        return user, overall.sample(np.zeros(n, dtype=np.int64), rng.random(n))
    topic = world.int_topic[world.int_sampler.sample(user, rng.random(n))]
    in_lang = rng.random(n) < cfg.same_language
    u = rng.random(n)
    tl = topic * n_langs + world.user_lang[user]
    # Same language only where the topic has enough tweets in it: a handful would be
    # exhausted at once by the users of that language (and their engagements turn to noise).
    use_tl = in_lang & by_topic_lang.nonempty[tl] & (by_topic_lang.count[tl] >= MIN_LANG_GROUP)
    use_t = ~use_tl & by_topic.nonempty[topic]
    use_all = ~(use_tl | use_t)
    tweet = np.empty(n, dtype=np.int64)
    tweet[use_tl] = by_topic_lang.sample(tl[use_tl], u[use_tl])
    tweet[use_t] = by_topic.sample(topic[use_t], u[use_t])
    tweet[use_all] = overall.sample(np.zeros(int(use_all.sum()), dtype=np.int64), u[use_all])
    return user, tweet


def _user_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct numeric user ids that look like real account ids (written as strings)."""
    ids = 10**8 + np.cumsum(rng.integers(1, 50_000, size=n))
    return rng.permutation(ids)


# ----------------------------------------------------------------------------- text


def _localised_tag(label: str, lang: str) -> str:
    if lang in ("ja", "ar"):
        return label.replace(" ", "_")
    return label.replace(" ", "").replace("-", "")


def _capitalise(s: str) -> str:
    for i, c in enumerate(s):
        if c.isalpha():
            return s[:i] + c.upper() + s[i + 1 :] if c.islower() else s
    return s


def _render(template: str, phrase: str) -> str:
    return _capitalise(template.replace("{x}", phrase))


class _Handles:
    """@handles of users, built on first use from pre-drawn syllables and digits."""

    def __init__(self, n_users: int, rng: np.random.Generator) -> None:
        self.syl = rng.integers(0, len(vocab.HANDLE_SYLLABLES), size=(n_users, 3))
        self.n_syl = rng.integers(2, 4, size=n_users)
        self.digits = rng.integers(-40, 100, size=n_users)
        self.under = rng.random(n_users) < 0.2
        self.cache: dict[int, str] = {}

    def __call__(self, u: int) -> str:
        if u not in self.cache:
            parts = [vocab.HANDLE_SYLLABLES[s] for s in self.syl[u, : self.n_syl[u]]]
            name = ("_" if self.under[u] else "").join(parts)
            if self.digits[u] >= 0:
                name += str(self.digits[u])
            self.cache[u] = "@" + name
        return self.cache[u]


def _render_tweets(
    cfg: DemoDataConfig, rng: np.random.Generator, world: _World, tw: _Tweets
) -> list[str]:
    n, topics, groups = cfg.tweets, vocab.TOPICS, vocab.GROUPS
    group_members: dict[str, list[int]] = {g.name: [] for g in groups}
    for i, t in enumerate(topics):
        group_members[t.group].append(i)
    handles = _Handles(cfg.users, rng)

    # Every random choice is drawn up front, vectorised; the loop only assembles strings.
    generic = rng.random(n) < cfg.generic_text
    source = rng.random(n)  # group phrase | neighbour's phrase | own phrase
    pick = rng.integers(0, 1 << 30, size=(n, 6))  # template, phrase, neighbour, tail, emoji x2
    tail = rng.random(n) < 0.3
    tag_u = rng.random(n)
    tag_which = rng.choice(4, size=n, p=TOPIC_TAG_P)
    extra_tag = rng.random(n) < 0.12
    mention = rng.random(n) < cfg.mention
    mention_first = rng.random(n) < 0.5
    mentioned = rng.choice(cfg.users, size=n, p=world.author_w / world.author_w.sum())
    emoji = rng.random(n) < cfg.emoji
    two_emoji = rng.random(n) < 0.3
    topical_emoji = rng.random(n) < 0.6
    url = rng.random(n) < cfg.url
    url_chars = rng.integers(0, len(URL_ALPHABET), size=(n, 10))
    lower = rng.random(n) < 0.15
    p_group = cfg.group_phrase
    p_neigh = cfg.group_phrase + cfg.neighbour_phrase
    t_tag, g_tag = cfg.topic_hashtag, cfg.topic_hashtag + cfg.group_hashtag
    x_tag = g_tag + cfg.generic_hashtag
    group_by_name = {g.name: g for g in groups}

    texts: list[str] = []
    for i in range(n):
        li, lang = int(tw.lang[i]), vocab.LANGS[int(tw.lang[i])]
        topic = topics[int(tw.topic[i])]
        p = pick[i]
        if generic[i]:
            sentence = vocab.GENERIC[p[0] % len(vocab.GENERIC)][li]
        else:
            if source[i] < p_group:
                rows = group_by_name[topic.group].phrases
            elif source[i] < p_neigh:
                mates = group_members[topic.group]
                neighbour = topics[mates[p[2] % len(mates)]]
                rows = (neighbour.label, *neighbour.phrases)
            else:
                rows = (topic.label, *topic.phrases)
            template = vocab.TEMPLATES[p[0] % len(vocab.TEMPLATES)][li]
            sentence = _render(template, rows[p[1] % len(rows)][li])
        if lower[i] and lang not in ("ja", "ar"):
            sentence = sentence.lower()
        parts = [sentence]
        if tail[i]:
            parts.append(vocab.TAILS[p[3] % len(vocab.TAILS)][li])
        if emoji[i]:
            pool = topic.emoji if topical_emoji[i] and not generic[i] else vocab.GENERIC_EMOJI
            parts.append(pool[p[4] % len(pool)] + (pool[p[5] % len(pool)] if two_emoji[i] else ""))
        tags: list[str] = []
        if tag_u[i] < t_tag:
            w = int(tag_which[i])
            tags.append(topic.hashtags[w] if w < 3 else _localised_tag(topic.label[li], lang))
        elif tag_u[i] < g_tag:
            tags.append(group_by_name[topic.group].hashtag)
        elif tag_u[i] < x_tag:
            tags.append(vocab.GENERIC_HASHTAGS[p[5] % len(vocab.GENERIC_HASHTAGS)])
        if tags and extra_tag[i]:
            extra = vocab.GENERIC_HASHTAGS[p[4] % len(vocab.GENERIC_HASHTAGS)]
            if extra not in tags:
                tags.append(extra)
        parts.extend("#" + t for t in tags)
        if mention[i]:
            handle = handles(int(mentioned[i]))
            if mention_first[i]:
                parts.insert(0, handle)
            else:
                parts.append(handle)
        if url[i]:
            parts.append("https://t.co/" + "".join(URL_ALPHABET[c] for c in url_chars[i]))
        texts.append(" ".join(parts))
    return texts


def _render_parallel(cfg: DemoDataConfig, rng: np.random.Generator) -> list[dict[str, str]]:
    """Translation pairs: one template + phrase (or generic sentence) in two languages."""
    n, n_langs = cfg.parallel_pairs, len(vocab.LANGS)
    english_first = rng.random(n) < 0.6
    lang_a = np.where(english_first, 0, rng.integers(0, n_langs, size=n))
    lang_b = (lang_a + rng.integers(1, n_langs, size=n)) % n_langs  # always differs from a
    generic = rng.random(n) < 0.15
    pick = rng.integers(0, 1 << 30, size=(n, 5))
    tail = rng.random(n) < 0.25
    tag = rng.random(n) < 0.3
    emoji = rng.random(n) < 0.4
    rows_all = [
        *(r for t in vocab.TOPICS for r in (t.label, *t.phrases)),
        *(r for g in vocab.GROUPS for r in g.phrases),
    ]
    topic_of_row = [i for i, t in enumerate(vocab.TOPICS) for _ in range(1 + len(t.phrases))]
    pairs: list[dict[str, str]] = []
    for i in range(n):
        p = pick[i]
        texts = []
        for li in (int(lang_a[i]), int(lang_b[i])):
            if generic[i]:
                s = vocab.GENERIC[p[0] % len(vocab.GENERIC)][li]
            else:
                template = vocab.TEMPLATES[p[0] % len(vocab.TEMPLATES)][li]
                s = _render(template, rows_all[p[1] % len(rows_all)][li])
            if tail[i]:
                s += " " + vocab.TAILS[p[2] % len(vocab.TAILS)][li]
            if emoji[i]:
                s += " " + vocab.GENERIC_EMOJI[p[3] % len(vocab.GENERIC_EMOJI)]
            row = p[1] % len(rows_all)
            if tag[i] and not generic[i] and row < len(topic_of_row):
                s += " #" + vocab.TOPICS[topic_of_row[row]].hashtags[p[4] % 3]
            texts.append(s)
        pairs.append(
            {
                "text_a": texts[0],
                "lang_a": vocab.LANGS[int(lang_a[i])],
                "text_b": texts[1],
                "lang_b": vocab.LANGS[int(lang_b[i])],
            }
        )
    return pairs


# ----------------------------------------------------------------------------- writing


def _iso_ms(ms: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC strings with milliseconds, like the Twitter API (``...T12:34:56.789Z``)."""
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")


def _iso_arrow(ms: np.ndarray) -> pa.Array:
    """:func:`_iso_ms` as an Arrow string array, formatted in C++ (fast for millions)."""
    # Arrow casts ms timestamps to "YYYY-MM-DD HH:MM:SS.mmm" (always 3 digits), quickly.
    text = pc.cast(pa.array(ms.astype("datetime64[ms]")), pa.string())
    return pc.binary_join_element_wise(
        pc.replace_substring(text, " ", "T", max_replacements=1), pa.scalar("Z"), ""
    )


def _write_lines(f: BinaryIO, parts: list[str | pa.Array]) -> None:
    """Writes one line per row: the row's ``parts`` (literal strings or string arrays) joined.

    The join runs in Arrow; its value buffer is the lines back to back, written as is.
    """
    cols = [pa.scalar(p) if isinstance(p, str) else p for p in [*parts, "\n"]]
    joined = pc.binary_join_element_wise(*cols, "")
    if joined.null_count:
        raise ValueError("a JSONL field is null; every field must be a string")
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
    lo, hi = offsets[joined.offset], offsets[joined.offset + len(joined)]
    f.write(memoryview(joined.buffers()[2])[lo:hi])


def _digits(ids: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(ids, pa.int64()), pa.string())


def _write_tweets(
    path: Path, tweet_ids: np.ndarray, author_ids: np.ndarray, texts: list[str], tw: _Tweets
) -> None:
    langs = np.array(vocab.LANGS)[tw.lang]
    with path.open("wb") as f:
        for lo in range(0, len(texts), CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, len(texts))
            text_json = pa.array([json.dumps(t, ensure_ascii=False) for t in texts[lo:hi]])
            _write_lines(
                f,
                [
                    '{"tweet_id": "',
                    _digits(tweet_ids[lo:hi]),
                    '", "author_id": "',
                    _digits(author_ids[lo:hi]),
                    '", "text": ',
                    text_json,
                    ', "created_at": "',
                    _iso_arrow(tw.created_ms[lo:hi]),
                    '", "lang": "',
                    pa.array(langs[lo:hi].tolist(), pa.string()),
                    '"}',
                ],
            )


def _write_engagements(
    path: Path, user_ids: np.ndarray, tweet_ids: np.ndarray, etype: np.ndarray, ms: np.ndarray
) -> None:
    types = pa.array(ENGAGEMENT_TYPES)
    with path.open("wb") as f:
        for lo in range(0, len(ms), CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, len(ms))
            # Ids are digits, types and times fixed words: nothing to escape.
            _write_lines(
                f,
                [
                    '{"user_id": "',
                    _digits(user_ids[lo:hi]),
                    '", "tweet_id": "',
                    _digits(tweet_ids[lo:hi]),
                    '", "engagement_type": "',
                    types.take(pa.array(etype[lo:hi])),
                    '", "engaged_at": "',
                    _iso_arrow(ms[lo:hi]),
                    '"}',
                ],
            )


def _write_truth(
    truth: Path, tweet_ids: np.ndarray, tw: _Tweets, user_ids: np.ndarray, world: _World
) -> None:
    pq.write_table(
        pa.table(
            {
                "tweet_id": _digits(tweet_ids),
                "topic": pa.array(tw.topic, pa.int32()),
            }
        ),
        str(truth / DemoFolder.TWEET_TOPICS),
        compression="zstd",
    )
    pq.write_table(
        pa.table(
            {
                "user_id": _digits(user_ids[world.int_user]),
                "topic": pa.array(world.int_topic, pa.int32()),
                "weight": pa.array(world.int_weight, pa.float32()),
            }
        ),
        str(truth / DemoFolder.USER_INTERESTS),
        compression="zstd",
    )
    topics = [
        {"topic": i, "name": t.name, "group": t.group, "hashtags": list(t.hashtags)}
        for i, t in enumerate(vocab.TOPICS)
    ]
    (truth / DemoFolder.TOPICS).write_text(json.dumps(topics, indent=2) + "\n", encoding="utf-8")
