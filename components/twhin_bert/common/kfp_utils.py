"""Small helpers shared by the stages' KFP components (imported inside component bodies)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twhin_bert import __version__
from twhin_bert.common.metrics import flat_numeric

#: Overrides the image tag at compile time (CI: the tag it just pushed).
IMAGE_TAG_ENV = "TWHIN_BERT_IMAGE_TAG"
IMAGE_REPOSITORY = "ghcr.io/twhin-bert/twhin-bert"


def image_tag() -> str:
    """The tag of the images this code runs in: ``<version>-<12-hex commit>``.

    From, in order: ``$TWHIN_BERT_IMAGE_TAG``; ``twhin_bert._build_info`` (written by
    ``images/build.sh`` into the checkout it builds, and so present inside the images); the
    git checkout this package is imported from (``-dirty`` when tracked files have uncommitted
    changes: a tag no build publishes, since ``images/build.sh`` refuses a dirty tree); else
    ``<version>-unknown``.
    """
    if os.environ.get(IMAGE_TAG_ENV):
        return os.environ[IMAGE_TAG_ENV]
    try:
        from twhin_bert._build_info import IMAGE_TAG  # type: ignore[import-not-found]

        return str(IMAGE_TAG)
    except ImportError:
        pass
    version = __version__.split("+")[0]
    git = ["git", "-C", str(Path(__file__).resolve().parent)]
    try:
        sha = subprocess.run(
            [*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"{version}-unknown"
    return f"{version}-{sha}{'-dirty' if dirty else ''}"


#: The images every component runs in unless the pipeline config sets others per stage; the
#: compiled pipeline names them with the exact tag (images/README.md).
IMAGE_TAG = image_tag()
BASE_IMAGE = f"{IMAGE_REPOSITORY}-cpu:{IMAGE_TAG}"
GPU_IMAGE = f"{IMAGE_REPOSITORY}-gpu:{IMAGE_TAG}"


def log_kfp_metrics(artifact: Any, metrics: Mapping[str, Any]) -> None:
    """Copies a stage's numeric metrics onto a KFP ``Metrics`` output artifact."""
    for k, v in flat_numeric(metrics).items():
        artifact.log_metric(k, v)
