"""`twhin-bert bench embed` in quick mode: the same vectors as sentence-transformers, an int8
path close to float32, and a "met" that follows the bench's rule from its own figures (speed
is not asserted: shared CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from twhin_bert.bench.embed import (
    GOAL,
    INT8_GOAL,
    INT8_MIN_COSINE,
    cosine_rows,
    load_tweets,
    main,
    make_model,
)
from twhin_bert.common.encoder import quantize_int8


def test_bench_embed_quick_same_vectors_and_ratios(
    capsys: pytest.CaptureFixture, sample_data: Path
) -> None:
    summary = main(quick=True, threads=1, data=str(sample_data))
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["bench"] == "embed" and last == json.loads(json.dumps(summary))
    assert last["tweets"] == 200 and last["data"] == str(sample_data)  # real tweets
    assert last["model"].startswith("xlm-r random 2x128")
    for key in ("ours_tweets_per_s", "sentence_transformers_tweets_per_s", "int8_tweets_per_s"):
        assert last[key] > 0, key
    assert last["speedup"] == pytest.approx(
        last["ours_tweets_per_s"] / last["sentence_transformers_tweets_per_s"], rel=1e-3
    )
    assert last["int8_speedup"] == pytest.approx(
        last["int8_tweets_per_s"] / last["sentence_transformers_tweets_per_s"], rel=1e-3
    )
    # sentence-transformers' CLS vectors are ours
    assert last["same_vectors"] is True and last["max_abs_diff"] < 1e-4
    assert 0.99 <= last["int8_cosine_min"] <= last["int8_cosine_mean"] <= 1.0
    assert last["met_float32"] == (last["speedup"] >= GOAL and last["same_vectors"])
    assert last["met_int8"] == (
        last["int8_speedup"] >= INT8_GOAL and last["int8_cosine_mean"] >= INT8_MIN_COSINE
    )
    assert last["met"] == (last["met_float32"] and last["met_int8"])


def test_quantize_int8_replaces_every_linear(tmp_path: Path) -> None:
    from transformers import AutoModel

    texts, _ = load_tweets(300, None, seed=0)
    make_model(texts, tmp_path, layers=1, hidden=64, vocab=300, seed=0)
    from transformers import AutoTokenizer

    model = AutoModel.from_pretrained(str(tmp_path)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    q = quantize_int8(model, tokenizer, texts[:64])
    assert any(isinstance(m, torch.nn.Linear) for m in model.modules())  # original untouched
    assert not any(m._forward_pre_hooks for m in model.modules())
    assert not any(type(m) is torch.nn.Linear for m in q.modules())
    quantised = [m for m in q.modules() if type(m).__name__ == "Linear" and hasattr(m, "scale")]
    # every layer the calibration reached keeps its smoothing (input divided by its scales)
    assert quantised and all(len(m._forward_pre_hooks) == 1 for m in quantised[:-1])
    ids = torch.randint(5, model.config.vocab_size, (4, 12))
    with torch.inference_mode():
        a = model(input_ids=ids).last_hidden_state[:, 0].numpy()
        b = q(input_ids=ids).last_hidden_state[:, 0].numpy()
    assert not np.array_equal(a, b)  # quantised weights compute something else ...
    assert cosine_rows(a, b).min() > 0.99  # ... close to it


def test_cosine_rows() -> None:
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 0.0], [-1.0, -1.0]])
    np.testing.assert_allclose(cosine_rows(a, b), [1.0, 1.0, -1.0])


def test_generated_fallback_text_when_no_data() -> None:
    texts, source = load_tweets(50, None, seed=1)
    assert source == "generated" and len(texts) == 50 and len(set(texts)) > 40
    assert load_tweets(50, None, seed=1)[0] == texts
