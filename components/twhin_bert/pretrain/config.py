"""Configuration of the pretrain stage (both objectives: ``mlm`` and ``mlm_social``).

Defaults are the tiny CPU settings (a 2-layer, 128-wide encoder that trains for a few dozen
steps in seconds); the paper's base settings are :data:`BASE_ARCH` and the values listed in
``pipelines/configs/prod.yaml``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from twhin_bert.common.base_model import check as check_base_model
from twhin_bert.common.compute import Threads
from twhin_bert.common.config import StrictModel

Objective = Literal["mlm", "mlm_social"]
OBJECTIVES: tuple[str, ...] = ("mlm", "mlm_social")


class ArchConfig(StrictModel):
    """The encoder's architecture (RoBERTa / XLM-R style; the vocabulary comes from the tokenizer)."""

    num_layers: int = Field(2, ge=1, description="Transformer layers (base: 12, large: 24).")
    hidden_size: int = Field(128, ge=8, description="Hidden width (base: 768, large: 1024).")
    num_heads: int = Field(2, ge=1, description="Attention heads (base: 12, large: 16).")
    intermediate_size: int = Field(512, ge=8, description="Feed-forward width (base: 3072).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Hidden and attention dropout.")
    layer_norm_eps: float = Field(1e-5, gt=0.0, description="LayerNorm epsilon (RoBERTa: 1e-5).")
    initializer_range: float = Field(0.02, gt=0.0, description="Std of the normal weight init.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ArchConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        return self


#: The paper's base architecture (~280M parameters with the 250K XLM-R vocabulary).
BASE_ARCH = ArchConfig(num_layers=12, hidden_size=768, num_heads=12, intermediate_size=3072)


class ObjectiveTraining(StrictModel):
    """Training settings of one objective (the paper's stage 1 or stage 2 row)."""

    micro_batch_size: int = Field(
        8,
        ge=1,
        description="Per-process micro-batch: packed sequences (mlm) or tweet pairs (mlm_social).",
    )
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    peak_lr: float = Field(1e-3, gt=0.0, description="Peak learning rate after warmup.")
    warmup_steps: int = Field(5, ge=0, description="Linear warmup steps (optimizer steps).")
    steps: int = Field(
        30,
        ge=0,
        description="Total optimizer steps (linear decay to 0 after warmup). 0 skips the "
        "objective: only stage 1 (mlm) with a base_model, whose stage 2 then starts from the base.",
    )
    grad_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (saves memory, ~30% slower)."
    )

    @model_validator(mode="after")
    def _warmup_within_steps(self) -> ObjectiveTraining:
        if self.steps and self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps {self.warmup_steps} must be < steps {self.steps}")
        return self


class PretrainConfig(StrictModel):
    """Everything the pretrain stage needs besides its inputs."""

    base_model: str | None = Field(
        None,
        description="Continue from a released encoder instead of training one from scratch: a "
        "Hugging Face model folder (local path, gs:// URI, or pkg:<package>/<folder> inside an "
        "installed package), never downloaded from the hub. Its architecture and tokenizer are "
        "used (arch and train_tokenizer are ignored); families: XLM-R, RoBERTa, BERT. "
        "Stage 1 (mlm) becomes an optional MLM continuation (mlm.steps: 0 skips it).",
    )
    arch: ArchConfig = Field(
        default_factory=ArchConfig,
        description="Encoder architecture of a model trained from scratch (ignored with base_model).",
    )
    max_seq_len: int = Field(128, ge=8, le=512, description="Tokens per packed sequence.")
    lang_alpha: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="Languages are re-sampled with probability proportional to frequency**alpha.",
    )
    mask_prob: float = Field(0.15, gt=0.0, lt=1.0, description="Share of tweet tokens masked.")
    shuffle_buffer: int = Field(
        2048,
        ge=1,
        description="Tweets (mlm) or pairs (mlm_social) held in the streaming shuffle buffer "
        "(bounds memory; saved in every checkpoint).",
    )
    read_batch_rows: int = Field(
        1024, ge=1, description="Rows read from Parquet (and tweets tokenized) at once."
    )
    mlm: ObjectiveTraining = Field(
        default_factory=ObjectiveTraining, description="Stage 1 (MLM only) training settings."
    )
    mlm_social: ObjectiveTraining = Field(
        default_factory=lambda: ObjectiveTraining(micro_batch_size=16, peak_lr=5e-4),
        description="Stage 2 (MLM + social contrastive) training settings; batch = pairs.",
    )
    tau: float = Field(0.1, gt=0.0, description="NT-Xent temperature.")
    lam: float = Field(
        0.05, ge=0.0, description="Weight of the MLM loss in stage 2: L_social + lam * L_MLM."
    )
    social_pooling: Literal["cls", "mean"] = Field(
        "cls",
        description="The tweet vector stage 2's social loss trains: cls, its [CLS] vector (the "
        "paper's); mean, the mean of its own tokens, for a base_model trained mean-pooled "
        "such as sentence-transformers' MiniLM (see pretrain.model.pool_tweets).",
    )
    negatives_across_ranks: bool = Field(
        True,
        description="With several ranks, NT-Xent negatives come from every rank's pairs "
        "(all-gather with gradients): the contrastive batch is ranks x micro_batch_size pairs, "
        "as one global batch. Off: each rank contrasts its own pairs only.",
    )
    projection_dims: list[int] = Field(
        default_factory=lambda: [128, 128],
        min_length=1,
        description="Contrastive MLP head widths (base [768, 768], large [1024, 512]).",
    )
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW weight decay.")
    adam_betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW betas (RoBERTa).")
    adam_eps: float = Field(1e-6, gt=0.0, description="AdamW epsilon (RoBERTa).")
    grad_clip: float = Field(1.0, ge=0.0, description="Gradient-norm clipping (0 = off).")
    zero_stage: int = Field(
        1, ge=0, le=2, description="DeepSpeed ZeRO stage (0-2; the export reads full weights)."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto = bf16 on CUDA, fp32 on CPU."
    )
    num_gpus: int = Field(
        1,
        ge=1,
        description="Processes on this node; > 1 re-launches the stage under torchrun, one per GPU.",
    )
    num_nodes: int = Field(
        1,
        ge=1,
        description="Nodes of num_gpus GPUs each. 1: the pretrain task's own pod trains. > 1: "
        "the task runs a Kubeflow Trainer TrainJob of num_nodes pods (pretrain/trainjob.py) and "
        "follows it; needs checkpoint_dir on a ReadWriteMany volume every node mounts.",
    )
    checkpoint_every: int = Field(
        10, ge=1, description="Save a DeepSpeed checkpoint every N steps."
    )
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept on disk.")
    checkpoint_dir: str | None = Field(
        None,
        description="Checkpoint root on storage that outlives the pod (a mounted persistent "
        "volume), so a retried task resumes; each run of each task gets its own subfolder "
        "<objective>-<fingerprint of config and inputs>. Default: inside the staging folder.",
    )
    keep_checkpoints_after: bool = Field(
        False, description="Keep the checkpoints when the run finished (default: delete them)."
    )
    log_every: int = Field(1, ge=1, description="Log loss, LR and tokens/s every N steps.")
    max_pair_tweet_tokens: int = Field(
        64, ge=4, description="Tokens kept per tweet of a pair (incl. CLS/SEP) in stage 2."
    )
    threads: Threads = 2
    seed: int = Field(0, description="Seed of data order, masking, dropout and init.")

    @field_validator("base_model")
    @classmethod
    def _known_family(cls, v: str | None) -> str | None:
        # Local and packaged folders are checked now, not hours into a run; gs:// at the start
        # of the pretrain and evaluate tasks (when they download it).
        if v is not None:
            check_base_model(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PretrainConfig:
        if self.mlm_social.steps == 0:
            raise ValueError("mlm_social.steps must be >= 1 (stage 2 is the method)")
        if self.mlm.steps == 0 and self.base_model is None:
            raise ValueError(
                "mlm.steps 0 skips stage 1, which only a base_model can replace; "
                "set base_model or mlm.steps >= 1"
            )
        if self.max_pair_tweet_tokens > self.max_seq_len:
            raise ValueError(
                f"max_pair_tweet_tokens {self.max_pair_tweet_tokens} exceeds max_seq_len "
                f"{self.max_seq_len}"
            )
        if self.num_nodes > 1 and not self.checkpoint_dir:
            raise ValueError(
                f"num_nodes {self.num_nodes} needs checkpoint_dir on a volume all nodes mount "
                "(ReadWriteMany): the nodes share checkpoints and inputs through it"
            )
        if any(d < 1 for d in self.projection_dims):
            raise ValueError(f"projection_dims must be positive, got {self.projection_dims}")
        return self

    def training(self, objective: str) -> ObjectiveTraining:
        """The training settings of ``objective`` (``mlm`` or ``mlm_social``)."""
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        return self.mlm if objective == "mlm" else self.mlm_social
