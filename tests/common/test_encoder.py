"""Encoder helpers shared by embed, evaluate and the registered model (common/encoder.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from twhin_bert.common.artifacts import ArtifactError
from twhin_bert.common.encoder import BUCKET_WIDTH, length_batches, load_encoder, resolve_device
from twhin_bert.embed.config import EmbedConfig


def test_length_batches_cover_every_text_once_with_bounded_padding() -> None:
    lengths = np.random.default_rng(0).integers(1, 120, size=1000)
    batches = length_batches(lengths, batch_size=32)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert max(len(b) for b in batches) <= 32
    assert all(lengths[b].max() - lengths[b].min() < BUCKET_WIDTH for b in batches)


def test_device_and_missing_model_folder(tmp_path: Path) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == resolve_device("auto").type == expected
    with pytest.raises(ArtifactError, match=r"no config\.json"):
        load_encoder(tmp_path)


def test_embed_stage_defaults_are_the_encoder_defaults() -> None:
    from twhin_bert.common import encoder

    cfg = EmbedConfig()
    assert (cfg.batch_size, cfg.max_length) == (
        encoder.DEFAULT_BATCH_SIZE,
        encoder.DEFAULT_MAX_LENGTH,
    )
