"""Small helpers shared by the stages' KFP components (imported inside component bodies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twhin_bert import __version__
from twhin_bert.common.metrics import flat_numeric

#: The image every component runs in unless the pipeline config sets another per stage.
#: Tag = package version (images/README.md); the pipeline config may override it per stage.
IMAGE_REPOSITORY = "ghcr.io/twhin-bert/twhin-bert"
BASE_IMAGE = f"{IMAGE_REPOSITORY}-cpu:{__version__.split('+')[0]}"
GPU_IMAGE = f"{IMAGE_REPOSITORY}-gpu:{__version__.split('+')[0]}"


def log_kfp_metrics(artifact: Any, metrics: Mapping[str, Any]) -> None:
    """Copies a stage's numeric metrics onto a KFP ``Metrics`` output artifact."""
    for k, v in flat_numeric(metrics).items():
        artifact.log_metric(k, v)
