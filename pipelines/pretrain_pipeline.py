"""The ``twhin-bert-pretrain`` pipeline: raw logs to a registered, evaluated encoder.

ingest -> build_graph -> embed_graph -> mine_pairs -> train_tokenizer -> pretrain(mlm)
-> pretrain(mlm_social) -> evaluate -> register_model, plus (``ablation: true``) the
MLM-only twin trained from stage 1 for as many steps as stage 2 and evaluated beside it, and
(``embed_tweets: true``) the new encoder's embeddings of every ingested tweet.

With ``pretrain.base_model`` (a released encoder) train_tokenizer is skipped, pretrain(mlm)
is an optional MLM continuation of the base (``pretrain.mlm.steps: 0`` skips it), and
evaluate scores the untouched base as a third model.
"""

# No `from __future__ import annotations`: KFP reads the pipeline signature's real types.

from collections.abc import Callable
from typing import Any

from kfp import dsl
from twhin_bert.build_graph.component import build_graph
from twhin_bert.embed.component import embed
from twhin_bert.embed_graph.component import embed_graph
from twhin_bert.evaluate.component import evaluate
from twhin_bert.ingest.component import ingest
from twhin_bert.mine_pairs.component import mine_pairs
from twhin_bert.pretrain.component import pretrain
from twhin_bert.pretrain.config import PretrainConfig
from twhin_bert.register_model.component import register_model
from twhin_bert.train_tokenizer.component import train_tokenizer
from twhin_bert_pipelines.config import PipelineConfig
from twhin_bert_pipelines.runtime import stage_task


def ablation_twin(p: PretrainConfig) -> PretrainConfig:
    """The MLM-only twin's config: MLM continued from stage 1 (or from the base model when
    stage 1 is skipped) with stage 2's schedule (steps, learning rate, warmup), so the twin
    sees as many optimizer steps, from the same start, as the social model."""
    twin = p.model_copy(deep=True)
    twin.mlm = p.mlm_social.model_copy(update={"micro_batch_size": p.mlm.micro_batch_size})
    return twin


def graph_tasks(
    cfg: PipelineConfig,
    tweets: list,
    engagements: list,
    parallel_tweets: str,
    truth: str,
    window_end: str,
    data_window: str,
    fresh_inputs: bool = False,
) -> dict:
    """The stages both pipelines share: ingest -> build_graph -> embed_graph -> mine_pairs.

    Args:
        fresh_inputs: The input globs may hold new files under the same names (scheduled
            retraining): ingest never reuses a cached execution.

    Returns:
        The tasks by stage name, and ``data_window``: the window label for the registry
        (build_graph's resolved rolling window when ``build_graph.window_days`` is set).
    """
    ing = stage_task(ingest, cfg, "ingest", tweets=tweets, engagements=engagements)
    if fresh_inputs:
        ing.set_caching_options(False)
    rolling = cfg.build_graph.window_days is not None
    # Only a rolling window reads the run's times: they would defeat caching otherwise.
    times = (
        {
            "window_end": window_end,
            "schedule_time": dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
            "create_time": dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
        }
        if rolling
        else {}
    )
    graph = stage_task(build_graph, cfg, "build_graph", ingested=ing.outputs["ingested"], **times)
    if rolling:  # its inputs hold the run's times: a cache key that never repeats
        graph.set_caching_options(False)
    emb = stage_task(embed_graph, cfg, "embed_graph", graph=graph.outputs["graph"])
    pairs = stage_task(
        mine_pairs,
        cfg,
        "mine_pairs",
        ingested=ing.outputs["ingested"],
        graph_embeddings=emb.outputs["graph_embeddings"],
        parallel_tweets=parallel_tweets,
        truth=truth,
    )
    return {
        "ingest": ing,
        "build_graph": graph,
        "embed_graph": emb,
        "mine_pairs": pairs,
        "data_window": graph.outputs["Output"] if rolling else data_window,
    }


def embed_task(cfg: PipelineConfig, model: Any, ingested: Any) -> Any:
    """The trained encoder's embeddings of every ingested tweet (``embed_tweets``), or None.

    Args:
        model, ingested: Pipeline channels (task outputs) of the model and the ingest folder.
    """
    if not cfg.embed_tweets:
        return None
    return stage_task(embed, cfg, "embed", model=model, ingested=ingested)


def build_pretrain_pipeline(cfg: PipelineConfig) -> Callable:
    """Builds the pretrain pipeline function for ``cfg`` (stage configs and runtime are
    compiled in; the inputs are run-time parameters).

    Args:
        cfg: The pipeline config.

    Returns:
        A ``@dsl.pipeline`` function.
    """
    inputs = cfg.inputs
    twin_cfg = ablation_twin(cfg.pretrain).model_dump_json()

    @dsl.pipeline(
        name=cfg.name,
        description="TwHIN-BERT: socially-enriched encoder from tweets and engagements.",
        pipeline_root=cfg.cluster.pipeline_root or None,
    )
    def twhin_bert_pretrain(
        tweets: list = inputs.tweets,
        engagements: list = inputs.engagements,
        parallel_tweets: str = inputs.parallel_tweets,
        truth: str = inputs.truth,
        benchmarks: list = inputs.benchmarks,
        data_window: str = inputs.data_window,
        window_end: str = inputs.window_end,
    ):
        t = graph_tasks(cfg, tweets, engagements, parallel_tweets, truth, window_end, data_window)
        ingested = t["ingest"].outputs["ingested"]
        # From a released encoder (pretrain.base_model) its tokenizer is used: no
        # train_tokenizer; stage 1 is an optional MLM continuation of the base.
        base = cfg.pretrain.base_model
        tok_args = {}
        if base is None:
            tok = stage_task(train_tokenizer, cfg, "train_tokenizer", ingested=ingested)
            tok_args = {"tokenizer": tok.outputs["tokenizer"]}
        start = {}  # stage 2 and the twin start from stage 1, else (skipped) from the base
        if base is None or cfg.pretrain.mlm.steps > 0:
            mlm = stage_task(
                pretrain,
                cfg,
                "pretrain",
                "pretrain-mlm",
                objective="mlm",
                ingested=ingested,
                **tok_args,
            )
            start = {"init_from": mlm.outputs["model"]}
        social = stage_task(
            pretrain,
            cfg,
            "pretrain",
            "pretrain-mlm-social",
            objective="mlm_social",
            ingested=ingested,
            pairs=t["mine_pairs"].outputs["pairs"],
            **tok_args,
            **start,
        )
        embed_task(cfg, social.outputs["model"], ingested)
        eval_args = dict(
            model=social.outputs["model"],
            ingested=ingested,
            graph_embeddings=t["embed_graph"].outputs["graph_embeddings"],
            benchmarks=benchmarks,
            base_model=base or "",
            truth=truth,
        )
        if cfg.ablation:
            twin = stage_task(
                pretrain,
                cfg,
                "pretrain",
                "pretrain-mlm-only",
                config=twin_cfg,
                objective="mlm",
                ingested=ingested,
                **tok_args,
                **start,
            )
            eval_args["baseline_model"] = twin.outputs["model"]
        ev = stage_task(evaluate, cfg, "evaluate", **eval_args)
        stage_task(
            register_model,
            cfg,
            "register_model",
            model=social.outputs["model"],
            evaluation=ev.outputs["evaluation"],
            pipeline_config=cfg.model_dump_json(),
            data_window=t["data_window"],
        )

    return twhin_bert_pretrain
