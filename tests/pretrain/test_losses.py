"""NT-Xent against a direct reference computation; the combined stage-2 loss."""

from __future__ import annotations

import math

import pytest
import torch
from twhin_bert.pretrain.losses import combined_loss, masked_lm_loss, nt_xent


def reference_nt_xent(za: torch.Tensor, zb: torch.Tensor, tau: float) -> float:
    """The paper's NT-Xent formula (SimCLR), one anchor at a time, in float64."""
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
    assert nt_xent(za, zb, tau, across_ranks=False).item() == pytest.approx(
        reference_nt_xent(za, zb, tau), rel=1e-5
    )


def test_nt_xent_rewards_aligned_pairs_and_has_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    za = torch.randn(8, 16, generator=g, requires_grad=True)
    aligned = nt_xent(
        za, za.detach() * 2.0 + 0.01 * torch.randn(8, 16, generator=g), 0.1, across_ranks=False
    )
    shuffled = nt_xent(za, za.detach()[torch.randperm(8, generator=g)], 0.1, across_ranks=False)
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


def _rank_nt_xent(rank: int, world: int, port: int, za: torch.Tensor, zb: torch.Tensor, q) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    b = za.shape[0] // world
    mine_a = za[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    mine_b = zb[rank * b : (rank + 1) * b].clone().requires_grad_(True)
    loss = nt_xent(mine_a, mine_b, 0.2, across_ranks=True)
    loss.backward()
    # Plain values, not tensors: a tensor travels as a shared-memory handle that the parent
    # fetches from this process, which may have exited by then (EOFError under load).
    q.put((rank, loss.item(), mine_a.grad.tolist(), mine_b.grad.tolist()))
    dist.barrier()
    dist.destroy_process_group()


def test_nt_xent_across_ranks_is_one_global_batch() -> None:
    """Two gloo ranks of 3 pairs each give the loss and gradients of one batch of 6 pairs."""
    import socket

    import torch.multiprocessing as mp

    world, b, d = 2, 3, 8
    g = torch.Generator().manual_seed(7)
    za, zb = torch.randn(world * b, d, generator=g), torch.randn(world * b, d, generator=g)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_rank_nt_xent, args=(r, world, port, za, zb, q)) for r in range(world)
    ]
    for p in procs:
        p.start()
    results = sorted(q.get(timeout=120) for _ in range(world))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    ga, gb = za.clone().requires_grad_(True), zb.clone().requires_grad_(True)
    global_loss = nt_xent(ga, gb, 0.2, across_ranks=False)
    global_loss.backward()
    assert global_loss.item() == pytest.approx(reference_nt_xent(za, zb, 0.2), rel=1e-5)
    # Each rank's loss is the mean over its anchors: their mean is the global loss.
    assert sum(r[1] for r in results) / world == pytest.approx(global_loss.item(), rel=1e-5)
    # DeepSpeed averages gradients over ranks: rank gradients / world = global gradients.
    for rank, _, grad_a, grad_b in results:
        rows = slice(rank * b, (rank + 1) * b)
        for got, want in ((grad_a, ga.grad), (grad_b, gb.grad)):
            got = torch.tensor(got) / world
            torch.testing.assert_close(got, want[rows], rtol=1e-4, atol=1e-6)
    # A single rank alone sees fewer negatives: a different (smaller-batch) loss.
    assert nt_xent(za[:b], zb[:b], 0.2, across_ranks=False).item() != pytest.approx(
        global_loss.item(), rel=1e-3
    )


def test_pool_tweets_in_pair_order_over_packed_rows() -> None:
    """The social loss's tweet vectors: [CLS] or the mean of the tweet's own tokens, in the
    order of cls_index (pairs are a_0.., b_0..), whatever row and slot each tweet was packed
    in; padding, [CLS], [SEP] and the other tweets of a row never count, and only a tweet's
    own tokens get its gradient."""
    from twhin_bert.pretrain.data import Specials, pack_rows
    from twhin_bert.pretrain.model import pool_tweets

    sp = Specials(cls=0, sep=2, pad=1, mask=3, all_special=frozenset({0, 1, 2, 3}), vocab_size=50)
    rows = [[[5, 6, 7], [8]], [[9, 10], [11, 12, 13, 14]], [[15], []]]
    order = [(0, 1), (1, 0), (2, 0), (0, 0), (1, 1), (2, 1)]
    ids, _, seg, cls_index = pack_rows(rows, sp, position_offset=2, cls_order=order)
    flat = torch.randn(ids.numel(), 4, generator=torch.Generator().manual_seed(0))
    flat.requires_grad_(True)
    width = ids.shape[1]
    starts = {(r, k): r * width + sum(len(t) + 2 for t in rows[r][:k]) for r, k in order}
    own = [list(range(starts[rk] + 1, starts[rk] + 1 + len(rows[rk[0]][rk[1]]))) for rk in order]
    want = torch.stack([flat[i].mean(0) if i else torch.zeros(4) for i in own])
    mean = pool_tweets(flat, seg, cls_index, "mean")
    torch.testing.assert_close(mean, want)  # the empty tweet (2, 1) pools to zeros
    torch.testing.assert_close(
        pool_tweets(flat, seg, cls_index, "cls"), flat[[starts[rk] for rk in order]]
    )
    mean.sum().backward()
    grad = torch.zeros(ids.numel())
    for i in filter(None, own):
        grad[i] = 1.0 / len(i)
    torch.testing.assert_close(flat.grad[:, 0], grad)
    with pytest.raises(ValueError, match="pooling 'max'"):
        pool_tweets(flat, seg, cls_index, "max")
