"""The pretraining model: an XLM-R style encoder, a sparse MLM head and a projection head.

The encoder is a plain ``transformers`` ``XLMRobertaModel`` (SDPA attention, RoBERTa
architecture as in the paper), so the export is a drop-in ``AutoModel``. The MLM head gathers
the hidden states at the masked positions *before* the vocabulary projection: with 15% of the
tokens masked and a 250K vocabulary, that skips ~85% of by far the largest matmul of the step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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
        """``[N, H]`` CLS vectors -> ``[N, dims[-1]]``."""
        return self.mlp(e)


class PretrainModel(nn.Module):
    """Encoder + sparse MLM head + projection head; ``forward`` returns the losses.

    Attributes:
        encoder: The ``XLMRobertaModel`` (what is exported).
        lm_head: :class:`MaskedLMHead`.
        social_head: :class:`ProjectionHead`.
    """

    def __init__(self, encoder: nn.Module, projection_dims: list[int]) -> None:
        super().__init__()
        cfg = encoder.config
        self.encoder = encoder
        self.lm_head = MaskedLMHead(
            cfg.hidden_size,
            cfg.vocab_size,
            cfg.layer_norm_eps,
            encoder.get_input_embeddings(),
        )
        self.social_head = ProjectionHead(cfg.hidden_size, projection_dims)
        std = cfg.initializer_range
        for m in [*self.lm_head.modules(), *self.social_head.modules()]:
            if isinstance(m, nn.Linear) and m is not self.lm_head.decoder:
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
        social: bool = False,
        tau: float = 0.1,
        lam: float = 0.05,
        across_ranks: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Losses of one micro-batch.

        Returns:
            ``(loss, mlm_loss, social_loss)``; for the MLM objective ``loss = mlm_loss`` and
            ``social_loss`` is 0; for the social objective the CLS vectors of
            ``cls_index`` are ``a_0..a_{B-1}, b_0..b_{B-1}`` and
            ``loss = social + lam * mlm``; with ``across_ranks`` the NT-Xent negatives
            come from every rank's pairs (see :func:`nt_xent`).
        """
        h = self.hidden_states(input_ids, position_ids, segment_ids)
        flat = h.reshape(-1, h.shape[-1])
        mlm = masked_lm_loss(self.lm_head(flat.index_select(0, mlm_index)), mlm_labels)
        if not social:
            return mlm, mlm.detach(), torch.zeros((), device=h.device)
        z = self.social_head(flat.index_select(0, cls_index))
        b = z.shape[0] // 2
        soc = nt_xent(z[:b], z[b:], tau, across_ranks=across_ranks)
        return combined_loss(soc, mlm, lam), mlm.detach(), soc.detach()

    def batch_losses(
        self, batch: Batch, *, social: bool, tau: float, lam: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` on a :class:`Batch` (already on the model's device)."""
        return self(
            batch.input_ids,
            batch.position_ids,
            batch.segment_ids,
            batch.cls_index,
            batch.mlm_index,
            batch.mlm_labels,
            social,
            tau,
            lam,
        )

    @torch.no_grad()
    def cls_embeddings(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        cls_index: torch.Tensor,
    ) -> torch.Tensor:
        """``[N, H]`` CLS vectors of packed tweets (``cls_index`` order), as in training."""
        h = self.hidden_states(input_ids, position_ids, segment_ids)
        return h.reshape(-1, h.shape[-1]).index_select(0, cls_index)


def build_model(
    arch: ArchConfig,
    specials: Specials,
    *,
    max_seq_len: int,
    projection_dims: list[int],
    init_from: str | None = None,
) -> PretrainModel:
    """A fresh model, or one initialised from an exported model folder.

    Args:
        arch: Architecture (ignored when ``init_from`` is given: its config.json wins).
        specials: Token ids (vocabulary size, pad, cls, sep).
        max_seq_len: Packed sequence length.
        projection_dims: Widths of the contrastive head.
        init_from: An exported model folder (stage 1's, or a champion's): encoder weights from
            ``model.safetensors``, heads from ``mlm_head.safetensors`` /
            ``social_head.safetensors`` when present (otherwise freshly initialised).

    Returns:
        The model (float32, on CPU).
    """
    from transformers import XLMRobertaModel

    if init_from is None:
        encoder = XLMRobertaModel(
            encoder_config(arch, specials, max_seq_len), add_pooling_layer=False
        )
        return PretrainModel(encoder, projection_dims)
    from twhin_bert.pretrain.export import load_heads

    encoder = XLMRobertaModel.from_pretrained(
        init_from, add_pooling_layer=False, attn_implementation="sdpa"
    )
    if encoder.config.vocab_size != specials.vocab_size:
        raise ValueError(
            f"{init_from}: model vocabulary {encoder.config.vocab_size} differs from the "
            f"tokenizer's {specials.vocab_size}"
        )
    model = PretrainModel(encoder, projection_dims)
    load_heads(model, init_from)
    return model
