"""embed resume is keyed by the contents of tweets and model, not by their paths (issue 9
item 8): another model put at the same path restarts (and says so); the same inputs copied
to new paths resume."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from twhin_bert.bench.pretrain import write_tweets
from twhin_bert.common.encoder import embed_texts
from twhin_bert.embed import embed as embed_mod
from twhin_bert.embed.config import EmbedConfig
from twhin_bert.embed.embed import run_embed

CFG = EmbedConfig(batch_size=16, chunk_size=50)


def _crash_after_two_chunks(
    monkeypatch: pytest.MonkeyPatch, tweets: Path, model: Path, out: Path
) -> None:
    real = embed_mod.embed_ids
    calls = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(embed_mod, "embed_ids", crash_on_third_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        run_embed(CFG, out, model=model, ingested=tweets)
    monkeypatch.setattr(embed_mod, "embed_ids", real)
    progress = json.loads((out.with_name(out.name + ".partial") / "progress.json").read_text())
    assert progress["rows_done"] == 100


def test_another_model_at_the_same_path_restarts(
    xlmr_dir: Path,
    embed_tweets: list,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = embed_tweets[:150]
    tweets = write_tweets([(r[1], r[2]) for r in rows], tmp_path / "ingest")
    model = shutil.copytree(xlmr_dir, tmp_path / "model")
    out = tmp_path / "emb"
    _crash_after_two_chunks(monkeypatch, tweets, model, out)

    # A retrained model (same config, other weights) replaces the old one at the same path.
    from transformers import AutoModel

    retrained = AutoModel.from_pretrained(str(model))
    with torch.no_grad():
        for p in retrained.parameters():
            p.add_(0.05 * torch.randn_like(p))
    retrained.save_pretrained(str(model))

    with caplog.at_level(logging.WARNING, logger="twhin_bert.embed.embed"):
        m = run_embed(CFG, out, model=model, ingested=tweets)
    said = [r.getMessage() for r in caplog.records if "starting over" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0]
    assert m["resumed_from_row"] == 0 and m["embedded_this_run"] == 150
    new = embed_texts(model, [r[1] for r in rows])
    old = embed_texts(xlmr_dir, [r[1] for r in rows])
    got = np.load(out / "combined.npy")
    np.testing.assert_allclose(got, new["combined"], atol=1e-5)  # every row from the new model
    assert np.abs(got[:100] - old["combined"][:100]).max() > 1e-2


def test_same_inputs_at_new_paths_resume(
    xlmr_dir: Path, embed_tweets: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = embed_tweets[:150]
    tweets = write_tweets([(r[1], r[2]) for r in rows], tmp_path / "run1/ingest")
    model = shutil.copytree(xlmr_dir, tmp_path / "run1/model")
    out = tmp_path / "emb"
    _crash_after_two_chunks(monkeypatch, tweets, model, out)

    # A retried pod: the same artifacts mounted under other paths (the model's card rewritten).
    tweets2 = Path(shutil.copy(tweets / "tweets.parquet", tmp_path / "run2-tweets.parquet"))
    model2 = shutil.copytree(model, tmp_path / "run2/model")
    (model2 / "README.md").write_text("a model card written by another run\n")
    m = run_embed(CFG, out, model=model2, ingested=tweets2)
    assert m["resumed_from_row"] == 100 and m["embedded_this_run"] == 50
    fresh = embed_texts(xlmr_dir, [r[1] for r in rows])
    np.testing.assert_allclose(np.load(out / "combined.npy"), fresh["combined"], atol=1e-5)
