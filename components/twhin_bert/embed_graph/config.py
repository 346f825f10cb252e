"""Config of the embed_graph stage (defaults: tiny CPU settings; prod: 256 dims, 10 epochs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from twhin_bert.common.config import StrictModel


class EmbedGraphConfig(StrictModel):
    """PyTorch-BigGraph training of the TwHIN and its link-prediction evaluation."""

    dimension: int = Field(32, ge=2, description="Embedding dimension (paper: 256).")
    num_epochs: int = Field(10, ge=1, description="Passes over the train edges (paper: 10).")
    operator: Literal["translation", "diagonal", "none"] = Field(
        "translation",
        description="PBG relation operator, applied on the user (PBG's rhs) side: "
        "translation gives the paper's TwHIN score f = (u + r)ᵀt.",
    )
    comparator: Literal["dot", "cos", "l2", "squared_l2"] = Field(
        "dot", description="PBG comparator of the two sides (the paper: dot product)."
    )
    loss_fn: Literal["logistic", "softmax", "ranking"] = Field(
        "logistic",
        description="PBG loss; logistic is the paper's negative-sampling log-likelihood.",
    )
    margin: float = Field(0.1, ge=0.0, description="Margin of the ranking loss (unused otherwise).")
    lr: float = Field(0.1, gt=0.0, description="Adagrad learning rate (PBG's optimizer).")
    init_scale: float = Field(0.1, gt=0.0, description="Std of the random initial embeddings.")
    batch_size: int = Field(1000, ge=1, description="Positive edges per PBG batch.")
    num_batch_negs: int = Field(
        50,
        ge=0,
        description="Negatives per positive taken from the batch's other edges "
        "(sampled proportionally to entity prevalence).",
    )
    num_uniform_negs: int = Field(
        50, ge=0, description="Negatives per positive sampled uniformly from the partition."
    )
    workers: int = Field(
        0,
        ge=0,
        description="Hogwild! worker processes: 0 = every CPU the process may use (its affinity "
        "mask, capped by a cgroup CPU limit); deterministic only with 1.",
    )
    num_edge_chunks: int | None = Field(
        None,
        ge=1,
        description="Chunks per bucket; PBG checkpoints after each chunk (a killed run "
        "loses at most one chunk). None = as many as max_edges_per_chunk asks for.",
    )
    max_edges_per_chunk: int = Field(
        2_000_000,
        ge=1,
        description="Edges of a bucket trained at a time (PBG's own setting, used when "
        "num_edge_chunks is None): PBG holds a chunk's edges several times over (the loaded "
        "list, its shuffle, and in each Hogwild! worker its share copied and re-sorted by "
        "relation: about 100 B per edge in all), so this bounds the stage's memory however "
        "many edges a bucket has. Each chunk ends with a checkpoint.",
    )
    hogwild_delay: float = Field(
        0.0, ge=0.0, description="Seconds PBG delays the extra workers in the first epoch."
    )
    pbg_eval_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Share of each bucket PBG keeps from training for its own stats.",
    )
    eval_candidates: int = Field(
        100, ge=1, description="Random candidate tweets ranked against each evaluated edge."
    )
    eval_max_edges: int = Field(
        5000, ge=1, description="At most this many edges of eval_split are evaluated (sampled)."
    )
    eval_split: Literal["test", "valid"] = Field(
        "test", description="The split of the graph's edges link prediction is measured on."
    )
    keep_checkpoint: bool = Field(
        True, description="Keep PBG's checkpoint/ in the output (the trained model)."
    )
    checkpoint_dir: str | None = Field(
        None,
        description="Where PBG checkpoints while training: storage that outlives the pod (a "
        "mounted persistent volume) so a retried task resumes; one subfolder per graph and "
        "model, moved into the output when done. Default: inside the staging folder.",
    )
    seed: int = Field(0, description="Seed of PBG's initialisation/negatives and the evaluation.")

    @model_validator(mode="after")
    def _consistent(self) -> EmbedGraphConfig:
        if self.num_batch_negs + self.num_uniform_negs == 0:
            raise ValueError("num_batch_negs + num_uniform_negs must be > 0: no negatives")
        if self.num_batch_negs >= self.batch_size:
            raise ValueError(
                f"num_batch_negs ({self.num_batch_negs}) must be < batch_size "
                f"({self.batch_size}): batch negatives are drawn from the batch"
            )
        return self
