"""TwHIN-BERT: socially-enriched language models for social media, as a Kubeflow pipeline."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("twhin-bert")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+src"

#: Stage names: one spelling for module, component, KFP task and MLflow run.
STAGES = (
    "ingest",
    "build_graph",
    "embed_graph",
    "mine_pairs",
    "train_tokenizer",
    "pretrain",
    "embed",
    "evaluate",
    "register_model",
)
