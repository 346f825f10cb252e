"""Losses of the pretrain stage: masked-token cross-entropy and NT-Xent (SimCLR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> torch.Tensor:
    """NT-Xent over ``B`` positive pairs with the ``2B - 1`` other tweets as negatives.

    For every anchor ``i`` among the ``2B`` projected tweets ``z = [z_a; z_b]`` with partner
    ``j``: ``l_i = -log( exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau) )`` with cosine
    similarity ``s``; the loss is the mean over the ``2B`` anchors (SimCLR, Chen et al. 2020).

    Args:
        z_a: ``[B, d]`` projections of the first tweets of the pairs.
        z_b: ``[B, d]`` projections of their partners (row ``i`` pairs with row ``i``).
        tau: Temperature.

    Returns:
        The scalar loss (float32).
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(
            f"expected two [B, d] tensors of one shape, got {z_a.shape} and {z_b.shape}"
        )
    b = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=-1)
    sim = (z @ z.T) / tau
    self_mask = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))  # k != i
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, partner)


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the vocabulary logits at the masked positions only (``[M, V]``, ``[M]``)."""
    if labels.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels)


def combined_loss(social: torch.Tensor, mlm: torch.Tensor, lam: float) -> torch.Tensor:
    """Stage-2 objective ``L = L_social + lam * L_MLM`` (paper: lam = 0.05)."""
    return social + lam * mlm
