"""Synthetic inputs for mine_pairs: clustered embeddings with planted topics, their tweets
(with hashtags, mentions and URLs), a truth file and a parallel-tweets file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from twhin_bert.common.schemas import write_table

TOPICS = 40
PER_TOPIC = 40
DIM = 32


@dataclass
class Synth:
    """Paths of one synthetic mine_pairs input set."""

    ingested: Path
    embeddings: Path
    truth: Path
    parallel: Path
    topic_of: dict[str, int]
    tags_of: dict[str, list[str]]
    text_of: dict[str, str]


def make_synth(root: Path, seed: int = 0) -> Synth:
    """Writes ingested tweets, tweet embeddings (topic centre + noise), truth and parallel files.

    Within a topic cosine similarity is ~0.83, across topics ~0 (<= ~0.45): the social source
    must pair tweets of the same topic.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    n = TOPICS * PER_TOPIC
    topic = np.repeat(np.arange(TOPICS), PER_TOPIC)
    vecs = centres[topic] + 0.08 * rng.standard_normal((n, DIM)).astype(np.float32)
    vecs *= rng.uniform(0.5, 3.0, (n, 1)).astype(np.float32)  # norms must not matter (cosine)
    ids = [f"t{i}" for i in range(n)]

    texts, tags = [], []
    for i in range(n):
        t = int(topic[i])
        row_tags: list[str] = []
        text = f"tweet {i} by @user on things http"
        if rng.random() < 0.5:
            row_tags.append(f"topic{t}")
            text += f" #Topic{t}"
        if rng.random() < 0.2:
            row_tags.append("common")
            text += " #common"
        if i % 97 == 0:
            row_tags.append(f"rare{i}")  # seen once: dropped by min_hashtag_count
            text += f" #rare{i}"
        texts.append(text)
        tags.append(row_tags)

    ingested = root / "ingested"
    # 10 more tweets than embedded ones (no engagement); embeddings carry 5 unknown ids.
    extra = [f"noeng{i}" for i in range(10)]
    write_table(
        pa.table(
            {
                "tweet_id": ids + extra,
                "author_id": ["a"] * (n + 10),
                "text": texts + [f"lonely tweet {i}" for i in range(10)],
                "lang": ["en"] * (n + 10),
                "hashtags": tags + [[] for _ in range(10)],
                "created_at": pa.array([None] * (n + 10), pa.timestamp("ms", tz="UTC")),
            }
        ),
        ingested / "tweets.parquet",
        "tweets",
    )
    # 3 engagements per tweet, 1 for every 50th (below min_engagements: not indexed).
    eng_ids = [t for i, t in enumerate(ids) for _ in range(1 if i % 50 == 0 else 3)]
    eng_ids += ["ghost0"] * 3
    write_table(
        pa.table(
            {
                "user_id": [f"u{j % 11}" for j in range(len(eng_ids))],
                "tweet_id": eng_ids,
                "engagement_type": ["fave"] * len(eng_ids),
                "engaged_at": pa.array([None] * len(eng_ids), pa.timestamp("ms", tz="UTC")),
            }
        ),
        ingested / "engagements.parquet",
        "engagements",
    )
    emb = root / "graph_embeddings"
    emb.mkdir(parents=True)
    ghost = rng.standard_normal((5, DIM)).astype(np.float32)
    perm = rng.permutation(n + 5)  # row order unrelated to the tweets file
    all_vecs = np.vstack([vecs, ghost])[perm]
    all_ids = np.array(ids + [f"ghost{i}" for i in range(5)], dtype=object)[perm]
    np.save(emb / "tweets.npy", all_vecs.astype(np.float32))
    write_table(pa.table({"id": list(all_ids)}), emb / "tweets.ids.parquet", "ids")

    truth = root / "truth" / "tweet_topics.parquet"
    truth.parent.mkdir(parents=True)
    pq.write_table(pa.table({"tweet_id": ids, "topic": topic.astype(np.int64)}), truth)

    parallel = root / "parallel.jsonl"
    with parallel.open("w", encoding="utf-8") as f:
        for i in range(30):
            row = {
                "text_a": f"hello @friend{i} see https://example.com/{i} number {i}",
                "lang_a": "en",
                "text_b": f"hola @amigo{i} mira www.example.com/{i} numero {i}",
                "lang_b": "es",
            }
            f.write(json.dumps(row) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"text_a": "", "text_b": "x"}) + "\n")
    return Synth(
        ingested=ingested,
        embeddings=emb,
        truth=truth,
        parallel=parallel,
        topic_of=dict(zip(ids, topic.tolist(), strict=True)),
        tags_of=dict(zip(ids, tags, strict=True)),
        text_of=dict(zip(ids, texts, strict=True)),
    )


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """One synthetic input set per test module."""
    return make_synth(tmp_path_factory.mktemp("mine-synth"))


@pytest.fixture
def no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the stage without MLflow (faster; tracking is exercised by one test)."""
    monkeypatch.setenv("TWHIN_BERT_TRACKING", "0")
