"""The pretraining model: an encoder, a sparse MLM head and a projection head.

From scratch the encoder is a plain ``transformers`` ``XLMRobertaModel`` (SDPA attention,
RoBERTa architecture as in the paper); continued from a released encoder
(``pretrain.base_model``) it is that folder's ``AutoModel`` (XLM-R, RoBERTa or BERT family),
architecture kept. Either way the export is a drop-in ``AutoModel``, pooler included (the
pooler is frozen: the method pools with CLS or the mean, never the pooler, but ``AutoModel``
expects its weights). The MLM head is the base's own when its folder has one, else
:class:`MaskedLMHead`. It gathers
the hidden states at the masked positions *before* the vocabulary projection: with 15% of the
tokens masked and a 250K vocabulary, that skips ~85% of by far the largest matmul of the step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from twhin_bert.common import base_model
from twhin_bert.pretrain.config import ArchConfig
from twhin_bert.pretrain.data import Batch, Specials, block_attention_mask
from twhin_bert.pretrain.losses import combined_loss, masked_lm_loss, nt_xent


def encoder_config(arch: ArchConfig, specials: Specials, max_seq_len: int) -> Any:
    """The ``XLMRobertaConfig`` of our encoder.

    Positions follow XLM-R: a sequence's first token sits at ``pad_id + 1`` (what
    ``XLMRobertaModel`` computes itself at inference), so the table needs
    ``pad_id + 1 + max_seq_len`` rows.
    """
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=specials.vocab_size,
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_layers,
        num_attention_heads=arch.num_heads,
        intermediate_size=arch.intermediate_size,
        hidden_dropout_prob=arch.dropout,
        attention_probs_dropout_prob=arch.dropout,
        max_position_embeddings=specials.pad + 1 + max_seq_len,
        type_vocab_size=1,
        layer_norm_eps=arch.layer_norm_eps,
        initializer_range=arch.initializer_range,
        pad_token_id=specials.pad,
        bos_token_id=specials.cls,
        eos_token_id=specials.sep,
        attn_implementation="sdpa",
    )


class MaskedLMHead(nn.Module):
    """RoBERTa's LM head (dense, GELU, LayerNorm, vocabulary projection tied to the input
    embeddings), applied only to the gathered masked positions."""

    def __init__(self, hidden: int, vocab: int, eps: float, embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.decoder = nn.Linear(hidden, vocab, bias=False)
        self.decoder.weight = embeddings.weight  # tied, as in RoBERTa
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``[M, H]`` hidden states -> ``[M, V]`` logits."""
        return self.decoder(self.layer_norm(F.gelu(self.dense(h)))) + self.bias


class ProjectionHead(nn.Module):
    """The contrastive MLP ``z = MLP(e)``: Linear-ReLU between widths (SimCLR style)."""

    def __init__(self, hidden: int, dims: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = hidden
        for i, d in enumerate(dims):
            layers.append(nn.Linear(prev, d))
            if i < len(dims) - 1:
                layers.append(nn.ReLU())
            prev = d
        self.mlp = nn.Sequential(*layers)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        """``[N, H]`` pooled tweet vectors (:func:`pool_tweets`) -> ``[N, dims[-1]]``."""
        return self.mlp(e)


class PretrainModel(nn.Module):
    """Encoder + sparse MLM head + projection head; ``forward`` returns the losses.

    Attributes:
        encoder: The ``XLMRobertaModel`` (what is exported).
        lm_head: :class:`MaskedLMHead`.
        social_head: :class:`ProjectionHead`.
    """

    def __init__(
        self, encoder: nn.Module, projection_dims: list[int], lm_head: nn.Module | None = None
    ) -> None:
        """Args:
        encoder: The encoder (``AutoModel``; a pooler, if any, is frozen here).
        projection_dims: Widths of the contrastive head.
        lm_head: A ready MLM head (a released model's own, its projection tied to
            ``encoder``'s input embeddings); None: a fresh :class:`MaskedLMHead`.
        """
        super().__init__()
        cfg = encoder.config
        self.encoder = encoder
        pooler = getattr(encoder, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)  # exported for AutoModel, never trained (CLS pooling)
        fresh: list[nn.Module] = []
        if lm_head is None:
            lm_head = MaskedLMHead(
                cfg.hidden_size,
                cfg.vocab_size,
                cfg.layer_norm_eps,
                encoder.get_input_embeddings(),
            )
            fresh.append(lm_head)
        self.lm_head = lm_head
        self.social_head = ProjectionHead(cfg.hidden_size, projection_dims)
        fresh.append(self.social_head)
        std = cfg.initializer_range
        tied = encoder.get_input_embeddings().weight
        for m in (m for head in fresh for m in head.modules()):
            if isinstance(m, nn.Linear) and m.weight is not tied:
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def hidden_states(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, segment_ids: torch.Tensor
    ) -> torch.Tensor:
        """``[R, L, H]`` last hidden states of packed rows (block-diagonal attention)."""
        out = self.encoder(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=block_attention_mask(segment_ids),
        )
        return out.last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        cls_index: torch.Tensor,
        mlm_index: torch.Tensor,
        mlm_labels: torch.Tensor,
        *,
        social: bool,
        tau: float,
        lam: float,
        across_ranks: bool,
        pooling: str,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Losses of one micro-batch.

        The loss settings come by name from the config (``PretrainConfig.tau``, ``lam``,
        ``negatives_across_ranks``, ``social_pooling``: their one default lives there).

        Returns:
            ``(loss, mlm_loss, social_loss)``; for the MLM objective ``loss = mlm_loss`` and
            ``social_loss`` is 0; for the social objective the tweets of ``cls_index``
            are ``a_0..a_{B-1}, b_0..b_{B-1}``, each pooled by ``pooling`` (see
            :func:`pool_tweets`), and
            ``loss = social + lam * mlm``; with ``across_ranks`` the NT-Xent negatives
            come from every rank's pairs (see :func:`nt_xent`).
        """
        h = self.hidden_states(input_ids, position_ids, segment_ids)
        flat = h.reshape(-1, h.shape[-1])
        mlm = masked_lm_loss(self.lm_head(flat.index_select(0, mlm_index)), mlm_labels)
        if not social:
            return mlm, mlm.detach(), torch.zeros((), device=h.device)
        z = self.social_head(pool_tweets(flat, segment_ids, cls_index, pooling))
        b = z.shape[0] // 2
        soc = nt_xent(z[:b], z[b:], tau, across_ranks=across_ranks)
        return combined_loss(soc, mlm, lam), mlm.detach(), soc.detach()

    def batch_losses(
        self,
        batch: Batch,
        *,
        social: bool,
        tau: float,
        lam: float,
        across_ranks: bool,
        pooling: str,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` on a :class:`Batch` (already on the model's device)."""
        return self(
            batch.input_ids,
            batch.position_ids,
            batch.segment_ids,
            batch.cls_index,
            batch.mlm_index,
            batch.mlm_labels,
            social=social,
            tau=tau,
            lam=lam,
            across_ranks=across_ranks,
            pooling=pooling,
        )

    @torch.no_grad()
    def tweet_embeddings(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        cls_index: torch.Tensor,
        pooling: str,
    ) -> torch.Tensor:
        """``[N, H]`` vectors of packed tweets (``cls_index`` order), pooled as in training."""
        h = self.hidden_states(input_ids, position_ids, segment_ids)
        return pool_tweets(h.reshape(-1, h.shape[-1]), segment_ids, cls_index, pooling)


def pool_tweets(
    flat: torch.Tensor, segment_ids: torch.Tensor, cls_index: torch.Tensor, pooling: str
) -> torch.Tensor:
    """One vector per packed tweet, in ``cls_index`` order.

    Args:
        flat: ``[R * L, H]`` hidden states of the batch's rows, flattened.
        segment_ids: ``[R, L]`` tweet number within the row (0: padding), as
            :func:`~twhin_bert.pretrain.data.pack_rows` lays tweets out: each one contiguous,
            [CLS] first and [SEP] last.
        cls_index: ``[N]`` distinct flat indices of the tweets' [CLS] tokens.
        pooling: ``cls``: each tweet's [CLS] vector (the paper's). ``mean``: the mean of the
            vectors between its [CLS] and [SEP], in float32 (zeros for an empty tweet). On
            unmasked input these are the tokens of the mean half of the Combined vector that
            ``embed`` and ``evaluate`` read (:mod:`twhin_bert.common.encoder`); in training
            the masked positions count too. For a base trained mean-pooled, such as
            sentence-transformers' MiniLM.

    Returns:
        ``[N, H]`` in the dtype of ``flat``.
    """
    if pooling == "cls":
        return flat.index_select(0, cls_index)
    if pooling != "mean":
        raise ValueError(f"pooling {pooling!r}: expected cls or mean")
    rows, width = segment_ids.shape
    seg = segment_ids.reshape(-1)
    # Each token's (row, tweet-in-row) as one key, and each key's tweet number in cls_index.
    key = torch.arange(seg.numel(), device=seg.device) // width * (width + 1) + seg
    tweet_of_key = torch.full((rows * (width + 1),), -1, dtype=torch.long, device=seg.device)
    n = cls_index.numel()
    tweet_of_key[key.index_select(0, cls_index)] = torch.arange(n, device=seg.device)
    tweet = tweet_of_key[key]
    own = tweet >= 0  # tokens of the tweets asked for (padding's key belongs to none)
    length = torch.bincount(tweet[own], minlength=n)  # [CLS] tokens [SEP]
    own[cls_index] = False
    own[cls_index + length - 1] = False  # each tweet's [SEP]
    sums = torch.zeros(n, flat.shape[-1], dtype=torch.float32, device=flat.device)
    sums = sums.index_add(0, tweet[own], flat[own].float())
    return (sums / (length - 2).clamp(min=1).unsqueeze(1)).to(flat.dtype)


def build_model(
    arch: ArchConfig,
    specials: Specials,
    *,
    max_seq_len: int,
    projection_dims: list[int],
    init_from: str | None = None,
) -> PretrainModel:
    """A fresh model, or one initialised from a model folder.

    Args:
        arch: Architecture (ignored when ``init_from`` is given: its config.json wins).
        specials: Token ids (vocabulary size, pad, cls, sep).
        max_seq_len: Packed sequence length.
        projection_dims: Widths of the contrastive head.
        init_from: A model folder: an export of this stage (stage 1's, or a champion's) or a
            released encoder (``pretrain.base_model``). Encoder from its weights (any supported
            family, architecture kept); MLM head from ``mlm_head.safetensors``, else the
            folder's own masked-LM head, else fresh and tied; social head from
            ``social_head.safetensors`` when present, else fresh.

    Returns:
        The model (float32, on CPU).

    Raises:
        ValueError: The folder's family is unsupported or its vocabulary is smaller than the
            tokenizer's (names the folder).
    """
    from transformers import AutoModel, XLMRobertaModel

    if init_from is None:
        encoder = XLMRobertaModel(encoder_config(arch, specials, max_seq_len))
        return PretrainModel(encoder, projection_dims)
    from twhin_bert.pretrain.export import load_heads

    base_model.model_type(init_from)  # a supported family, or a one-line error
    encoder = AutoModel.from_pretrained(
        init_from, local_files_only=True, attn_implementation="sdpa"
    )
    if specials.vocab_size > encoder.config.vocab_size:
        raise ValueError(
            f"{init_from}: model vocabulary {encoder.config.vocab_size} is smaller than the "
            f"tokenizer's {specials.vocab_size}"
        )
    model = PretrainModel(encoder, projection_dims, lm_head=_released_mlm_head(encoder, init_from))
    load_heads(model, init_from)
    return model


def _released_mlm_head(encoder: nn.Module, folder: str) -> nn.Module | None:
    """The MLM head that continues ``folder``'s training, its projection tied to ``encoder``.

    An export of this stage names its head in ``mlm_head.safetensors``: our
    :class:`MaskedLMHead` (None here; :func:`load_heads` fills it) or, when its keys say so,
    the family's own head (built here, filled by :func:`load_heads`). A released folder's own
    masked-LM head is loaded with its weights when they are present; else None (fresh head).
    """
    from safetensors import safe_open
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    from twhin_bert.pretrain.export import MLM_HEAD_FILE

    head_file = Path(folder) / MLM_HEAD_FILE
    if head_file.is_file():
        with safe_open(str(head_file), framework="pt") as f:
            keys = set(f.keys())
        if keys <= MASKED_LM_HEAD_KEYS:
            return None
        mlm = AutoModelForMaskedLM.from_config(encoder.config)
        has_head = True
    else:
        # The load report of a folder without a head lists it as missing: that is the answer
        # we ask for here, not a problem to print.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            mlm, info = AutoModelForMaskedLM.from_pretrained(
                folder, local_files_only=True, output_loading_info=True
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        prefix = mlm.base_model_prefix + "."
        has_head = not any(not k.startswith(prefix) for k in info["missing_keys"])
    if not has_head:
        return None
    (head,) = (m for name, m in mlm.named_children() if name != mlm.base_model_prefix)
    mlm.get_output_embeddings().weight = encoder.get_input_embeddings().weight
    return head


#: The state keys of :class:`MaskedLMHead` as saved (its projection is the tied embedding).
MASKED_LM_HEAD_KEYS = frozenset(
    {"dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias", "bias"}
)


def packing_limits(
    max_seq_len: int, max_pair_tweet_tokens: int, tokenizer: Any, specials: Specials,
    init_from: str | Path | None,
) -> tuple[int, int, int]:  # fmt: skip
    """``(position_offset, max_seq_len, max_pair_tweet_tokens)`` for the encoder that trains.

    Positions follow the encoder's family (RoBERTa numbering starts after the pad id, BERT's
    at 0); the lengths are the configured ones, cut to what a started-from model's position
    table and tokenizer take (a fresh encoder's table is sized from the config).
    """
    if init_from is None:
        return specials.pad + 1, max_seq_len, max_pair_tweet_tokens
    from transformers import AutoConfig

    hf = AutoConfig.from_pretrained(str(init_from), local_files_only=True)
    offset = base_model.position_offset(hf.model_type, specials.pad)
    seq = base_model.max_tokens(hf, tokenizer, max_seq_len)
    return offset, seq, min(max_pair_tweet_tokens, seq)
