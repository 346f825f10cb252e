"""Fixtures of the embed tests: a small tokenizer trained on real tweets and tiny random
XLM-R- and BERT-style encoders saved with it (the pretrain stage's output format)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

LANGS = {"english": "en", "french": "fr", "arabic": "ar", "hindi": "hi", "spanish": "es"}


@pytest.fixture(scope="session")
def embed_tweets(sample_data: Path) -> list[tuple[str, str, str]]:
    """(tweet_id, text, lang) of 600 real tweets in 5 languages."""
    rows = []
    for folder, lang in LANGS.items():
        lines = (sample_data / "umsab" / folder / "train_text.txt").read_text().splitlines()
        rows += [(f"{lang}-{i}", t, lang) for i, t in enumerate(lines[:120])]
    return rows


@pytest.fixture(scope="session")
def embed_tokenizer(embed_tweets: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from twhin_bert.train_tokenizer.config import TrainTokenizerConfig
    from twhin_bert.train_tokenizer.tokenizer import to_transformers, train_unigram

    texts = [r[1] for r in embed_tweets]
    tok = train_unigram([texts], TrainTokenizerConfig(vocab_size=800), len(texts))
    out = tmp_path_factory.mktemp("embed-tokenizer")
    to_transformers(tok, 128).save_pretrained(str(out))
    return out


def _save_model(kind: str, tokenizer_dir: Path, out: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    common = {
        "vocab_size": len(tok),
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "pad_token_id": tok.pad_token_id,
        "hidden_dropout_prob": 0.1,  # must be off at inference (eval mode)
    }
    torch.manual_seed(0)
    if kind == "xlmr":
        model = XLMRobertaModel(
            XLMRobertaConfig(**common, max_position_embeddings=130, type_vocab_size=1)
        )
    else:
        model = BertModel(BertConfig(**common, max_position_embeddings=128))
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session", params=["xlmr", "bert"])
def model_dir(
    request: pytest.FixtureRequest, embed_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A tiny random encoder folder (2 layers, hidden 64), XLM-R- or BERT-style."""
    return _save_model(request.param, embed_tokenizer, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def xlmr_dir(embed_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The XLM-R-style tiny encoder only."""
    return _save_model("xlmr", embed_tokenizer, tmp_path_factory.mktemp("xlmr-only"))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread in these tests: on a busy 2-core machine, more only adds OpenMP waits."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
