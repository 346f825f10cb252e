"""Packing, block-diagonal attention, masking, language re-sampling, pair texts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import torch
from twhin_bert.common import lang
from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.schemas import write_table
from twhin_bert.pretrain import data as D

SP = D.Specials(cls=0, sep=2, pad=1, mask=4, all_special=frozenset({0, 1, 2, 3, 4}), vocab_size=50)


def test_pack_rows_positions_segments_and_cls() -> None:
    rows = [[[10, 11, 12], [13]], [[14, 15]]]
    ids, pos, seg, cls = D.pack_rows(rows, SP, position_offset=2)
    assert ids.tolist() == [
        [0, 10, 11, 12, 2, 0, 13, 2],
        [0, 14, 15, 2, 1, 1, 1, 1],
    ]
    # Positions restart at every tweet (XLM-R numbering from pad+1); pads sit at the pad id.
    assert pos.tolist() == [[2, 3, 4, 5, 6, 2, 3, 4], [2, 3, 4, 5, 1, 1, 1, 1]]
    assert seg.tolist() == [[1, 1, 1, 1, 1, 2, 2, 2], [1, 1, 1, 1, 0, 0, 0, 0]]
    assert cls.tolist() == [0, 5, 8]
    assert ids.view(-1)[cls].tolist() == [0, 0, 0]


def test_block_attention_mask_is_block_diagonal() -> None:
    seg = torch.tensor([[1, 1, 2, 2, 2, 0]])
    m = D.block_attention_mask(seg)
    assert m.shape == (1, 1, 6, 6) and m.dtype == torch.bool
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(m[0, 0], expected)
    assert m.any(-1).all()  # no empty row (SDPA would return NaN)


def test_first_fit_packs_within_capacity_and_keeps_every_item() -> None:
    lengths = [5, 9, 3, 7, 2, 8, 4, 6, 1]
    bins = D.pack_first_fit(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 5  # 45 units -> optimal is 5 bins of 10
    with pytest.raises(ValueError, match="exceeds capacity"):
        D.pack_first_fit([11], 10)


def test_masking_never_touches_specials_and_follows_80_10_10() -> None:
    g = torch.Generator().manual_seed(0)
    rows = [[list(range(5, 45))] * 3 for _ in range(200)]
    ids, _, _, _ = D.pack_rows(rows, SP, position_offset=2)
    masked, index, labels = D.mask_tokens(ids, SP, 0.15, g)
    special = torch.isin(ids.view(-1), torch.tensor(sorted(SP.all_special)))
    assert not special[index].any(), "a special or pad token was chosen for masking"
    changed = masked.view(-1) != ids.view(-1)
    assert not changed[special].any(), "a special token was altered"
    assert torch.equal(labels, ids.view(-1)[index])
    share = len(index) / int((~special).sum())
    assert 0.13 < share < 0.17
    out = masked.view(-1)[index]
    as_mask = (out == SP.mask).float().mean().item()
    kept = (out == labels).float().mean().item()
    assert 0.77 < as_mask < 0.83
    assert 0.07 < kept < 0.13  # ~10% kept (+ a few random draws of the same id)
    assert not torch.isin(out[(out != SP.mask)], torch.tensor(sorted(SP.all_special))).any()


def test_copy_rates_follow_alpha_and_keep_the_epoch_size() -> None:
    counts = {"en": 9000, "fr": 900, "de": 100}
    rates = lang.copy_rates(counts, 0.7)
    expected_total = sum(counts.values())
    assert sum(counts[k] * rates[k] for k in counts) == pytest.approx(expected_total)
    share = {k: counts[k] * rates[k] / expected_total for k in counts}
    z = sum(n**0.7 for n in counts.values())
    for k, n in counts.items():
        assert share[k] == pytest.approx(n**0.7 / z)
    assert rates["de"] > 1 > rates["en"]
    assert lang.copy_rates(counts, 1.0) == pytest.approx({k: 1.0 for k in counts})


def test_tweet_stream_is_deterministic_and_replays_old_positions(
    pt_ingested: Path, pt_tokenizer: Path
) -> None:
    tok, sp = D.load_tokenizer(pt_tokenizer)
    assert (sp.cls, sp.pad, sp.sep, sp.mask) == (0, 1, 2, 4)

    def stream(seed: int) -> D.TweetStream:
        return D.TweetStream(
            Ingested(pt_ingested).tweets_path(), tok, sp, rows_per_batch=4, max_seq_len=64,
            position_offset=2, mask_prob=0.15, alpha=0.7, shuffle_buffer=64, read_rows=128,
            seed=seed,
        )  # fmt: skip

    it = stream(0)()
    first = [next(it) for _ in range(6)]
    # A checkpoint written before positions were saved names (epoch, batch): replayed.
    again = stream(0)({"epoch": 0, "batch": 4})
    e, i, b = next(again)
    assert (e, i) == (0, 4)
    assert torch.equal(b.input_ids, first[4][2].input_ids)
    assert torch.equal(b.mlm_index, first[4][2].mlm_index)
    other = next(stream(1)())[2]
    assert not torch.equal(other.input_ids[:, :8], first[0][2].input_ids[:, :8])
    fill = sum(x[2].tokens for x in first) / sum(x[2].input_ids.numel() for x in first)
    assert fill > 0.9, f"packing fills only {fill:.0%} of the slots"


def pair_stream(pairs: Path, ingested: Path, tokenizer: Path, **kw: object) -> D.PairStream:
    tok, sp = D.load_tokenizer(tokenizer)
    args: dict = dict(
        pairs_per_batch=8, max_seq_len=64, max_tweet_tokens=32, position_offset=2,
        mask_prob=0.15, alpha=0.7, shuffle_buffer=64, read_rows=32, seed=0,
    )  # fmt: skip
    return D.PairStream(pairs, ingested, tok, sp, **{**args, **kw})


def test_pair_texts_resolve_ids_and_carried_texts(
    pt_ingested: Path, pt_pairs: Path, pt_tokenizer: Path
) -> None:
    ps = pair_stream(pt_pairs, pt_ingested, pt_tokenizer)
    assert ps.usable == 600
    rb = next(ps.file.iter_batches(batch_size=600, columns=D.PAIR_COLUMNS))
    items, langs = ps.resolve(rb, 0)
    assert len(items) == len(langs) == 600
    tweets = pa.parquet.read_table(pt_ingested / "tweets.parquet")
    assert items[0][0] == tweets.column("text")[0].as_py()  # by id (text_a null)
    assert langs[0] == tweets.column("lang")[0].as_py()  # the tweet's language
    assert langs[1] == "und"  # a translation pair: no ingested tweet on either side
    assert all(isinstance(t, str) and t for pair in items for t in pair)


def test_pair_with_unknown_tweet_names_file_and_row(
    pt_ingested: Path, pt_tokenizer: Path, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "tweet_a": ["t0", "nope"],
            "tweet_b": ["t1", "t2"],
            "score": pa.array([1.0, 1.0], pa.float32()),
            "source": ["social", "social"],
            "text_a": pa.nulls(2, pa.string()),
            "text_b": pa.nulls(2, pa.string()),
        }
    )
    write_table(table, tmp_path / "pairs.parquet", "pairs")
    with pytest.raises(D.DataError, match=r"pairs.parquet: row 2: tweet_a nope"):
        pair_stream(tmp_path, pt_ingested, pt_tokenizer, pairs_per_batch=1)


def test_pair_batch_orders_cls_a_then_b(
    pt_ingested: Path, pt_pairs: Path, pt_tokenizer: Path
) -> None:
    ps = pair_stream(pt_pairs, pt_ingested, pt_tokenizer)
    tok, sp = ps.tokenizer, ps.specials
    _, _, batch = next(ps())
    assert len(batch.cls_index) == 16
    assert (batch.input_ids.view(-1)[batch.cls_index] == sp.cls).all()
    _, _, again = next(pair_stream(pt_pairs, pt_ingested, pt_tokenizer)())
    assert torch.equal(again.input_ids, batch.input_ids)  # seeded: repeatable
    # Undo the masking, then CLS i and CLS 8+i hold the two texts of one pair of the file.
    ids = batch.input_ids.view(-1).clone()
    ids[batch.mlm_index] = batch.mlm_labels
    seg = batch.segment_ids.view(-1)

    def tweet(k: int) -> tuple[int, ...]:
        start = int(batch.cls_index[k])
        n = int((seg[start:] == seg[start]).cumprod(0).sum())  # the tweet's span in its row
        return tuple(ids[start + 1 : start + n - 1].tolist())

    rb = next(ps.file.iter_batches(batch_size=600, columns=D.PAIR_COLUMNS))
    items, _ = ps.resolve(rb, 0)
    encoded = {
        (tuple(D.encode(tok, [a], 30)[0]), tuple(D.encode(tok, [b], 30)[0])) for a, b in items
    }
    assert all((tweet(i), tweet(8 + i)) in encoded for i in range(8))
