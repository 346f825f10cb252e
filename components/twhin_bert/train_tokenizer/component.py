"""KFP component of the train_tokenizer stage (thin: typed artifacts -> ``run_train_tokenizer``)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from twhin_bert.common.kfp_utils import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_tokenizer(
    config: str,
    ingested: Input[Dataset],
    pipeline_run_id: str,
    tokenizer: Output[Model],
    metrics: Output[Metrics],
):
    """Trains an XLM-R-style Unigram tokenizer on language-resampled tweets (or takes a given one).

    Args:
        config: The train_tokenizer section of the pipeline config, as JSON (``pretrained``
            set to a folder or gs:// URI skips training and uses that tokenizer).
        ingested: The ingest stage's output folder (its tweets are read).
        pipeline_run_id: The pipeline run's id (groups the stage's MLflow run).
        tokenizer: A Hugging Face fast-tokenizer folder (``AutoTokenizer.from_pretrained``).
        metrics: Vocabulary size, corpus size, tokens per tweet and unk rate on the validation
            split, language mix.
    """
    from pathlib import Path

    from twhin_bert.common.kfp_utils import log_kfp_metrics
    from twhin_bert.train_tokenizer.config import TrainTokenizerConfig
    from twhin_bert.train_tokenizer.tokenizer import run_train_tokenizer

    result = run_train_tokenizer(
        TrainTokenizerConfig.model_validate_json(config),
        tokenizer.path,
        pipeline_run_id=pipeline_run_id,
        ingested=Path(ingested.path),
    )
    log_kfp_metrics(metrics, result)
