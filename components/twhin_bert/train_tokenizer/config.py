"""Config of the train_tokenizer stage (defaults: tiny CPU settings)."""

from __future__ import annotations

from pydantic import Field, model_validator

from twhin_bert.common.config import StrictModel


class TrainTokenizerConfig(StrictModel):
    """How to build the subword tokenizer: train a Unigram model, or take an existing one."""

    pretrained: str | None = Field(
        None,
        description=(
            "A tokenizer folder (local path or gs:// URI, e.g. a copy of XLM-R's) to use instead of "
            "training one; it is validated, given model_max_length and saved as the output. Nothing "
            "is downloaded from the Hugging Face Hub."
        ),
    )
    vocab_size: int = Field(
        4000,
        ge=64,
        description="Vocabulary size, special tokens included (250000 in production, like XLM-R).",
    )
    alpha: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="Language re-sampling exponent: a language is drawn with probability ∝ frequency^alpha.",
    )
    corpus_tweets: int | None = Field(
        None,
        ge=1,
        description=(
            "Size of the re-sampled training corpus in tweets; None = as many as the input has. "
            "Languages below their target share are repeated, those above are sub-sampled."
        ),
    )
    batch_size: int = Field(
        2000, ge=1, description="Tweets read from Parquet and fed to the trainer at a time."
    )
    valid_fraction: float = Field(
        0.02,
        ge=0.0,
        lt=1.0,
        description=(
            "Share of tweets drawn as the validation split: kept out of training, tokens per "
            "tweet and unk rate are measured on it."
        ),
    )
    valid_max: int = Field(
        2000, ge=0, description="At most this many validation tweets are kept (bounded memory)."
    )
    max_piece_length: int = Field(16, ge=1, description="Longest subword piece, in characters.")
    shrinking_factor: float = Field(
        0.75, gt=0.0, lt=1.0, description="Share of pieces kept at each Unigram pruning step."
    )
    n_sub_iterations: int = Field(2, ge=1, description="EM iterations between pruning steps.")
    model_max_length: int = Field(
        128, ge=8, description="Longest sequence the tokenizer produces (special tokens included)."
    )
    seed: int = Field(0, description="Seed of the validation split and the language re-sampling.")

    @model_validator(mode="after")
    def _valid_possible(self) -> TrainTokenizerConfig:
        if self.valid_fraction > 0 and self.valid_max == 0:
            raise ValueError("valid_fraction > 0 needs valid_max > 0 (or set the fraction to 0)")
        return self
