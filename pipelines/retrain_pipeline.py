"""The ``twhin-bert-retrain`` pipeline: scheduled retraining on a new engagement window.

resolve_champion -> ingest -> build_graph -> embed_graph -> mine_pairs ->
pretrain(mlm_social, warm start from the champion, its tokenizer) -> evaluate ->
register_model (the same gate; ``register_model.auto_promote`` lets scheduled runs promote).

What makes each scheduled run train on *new* data: ingest never reuses a cached execution
(the input globs keep their names while new files land under them), and with
``build_graph.window_days`` build_graph keeps the engagements of the days before the run's
scheduled time (KFP's ``PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER``) and records that
window as the registered version's ``data_window``.
"""

# No `from __future__ import annotations`: KFP reads the pipeline signature's real types.

from collections.abc import Callable

from kfp import dsl
from twhin_bert.common import roles
from twhin_bert.evaluate.component import evaluate
from twhin_bert.pretrain.component import pretrain
from twhin_bert.register_model.component import register_model, resolve_champion
from twhin_bert_pipelines.config import PipelineConfig
from twhin_bert_pipelines.pretrain_pipeline import embed_task, graph_tasks
from twhin_bert_pipelines.runtime import apply_runtime, stage_task


def build_retrain_pipeline(cfg: PipelineConfig) -> Callable:
    """Builds the retrain pipeline function for ``cfg``.

    Args:
        cfg: The pipeline config (``inputs`` name the new window's data).

    Returns:
        A ``@dsl.pipeline`` function.
    """
    inputs = cfg.inputs

    @dsl.pipeline(
        name=f"{cfg.name.removesuffix('-pretrain')}-retrain",
        description="TwHIN-BERT retraining: new engagement window, warm start from the champion.",
        pipeline_root=cfg.cluster.pipeline_root or None,
    )
    def twhin_bert_retrain(
        tweets: list = inputs.tweets,
        engagements: list = inputs.engagements,
        parallel_tweets: str = inputs.parallel_tweets,
        truth: str = inputs.truth,
        benchmarks: list = inputs.benchmarks,
        data_window: str = inputs.data_window,
        window_end: str = inputs.window_end,
    ):
        champ = resolve_champion(model_name=cfg.register_model.model_name)
        apply_runtime(champ, cfg, "resolve_champion", "resolve_champion")
        champ.set_caching_options(False)  # the champion moves between runs
        t = graph_tasks(
            cfg,
            tweets,
            engagements,
            parallel_tweets,
            truth,
            window_end,
            data_window,
            fresh_inputs=True,
        )
        ingested = t["ingest"].outputs["ingested"]
        social = stage_task(
            pretrain,
            cfg,
            "pretrain",
            "pretrain-mlm-social",
            objective="mlm_social",
            ingested=ingested,
            tokenizer=champ.outputs["champion"],
            pairs=t["mine_pairs"].outputs["pairs"],
            init_from=champ.outputs["champion"],
        )
        embed_task(cfg, social.outputs["model"], ingested)
        ev = stage_task(
            evaluate,
            cfg,
            "evaluate",
            # The champion is the model to beat: it stands beside the candidate in the report.
            config=cfg.evaluate.model_copy(update={"baseline": roles.CHAMPION}).model_dump_json(),
            model=social.outputs["model"],
            ingested=ingested,
            graph_embeddings=t["embed_graph"].outputs["graph_embeddings"],
            benchmarks=benchmarks,
            baseline_model=champ.outputs["champion"],
            base_model=cfg.pretrain.base_model or "",
            truth=truth,
        )
        stage_task(
            register_model,
            cfg,
            "register_model",
            model=social.outputs["model"],
            evaluation=ev.outputs["evaluation"],
            pipeline_config=cfg.model_dump_json(),
            data_window=t["data_window"],
            evaluated_champion=champ.outputs["Output"],
        )

    return twhin_bert_retrain
