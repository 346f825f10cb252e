"""The embed stage's optional int8 path (``quantize: int8``): dynamically quantised Linear
layers give vectors close to, not equal to, the float32 ones; a resume never mixes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from twhin_bert.bench.embed import cosine_rows
from twhin_bert.bench.pretrain import write_tweets
from twhin_bert.embed.config import EmbedConfig
from twhin_bert.embed.embed import run_embed


def test_run_embed_int8_close_to_float32(
    xlmr_dir: Path, embed_tweets: list, tmp_path: Path
) -> None:
    tweets = write_tweets([(r[1], r[2]) for r in embed_tweets[::6]], tmp_path / "ingested")
    base = EmbedConfig(batch_size=16, chunk_size=64, device="cpu")
    run_embed(base, tmp_path / "f32", model=xlmr_dir, ingested=tweets)
    int8 = base.model_copy(update={"quantize": "int8"})
    run_embed(int8, tmp_path / "int8", model=xlmr_dir, ingested=tweets)
    for kind in ("cls", "mean", "combined"):
        a = np.load(tmp_path / "f32" / f"{kind}.npy")
        b = np.load(tmp_path / "int8" / f"{kind}.npy")
        assert a.shape == b.shape and b.dtype == np.float32
        assert not np.array_equal(a, b), kind  # the quantised path really ran
        assert cosine_rows(a, b).mean() > 0.99, kind


def test_quantize_is_checked() -> None:
    assert EmbedConfig().quantize == "none"
    with pytest.raises(ValidationError, match="quantize"):
        EmbedConfig(quantize="int4")
