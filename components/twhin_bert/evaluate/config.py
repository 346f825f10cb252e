"""Config of the evaluate stage: engagement prediction, hashtag prediction, external benchmarks.

Defaults are the tiny settings (a 2-core CPU, a minute or two); production values live in
``pipelines/configs/prod.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from twhin_bert.common import roles
from twhin_bert.common.compute import Threads
from twhin_bert.common.config import StrictModel

Metric = Literal["macro_f1", "macro_recall", "accuracy"]
Pooling = Literal["combined", "cls", "mean"]


class FinetuneConfig(StrictModel):
    """Fine-tuning a linear layer on the pooled ([CLS]) output with the encoder unfrozen."""

    enabled: bool = Field(True, description="Run the fine-tuned variant at all.")
    tasks: list[Literal["hashtag", "benchmarks"]] = Field(
        ["benchmarks"],
        description="Task families fine-tuned (tiny: benchmarks only; hashtag fine-tuning runs one "
        "model per language and is the slowest part on a CPU; prod: both).",
    )
    epochs: int = Field(2, ge=1, description="Epochs (paper: up to 30); best epoch by validation.")
    lr: float = Field(
        4e-5, gt=0, description="AdamW learning rate of the encoder (paper: 4e-5 base)."
    )
    head_lr: float = Field(
        1e-3, gt=0, description="Learning rate of the freshly initialised linear head."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(32, ge=1, description="Batch size (paper: 128).")
    seeds: int = Field(1, ge=1, description="Seeds; the median score is reported (paper: 3).")
    max_train: int = Field(
        400,
        ge=1,
        description="Cap on fine-tuning training examples (the feature-based cap applies first).",
    )


class EngagementConfig(StrictModel):
    """Social engagement prediction (the TwHIN-BERT paper's task): frozen encoder + two linear 128-d projections."""

    enabled: bool = Field(True, description="Run the engagement task.")
    dim: int = Field(
        128, ge=1, description="Projection size of h_u = W_u^T e_u and h_t = W_t^T e_t."
    )
    batch_size: int = Field(512, ge=1, description="Positive engagements per batch.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    epochs: int = Field(
        20,
        ge=1,
        description="Most epochs; the best epoch on validation HITS@k is kept (paper: the best "
        "checkpoint on validation). Enough for the projection to level off (measured: README).",
    )
    patience: int | None = Field(
        4,
        ge=1,
        description="Stop after this many epochs without a better validation HITS@k (null: "
        "run every epoch).",
    )
    references: bool = Field(
        True,
        description="On demo data (inputs.truth: its planted topics), also score the references "
        "planted_topic and text_topic: the room the data leaves above the models (README).",
    )
    negatives: int = Field(
        10, ge=1, description="Negative tweets per positive, drawn ∝ train tweet frequency^power."
    )
    negative_power: float = Field(0.75, ge=0, description="Exponent of the negative sampler.")
    split_fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1),
        description="Train/validation/test fractions of the engaged tweets (split by tweet), "
        "used only when the graph passes on no build_graph holdout.",
    )
    candidates: int = Field(
        1000,
        ge=2,
        description="Candidates per test user: 1 engaged + (candidates-1) random tweets of the "
        "pool; fewer when the pool holds fewer tweets.",
    )
    candidate_pool: Literal["split", "all"] = Field(
        "split",
        description="Where random candidates come from: tweets of the same split (unseen in "
        "training) or every tweet. Tweets the user engaged with are never negatives.",
    )
    max_users: int | None = Field(
        2000,
        ge=1,
        description="Users evaluated per split (validation, test): a seeded sample when more "
        "users engaged with the split's tweets. Each evaluated user holds a row of `candidates` "
        "tweets, so this bounds the task's largest arrays however many users the platform has "
        "(the demo's 2,000 users are all evaluated). null = every user.",
    )
    k: int = Field(10, ge=1, description="The k of the headline HITS@k.")
    curve_max_k: int = Field(100, ge=1, description="HITS@k curve is reported for k = 1..this.")
    seeds: int = Field(
        2, ge=1, description="Seeds (training + candidate draws); median reported (prod: 6)."
    )
    min_users_per_lang: int = Field(
        5,
        ge=1,
        description="Per-language HITS@k is reported only for languages with this many test users.",
    )
    tfidf_dim: int = Field(
        1024,
        ge=2,
        description="TF-IDF floor: random-projection size of the TF-IDF tweet vectors fed to the same model.",
    )


class HashtagConfig(StrictModel):
    """Hashtag prediction per language (the TwHIN-BERT paper's hashtag task)."""

    enabled: bool = Field(True, description="Run the hashtag task.")
    top_n: int = Field(20, ge=2, description="Most frequent hashtags per language (paper: 500).")
    min_tweets_per_hashtag: int = Field(
        10, ge=1, description="A frequent hashtag needs this many usable tweets to stay a class."
    )
    min_examples: int = Field(
        60, ge=10, description="Languages with fewer usable tweets are skipped and counted."
    )
    max_examples_per_lang: int = Field(
        3000, ge=10, description="Cap on tweets per language (seeded sample)."
    )
    skip_langs: list[str] = Field(["und"], description="Language codes never evaluated.")
    bootstrap: int = Field(
        1000,
        ge=0,
        description="Paired bootstrap resamples of the test tweets (per language) for the "
        "candidate-minus-baseline macro-F1 difference and its 95% interval (0 = none).",
    )
    split_fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1),
        description="Train/validation/test fractions per language, used only when the graph "
        "passes on no build_graph holdout.",
    )


class BenchmarkConfig(StrictModel):
    """External classification benchmarks in TweetEval/UMSAB folder format."""

    metric_by_benchmark: dict[str, Metric] = Field(
        {"sentiment": "macro_recall"},
        description="Metric per benchmark name (SemEval-2017 sentiment: macro-averaged recall); "
        "others use default_metric.",
    )
    default_metric: Metric = Field("macro_f1", description="Metric of benchmarks not listed above.")
    max_train: int = Field(
        2000, ge=1, description="Cap on training examples per benchmark (seeded sample)."
    )
    max_val: int = Field(500, ge=1, description="Cap on validation examples per benchmark.")
    max_test: int = Field(500, ge=1, description="Cap on test examples per benchmark.")
    carve_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="When a split is missing, the fraction carved out of another: no train -> "
        "train/val from val; no test -> val becomes test and val is carved from train.",
    )
    few_shot: list[int] = Field(
        [2, 4, 8, 16, 32], description="Examples per class of the few-shot curve."
    )
    few_shot_seeds: int = Field(3, ge=1, description="Seeds per few-shot point; median reported.")
    main: str | None = Field(
        None, description="Benchmark whose confusion matrix goes to KFP (None: the first one)."
    )

    def metric_for(self, name: str, folder: Path) -> Metric:
        """The metric of a benchmark: by its name, else by its folder's name, else the default."""
        by = self.metric_by_benchmark
        return by.get(name) or by.get(folder.name, self.default_metric)


class EvaluateConfig(StrictModel):
    """The evaluate stage."""

    seed: int = Field(0, description="Drives every split, sample, initialisation and draw.")
    device: str = Field("cpu", description="torch device ('cpu', 'cuda', or 'auto').")
    threads: Threads = 2
    embed_batch_size: int = Field(64, ge=1, description="Batch size of frozen-encoder embedding.")
    max_tweets: int | None = Field(
        None,
        ge=1,
        description="Cap on the ingested tweets the engagement and hashtag tasks read: the "
        "max_tweets tweets with the smallest seeded hash of their id, with their engagements "
        "(read in one streaming pass), so that memory and time stay flat however large the "
        "input; the metrics are then those of this sample, and metrics.json says so "
        "(tweets_sampled). null = every tweet.",
    )
    max_length: int = Field(64, ge=8, description="Max tokens per tweet (paper: 128).")
    pooling: Pooling = Field(
        "combined",
        description="Frozen features of the feature-based classifiers ('combined' = [CLS] ++ mean).",
    )
    lr_c_grid: list[float] = Field(
        [1.0],
        min_length=1,
        description="LogisticRegression C values; the best on validation is kept.",
    )
    tfidf_c_grid: list[float] = Field(
        [10.0],
        min_length=1,
        description="C values of the TF-IDF floor's LogisticRegression (best on val).",
    )
    lr_max_iter: int = Field(500, ge=10, description="LogisticRegression max_iter.")
    primary_mode: Literal["feature", "finetune"] = Field(
        "feature",
        description="Which variant (feature-based or fine-tuned) gives the headline classification "
        "numbers in `primary` (prod: finetune, as in the paper).",
    )
    candidate: str = Field(
        roles.CANDIDATE, description="Model name whose numbers become `primary`."
    )
    baseline: str = Field(
        roles.MLM_ONLY, description="Ablation twin compared with the candidate when present."
    )
    base: str = Field(
        roles.BASE_ENCODER,
        description="Name of the untouched base encoder (pretrain.base_model) scored beside "
        "the candidate when the candidate continued one.",
    )
    engagement: EngagementConfig = Field(
        default_factory=EngagementConfig, description="Engagement task."
    )
    hashtag: HashtagConfig = Field(default_factory=HashtagConfig, description="Hashtag task.")
    benchmarks: BenchmarkConfig = Field(
        default_factory=BenchmarkConfig, description="External benchmarks."
    )
    finetune: FinetuneConfig = Field(
        default_factory=FinetuneConfig, description="Fine-tuning settings."
    )

    @model_validator(mode="after")
    def _check(self) -> EvaluateConfig:
        for name, task in (("engagement", self.engagement), ("hashtag", self.hashtag)):
            fractions = task.split_fractions
            if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) <= 0:
                raise ValueError(
                    f"{name}.split_fractions must be 3 positive fractions summing to 1, "
                    f"got {fractions}"
                )
        if self.primary_mode == "finetune" and not (
            self.finetune.enabled and set(self.finetune.tasks) == {"hashtag", "benchmarks"}
        ):
            raise ValueError(
                "primary_mode 'finetune' needs finetune.enabled = true and "
                "finetune.tasks = [hashtag, benchmarks]"
            )
        if self.engagement.k > self.engagement.curve_max_k:
            raise ValueError("engagement.k must be <= engagement.curve_max_k")
        names = [self.candidate, self.baseline, self.base]
        if len(set(names)) < len(names):
            raise ValueError(
                f"candidate, baseline and base must name different models, got {names}"
            )
        return self
