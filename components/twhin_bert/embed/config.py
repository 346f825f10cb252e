"""Config of the embed stage (defaults: tiny CPU settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from twhin_bert.common.compute import Device, Threads
from twhin_bert.common.config import StrictModel
from twhin_bert.common.encoder import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH


class EmbedConfig(StrictModel):
    """How to batch-embed tweets with an encoder into CLS, mean and Combined vectors."""

    batch_size: int = Field(
        DEFAULT_BATCH_SIZE,
        ge=1,
        description="Sequences per forward pass (neighbours in length order).",
    )
    max_length: int = Field(
        DEFAULT_MAX_LENGTH,
        ge=3,
        description="Longest tokenized tweet, special tokens included (longer are cut).",
    )
    chunk_size: int = Field(
        8192,
        ge=1,
        description=(
            "Tweets read from Parquet, sorted by length and embedded at a time; larger chunks "
            "mean less padding, more memory. Progress is saved after each chunk (resume)."
        ),
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="int8: the encoder's Linear layers dynamically quantised to int8 after "
        "SmoothQuant smoothing calibrated on the first tweets (CPU only; faster, vectors close "
        "to but not equal to float32 -- `twhin-bert bench embed` reports both).",
    )
    device: Device = "auto"
    threads: Threads = 0

    @model_validator(mode="after")
    def _chunk_holds_a_batch(self) -> EmbedConfig:
        if self.chunk_size < self.batch_size:
            raise ValueError(
                f"chunk_size ({self.chunk_size}) must be >= batch_size ({self.batch_size})"
            )
        return self
