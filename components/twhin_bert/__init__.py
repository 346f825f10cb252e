"""TwHIN-BERT: socially-enriched language models for social media, as a Kubeflow pipeline."""

import os
from importlib.metadata import PackageNotFoundError, version

# Arrow allocates with the C library's malloc, whose freed pages malloc_trim returns; its
# default pool (mimalloc) kept them (twhin_bert.common.memory says how much). Arrow picks its
# pool when pyarrow is imported, so this works where twhin_bert comes first (every command
# and component of ours); a process that imported pyarrow or pandas before keeps Arrow's
# default. An operator's own setting stands, and worker processes inherit it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

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
