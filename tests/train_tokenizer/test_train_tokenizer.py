"""train_tokenizer: language re-sampling, the trained Unigram tokenizer, the pretrained mode."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from twhin_bert.common.lang import copy_rates, count_languages, language_probabilities
from twhin_bert.train_tokenizer.config import TrainTokenizerConfig
from twhin_bert.train_tokenizer.tokenizer import ResampledCorpus, run_train_tokenizer


def test_language_probabilities_follow_frequency_power_alpha() -> None:
    counts = {"en": 8000, "fr": 1500, "sw": 500}
    q = language_probabilities(counts, 0.7)
    # By hand: f = (0.8, 0.15, 0.05); q_l = f_l^0.7 / sum_k f_k^0.7.
    w = {"en": 0.8**0.7, "fr": 0.15**0.7, "sw": 0.05**0.7}
    z = sum(w.values())
    assert q == pytest.approx({k: v / z for k, v in w.items()}, abs=1e-12)
    assert q["en"] == pytest.approx(0.688041, abs=1e-6)
    assert q["sw"] == pytest.approx(0.098794, abs=1e-6)  # up from 0.05: rare languages gain
    assert sum(q.values()) == pytest.approx(1.0)
    # alpha = 1 keeps the natural mix; a tiny alpha makes languages nearly equal.
    assert language_probabilities(counts, 1.0) == pytest.approx({"en": 0.8, "fr": 0.15, "sw": 0.05})
    assert language_probabilities(counts, 1e-9)["en"] == pytest.approx(1 / 3, abs=1e-6)


def test_copy_rates_give_the_target_corpus() -> None:
    counts = {"en": 8000, "fr": 1500, "sw": 500}
    rates = copy_rates(counts, 0.7, 10_000)
    q = language_probabilities(counts, 0.7)
    assert {k: rates[k] * counts[k] for k in counts} == pytest.approx(
        {k: 10_000 * q[k] for k in counts}
    )
    assert rates["sw"] > 1 > rates["en"]  # rare repeated, frequent sub-sampled


def test_resampled_corpus_mix_and_determinism(umsab_ingested: Path) -> None:
    path = umsab_ingested / "tweets.parquet"
    counts = count_languages(path)
    assert counts["en"] == 1500 and counts["fr"] == 250
    cfg = TrainTokenizerConfig(valid_fraction=0.05, seed=3)
    first = ResampledCorpus(path, cfg, counts)
    batches = list(first)
    again = list(ResampledCorpus(path, cfg, counts))
    assert batches == again  # one seed -> the same corpus and validation split
    other = list(ResampledCorpus(path, cfg.model_copy(update={"seed": 4}), counts))
    assert other != batches
    total = sum(first.emitted.values())
    assert total == sum(len(b) for b in batches)
    assert abs(total - sum(counts.values()) * 0.95) < 200  # validation removed, size kept
    q = language_probabilities(counts, 0.7)
    for lang, p in q.items():
        assert first.emitted[lang] / total == pytest.approx(p, abs=0.02), lang
    assert first.emitted["en"] / total < counts["en"] / sum(counts.values()) - 0.1
    held = set(first.valid)
    assert 100 < len(held) < 250
    assert not held & {t for b in batches for t in b}  # validation tweets are never trained on


def test_trained_tokenizer_loads_offline_and_wraps_like_xlmr(
    trained_tokenizer: tuple[Path, dict],
) -> None:
    from transformers import AutoTokenizer

    folder, _ = trained_tokenizer
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert tok.is_fast
    assert len(tok) == 4000  # as configured, specials included
    assert tok.model_max_length == 128
    roles = {
        "bos_token": ("<s>", 0),
        "cls_token": ("<s>", 0),
        "pad_token": ("<pad>", 1),
        "eos_token": ("</s>", 2),
        "sep_token": ("</s>", 2),
        "unk_token": ("<unk>", 3),
        "mask_token": ("<mask>", 4),
    }
    for role, (token, idx) in roles.items():
        assert getattr(tok, role) == token, role
        assert getattr(tok, role + "_id") == idx, role

    ids = tok("bonjour le monde")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) > 3
    # "<s> text </s>" typed out is the same sequence as the text with special tokens added.
    assert tok("<s> bonjour le monde </s>", add_special_tokens=False)["input_ids"] == ids
    assert tok.decode(ids, skip_special_tokens=True) == "bonjour le monde"
    assert tok.decode(ids) == "<s> bonjour le monde</s>"
    # Special tokens round-trip as single ids, and <mask> swallows the space before it.
    for token in ("<s>", "</s>", "<pad>", "<unk>", "<mask>"):
        assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(token)) == token
    masked = tok.convert_ids_to_tokens(tok("hello <mask> world")["input_ids"])
    assert "<mask>" in masked and masked[masked.index("<mask>") - 1] != "▁"
    # NFKC: full-width letters are the ASCII ones.
    assert tok("ｗｏｒｌｄ")["input_ids"] == tok("world")["input_ids"]
    # Pairs as in RoBERTa; truncation stops at model_max_length with </s> last.
    pair = tok("a", "b")["input_ids"]
    assert pair[0] == 0 and pair.count(2) == 3
    long_ids = tok(" ".join(["bonjour"] * 300), truncation=True)["input_ids"]
    assert len(long_ids) == 128 and long_ids[-1] == 2


def test_metrics_of_the_trained_tokenizer(trained_tokenizer: tuple[Path, dict]) -> None:
    folder, m = trained_tokenizer
    assert json.loads((folder / "metrics.json").read_text())["vocab_size"] == 4000
    assert m["vocab_size"] == 4000 and m["pretrained"] is False
    assert m["input_tweets"] == 1500 + 7 * 250 and m["languages"] == 8
    assert m["valid_tweets"] > 20
    assert m["corpus_tweets"] + m["valid_tweets"] == pytest.approx(m["input_tweets"], rel=0.05)
    assert 0 <= m["unk_rate"] < 0.01  # validation tweets: almost every character was seen
    assert 8 < m["tokens_per_tweet"] < 80
    before, after = m["lang_share_before"], m["lang_share_after"]
    assert before["en"] == pytest.approx(1500 / 3250, abs=1e-4)
    assert after["en"] < before["en"] - 0.1 and after["hi"] > before["hi"]
    assert math.isclose(sum(after.values()), 1.0, abs_tol=1e-4)


def test_pretrained_path_mode_copies_the_given_tokenizer(
    trained_tokenizer: tuple[Path, dict], umsab_ingested: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    src, _ = trained_tokenizer
    cfg = TrainTokenizerConfig(pretrained=str(src), vocab_size=999, model_max_length=64)
    m = run_train_tokenizer(cfg, tmp_path / "tok", ingested=umsab_ingested)
    assert m["pretrained"] is True and m["corpus_tweets"] == 0
    assert m["vocab_size"] == 4000  # the given tokenizer's, not the config's
    a = AutoTokenizer.from_pretrained(str(src))
    b = AutoTokenizer.from_pretrained(str(tmp_path / "tok"), local_files_only=True)
    assert b.model_max_length == 64
    texts = ["Hola a todos 😀 #futbol", "مرحبا بالعالم", "नमस्ते दुनिया", "Guten Tag <mask>"]
    assert a(texts)["input_ids"] == b(texts)["input_ids"]

    with pytest.raises(FileNotFoundError, match="nope"):
        run_train_tokenizer(
            TrainTokenizerConfig(pretrained=str(tmp_path / "nope")),
            tmp_path / "tok2",
            ingested=umsab_ingested,
        )
    slow = tmp_path / "slow"  # a folder without tokenizer.json: not a fast tokenizer
    slow.mkdir()
    (slow / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"slow: not a fast-tokenizer folder \(no tokenizer.json"):
        run_train_tokenizer(
            TrainTokenizerConfig(pretrained=str(slow)), tmp_path / "tok3", ingested=umsab_ingested
        )


def test_pretrained_gcs_mode(
    trained_tokenizer: tuple[Path, dict], umsab_ingested: Path, tmp_path: Path, gcs_emulator: Any
) -> None:
    from transformers import AutoTokenizer
    from twhin_bert.common import io

    gcs_emulator.create_bucket("models")
    src, _ = trained_tokenizer
    io.upload(src, "gs://models/tokenizers/ours")
    cfg = TrainTokenizerConfig(pretrained="gs://models/tokenizers/ours")
    m = run_train_tokenizer(cfg, tmp_path / "tok", ingested=umsab_ingested)
    assert m["pretrained"] is True and m["vocab_size"] == 4000
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "tok"), local_files_only=True)
    assert (
        tok("hello")["input_ids"] == AutoTokenizer.from_pretrained(str(src))("hello")["input_ids"]
    )


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        TrainTokenizerConfig(vocab_sise=100)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="valid_max"):
        TrainTokenizerConfig(valid_fraction=0.1, valid_max=0)
    with pytest.raises(ValidationError):
        TrainTokenizerConfig(alpha=0.0)


def test_missing_tweets_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty-ingested").mkdir()
    with pytest.raises(FileNotFoundError, match=r"tweets\.parquet"):
        run_train_tokenizer(
            TrainTokenizerConfig(), tmp_path / "out", ingested=tmp_path / "empty-ingested"
        )
