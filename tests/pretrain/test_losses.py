"""NT-Xent against a direct reference computation; the combined stage-2 loss."""

from __future__ import annotations

import math

import pytest
import torch
from twhin_bert.pretrain.losses import combined_loss, masked_lm_loss, nt_xent


def reference_nt_xent(za: torch.Tensor, zb: torch.Tensor, tau: float) -> float:
    """The SPEC's formula, one anchor at a time, in float64."""
    z = torch.cat([za, zb]).double()
    n = z.shape[0]
    b = n // 2

    def sim(i: int, k: int) -> float:
        return float(z[i] @ z[k] / (z[i].norm() * z[k].norm()))

    total = 0.0
    for i in range(n):
        j = (i + b) % n
        num = math.exp(sim(i, j) / tau)
        den = sum(math.exp(sim(i, k) / tau) for k in range(n) if k != i)
        total += -math.log(num / den)
    return total / n


@pytest.mark.parametrize("b,d,tau", [(1, 3, 0.1), (4, 8, 0.1), (5, 16, 0.5)])
def test_nt_xent_equals_reference(b: int, d: int, tau: float) -> None:
    g = torch.Generator().manual_seed(b * 100 + d)
    za, zb = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    assert nt_xent(za, zb, tau).item() == pytest.approx(reference_nt_xent(za, zb, tau), rel=1e-5)


def test_nt_xent_rewards_aligned_pairs_and_has_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    za = torch.randn(8, 16, generator=g, requires_grad=True)
    aligned = nt_xent(za, za.detach() * 2.0 + 0.01 * torch.randn(8, 16, generator=g), 0.1)
    shuffled = nt_xent(za, za.detach()[torch.randperm(8, generator=g)], 0.1)
    assert aligned.item() < 0.1 < shuffled.item()
    aligned.backward()
    assert za.grad is not None and za.grad.abs().sum() > 0


def test_combined_and_mlm_loss() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    labels = torch.tensor([0, 2])
    mlm = masked_lm_loss(logits, labels)
    assert mlm.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    assert masked_lm_loss(logits[:0], labels[:0]).item() == 0.0
    assert combined_loss(torch.tensor(1.0), torch.tensor(4.0), 0.05).item() == pytest.approx(1.2)
