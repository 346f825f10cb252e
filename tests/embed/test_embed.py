"""embed: pooled vectors equal a direct per-text computation; run_embed's aligned outputs."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from pydantic import ValidationError
from twhin_bert.common import schemas
from twhin_bert.common.encoder import embed_texts, length_batches, load_encoder
from twhin_bert.embed import embed as embed_mod
from twhin_bert.embed.config import EmbedConfig
from twhin_bert.embed.embed import run_embed


def write_tweets(rows: list[tuple[str, str, str]], path: Path) -> Path:
    """Writes (tweet_id, text, lang) rows as an ingest ``tweets`` artifact."""
    n = len(rows)
    table = pa.table(
        {
            "tweet_id": [r[0] for r in rows],
            "author_id": [None] * n,
            "text": [r[1] for r in rows],
            "lang": [r[2] for r in rows],
            "hashtags": [[] for _ in range(n)],
            "created_at": pa.array([None] * n, pa.timestamp("ms", tz="UTC")),
        }
    )
    schemas.write_table(table, path, "tweets")
    return path


@functools.lru_cache(maxsize=2)
def _plain_load(model_dir: Path) -> tuple:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    return AutoModel.from_pretrained(str(model_dir)).eval(), tok


def reference(model_dir: Path, text: str, max_length: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One text alone, no padding: CLS and the mean over its non-special tokens, by hand."""
    model, tok = _plain_load(model_dir)
    enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state[0].numpy()
    ids = enc["input_ids"][0].tolist()
    structural = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id}
    own = [i for i, t in enumerate(ids) if t not in structural]  # <unk> is the tweet's own
    mean = np.mean([h[i] for i in own], axis=0) if own else np.zeros(h.shape[1], np.float32)
    return h[0], mean


def test_embed_texts_equals_unbatched_reference(model_dir: Path, embed_tweets: list) -> None:
    texts = [r[1] for r in embed_tweets[::20]]  # 30 real tweets, 5 languages, mixed lengths
    texts += ["", "ok", "a <mask> here", " ".join(["bonjour"] * 200)]  # empty, tiny, special, cut
    out = embed_texts(model_dir, texts, batch_size=7)
    assert out["cls"].shape == (len(texts), 64) and out["combined"].shape == (len(texts), 128)
    assert all(v.dtype == np.float32 for v in out.values())
    for i, text in enumerate(texts):
        cls, mean = reference(model_dir, text)
        np.testing.assert_allclose(out["cls"][i], cls, atol=1e-5, err_msg=f"cls of text {i}")
        np.testing.assert_allclose(out["mean"][i], mean, atol=1e-5, err_msg=f"mean of text {i}")
    np.testing.assert_array_equal(out["combined"], np.concatenate([out["cls"], out["mean"]], 1))
    assert np.all(out["mean"][texts.index("")] == 0)  # no own token: zeros


def test_batching_and_sorting_do_not_change_vectors(xlmr_dir: Path, embed_tweets: list) -> None:
    texts = [r[1] for r in embed_tweets[:48]]
    one = embed_texts(xlmr_dir, texts, batch_size=1)
    for bs in (5, 64, 1000):
        other = embed_texts(xlmr_dir, texts, batch_size=bs)
        for k in ("cls", "mean", "combined"):
            np.testing.assert_allclose(other[k], one[k], atol=1e-5, err_msg=f"{k}, batch {bs}")
    # Order is the input's: reversing the input reverses the rows.
    rev = embed_texts(xlmr_dir, texts[::-1], batch_size=16)
    np.testing.assert_allclose(rev["cls"][::-1], one["cls"], atol=1e-5)
    # A model handed over in training mode is embedded without dropout, then left as it was.
    model, tok = load_encoder(xlmr_dir)
    model.train()
    given = embed_texts(None, texts, model=model, tokenizer=tok, batch_size=16)
    assert model.training
    model.eval()
    np.testing.assert_allclose(given["cls"], one["cls"], atol=1e-5)
    # Different texts do give different vectors (the comparison above is not vacuous).
    assert np.abs(one["cls"][0] - one["cls"][1]).max() > 1e-3


def test_mean_excludes_special_and_padding_tokens(xlmr_dir: Path) -> None:
    model, tok = load_encoder(xlmr_dir)
    short = "hola <mask> \u2603\u2603"  # snowmen: unseen in training, so <unk>
    long = "the quick brown fox jumps over the lazy dog again and again"
    out = embed_texts(None, [short, long], model=model, tokenizer=tok, batch_size=2)
    enc = tok(short, return_tensors="pt")
    ids = enc["input_ids"][0].tolist()
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.mask_token_id in ids and tok.unk_token_id in ids
    with torch.no_grad():
        h = model(**enc).last_hidden_state[0].numpy()
    # By hand: <s>=0, <pad>=1, </s>=2, <mask>=4 are left out; <unk>=3 stands for text, kept.
    own = [h[i] for i, t in enumerate(ids) if t not in (0, 1, 2, 4)]
    np.testing.assert_allclose(out["mean"][0], np.mean(own, axis=0), atol=1e-5)
    # Counting <s>, </s> or <mask>, or dropping <unk>, would have given another vector.
    assert np.abs(out["mean"][0] - h.mean(0)).max() > 1e-3
    assert np.abs(out["mean"][0] - h[1:-1].mean(0)).max() > 1e-3
    no_unk = [h[i] for i, t in enumerate(ids) if t not in (0, 1, 2, 3, 4)]
    assert np.abs(out["mean"][0] - np.mean(no_unk, axis=0)).max() > 1e-3
    # An all-unknown tweet still has a mean (its <unk> vectors), not zeros.
    only_unk = embed_texts(None, ["\u2603"], model=model, tokenizer=tok)["mean"][0]
    assert np.abs(only_unk).max() > 0


def test_length_batches_group_similar_lengths() -> None:
    lengths = np.array([5, 30, 6, 29, 7, 31, 12])
    batches = length_batches(lengths, 2, bucket_width=8)
    # Buckets of lengths 25-32, 9-16, 1-8, longest first; at most 2 per batch.
    assert [lengths[b].tolist() for b in batches] == [[31, 30], [29], [12], [7, 6], [5]]
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    rng = np.random.default_rng(0)
    many = rng.integers(1, 129, size=1000)
    for b in length_batches(many, 64):
        assert len(b) <= 64 and many[b].max() - many[b].min() < 8


def test_empty_input_gives_empty_arrays(xlmr_dir: Path) -> None:
    out = embed_texts(xlmr_dir, [])
    assert out["cls"].shape == (0, 64) and out["combined"].shape == (0, 128)


def test_embed_texts_needs_a_model() -> None:
    with pytest.raises(ValueError, match="model_dir"):
        embed_texts(None, ["x"])
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        embed_texts("/nonexistent/model", ["x"])


def test_run_embed_writes_aligned_arrays_and_ids(
    xlmr_dir: Path, embed_tweets: list, tmp_path: Path
) -> None:
    rows = embed_tweets[::3]  # 200 tweets
    ingested = tmp_path / "ingested"
    write_tweets(rows, ingested / "tweets.parquet")
    cfg = EmbedConfig(batch_size=8, chunk_size=64)
    m = run_embed(cfg, tmp_path / "emb", model=xlmr_dir, ingested=ingested)
    out = tmp_path / "emb"
    assert {p.name for p in out.iterdir()} == {
        ".twhin-bert-stage.json",
        "cls.npy",
        "mean.npy",
        "combined.npy",
        "ids.parquet",
        "metrics.json",
    }
    ids = schemas.read_table(out / "ids.parquet", "ids").column("id").to_pylist()
    assert ids == [r[0] for r in rows]
    arrays = {k: np.load(out / f"{k}.npy") for k in ("cls", "mean", "combined")}
    assert arrays["cls"].shape == (200, 64) and arrays["combined"].shape == (200, 128)
    assert all(a.dtype == np.float32 for a in arrays.values())
    direct = embed_texts(xlmr_dir, [r[1] for r in rows], batch_size=32)
    for k, a in arrays.items():
        np.testing.assert_allclose(a, direct[k], atol=1e-5, err_msg=k)
    assert m["tweets"] == 200 and m["resumed_from_row"] == 0 and m["tweets_per_second"] > 0
    assert json.loads((out / "metrics.json").read_text())["tweets"] == 200
    # Length-sorted batches pad far less than batches in input order would.
    _, tok = load_encoder(xlmr_dir)
    lengths = np.array([len(x) for x in tok([r[1] for r in rows], truncation=True)["input_ids"]])
    unsorted_positions = sum(
        len(lengths[i : i + 8]) * lengths[i : i + 8].max()
        for c in range(0, 200, 64)
        for i in range(c, min(c + 64, 200), 8)
    )
    unsorted_share = 1 - lengths.sum() / unsorted_positions
    assert m["padding_share"] < unsorted_share / 2
    assert m["tokens_per_tweet"] == pytest.approx(lengths.mean())


def test_run_embed_resumes_after_a_crash(
    xlmr_dir: Path, embed_tweets: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = embed_tweets[:150]
    tweets = write_tweets(rows, tmp_path / "tweets.parquet")  # a file works as well as a folder
    cfg = EmbedConfig(batch_size=16, chunk_size=50)
    calls = {"n": 0}
    real = embed_mod.embed_ids

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_mod, "embed_ids", crash_on_third_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        run_embed(cfg, tmp_path / "emb", model=xlmr_dir, ingested=tweets)
    assert json.loads((tmp_path / "emb.partial" / "progress.json").read_text())["rows_done"] == 100
    monkeypatch.setattr(embed_mod, "embed_ids", real)
    m = run_embed(cfg, tmp_path / "emb", model=xlmr_dir, ingested=tweets)
    assert m["resumed_from_row"] == 100 and m["embedded_this_run"] == 50
    assert not (tmp_path / "emb" / "progress.json").exists()
    fresh = embed_texts(xlmr_dir, [r[1] for r in rows])
    np.testing.assert_allclose(
        np.load(tmp_path / "emb" / "combined.npy"), fresh["combined"], atol=1e-5
    )


#: Run in a fresh process (oneDNN reads its cache setting once per process): embed, then
#: the environment afterwards.
_EMBED_ONCE = """
import os, sys
from pathlib import Path
from twhin_bert.embed.config import EmbedConfig
from twhin_bert.embed.embed import run_embed
run_embed(EmbedConfig(batch_size=4), Path(sys.argv[3]), model=Path(sys.argv[1]),
          ingested=Path(sys.argv[2]))
print("env after:", os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY"))
"""


@pytest.mark.parametrize("preset", [None, "1024"])
def test_run_embed_keeps_no_kernel_per_shape(
    xlmr_dir: Path, embed_tweets: list, tmp_path: Path, preset: str | None
) -> None:
    """embed's hundreds of batch shapes filled oneDNN's kernel cache and left holes in
    malloc's heap (common.memory): the stage runs with the cache off, unless the operator set
    it, and leaves the environment as it found it. oneDNN's own log says which kernels it
    took from its cache."""
    import subprocess
    import sys

    tweets = tmp_path / "tweets.parquet"
    write_tweets(embed_tweets[:64], tweets)
    env = {k: v for k, v in os.environ.items() if "PRIMITIVE_CACHE_CAPACITY" not in k}
    env.update(ONEDNN_VERBOSE="all", TWHIN_BERT_TRACKING="0")
    if preset:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    argv = [sys.executable, "-c", _EMBED_ONCE, str(xlmr_dir), str(tweets), str(tmp_path / "e")]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    if "create:cache_miss" not in out:
        pytest.skip("this torch build runs no oneDNN kernel here")
    assert ("create:cache_hit" in out) == bool(preset)
    assert f"env after: {preset}" in out


def test_run_embed_plain_parquet_and_bad_input(xlmr_dir: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["hello there", "bonjour"]}), plain)
    m = run_embed(EmbedConfig(), tmp_path / "emb", model=xlmr_dir, ingested=plain)
    assert m["tweets"] == 2
    assert schemas.read_table(tmp_path / "emb" / "ids.parquet", "ids")["id"].to_pylist() == [
        "a",
        "b",
    ]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), bad)
    with pytest.raises(schemas.SchemaError, match=r"bad\.parquet.*'text'"):
        run_embed(EmbedConfig(), tmp_path / "emb2", model=xlmr_dir, ingested=bad)
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["fine", None]}), nulls)
    with pytest.raises(ValueError, match=r"nulls\.parquet: row 2: text is null"):
        run_embed(EmbedConfig(), tmp_path / "emb3", model=xlmr_dir, ingested=nulls)


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="chunk_size"):
        EmbedConfig(batch_size=64, chunk_size=10)
    with pytest.raises(ValidationError):
        EmbedConfig(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EmbedConfig(batchsize=3)  # type: ignore[call-arg]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_vectors_match_the_cpu(model_dir: Path, embed_tweets: list) -> None:
    """``make test-gpu``: embedding on the GPU gives the CPU's vectors, in input order."""
    texts = [t[1] for t in embed_tweets[:64]]
    cpu = embed_texts(model_dir, texts, device="cpu")
    gpu = embed_texts(model_dir, texts, device="cuda")
    for key in ("cls", "mean", "combined"):
        assert gpu[key].shape == cpu[key].shape
        np.testing.assert_allclose(gpu[key], cpu[key], atol=2e-3, rtol=1e-3)
