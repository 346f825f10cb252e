"""Losses of the pretrain stage: masked-token cross-entropy and NT-Xent (SimCLR)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F


def nt_xent(
    z_a: torch.Tensor, z_b: torch.Tensor, tau: float, *, across_ranks: bool
) -> torch.Tensor:
    """NT-Xent over ``B`` positive pairs with the ``2B - 1`` other tweets as negatives.

    For every anchor ``i`` among the ``2B`` projected tweets ``z = [z_a; z_b]`` with partner
    ``j``: ``l_i = -log( exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau) )`` with cosine
    similarity ``s``; the loss is the mean over the ``2B`` anchors (SimCLR, Chen et al. 2020).

    With ``across_ranks`` in a process group of ``W > 1`` ranks, every rank's pairs join the
    candidates (an all-gather that carries gradients back to their owners), so each anchor
    has ``2WB - 1`` negatives, exactly as one global batch of ``W * B`` pairs. Each rank
    returns the mean over its own anchors; since the gather's backward sums the gradients of
    all ranks, the rank-averaged gradient (DeepSpeed's all-reduce) equals that of the global
    loss. Every rank must pass the same ``B``.

    Args:
        z_a: ``[B, d]`` projections of the first tweets of the pairs.
        z_b: ``[B, d]`` projections of their partners (row ``i`` pairs with row ``i``).
        tau: Temperature.
        across_ranks: Draw negatives from every rank of the default process group (False:
            this process's pairs only).

    Returns:
        The scalar loss (float32).
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(
            f"expected two [B, d] tensors of one shape, got {z_a.shape} and {z_b.shape}"
        )
    b = z_a.shape[0]
    za, zb = F.normalize(z_a.float(), dim=-1), F.normalize(z_b.float(), dim=-1)
    anchors = torch.cat([za, zb])
    world = dist.get_world_size() if across_ranks and dist.is_initialized() else 1
    if world == 1:
        candidates, first_a, first_b = anchors, 0, b
    else:
        rank = dist.get_rank()
        # Candidates: every rank's a-side, then every rank's b-side ([2WB, d]).
        candidates = torch.cat([*dist_fn.all_gather(za), *dist_fn.all_gather(zb)])
        first_a, first_b = rank * b, world * b + rank * b
    own = torch.arange(b, device=anchors.device)
    self_col = torch.cat([first_a + own, first_b + own])  # where each anchor sits itself
    partner = torch.cat([first_b + own, first_a + own])
    self_mask = torch.zeros(2 * b, candidates.shape[0], dtype=torch.bool, device=anchors.device)
    self_mask[torch.arange(2 * b, device=anchors.device), self_col] = True
    sim = ((anchors @ candidates.T) / tau).masked_fill(self_mask, float("-inf"))  # k != i
    return F.cross_entropy(sim, partner)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the vocabulary logits at the masked positions only (``[M, V]``, ``[M]``)."""
    if labels.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)


def combined_loss(social: torch.Tensor, mlm: torch.Tensor, lam: float) -> torch.Tensor:
    """Stage-2 objective ``L = L_social + lam * L_MLM`` (paper: lam = 0.05)."""
    return social + lam * mlm
