"""Config of the mine_pairs stage: the FAISS social source, the hashtag and translation
sources, and how the three are mixed. Defaults are the tiny CPU settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from twhin_bert.common.compute import Threads
from twhin_bert.common.config import StrictModel


class SocialSourceConfig(StrictModel):
    """Nearest neighbours of the graph's tweet embeddings (cosine, FAISS)."""

    enabled: bool = Field(True, description="Mine social pairs from the tweet embeddings.")
    index: str = Field(
        "auto",
        description=(
            "FAISS index-factory string (inner-product metric on L2-normalised vectors), e.g. "
            "'OPQ64,IVF65536,PQ64'; 'auto' derives one from the number of vectors."
        ),
    )
    nprobe: int | None = Field(
        None, ge=1, description="IVF lists probed per query; None = derived from the list count."
    )
    search_params: str = Field(
        "",
        description="Extra FAISS ParameterSpace settings, e.g. 'k_factor_rf=4,quantizer_efSearch=64'; "
        "'' = derived ('k_factor_rf=10' behind an RFlat re-ranker).",
    )
    min_engagements: int = Field(
        3,
        ge=0,
        description=(
            "Tweets with fewer engagements (in the ingested engagements) are not indexed: the "
            "graph embedding of a tweet engaged by one or two users mostly reflects those users."
        ),
    )
    k: int = Field(10, ge=1, le=2048, description="Neighbours searched per tweet (self included).")
    min_similarity: float = Field(
        0.7, ge=-1.0, le=1.0, description="Cosine similarity a neighbour needs to become a pair."
    )
    max_pairs_per_tweet: int | None = Field(
        None,
        ge=1,
        description="Keep at most this many (best-scoring) pairs per tweet; None = no cap.",
    )
    train_size: int = Field(
        50_000, ge=1, description="Vectors sampled (seeded) to train the index."
    )
    add_batch_size: int = Field(65_536, ge=1, description="Vectors added to the index per batch.")
    query_batch_size: int = Field(16_384, ge=1, description="Queries searched per batch.")
    recall_queries: int = Field(
        500, ge=0, description="Random queries whose recall@k against exact search is measured."
    )
    use_gpu: bool = Field(
        True, description="Use every GPU (sharded index) when faiss-gpu sees any; else CPU."
    )


class HashtagSourceConfig(StrictModel):
    """HICL-style pairs: two tweets that share a frequent hashtag."""

    enabled: bool = Field(True, description="Mine hashtag pairs from the ingested tweets.")
    min_hashtag_count: int = Field(
        5, ge=2, description="Hashtags seen in fewer tweets than this are dropped (HICL: 100)."
    )
    max_pairs_per_hashtag: int = Field(
        50, ge=1, description="Pairs sampled per hashtag at most (seeded)."
    )
    text_mode: Literal["remove", "noise"] = Field(
        "remove",
        description=(
            "What happens to the shared hashtag(s) in both texts: 'remove' deletes them; 'noise' "
            "replaces each with another random frequent hashtag with probability noise_prob, "
            "and deletes it otherwise."
        ),
    )
    noise_prob: float = Field(
        0.5, ge=0.0, le=1.0, description="Replacement probability in text_mode 'noise'."
    )


class TranslationSourceConfig(StrictModel):
    """TPP-style pairs: a tweet and its translation, read from a parallel-tweets file."""

    enabled: bool = Field(True, description="Use the parallel-tweets file when one is given.")
    max_pairs: int | None = Field(
        None, ge=1, description="Read at most this many valid pairs; None = all."
    )


class SourceWeights(StrictModel):
    """Relative share of each source in the final pair set."""

    social: float = Field(1.0, ge=0.0, description="Weight of the social (FAISS) source.")
    hashtag: float = Field(0.3, ge=0.0, description="Weight of the hashtag (HICL) source.")
    translation: float = Field(0.1, ge=0.0, description="Weight of the translation (TPP) source.")


class MinePairsConfig(StrictModel):
    """The mine_pairs stage."""

    seed: int = Field(0, description="Drives every random choice (training sample, sampling, mix).")
    threads: Threads = 0
    social: SocialSourceConfig = Field(
        default_factory=SocialSourceConfig, description="FAISS nearest-neighbour source."
    )
    hashtag: HashtagSourceConfig = Field(
        default_factory=HashtagSourceConfig, description="Hashtag (HICL) source."
    )
    translation: TranslationSourceConfig = Field(
        default_factory=TranslationSourceConfig, description="Translation (TPP) source."
    )
    weights: SourceWeights = Field(
        default_factory=SourceWeights, description="Share of each source in the final set."
    )
    total_pairs: int | None = Field(
        None,
        ge=1,
        description=(
            "Size of the final pair set, split by the weights (a source short of its share gives "
            "the rest to the others); None = every social pair plus the others in proportion "
            "(weight / social weight x social count)."
        ),
    )

    @model_validator(mode="after")
    def _weights_make_sense(self) -> MinePairsConfig:
        w = self.weights
        if self.total_pairs is None and self.social.enabled and w.social <= 0:
            raise ValueError(
                "weights.social must be > 0 when total_pairs is None (the other sources are sized "
                "relative to the social one); set total_pairs or a positive social weight"
            )
        active = [
            (self.social.enabled, w.social),
            (self.hashtag.enabled, w.hashtag),
            (self.translation.enabled, w.translation),
        ]
        if not any(on and weight > 0 for on, weight in active):
            raise ValueError("no pair source is both enabled and weighted > 0")
        return self
