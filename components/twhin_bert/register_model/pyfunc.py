"""The registered model's serving interface: one tweet embedding per input text.

The exported Hugging Face folder (encoder, tokenizer, training heads, model card) is logged
whole as the artifact ``encoder`` of a :class:`TweetEmbedder` ``mlflow.pyfunc`` model. Its
``predict`` takes a DataFrame with a string column ``text`` and returns a float32 matrix with
one row per text, in input order, pooled as in the paper: ``combined`` (CLS ‖ mean, the
engagement task's vector; the default), ``cls`` or ``mean``, chosen by the predict parameter
``pooling``. Pooling is the embed stage's own code (:func:`twhin_bert.common.encoder.embed_texts`),
so a served vector equals the one the embed stage writes for the same text and max length.

Over HTTP (``mlflow models serve -m models:/NAME/VERSION --env-manager local``)::

    POST /invocations
    {"dataframe_records": [{"text": "what a match tonight #football"}, {"text": "hello"}],
     "params": {"pooling": "cls"}}
    -> {"predictions": [[...d floats...], [...d floats...]]}

Serving needs the ``twhin_bert`` package importable (the pickled model refers to this module):
``--env-manager local`` in an environment where it is installed, e.g. the project's CPU or GPU
image (``images/``) running ``mlflow models serve``. The logged pip requirements pin torch,
transformers and tokenizers only (the package is not on a public index), so an image built by
``mlflow models build-docker`` alone lacks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

from twhin_bert.common.artifacts import ModelFolder
from twhin_bert.common.encoder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LENGTH,
    KINDS,
    embed_texts,
    load_encoder,
)

#: Name of the artifact holding the exported Hugging Face folder.
ENCODER_ARTIFACT = "encoder"
#: The input column.
TEXT_COLUMN = "text"
#: The predict parameter choosing the vector, and its default.
POOLING_PARAM = "pooling"
DEFAULT_POOLING = "combined"


class TweetEmbedder(mlflow.pyfunc.PythonModel):
    """Embeds tweets with the logged encoder: one CLS, mean or Combined vector per text.

    Args:
        max_length: Longest tokenized text, special tokens included (longer texts are cut).
        batch_size: Sequences per forward pass.
    """

    def __init__(self, max_length: int, batch_size: int) -> None:
        self.max_length = max_length
        self.batch_size = batch_size
        self._model: Any = None
        self._tokenizer: Any = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Loads the encoder and tokenizer from the ``encoder`` artifact (CUDA when present)."""
        self._model, self._tokenizer = load_encoder(context.artifacts[ENCODER_ARTIFACT])

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Embeds each row's ``text``.

        Args:
            context: The model context (unused; the encoder was loaded by ``load_context``).
            model_input: A DataFrame with a string column ``text``.
            params: ``{"pooling": "combined" | "cls" | "mean"}`` (default ``combined``).

        Returns:
            ``[n, 2d]`` (combined) or ``[n, d]`` (cls, mean) float32, one row per input row.

        Raises:
            MlflowException: An unknown pooling, a missing ``text`` column or a non-string text
                (HTTP 400 when served).
        """
        del context
        pooling = (params or {}).get(POOLING_PARAM) or DEFAULT_POOLING
        if pooling not in KINDS:
            raise MlflowException.invalid_parameter_value(
                f"params.{POOLING_PARAM} = {pooling!r}; expected one of {', '.join(KINDS)}"
            )
        if TEXT_COLUMN not in model_input.columns:
            raise MlflowException.invalid_parameter_value(
                f"input columns {list(model_input.columns)}: expected a column {TEXT_COLUMN!r}"
            )
        texts = model_input[TEXT_COLUMN].tolist()
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise MlflowException.invalid_parameter_value(
                    f"input row {row}: {TEXT_COLUMN} = {text!r}; expected a string"
                )
        vectors = embed_texts(
            None,
            texts,
            batch_size=self.batch_size,
            max_length=self.max_length,
            model=self._model,
            tokenizer=self._tokenizer,
        )
        return vectors[pooling]


def signature(hidden_size: int) -> ModelSignature:
    """Input ``text`` (string), output float32 ``[-1, width]``, param ``pooling``.

    The output width is ``2 * hidden_size`` for the default ``combined`` pooling; ``cls`` and
    ``mean`` give ``hidden_size`` (the logged model's metadata lists each width).
    """
    return ModelSignature(
        inputs=Schema([ColSpec("string", TEXT_COLUMN)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 2 * hidden_size))]),
        params=ParamSchema([ParamSpec(POOLING_PARAM, "string", DEFAULT_POOLING)]),
    )


def log_model(model_dir: Path, name: str, pip_requirements: list[str]) -> Any:
    """Logs the exported folder as a :class:`TweetEmbedder` pyfunc model in the active run.

    Args:
        model_dir: The exported Hugging Face folder (``config.json``, weights, tokenizer);
            logged whole, training heads and model card included.
        name: The logged model's name (its artifact path).
        pip_requirements: Pinned requirements recorded with the model (given, so logging does
            not load the model to infer them).

    Returns:
        The ``mlflow.models.model.ModelInfo`` of the logged model.
    """
    from transformers import AutoConfig

    hidden = int(AutoConfig.from_pretrained(str(model_dir), local_files_only=True).hidden_size)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=TweetEmbedder(max_length=DEFAULT_MAX_LENGTH, batch_size=DEFAULT_BATCH_SIZE),
        artifacts={ENCODER_ARTIFACT: str(model_dir)},
        signature=signature(hidden),
        pip_requirements=pip_requirements,
        metadata={
            "hidden_size": hidden,
            "output_width": {"cls": hidden, "mean": hidden, "combined": 2 * hidden},
            "max_length": DEFAULT_MAX_LENGTH,
        },
    )


def encoder_folder(downloaded: Path) -> Path:
    """The Hugging Face folder inside a downloaded :func:`log_model` model.

    Args:
        downloaded: The local copy of the logged model (the folder holding ``MLmodel``).

    Returns:
        The folder ``AutoModel`` / ``AutoTokenizer`` load, heads and model card beside them.

    Raises:
        ValueError: The model was not logged by :func:`log_model` (no ``encoder`` artifact).
    """
    import yaml

    mlmodel = Path(downloaded) / "MLmodel"
    if not mlmodel.is_file():
        raise ValueError(f"{downloaded}: no MLmodel file; expected a downloaded MLflow model")
    flavor = (yaml.safe_load(mlmodel.read_text()).get("flavors") or {}).get("python_function")
    artifact = ((flavor or {}).get("artifacts") or {}).get(ENCODER_ARTIFACT) or {}
    folder = Path(downloaded) / str(artifact.get("path", ""))
    if not artifact or not (folder / ModelFolder.CONFIG).is_file():
        raise ValueError(
            f"{mlmodel}: no {ENCODER_ARTIFACT!r} artifact with a config.json; expected a model "
            "logged by twhin_bert.register_model.pyfunc.log_model"
        )
    return folder
