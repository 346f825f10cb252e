"""Encoder loading, device choice and tweet embedding, shared by every stage that embeds.

The embed stage, evaluate's frozen features and the registered model's pyfunc all turn texts
into the same three vectors from an encoder's last hidden states (the paper's section 2.4):

* ``cls``: the vector at position 0 (``<s>``/``[CLS]``), the pretraining objective's embedding;
* ``mean``: the mean of the vectors of the tweet's own tokens, special and padding tokens
  excluded (``<unk>`` counts as the tweet's own: it stands for text; a tweet with no own
  token gets zeros);
* ``combined``: ``cls`` concatenated with ``mean`` ("Combined" in the paper's engagement task).

Speed comes from batching by length: texts are sorted by token count and cut into batches of
neighbours, so a batch pads to nearly its own length; results go back to the input order.
The forward runs under ``torch.inference_mode`` (bf16 autocast on CUDA) with SDPA attention.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twhin_bert.common.artifacts import Embeddings, ModelFolder
from twhin_bert.common.memory import release_free_memory

#: The vectors produced per text (the embed stage writes one array of each).
KINDS = Embeddings.KINDS
#: A batch holds texts whose token counts differ by less than this (bounded padding).
BUCKET_WIDTH = 8
#: Defaults of the embed stage's config and of the registered model's pyfunc.
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_LENGTH = 128
#: int8: the share of each input channel's activation range moved into the weights before
#: quantising (SmoothQuant's alpha; :func:`quantize_int8`).
INT8_SMOOTHING = 0.85
#: int8: how many of the input's first texts calibrate the activation ranges.
INT8_CALIBRATION_TEXTS = 256


@dataclass
class PadStats:
    """Token counts of the batches actually run (to report the padding share)."""

    tokens: int = 0  # real tokens, special tokens included
    positions: int = 0  # batch rows x padded length, summed over batches

    @property
    def padding_share(self) -> float:
        """Share of the computed positions that were padding."""
        return 1.0 - self.tokens / self.positions if self.positions else 0.0


def resolve_device(device: str | None) -> Any:
    """``None``/``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.lru_cache(maxsize=2)
def _load_cached(model_dir: str, device: str, stamp: tuple) -> tuple[Any, Any]:
    del stamp  # part of the cache key only: a rewritten folder is loaded again
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    kwargs = {"local_files_only": True, "attn_implementation": "sdpa"}
    try:  # BERT/XLM-R: no pooler; we pool ourselves (and exports may not carry one)
        model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False, **kwargs)
    except TypeError:  # an encoder class without that argument
        model = AutoModel.from_pretrained(model_dir, **kwargs)
    model.eval().to(device)
    return model, tokenizer


def load_encoder(model_dir: str | Path, device: str | None = None) -> tuple[Any, Any]:
    """Loads a Hugging Face encoder folder's model and tokenizer, offline.

    The last two loads are cached (keyed by folder, device and the files' mtimes and sizes),
    so repeated ``embed_texts(model_dir, ...)`` calls do not reload the weights.

    Args:
        model_dir: A folder ``AutoModel`` and ``AutoTokenizer`` load (BERT/XLM-R style).
        device: ``"cpu"``, ``"cuda"``, ``None``/``"auto"``.

    Returns:
        ``(model, tokenizer)``; the model is in eval mode on the device.
    """
    p = ModelFolder(model_dir).check()
    stamp = tuple(
        sorted((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in p.iterdir() if f.is_file())
    )
    return _load_cached(str(p.resolve()), str(resolve_device(device)), stamp)


def quantize_int8(
    model: Any,
    tokenizer: Any,
    calibration_texts: Sequence[str],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    alpha: float = INT8_SMOOTHING,
) -> Any:
    """A copy of ``model`` with every ``nn.Linear`` dynamically quantised to int8 (CPU only).

    Weights get one int8 scale per output channel; activations are quantised per batch with
    one scale per tensor (``torch.ao.quantization.quantize_dynamic``). A per-tensor scale is
    set by the few input channels with outlier activations and flattens the rest, so first
    each layer's activation range is partly moved into its weights (SmoothQuant, Xiao et al.,
    2023): input channel ``j`` is divided by ``s_j = max|X_j|^alpha / max|W_{:,j}|^(1-alpha)``
    (a pre-hook kept through quantisation) and weight column ``j`` multiplied by it, so the
    float function is unchanged. The ranges ``max|X_j|`` come from ``calibration_texts``.
    ``twhin-bert bench embed`` measures the speed and the cosine to the float32 vectors.

    Args:
        model: A float32 encoder on the CPU (not modified).
        tokenizer: Its tokenizer.
        calibration_texts: Texts whose activations set the ranges (the embed stage passes the
            first :data:`INT8_CALIBRATION_TEXTS` of its input); empty: no smoothing.
        max_length: Longest tokenized calibration text.
        alpha: The share of the activation range moved into the weights.

    Returns:
        The quantised copy.
    """
    import copy
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = copy.deepcopy(model)
    ranges: dict[torch.nn.Module, torch.Tensor] = {}

    def record(mod: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
        x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
        ranges[mod] = torch.maximum(ranges[mod], x) if mod in ranges else x

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    hooks = [m.register_forward_pre_hook(record) for m in linears]
    try:
        if calibration_texts:
            embed_texts(None, list(calibration_texts), model=model, tokenizer=tokenizer,
                        max_length=max_length)  # fmt: skip
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        for mod, act in ranges.items():
            w = mod.weight.abs().amax(0).clamp(min=1e-5)
            scale = (act.clamp(min=1e-5) ** alpha / w ** (1 - alpha)).clamp(min=1e-5)
            mod.weight.mul_(scale)
            inverse = (1.0 / scale).to(mod.weight.dtype)
            mod.register_forward_pre_hook(lambda _m, inputs, inv=inverse: (inputs[0] * inv,))
    with warnings.catch_warnings():  # torch.ao points to torchao; the eager API still works
        warnings.simplefilter("ignore")
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig}
        return quantize_dynamic(model, spec, dtype=torch.qint8)


#: Forward passes between two returns of freed memory to the system. Batches of changing
#: widths leave holes in malloc's heap that later batches do not fit, so memory swung up
#: within every chunk of :func:`embed_ids`: over 200K tweets (25 chunks of 8,192) the peak was
#: 450 MB, 417 MB with a release every 32 batches, 380 MB after every batch; every batch cost
#: 20% of the speed, every 32 nothing measurable.
RELEASE_EVERY_BATCHES = 32

#: Texts handed to the tokenizer at once. A fast tokenizer builds a full encoding (tokens,
#: offsets, masks) per text before returning the ids, and the allocator keeps that peak: 8,192
#: tweets of 64 tokens at once cost 160 MB of resident memory that stays, 1,024 at a time 35 MB.
TOKENIZE_SLICE = 1024


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, wrapped in the tokenizer's special tokens, cut at ``max_length``."""
    ids: list[list[int]] = []
    for lo in range(0, len(texts), TOKENIZE_SLICE):
        ids += tokenizer(
            list(texts[lo : lo + TOKENIZE_SLICE]),
            add_special_tokens=True,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
    return ids


def pooling_excluded_ids(tokenizer: Any) -> list[int]:
    """Ids left out of the mean: the special tokens (``<s>``, ``</s>``, ``<pad>``, ``<mask>``...)
    except ``<unk>``, which stands for real tweet text the vocabulary lacks (an emoji-only
    tweet must not pool to nothing)."""
    return [i for i in tokenizer.all_special_ids if i != tokenizer.unk_token_id]


def length_batches(
    lengths: np.ndarray, batch_size: int, bucket_width: int = BUCKET_WIDTH
) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first.

    Texts are sorted by length (stable), cut into buckets of ``bucket_width`` token lengths,
    and each bucket into batches of at most ``batch_size``: a text is padded by fewer than
    ``bucket_width`` tokens, however few texts there are.
    """
    order = np.argsort(-lengths, kind="stable")
    bucket = (lengths[order] - 1) // bucket_width
    starts = [0, *(np.flatnonzero(np.diff(bucket)) + 1).tolist(), len(order)]
    return [
        order[i : min(i + batch_size, end)]
        for start, end in itertools.pairwise(starts)
        for i in range(start, end, batch_size)
    ]


def encoder_of(model: Any) -> Any:
    """The encoder of ``model`` (a model with a task head, e.g. ``...ForMaskedLM``, exposes it
    as ``base_model``)."""
    return getattr(model, "base_model", model)


def embed_ids(
    model: Any,
    ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    special_ids: Sequence[int],
    batch_size: int = DEFAULT_BATCH_SIZE,
    stats: PadStats | None = None,
) -> dict[str, np.ndarray]:
    """Embeds already tokenized texts (each with its special tokens), batching by length.

    Args:
        model: A transformers encoder (its ``last_hidden_state`` is pooled).
        ids: Token ids per text.
        pad_id: The padding id.
        special_ids: Ids excluded from the mean (see :func:`pooling_excluded_ids`).
        batch_size: Sequences per forward pass.
        stats: Padding counters to update, if given.

    Returns:
        ``{"cls", "mean", "combined"}`` float32 arrays in the order of ``ids``.
    """
    import torch

    encoder = encoder_of(model)
    device = next(encoder.parameters()).device
    hidden = encoder.config.hidden_size
    n = len(ids)
    cls_out = np.zeros((n, hidden), dtype=np.float32)
    mean_out = np.zeros((n, hidden), dtype=np.float32)
    if n == 0:
        return {"cls": cls_out, "mean": mean_out, "combined": np.zeros((0, 2 * hidden), np.float32)}
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
    if lengths.min() == 0:
        raise ValueError(f"embed: text {int(lengths.argmin())} has no tokens at all")
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long, device=device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    was_training = encoder.training
    encoder.eval()  # no dropout, even for a model handed over in training mode
    with torch.inference_mode(), autocast:
        for done, idx in enumerate(length_batches(lengths, batch_size)):
            if done and done % RELEASE_EVERY_BATCHES == 0:
                release_free_memory()
            lens = lengths[idx]
            width = int(lens.max())
            # Right-pad without a per-row loop: fill the "real token" cells of the grid row-major.
            real = np.arange(width)[None, :] < lens[:, None]
            grid = np.full((len(idx), width), pad_id, dtype=np.int64)
            grid[real] = np.fromiter(
                (t for i in idx for t in ids[i]), dtype=np.int64, count=int(lens.sum())
            )
            input_ids = torch.from_numpy(grid).to(device, non_blocking=True)
            attention = torch.from_numpy(real).to(device, non_blocking=True)
            h = encoder(input_ids=input_ids, attention_mask=attention.long()).last_hidden_state
            h = h.float()
            keep = (attention & ~torch.isin(input_ids, special)).unsqueeze(-1).float()
            mean = (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)
            cls_out[idx] = h[:, 0].cpu().numpy()
            mean_out[idx] = mean.cpu().numpy()
            if stats is not None:
                stats.tokens += int(lens.sum())
                stats.positions += len(idx) * width
    encoder.train(was_training)
    return {"cls": cls_out, "mean": mean_out, "combined": np.concatenate([cls_out, mean_out], 1)}


def embed_texts(
    model_dir: str | Path | None,
    texts: list[str],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_length: int = DEFAULT_MAX_LENGTH,
    device: str | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> dict[str, np.ndarray]:
    """Embeds texts into CLS, mean (non-special tokens) and Combined (CLS ‖ mean) vectors.

    Args:
        model_dir: A Hugging Face encoder folder (ignored when ``model`` and ``tokenizer``
            are given).
        texts: The texts, in any order; results keep it.
        batch_size: Sequences per forward pass (texts are batched by token length).
        max_length: Longest tokenized text, special tokens included.
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when available); only used to load.
        model: An already loaded encoder (used as is, on its own device).
        tokenizer: An already loaded tokenizer.

    Returns:
        ``{"cls": [n, d], "mean": [n, d], "combined": [n, 2d]}``, float32, in input order.
    """
    if model is None or tokenizer is None:
        if model_dir is None:
            raise ValueError("embed_texts: give model_dir or both model and tokenizer")
        loaded_model, loaded_tok = load_encoder(model_dir, device)
        model = model if model is not None else loaded_model
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
    ids = tokenize(tokenizer, texts, max_length)
    return embed_ids(
        model,
        ids,
        pad_id=tokenizer.pad_token_id,
        special_ids=pooling_excluded_ids(tokenizer),
        batch_size=batch_size,
    )
