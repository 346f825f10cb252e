"""Training data of the pretrain stage: language re-sampling, packing, masking, pair batches.

Tweets are short (a few dozen tokens), so one tweet per 128-token row would be mostly padding.
We pack several tweets into each row, each wrapped as ``[CLS] tweet [SEP]``, and record every
tweet's CLS position (where the social loss pools it from: ``pretrain.model.pool_tweets``) and its *segment* (1, 2, ... within
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

Everything is streamed from Parquet in bounded memory (slices of a row group, a bounded
shuffle buffer): tweets in stage 1, pairs in stage 2, both re-sampled by language as the paper
does (:mod:`twhin_bert.common.lang`). A stream's :meth:`~TweetStream.position` (row group,
slice, row, the shuffle buffer and its generator's state, the tweets tokenized but not yet
packed) goes into every checkpoint; a resumed run restores it and continues with exactly the
batches an uninterrupted run would have seen, at a cost that does not grow with the step.
"""

from __future__ import annotations

import abc
import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from twhin_bert.common import lang, schemas
from twhin_bert.common.artifacts import Ingested, Pairs

log = logging.getLogger(__name__)

#: The columns of the mined pairs stage 2 reads.
PAIR_COLUMNS = ["tweet_a", "tweet_b", "text_a", "text_b"]


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


# --------------------------------------------------------------------------- the row cursor


#: Reads one slice of rows: ``(record batch, its first row's 0-based number)`` ->
#: ``(items, language of each item)``.
SliceReader = Callable[[pa.RecordBatch, int], tuple[list[Any], list[str]]]


class RowCursor:
    """One epoch of a Parquet file's rows: seeded row-group order, language re-sampling and a
    bounded shuffle buffer, with a position that is small and cheap to restore.

    Row groups are visited in a seeded order and read in slices of ``slice_rows`` rows; each
    row is emitted ``copies`` times (:func:`twhin_bert.common.lang.draw_copies`, drawn from a
    generator keyed by the slice, so a restored cursor redraws them) into a shuffle buffer of
    at most ``buffer_size`` items, which hands out a random item for each one that comes in.
    :meth:`state` is ``(row group, slice, row, copy)``, the buffer and its generator's state:
    restoring costs reading at most one row group, whatever the position.

    Attributes:
        peak_buffer: The most items the buffer ever held (at most ``buffer_size``).
        peak_slice: The most rows of the file held at once (at most ``slice_rows``).
    """

    def __init__(
        self,
        file: pq.ParquetFile,
        columns: list[str],
        read: SliceReader,
        rates: dict[str, float],
        *,
        epoch: int,
        seed: int,
        salt: int,
        slice_rows: int,
        buffer_size: int,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.file, self.columns, self.read, self.rates = file, columns, read, rates
        self.epoch, self.seed, self.salt = epoch, seed, salt
        self.slice_rows, self.buffer_size = slice_rows, buffer_size
        meta = file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self.group_first = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.order = np.random.default_rng([seed, epoch, salt]).permutation(len(sizes))
        self.rng = np.random.default_rng([seed, epoch, salt, 1])
        # position: group = index into order; slice = slices of that group taken - 1
        self.group, self.slice, self.row, self.copy = 0, -1, 0, 0
        self.draining = False
        self.buffer: list[Any] = []
        self.items: list[Any] = []
        self.copies = np.zeros(0, np.int64)
        self._batches: Iterator[pa.RecordBatch] | None = None
        self._next_first = 0
        self.peak_buffer = 0
        self.peak_slice = 0
        if state is not None:
            self._restore(state)

    def state(self) -> dict[str, Any]:
        """Where the cursor is: plain Python values (a checkpoint's ``client_state`` keeps it)."""
        return {
            "epoch": self.epoch,
            "group": self.group,
            "slice": self.slice,
            "row": self.row,
            "copy": self.copy,
            "draining": self.draining,
            "rng": self.rng.bit_generator.state,
            "buffer": list(self.buffer),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if state["epoch"] != self.epoch:
            raise ValueError(f"cursor state of epoch {state['epoch']} given for {self.epoch}")
        self.rng.bit_generator.state = state["rng"]
        self.buffer = list(state["buffer"])
        self.draining = bool(state["draining"])
        self.group = int(state["group"])
        if not self.draining and state["slice"] >= 0:
            self.slice = int(state["slice"]) - 1
            # Re-open the row group and re-read the slice in progress (skipped slices are
            # decoded, not converted: at most one row group's work).
            self._open(int(self.order[self.group]))
            for _ in range(int(state["slice"])):
                rb = next(self._batches)  # type: ignore[arg-type]
                self._next_first += rb.num_rows
            self._take(next(self._batches))  # type: ignore[arg-type]
            self.row, self.copy = int(state["row"]), int(state["copy"])

    def _open(self, g: int) -> None:
        self._batches = self.file.iter_batches(
            batch_size=self.slice_rows, row_groups=[g], columns=self.columns, use_threads=False
        )
        self._next_first = int(self.group_first[g])

    def _take(self, rb: pa.RecordBatch) -> None:
        """Makes ``rb`` the slice in progress: its items and their copies."""
        first = self._next_first
        self._next_first += rb.num_rows
        self.items, langs = self.read(rb, first)
        key = [self.seed, self.epoch, self.salt, 2, self.group, self.slice + 1]
        self.copies = lang.draw_copies(langs, self.rates, np.random.default_rng(key))
        self.slice += 1
        self.row, self.copy = 0, 0
        self.peak_slice = max(self.peak_slice, rb.num_rows)

    def _next_slice(self) -> bool:
        while self.group < len(self.order):
            if self._batches is None:
                self._open(int(self.order[self.group]))
            rb = next(self._batches, None)  # type: ignore[call-overload]
            if rb is not None:
                self._take(rb)
                return True
            self.group, self.slice, self._batches = self.group + 1, -1, None
        return False

    def next(self) -> Any | None:
        """The next item of the epoch (None: the epoch is over)."""
        while not self.draining:
            if self.row < len(self.items):
                if self.copy < self.copies[self.row]:
                    self.copy += 1
                    item = self.items[self.row]
                    if len(self.buffer) < self.buffer_size:
                        self.buffer.append(item)
                        self.peak_buffer = max(self.peak_buffer, len(self.buffer))
                        continue
                    j = int(self.rng.integers(len(self.buffer)))
                    out, self.buffer[j] = self.buffer[j], item
                    return out
                self.row, self.copy = self.row + 1, 0
                continue
            if not self._next_slice():
                self.draining, self.items = True, []
                self.rng.shuffle(self.buffer)
        return self.buffer.pop() if self.buffer else None


class _Stream(abc.ABC):
    """What both streams share: the epoch loop, the position, resuming from it."""

    path: Path
    epoch: int
    index: int

    @abc.abstractmethod
    def _start(self, epoch: int, state: dict[str, Any] | None) -> None:
        """Implemented by each stream."""

    @abc.abstractmethod
    def _next(self, build: bool) -> Batch | bool | None:
        """The epoch's next batch (``build`` False: only its position is advanced, True
        returned); None when the epoch has no further full batch."""

    @abc.abstractmethod
    def _state(self) -> dict[str, Any]:
        """Implemented by each stream."""

    @abc.abstractmethod
    def _too_few(self) -> DataError:
        """Implemented by each stream."""

    def position(self) -> dict[str, Any]:
        """The data position after the last batch handed out, for a checkpoint: resuming from
        it (``stream(position)``) continues exactly as this stream would, at a cost that does
        not depend on how far the stream has come."""
        return {"epoch": self.epoch, "batch": self.index, **self._state()}

    def __call__(self, position: dict[str, Any] | None = None) -> Iterator[tuple[int, int, Batch]]:
        """Endless ``(epoch, index_in_epoch, batch)`` from ``position`` (None: the start).

        A position from :meth:`position` is restored directly; one that names only
        ``{"epoch", "batch"}`` (a checkpoint written before positions were saved) is reached
        by replaying the epoch's batches without building them, at a cost that grows with it.
        """
        position = position or {"epoch": 0, "batch": 0}
        self._start(int(position["epoch"]), position if "cursor" in position else None)
        if "cursor" not in position:
            while self.index < int(position["batch"]):
                if self._next(build=False) is None:
                    raise DataError(
                        f"{self.path}: cannot resume at batch {position['batch']} of epoch "
                        f"{position['epoch']}: the epoch has only {self.index} batches"
                    )
        while True:
            batch = self._next(build=True)
            if batch is None:
                if self.index == 0:
                    raise self._too_few()
                self._start(self.epoch + 1, None)
                continue
            assert isinstance(batch, Batch)
            yield self.epoch, self.index - 1, batch


# --------------------------------------------------------------------------- tweets (mlm)


class TweetStream(_Stream):
    """Packed, masked micro-batches of tweets for the MLM objective, streamed from Parquet.

    Each epoch reads the row groups in a seeded order, re-samples languages
    (:mod:`twhin_bert.common.lang`), shuffles through a bounded buffer (:class:`RowCursor`),
    tokenizes ``read_rows`` tweets at a time and packs them first-fit into rows of
    ``max_seq_len``. Its :meth:`position` holds the cursor and the tweets tokenized but not
    yet packed.
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
        self.lang_counts = dict(lang.count_languages(path))
        if not self.lang_counts:
            raise DataError(f"{path}: no tweets to train on")
        self.rates = lang.copy_rates(self.lang_counts, alpha)
        self._start(0, None)

    @staticmethod
    def _read(rb: pa.RecordBatch, first: int) -> tuple[list[str], list[str]]:
        langs = [v or lang.UNKNOWN for v in rb.column("lang").to_pylist()]
        return rb.column("text").to_pylist(), langs

    def _start(self, epoch: int, state: dict[str, Any] | None) -> None:
        self.epoch = epoch
        self.index = int(state["batch"]) if state else 0
        self.pending: list[list[int]] = [list(t) for t in state["pending"]] if state else []
        self.final = bool(state["final"]) if state else False
        self.cursor = RowCursor(
            self.file, ["text", "lang"], self._read, self.rates, epoch=epoch, seed=self.seed,
            salt=1, slice_rows=self.read_rows, buffer_size=self.shuffle_buffer,
            state=state["cursor"] if state else None,
        )  # fmt: skip

    def _state(self) -> dict[str, Any]:
        return {"cursor": self.cursor.state(), "pending": list(self.pending), "final": self.final}

    def _too_few(self) -> DataError:
        return DataError(f"{self.path}: too few tweets for one batch of {self.rows_per_batch} rows")

    def _next(self, build: bool) -> Batch | bool | None:
        want = self.rows_per_batch * self.max_seq_len
        while True:
            if self.pending and (self.final or sum(len(t) + 2 for t in self.pending) >= 2 * want):
                bins = pack_first_fit([len(t) + 2 for t in self.pending], self.max_seq_len)
                if len(bins) >= self.rows_per_batch:
                    # The fullest bins make the batch; the others' tweets wait for the next.
                    bins.sort(key=lambda b: -sum(len(self.pending[i]) + 2 for i in b))
                    take = bins[: self.rows_per_batch]
                    rows = [[self.pending[i] for i in b] for b in take]
                    taken = {i for b in take for i in b}
                    self.pending = [t for i, t in enumerate(self.pending) if i not in taken]
                    self.index += 1
                    if not build:
                        return True
                    return collate(
                        rows,
                        self.specials,
                        position_offset=self.position_offset,
                        mask_prob=self.mask_prob,
                        generator=_generator(self.seed, self.epoch, self.index - 1, 2),
                    )
            if self.final:
                return None
            chunk: list[str] = []
            while len(chunk) < self.read_rows and (text := self.cursor.next()) is not None:
                chunk.append(text)
            if len(chunk) < self.read_rows:
                self.final = True  # the epoch's tweets are all read: pack what is left
            budget = self.max_seq_len - 2
            self.pending.extend(t for t in encode(self.tokenizer, chunk, budget) if t)


# --------------------------------------------------------------------------- pairs (mlm_social)


class TweetIndex:
    """Tweet id -> language (and, on request, text) of a tweets Parquet.

    Holds the ids (sorted, fixed-width bytes) and a language code per tweet: what a pair's
    language needs, never the texts, which :meth:`texts` fetches by a streaming scan.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        f = schemas.check(path, "tweets")
        ids: list[bytes] = []
        codes: list[int] = []
        names: dict[str, int] = {}
        for rb in f.iter_batches(columns=["tweet_id", "lang"], batch_size=65536):
            ids.extend(s.encode() for s in rb.column(0).to_pylist())
            codes.extend(
                names.setdefault(v or lang.UNKNOWN, len(names)) for v in rb.column(1).to_pylist()
            )
        arr = np.array(ids, dtype="S") if ids else np.zeros(0, "S1")
        order = np.argsort(arr, kind="stable")
        self.ids = arr[order]
        self.codes = np.array(codes, dtype=np.int32)[order]
        self.names = sorted(names, key=names.__getitem__)

    def langs(self, ids: list[str]) -> list[str | None]:
        """The language of each id (None: not a tweet of the file)."""
        if not len(self.ids):
            return [None] * len(ids)
        q = np.array([s.encode() for s in ids], dtype="S")
        pos = np.minimum(np.searchsorted(self.ids, q), len(self.ids) - 1)
        hit = self.ids[pos] == q
        return [self.names[c] if h else None for c, h in zip(self.codes[pos], hit, strict=True)]

    def texts(self, ids: set[str]) -> dict[str, str]:
        """The texts of ``ids`` (one streaming pass over the file's ids and texts)."""
        want = pa.array(sorted(ids), pa.string())
        out: dict[str, str] = {}
        f = schemas.check(self.path, "tweets")
        for rb in f.iter_batches(columns=["tweet_id", "text"], batch_size=65536):
            hit = rb.filter(pc.is_in(rb.column(0), value_set=want))
            out.update(zip(hit.column(0).to_pylist(), hit.column(1).to_pylist(), strict=True))
        return out


class PairStream(_Stream):
    """Micro-batches of B positive pairs for the social objective (plus MLM on their tokens),
    streamed from mine_pairs' output as tweets are in stage 1.

    Pairs are re-sampled by language with the same rates as tweets (a pair's language is its
    first tweet's, else its second's, else ``und``: translation pairs name no ingested tweet)
    and shuffled through a buffer of ``shuffle_buffer`` pairs (:class:`RowCursor`); a pair
    with a null text takes its tweet's text from the ingested tweets; pairs of a tweet with
    itself are dropped. Both tweets of every pair are packed (first-fit) into rows;
    ``Batch.cls_index`` lists the CLS positions as ``a_0..a_{B-1}, b_0..b_{B-1}``. Memory:
    the buffer, one slice of ``read_rows`` pairs and the tweet ids' index, never the pairs.
    """

    def __init__(
        self,
        pairs: str | Path,
        ingested: str | Path,
        tokenizer: Any,
        specials: Specials,
        *,
        pairs_per_batch: int,
        max_seq_len: int,
        max_tweet_tokens: int,
        position_offset: int,
        mask_prob: float,
        alpha: float,
        shuffle_buffer: int,
        read_rows: int,
        seed: int,
    ) -> None:
        self.path = Pairs(pairs).pairs_path()
        self.file = schemas.check(self.path, "pairs")
        self.tweets = TweetIndex(Ingested(ingested).tweets_path())
        self.tokenizer = tokenizer
        self.specials = specials
        self.pairs_per_batch = pairs_per_batch
        self.max_seq_len = max_seq_len
        self.max_tweet_tokens = max_tweet_tokens
        self.position_offset = position_offset
        self.mask_prob = mask_prob
        self.shuffle_buffer = shuffle_buffer
        self.read_rows = read_rows
        self.seed = seed
        # One pass over the pairs (no texts): languages to re-sample, and every bad row now.
        counts: Counter[str] = Counter()
        first = 0
        for rb in self.file.iter_batches(columns=PAIR_COLUMNS, batch_size=65536):
            counts.update(self.resolve(rb, first, texts=False)[1])
            first += rb.num_rows
        self.usable = sum(counts.values())
        if self.usable < pairs_per_batch:
            raise DataError(
                f"{self.path}: {self.usable} usable pairs: fewer than one batch of "
                f"{pairs_per_batch} pairs"
            )
        self.lang_counts = dict(counts)
        self.rates = lang.copy_rates(self.lang_counts, alpha)
        self._start(0, None)

    def resolve(
        self, rb: pa.RecordBatch, first: int, *, texts: bool = True
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """The usable pairs of a slice of the pairs file and their languages.

        Args:
            rb: The slice (columns :data:`PAIR_COLUMNS`).
            first: Its first row's 0-based number in the file (for error messages).
            texts: False: languages only (no text is looked up).

        Returns:
            ``(text_a, text_b)`` of each pair (empty when ``texts`` is False) and its language.

        Raises:
            DataError: A pair names a tweet that is not among the ingested tweets and carries
                no text for it (the message names the file and the row).
        """
        ids = {s: rb.column(f"tweet_{s}").to_pylist() for s in "ab"}
        given = {s: rb.column(f"text_{s}").to_pylist() for s in "ab"}
        found = {s: self.tweets.langs(ids[s]) for s in "ab"}
        for s in "ab":
            for i, (t, la) in enumerate(zip(given[s], found[s], strict=True)):
                if t is None and la is None:
                    raise DataError(
                        f"{self.path}: row {first + i + 1}: tweet_{s} {ids[s][i]} is not in "
                        f"{self.tweets.path} and the pair carries no text_{s}"
                    )
        keep = [i for i in range(rb.num_rows) if ids["a"][i] != ids["b"][i]]
        langs = [found["a"][i] or found["b"][i] or lang.UNKNOWN for i in keep]
        if not texts:
            return [], langs
        missing = {ids[s][i] for s in "ab" for i in keep if given[s][i] is None}
        looked = self.tweets.texts(missing) if missing else {}

        def text(s: str, i: int) -> str:
            t = given[s][i]
            return t if t is not None else looked[ids[s][i]]

        return [(text("a", i), text("b", i)) for i in keep], langs

    def _start(self, epoch: int, state: dict[str, Any] | None) -> None:
        self.epoch = epoch
        self.index = int(state["batch"]) if state else 0
        self.cursor = RowCursor(
            self.file, PAIR_COLUMNS, self.resolve, self.rates, epoch=epoch, seed=self.seed,
            salt=3, slice_rows=self.read_rows, buffer_size=self.shuffle_buffer,
            state=state["cursor"] if state else None,
        )  # fmt: skip

    def _state(self) -> dict[str, Any]:
        return {"cursor": self.cursor.state()}

    def _too_few(self) -> DataError:
        return DataError(
            f"{self.path}: too few pairs for one batch of {self.pairs_per_batch} pairs"
        )

    def _next(self, build: bool) -> Batch | bool | None:
        pairs: list[tuple[str, str]] = []
        while len(pairs) < self.pairs_per_batch and (p := self.cursor.next()) is not None:
            pairs.append(p)
        if len(pairs) < self.pairs_per_batch:
            return None  # a partial last batch is dropped
        self.index += 1
        if not build:
            return True
        texts = [a for a, _ in pairs] + [b for _, b in pairs]
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
            generator=_generator(self.seed, self.epoch, self.index - 1, 4),
            cls_order=[where[i] for i in range(len(toks))],
        )
