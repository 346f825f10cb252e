"""KFP component of the pretrain stage (thin: typed artifacts -> ``run_pretrain``)."""

# No `from __future__ import annotations`: KFP reads the real annotations of the optional
# artifact inputs (`Input[Dataset] = None`), which postponed evaluation turns into strings.
from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def pretrain(
    config: str,
    objective: str,
    ingested: Input[Dataset],
    pipeline_run_id: str,
    model: Output[Model],
    metrics: Output[Metrics],
    tokenizer: Input[Model] = None,
    pairs: Input[Dataset] = None,
    init_from: Input[Model] = None,
):
    """Pretrains the TwHIN-BERT encoder with DeepSpeed and exports a Hugging Face model.

    One CPU process locally; on a GPU node, ``num_gpus`` in the config > 1 re-launches the
    training under ``torchrun`` with one process per GPU. Checkpoints every
    ``checkpoint_every`` steps and resumes from the latest one when the task is retried.

    Args:
        config: The pretrain section of the pipeline config, as JSON.
        objective: ``mlm`` (stage 1) or ``mlm_social`` (stage 2: MLM + NT-Xent on pairs).
        ingested: The ingest output (its tweets).
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        model: Hugging Face model folder (``AutoModel``/``AutoTokenizer`` load it), with
            ``mlm_head.safetensors``, ``social_head.safetensors``, ``training_log.json`` and
            a ``README.md`` model card.
        metrics: Final losses, steps, tokens/s, non-padding tokens.
        tokenizer: The train_tokenizer output (a Hugging Face fast-tokenizer folder); absent
            with a ``base_model`` in the config (its own tokenizer is used).
        pairs: The mine_pairs output (its pairs); required for ``mlm_social``.
        init_from: A model folder to start from (stage 1's, or the champion's to warm-start);
            absent: the config's ``base_model``, else a fresh encoder.
    """
    from pathlib import Path

    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.pretrain.config import PretrainConfig
    from twhin_bert.pretrain.train import run_pretrain

    result = run_pretrain(
        PretrainConfig.model_validate_json(config),
        model.path,
        pipeline_run_id=pipeline_run_id,
        objective=objective,
        ingested=Path(ingested.path),
        tokenizer=Path(tokenizer.path) if tokenizer is not None else None,
        pairs=Path(pairs.path) if pairs is not None else None,
        init_from=Path(init_from.path) if init_from is not None else None,
    )
    log_kfp_metrics(metrics, result)
