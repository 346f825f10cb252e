"""Fixtures of the evaluate tests: a tiny random XLM-R encoder with its own trained tokenizer,
and a small synthetic ingest + embed_graph pair with a planted user-topic structure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from twhin_bert.common.schemas import write_table

TOPICS = {
    "en": [
        ["football", "goal", "match", "league", "striker"],
        ["election", "vote", "senate", "policy", "campaign"],
        ["movie", "actor", "cinema", "trailer", "premiere"],
        ["recipe", "cooking", "dinner", "kitchen", "spicy"],
    ],
    "es": [
        ["futbol", "gol", "partido", "liga", "delantero"],
        ["eleccion", "voto", "senado", "politica", "campana"],
        ["pelicula", "actor", "cine", "estreno", "trailer"],
        ["receta", "cocina", "cena", "sabor", "picante"],
    ],
}
FILLER = ["the", "a", "today", "really", "so", "wow", "lol", "hoy", "muy", "que"]
TAGS = ["sports", "politics", "film", "food"]


def synthetic_tweets(n: int, seed: int) -> list[dict]:
    """Tweets in two languages about 4 topics; hashtags follow the topic (mostly)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        lang = "en" if i % 3 else "es"
        topic = int(rng.integers(4))
        words = list(rng.choice(TOPICS[lang][topic], size=4)) + list(rng.choice(FILLER, size=3))
        rng.shuffle(words)
        tags = [TAGS[topic]] if rng.random() < 0.8 else []
        if rng.random() < 0.1:
            tags.append(TAGS[(topic + 1) % 4])  # some tweets carry two frequent tags
        if rng.random() < 0.2:
            tags.append(f"rare{i}")
        text = " ".join(words) + "".join(
            f" #{t.upper() if j == 0 else t}" for j, t in enumerate(tags)
        )
        rows.append(
            {
                "tweet_id": f"t{i}",
                "text": text,
                "lang": lang,
                "hashtags": [t.lower() for t in tags],
                "topic": topic,
            }
        )
    return rows


@pytest.fixture(scope="session")
def tiny_model_dir(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide XLM-R encoder (random weights) with a WordPiece-free BPE tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    out = tmp_path_factory.mktemp("tiny_model")
    corpus = [r["text"] for r in synthetic_tweets(400, 1)]
    corpus += (sample_data / "umsab" / "english" / "train_text.txt").read_text().splitlines()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
    )
    fast.save_pretrained(str(out))
    cfg = XLMRobertaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=80,
        pad_token_id=1,
    )
    import torch

    torch.manual_seed(0)
    XLMRobertaModel(cfg).save_pretrained(str(out))
    (out / "training_log.json").write_text(
        json.dumps([{"step": s, "loss": 5.0 / s, "mlm_loss": 4.0 / s} for s in range(1, 6)])
    )
    return out


@pytest.fixture(scope="session")
def eval_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ingest folder, embed_graph folder): 600 tweets, 120 users each into one topic.

    Users' graph embeddings are their topic one-hot + noise; 5 users have none (skipped)."""
    root = tmp_path_factory.mktemp("eval_inputs")
    ingested, graph = root / "ingested", root / "graph"
    rows = synthetic_tweets(600, 2)
    write_table(
        pa.table(
            {
                "tweet_id": [r["tweet_id"] for r in rows],
                "author_id": [None] * len(rows),
                "text": [r["text"] for r in rows],
                "lang": [r["lang"] for r in rows],
                "hashtags": [r["hashtags"] for r in rows],
                "created_at": pa.array([None] * len(rows), pa.timestamp("ms", tz="UTC")),
            }
        ),
        ingested / "tweets.parquet",
        "tweets",
    )
    rng = np.random.default_rng(3)
    by_topic = {t: [r["tweet_id"] for r in rows if r["topic"] == t] for t in range(4)}
    users, emb, eng = [], [], []
    for u in range(120):
        topic = u % 4
        users.append(f"u{u}")
        v = rng.normal(0, 0.3, 16)
        v[topic] += 2.0
        emb.append(v)
        for t in rng.choice(by_topic[topic], size=12, replace=False):
            eng.append((f"u{u}", t, "fave"))
    for u in range(5):  # users without a graph embedding
        eng.append((f"ghost{u}", "t1", "retweet"))
    write_table(
        pa.table(
            {
                "user_id": [e[0] for e in eng],
                "tweet_id": [e[1] for e in eng],
                "engagement_type": [e[2] for e in eng],
                "engaged_at": pa.array([None] * len(eng), pa.timestamp("ms", tz="UTC")),
            }
        ),
        ingested / "engagements.parquet",
        "engagements",
    )
    graph.mkdir(parents=True)
    np.save(graph / "users.npy", np.asarray(emb, dtype=np.float32))
    write_table(pa.table({"id": users}), graph / "users.ids.parquet", "ids")
    return ingested, graph
