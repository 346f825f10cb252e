"""Training data of the pretrain stage: language re-sampling, packing, masking, pair batches.

Tweets are short (a few dozen tokens), so one tweet per 128-token row would be mostly padding.
We pack several tweets into each row, each wrapped as ``[CLS] tweet [SEP]``, and record every
tweet's CLS position (its embedding for the social loss) and its *segment* (1, 2, ... within
the row; 0 = padding).

Attention inside a pack is **block-diagonal**: a token attends only to the tokens of its own
tweet (:func:`block_attention_mask`), and position ids restart at every tweet. Why:

* at inference each tweet is embedded alone (``AutoModel`` on ``[CLS] tweet [SEP]``), so a
  tweet must see during training exactly the context it will see then — neighbours in the
  pack would be noise the model learns to use and then never gets;
* in stage 2 both tweets of a positive pair may land in the same pack; if they could attend
  to each other, the contrastive task would be solvable by copying, not by understanding;
* the MLM task must not predict a masked token from an unrelated neighbour tweet.

PyTorch's SDPA takes the 4-D boolean mask directly, so this costs no extra kernels; padding
positions form their own block so no attention row is empty (an empty row gives NaN).

Everything is streamed from Parquet in bounded memory (record batches, a bounded shuffle
buffer) and is a pure function of ``(seed, epoch, batch index)``, so a resumed run replays
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from twhin_bert.common import schemas

log = logging.getLogger(__name__)

TWEETS_FILE = "tweets.parquet"
PAIRS_FILE = "pairs.parquet"


class DataError(ValueError):
    """Input data the stage cannot train on (the message names the file and row)."""


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Specials:
    """Ids of the special tokens the packing and masking need."""

    cls: int
    sep: int
    pad: int
    mask: int
    all_special: frozenset[int]
    vocab_size: int


def load_tokenizer(path: str | Path) -> tuple[Any, Specials]:
    """Loads a Hugging Face fast tokenizer folder and checks its special tokens.

    Args:
        path: A folder ``AutoTokenizer.from_pretrained`` reads (XLM-R style specials
            ``<s>``/``</s>``/``<pad>``/``<mask>`` or BERT style ``[CLS]``/``[SEP]``...).

    Returns:
        The tokenizer and the ids of its special tokens.

    Raises:
        DataError: A special token the stage needs is missing.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    ids = {
        "cls": tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id,
        "sep": tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id,
        "pad": tok.pad_token_id,
        "mask": tok.mask_token_id,
    }
    missing = [k for k, v in ids.items() if v is None]
    if missing:
        raise DataError(
            f"{path}: tokenizer lacks special tokens {missing} (need cls, sep, pad, mask)"
        )
    return tok, Specials(
        cls=int(ids["cls"]),
        sep=int(ids["sep"]),
        pad=int(ids["pad"]),
        mask=int(ids["mask"]),
        all_special=frozenset(int(i) for i in tok.all_special_ids),
        vocab_size=len(tok),
    )


def encode(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Token ids of ``texts`` without specials, truncated to ``max_tokens``."""
    if not texts:
        return []
    out = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens)[
        "input_ids"
    ]
    return [list(ids) for ids in out]


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """One micro-batch of packed rows.

    Attributes:
        input_ids: ``[R, L]`` token ids after masking.
        position_ids: ``[R, L]`` positions restarting at every tweet (pads: the pad position).
        segment_ids: ``[R, L]`` 1-based tweet number within the row, 0 for padding.
        cls_index: ``[N]`` flat indices (``row * L + col``) of the tweets' CLS tokens, in
            tweet order (for pairs: ``a_0..a_{B-1}, b_0..b_{B-1}``).
        mlm_index: ``[M]`` flat indices of the masked positions.
        mlm_labels: ``[M]`` original token ids at those positions.
        tokens: Non-padding tokens in the batch (CLS/SEP included).
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segment_ids: torch.Tensor
    cls_index: torch.Tensor
    mlm_index: torch.Tensor
    mlm_labels: torch.Tensor
    tokens: int

    def to(self, device: torch.device | str) -> Batch:
        """The batch on ``device``."""
        return Batch(
            **{
                k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                for k, v in self.__dict__.items()
            }
        )


def block_attention_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """The 4-D boolean SDPA mask ``[R, 1, L, L]``: True where query and key share a segment.

    Packed tweets attend only within themselves; padding attends only to padding (never
    to a tweet, and no row is empty).
    """
    return (segment_ids[:, :, None] == segment_ids[:, None, :]).unsqueeze(1)


def pack_first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Packs items (by length) into bins of ``capacity`` with first-fit decreasing.

    Args:
        lengths: Length of each item (each <= capacity).
        capacity: Bin size.

    Returns:
        Bins as lists of item indices (bins in creation order, items by decreasing length).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} of length {n} exceeds capacity {capacity}")
        for b, r in enumerate(room):
            if r >= n:
                bins[b].append(i)
                room[b] -= n
                break
        else:
            bins.append([i])
            room.append(capacity - n)
    return bins


def pack_rows(
    rows: Sequence[Sequence[Sequence[int]]],
    specials: Specials,
    *,
    position_offset: int,
    cls_order: Sequence[tuple[int, int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lays packed rows of tweets out as tensors (no masking).

    Args:
        rows: Each row a list of tweets, each tweet a list of token ids (no specials).
        specials: Special token ids.
        position_offset: Position id of a tweet's first token (XLM-R: ``pad_id + 1``).
        cls_order: ``(row, tweet-in-row)`` of each tweet, in the order the CLS indices are
            wanted; default: row-major.

    Returns:
        ``(input_ids, position_ids, segment_ids, cls_index)`` (rows trimmed to the longest).
    """
    width = max(sum(len(t) + 2 for t in row) for row in rows)
    n_rows = len(rows)
    ids = torch.full((n_rows, width), specials.pad, dtype=torch.long)
    pos = torch.full((n_rows, width), specials.pad, dtype=torch.long)
    seg = torch.zeros((n_rows, width), dtype=torch.long)
    cls_at: dict[tuple[int, int], int] = {}
    for r, row in enumerate(rows):
        col = 0
        for k, tweet in enumerate(row):
            n = len(tweet) + 2
            ids[r, col] = specials.cls
            ids[r, col + 1 : col + n - 1] = torch.tensor(tweet, dtype=torch.long)
            ids[r, col + n - 1] = specials.sep
            pos[r, col : col + n] = torch.arange(position_offset, position_offset + n)
            seg[r, col : col + n] = k + 1
            cls_at[(r, k)] = r * width + col
            col += n
    if cls_order is None:
        cls_order = [(r, k) for r, row in enumerate(rows) for k in range(len(row))]
    cls_index = torch.tensor([cls_at[rk] for rk in cls_order], dtype=torch.long)
    return ids, pos, seg, cls_index


def collate(
    rows: Sequence[Sequence[Sequence[int]]],
    specials: Specials,
    *,
    position_offset: int,
    mask_prob: float,
    generator: torch.Generator,
    cls_order: Sequence[tuple[int, int]] | None = None,
) -> Batch:
    """Builds a masked :class:`Batch` from packed rows of tweets (see :func:`pack_rows`;
    ``mask_prob`` and ``generator`` drive :func:`mask_tokens`)."""
    ids, pos, seg, cls_index = pack_rows(
        rows, specials, position_offset=position_offset, cls_order=cls_order
    )
    masked, mlm_index, mlm_labels = mask_tokens(ids, specials, mask_prob, generator)
    return Batch(
        input_ids=masked,
        position_ids=pos,
        segment_ids=seg,
        cls_index=cls_index,
        mlm_index=mlm_index,
        mlm_labels=mlm_labels,
        tokens=int((seg > 0).sum()),
    )


def mask_tokens(
    input_ids: torch.Tensor, specials: Specials, mask_prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT masking: ``mask_prob`` of the non-special tokens are chosen; of those 80% become
    ``<mask>``, 10% a random non-special token, 10% stay. Specials and padding are never chosen.

    Returns:
        ``(masked_ids, flat_index_of_chosen, original_ids_of_chosen)``; at least one token is
        chosen when the batch has any maskable token.
    """
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for s in specials.all_special | {specials.cls, specials.sep, specials.pad, specials.mask}:
        special |= input_ids == s
    maskable = ~special
    draw = torch.rand(input_ids.shape, generator=generator)
    chosen = (draw < mask_prob) & maskable
    if not bool(chosen.any()) and bool(maskable.any()):
        # Tiny batches: always train on at least one token (the first maskable one).
        chosen.view(-1)[int(maskable.view(-1).nonzero()[0])] = True
    flat = chosen.view(-1).nonzero().squeeze(1)
    labels = input_ids.view(-1)[flat].clone()
    out = input_ids.clone().view(-1)
    action = torch.rand(flat.shape, generator=generator)
    to_mask = flat[action < 0.8]
    to_random = flat[(action >= 0.8) & (action < 0.9)]
    out[to_mask] = specials.mask
    if len(to_random):
        candidates = _random_candidates(specials)
        pick = torch.randint(len(candidates), (len(to_random),), generator=generator)
        out[to_random] = candidates[pick]
    return out.view_as(input_ids), flat, labels


@functools.lru_cache(maxsize=8)
def _random_candidates(specials: Specials) -> torch.Tensor:
    """Token ids a "random token" replacement may draw (every non-special id)."""
    keep = torch.ones(specials.vocab_size, dtype=torch.bool)
    keep[[i for i in specials.all_special if i < specials.vocab_size]] = False
    return keep.nonzero().squeeze(1)


def _generator(seed: int, *key: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, *key]).generate_state(1)[0]))
    return g


# --------------------------------------------------------------------------- tweets (mlm)


def language_rates(counts: dict[str, int], alpha: float) -> dict[str, float]:
    """Expected copies per tweet of each language so that languages are drawn with
    probability proportional to ``count**alpha`` while an epoch keeps its size.

    With ``p_l = n_l**alpha / sum_k n_k**alpha`` and ``N = sum n``, a tweet of language ``l``
    is emitted ``N * p_l / n_l`` times in expectation (rare languages up, frequent ones down).
    """
    total = sum(counts.values())
    z = sum(n**alpha for n in counts.values())
    return {lang: total * (n**alpha / z) / n for lang, n in counts.items() if n > 0}


def tweets_file(ingested: str | Path) -> Path:
    """``tweets.parquet`` of an ingest folder (or the file itself)."""
    p = Path(ingested)
    f = p / TWEETS_FILE if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"{f}: no tweets.parquet (expected the ingest stage's output folder)")
    return f


def pairs_file(pairs: str | Path) -> Path:
    """``pairs.parquet`` of a mine_pairs folder (or the file itself)."""
    p = Path(pairs)
    f = p / PAIRS_FILE if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"{f}: no pairs.parquet (expected the mine_pairs stage's output folder)")
    return f


class TweetStream:
    """Packed, masked micro-batches of tweets for the MLM objective, streamed from Parquet.

    Each epoch reads the row groups in a seeded order, re-samples languages with
    :func:`language_rates`, shuffles through a bounded buffer, tokenizes in chunks and packs
    tweets first-fit into rows of ``max_seq_len``.
    """

    def __init__(
        self,
        path: Path,
        tokenizer: Any,
        specials: Specials,
        *,
        rows_per_batch: int,
        max_seq_len: int,
        position_offset: int,
        mask_prob: float,
        alpha: float,
        shuffle_buffer: int,
        read_rows: int,
        seed: int,
    ) -> None:
        self.path = path
        self.file = schemas.check(path, "tweets")
        self.tokenizer = tokenizer
        self.specials = specials
        self.rows_per_batch = rows_per_batch
        self.max_seq_len = max_seq_len
        self.position_offset = position_offset
        self.mask_prob = mask_prob
        self.shuffle_buffer = shuffle_buffer
        self.read_rows = read_rows
        self.seed = seed
        counts: Counter[str] = Counter()
        for rb in self.file.iter_batches(batch_size=65536, columns=["lang"]):
            vc = pc.value_counts(rb.column(0))
            for item in vc.to_pylist():
                counts[item["values"]] += item["counts"]
        if not counts:
            raise DataError(f"{path}: no tweets to train on")
        self.lang_counts = dict(counts)
        self.rates = language_rates(self.lang_counts, alpha)

    def _texts(self, epoch: int) -> Iterator[str]:
        rng = np.random.default_rng([self.seed, epoch, 1])
        groups = rng.permutation(self.file.num_row_groups)
        buffer: list[str] = []
        for g in groups:
            table = self.file.read_row_group(int(g), columns=["text", "lang"])
            texts = table.column("text").to_pylist()
            langs = table.column("lang").to_pylist()
            rates = np.array([self.rates[lang] for lang in langs])
            copies = np.floor(rates).astype(int) + (rng.random(len(rates)) < rates % 1.0)
            for text, c in zip(texts, copies, strict=True):
                for _ in range(int(c)):
                    if len(buffer) < self.shuffle_buffer:
                        buffer.append(text)
                        continue
                    j = int(rng.integers(len(buffer)))
                    yield buffer[j]
                    buffer[j] = text
        rng.shuffle(buffer)
        yield from buffer

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Batch | None]:
        """The micro-batches of ``epoch`` in order (a partial last batch is dropped).

        The first ``skip`` are yielded as None: their packing must be replayed (it decides
        which tweets the later batches hold) but not their masking and tensors, which is most
        of a batch's cost, so a resumed run regains its data position quickly.
        """
        budget = self.max_seq_len - 2
        pending: list[list[int]] = []
        chunk: list[str] = []
        index = 0
        want = self.rows_per_batch * self.max_seq_len

        def batches(final: bool) -> Iterator[Batch]:
            nonlocal pending, index
            while pending and (final or sum(len(t) + 2 for t in pending) >= 2 * want):
                bins = pack_first_fit([len(t) + 2 for t in pending], self.max_seq_len)
                if len(bins) < self.rows_per_batch:
                    return
                # The fullest bins make the batch; the others' tweets wait for the next one.
                bins.sort(key=lambda b: -sum(len(pending[i]) + 2 for i in b))
                take = bins[: self.rows_per_batch]
                rows = [[pending[i] for i in b] for b in take]
                taken = {i for b in take for i in b}
                pending = [t for i, t in enumerate(pending) if i not in taken]
                yield (
                    None
                    if index < skip
                    else collate(
                        rows,
                        self.specials,
                        position_offset=self.position_offset,
                        mask_prob=self.mask_prob,
                        generator=_generator(self.seed, epoch, index, 2),
                    )
                )
                index += 1

        for text in self._texts(epoch):
            chunk.append(text)
            if len(chunk) >= self.read_rows:
                pending.extend(t for t in encode(self.tokenizer, chunk, budget) if t)
                chunk = []
                yield from batches(final=False)
        pending.extend(t for t in encode(self.tokenizer, chunk, budget) if t)
        yield from batches(final=True)

    def __call__(self, start_epoch: int = 0, skip: int = 0) -> Iterator[tuple[int, int, Batch]]:
        """Endless ``(epoch, index_in_epoch, batch)``, starting after ``skip`` batches of
        ``start_epoch`` (how a resumed run gets back to its data position)."""
        epoch = start_epoch
        while True:
            produced = 0
            for i, batch in enumerate(self.epoch(epoch, skip if epoch == start_epoch else 0)):
                produced += 1
                if batch is None:  # before the resume point
                    continue
                yield epoch, i, batch
            if produced == 0:
                raise DataError(
                    f"{self.path}: too few tweets for one batch of {self.rows_per_batch} rows"
                )
            epoch += 1


# --------------------------------------------------------------------------- pairs (mlm_social)


def load_pair_texts(pairs: str | Path, ingested: str | Path) -> tuple[pa.Array, pa.Array]:
    """The two texts of every positive pair (null ``text_x`` = the tweet's text from ingest),
    as Arrow string arrays: one contiguous buffer per side, not a Python object per text.

    Args:
        pairs: The mine_pairs folder (``pairs.parquet``) or the file.
        ingested: The ingest folder (``tweets.parquet``) or the file.

    Returns:
        ``(texts_a, texts_b)``, one entry per usable pair (pairs of a tweet with itself dropped).

    Raises:
        DataError: A pair names a tweet that is neither in tweets.parquet nor carries its text
            (the message names the file and the row).
    """
    pf = pairs_file(pairs)
    table = schemas.read_table(pf, "pairs", ["tweet_a", "tweet_b", "text_a", "text_b"])
    tweets = schemas.read_table(tweets_file(ingested), "tweets", ["tweet_id", "text"])
    lookup = pa.table({"tid": tweets.column("tweet_id"), "ttext": tweets.column("text")})
    row = pa.array(np.arange(len(table)))
    table = table.append_column("row", row)
    out: dict[str, np.ndarray] = {}
    for side in ("a", "b"):
        j = table.select(["row", f"tweet_{side}", f"text_{side}"]).join(
            lookup, keys=f"tweet_{side}", right_keys="tid", join_type="left outer"
        )
        j = j.sort_by("row")
        text = pc.coalesce(j.column(f"text_{side}"), j.column("ttext"))
        missing = pc.is_null(text)
        if pc.any(missing).as_py():
            first = int(pc.index(missing, True).as_py())
            raise DataError(
                f"{pf}: row {first + 1}: tweet_{side} {j.column(f'tweet_{side}')[first]} is not "
                f"in {tweets_file(ingested)} and the pair carries no text_{side}"
            )
        out[side] = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    keep = pc.not_equal(table.column("tweet_a"), table.column("tweet_b"))
    keep = keep.combine_chunks() if isinstance(keep, pa.ChunkedArray) else keep
    if not pc.any(keep).as_py():
        raise DataError(f"{pf}: no usable pairs")
    return out["a"].filter(keep), out["b"].filter(keep)


class PairStream:
    """Micro-batches of B positive pairs for the social objective (plus MLM on their tokens).

    Both tweets of every pair are packed (first-fit) into rows; ``Batch.cls_index`` lists the
    CLS positions as ``a_0..a_{B-1}, b_0..b_{B-1}``. Epochs visit the pairs in a seeded order.
    """

    def __init__(
        self,
        texts_a: pa.Array | list[str],
        texts_b: pa.Array | list[str],
        tokenizer: Any,
        specials: Specials,
        *,
        pairs_per_batch: int,
        max_seq_len: int,
        max_tweet_tokens: int,
        position_offset: int,
        mask_prob: float,
        seed: int,
    ) -> None:
        if len(texts_a) < pairs_per_batch:
            raise DataError(
                f"{len(texts_a)} usable pairs: fewer than one batch of {pairs_per_batch} pairs"
            )
        self.a, self.b = texts_a, texts_b
        self.tokenizer = tokenizer
        self.specials = specials
        self.pairs_per_batch = pairs_per_batch
        self.max_seq_len = max_seq_len
        self.max_tweet_tokens = max_tweet_tokens
        self.position_offset = position_offset
        self.mask_prob = mask_prob
        self.seed = seed
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its pair order)

    def order(self, epoch: int) -> np.ndarray:
        """The seeded order of the pairs in ``epoch``, drawn once per epoch (int32 when it
        fits: 100M pairs cost 400 MB, not a fresh O(N) permutation per batch)."""
        if self._order is None or self._order[0] != epoch:
            perm = np.random.default_rng([self.seed, epoch, 3]).permutation(len(self.a))
            if len(self.a) < 2**31:
                perm = perm.astype(np.int32)
            self._order = (epoch, perm)
        return self._order[1]

    @staticmethod
    def _take(texts: pa.Array | list[str], rows: np.ndarray) -> list[str]:
        if isinstance(texts, pa.Array):
            return texts.take(pa.array(rows)).to_pylist()
        return [texts[i] for i in rows]

    def batches_per_epoch(self) -> int:
        """Full batches in one epoch."""
        return len(self.a) // self.pairs_per_batch

    def batch(self, epoch: int, index: int) -> Batch:
        """Batch ``index`` of ``epoch`` (random access: resuming skips for free)."""
        sel = self.order(epoch)[index * self.pairs_per_batch : (index + 1) * self.pairs_per_batch]
        texts = self._take(self.a, sel) + self._take(self.b, sel)
        toks = encode(self.tokenizer, texts, self.max_tweet_tokens - 2)
        toks = [t if t else [self.specials.mask] for t in toks]  # empty text: one token
        bins = pack_first_fit([len(t) + 2 for t in toks], self.max_seq_len)
        where: dict[int, tuple[int, int]] = {}
        for r, b in enumerate(bins):
            for k, i in enumerate(b):
                where[i] = (r, k)
        rows = [[toks[i] for i in b] for b in bins]
        return collate(
            rows,
            self.specials,
            position_offset=self.position_offset,
            mask_prob=self.mask_prob,
            generator=_generator(self.seed, epoch, index, 4),
            cls_order=[where[i] for i in range(len(toks))],
        )

    def __call__(self, start_epoch: int = 0, skip: int = 0) -> Iterator[tuple[int, int, Batch]]:
        """Endless ``(epoch, index_in_epoch, batch)`` from ``skip`` in ``start_epoch``."""
        epoch, index = start_epoch, skip
        n = self.batches_per_epoch()
        while True:
            while index < n:
                yield epoch, index, self.batch(epoch, index)
                index += 1
            epoch, index = epoch + 1, 0
