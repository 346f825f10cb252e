"""Export of a trained model as a Hugging Face folder (a drop-in ``AutoModel``).

The folder holds the encoder (``config.json`` + ``model.safetensors``: an ``XLMRobertaModel``
from scratch, the base's architecture when continued; pooler included, so ``AutoModel`` loads
it with no missing or unexpected weights),
the tokenizer files, a ``README.md`` model card, ``training_log.json``, and the two training
heads beside it (``mlm_head.safetensors``, ``social_head.safetensors``) so that stage 2 or a
warm-start retraining continues from *all* the weights, not only the encoder's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from twhin_bert import __version__
from twhin_bert.common.artifacts import ModelFolder

MLM_HEAD_FILE = "mlm_head.safetensors"
SOCIAL_HEAD_FILE = "social_head.safetensors"
TRAINING_LOG_FILE = ModelFolder.TRAINING_LOG


def _float_state(
    module: torch.nn.Module, drop: frozenset[str] = frozenset()
) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in module.state_dict().items()
        if k not in drop
    }


def shared_keys(module: torch.nn.Module, embeddings: torch.Tensor) -> frozenset[str]:
    """State keys of a head that are not saved: its projection tied to the input embeddings,
    and second names of one tensor (a released head's ``decoder.bias`` is its ``bias``)."""
    seen = {embeddings.data_ptr()}
    out = set()
    for k, v in module.state_dict().items():
        if v.data_ptr() in seen:
            out.add(k)
        seen.add(v.data_ptr())
    return frozenset(out)


def export_model(
    model: Any,
    tokenizer: Any,
    out_dir: Path,
    *,
    objective: str,
    metrics: dict[str, Any],
    config: dict[str, Any],
    training_log: list[dict[str, Any]],
) -> None:
    """Writes the model folder.

    Args:
        model: The trained :class:`~twhin_bert.pretrain.model.PretrainModel` (any dtype/device).
        tokenizer: The tokenizer it was trained with.
        out_dir: Destination folder.
        objective: ``mlm`` or ``mlm_social`` (for the card).
        metrics: The run's final metrics (for the card).
        config: The resolved stage config (for the card).
        training_log: One entry per logged step.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = model.encoder
    if (
        any(p.dtype != torch.float32 for p in encoder.parameters())
        or next(encoder.parameters()).device.type != "cpu"
    ):
        encoder = copy.deepcopy(encoder).to("cpu", torch.float32)
    encoder.config.dtype = "float32"
    encoder.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    tied = shared_keys(model.lm_head, model.encoder.get_input_embeddings().weight)
    save_file(_float_state(model.lm_head, drop=tied), str(out_dir / MLM_HEAD_FILE))
    save_file(_float_state(model.social_head), str(out_dir / SOCIAL_HEAD_FILE))
    (out_dir / TRAINING_LOG_FILE).write_text(json.dumps(training_log, indent=1) + "\n")
    (out_dir / "README.md").write_text(model_card(objective, metrics, config, encoder.config))


def load_heads(model: Any, folder: str | Path) -> list[str]:
    """Loads the MLM and social heads saved beside an exported encoder, when present.

    Returns:
        The heads loaded (``mlm``, ``social``).

    Raises:
        ValueError: A head file does not fit the model (names the file).
    """
    loaded = []
    for name, module, file in (
        ("mlm", model.lm_head, MLM_HEAD_FILE),
        ("social", model.social_head, SOCIAL_HEAD_FILE),
    ):
        path = Path(folder) / file
        if not path.is_file():
            continue
        state = load_file(str(path))
        try:
            missing, unexpected = module.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise ValueError(f"{path}: does not fit the model's {name} head: {e}") from e
        shared = shared_keys(module, model.encoder.get_input_embeddings().weight)
        missing = [k for k in missing if k not in shared]
        if missing or unexpected:
            raise ValueError(f"{path}: {name} head missing {missing}, unexpected {unexpected}")
        loaded.append(name)
    return loaded


def model_card(objective: str, metrics: dict[str, Any], config: dict[str, Any], hf: Any) -> str:
    """The ``README.md`` of the exported model."""
    stage = "stage 1 (MLM)" if objective == "mlm" else "stage 2 (MLM + social contrastive)"
    shown = {k: v for k, v in sorted(metrics.items()) if isinstance(v, int | float)}
    rows = "\n".join(f"| {k} | {v:.6g} |" for k, v in shown.items())
    return f"""---
library_name: transformers
pipeline_tag: feature-extraction
tags: [twhin-bert, tweets, {hf.model_type}]
---

# TwHIN-BERT encoder ({stage})

A {
        "tweet encoder (masked language modelling only)"
        if objective == "mlm"
        else "socially-enriched tweet encoder"
    } trained by the `twhin-bert` pipeline {__version__}
(method: Zhang et al., KDD 2023, arXiv 2209.07562). {
        "Continued from " + str(config["base_model"]) + ". " if config.get("base_model") else ""
    }Architecture: {hf.model_type},
{hf.num_hidden_layers} layers, hidden {hf.hidden_size}, {hf.num_attention_heads} heads,
vocabulary {hf.vocab_size}, sequences up to {config.get("max_seq_len")} tokens.

## Use

```python
from transformers import AutoModel, AutoTokenizer

tok = AutoTokenizer.from_pretrained("PATH")
model = AutoModel.from_pretrained("PATH")
batch = tok(["my tweet"], return_tensors="pt", padding=True, truncation=True, max_length={
        config.get("max_seq_len")
    })
h = model(**batch).last_hidden_state
cls = h[:, 0]  # the [CLS] vector; the mean of the tweet's own tokens is the other pooling
```

The social loss trained the tweet's `{config.get("social_pooling", "cls")}` vector
(`twhin-bert embed` writes CLS, mean and Combined = CLS ‖ mean).

Beside the encoder: `{MLM_HEAD_FILE}` (masked-LM head; its projection is tied to the input
embeddings), `{SOCIAL_HEAD_FILE}` (contrastive projection head, widths
{config.get("projection_dims")}), `{TRAINING_LOG_FILE}` (loss, learning rate, tokens/s per step).

## Training

Objective `{objective}`: {
        "masked language modelling"
        if objective == "mlm"
        else "NT-Xent over socially similar tweet pairs (tau "
        + str(config.get("tau"))
        + ") + "
        + str(config.get("lam"))
        + " x MLM"
    }; several tweets packed per sequence with block-diagonal
attention; DeepSpeed ZeRO stage {config.get("zero_stage")}.

| metric | value |
|---|---|
{rows}
"""
