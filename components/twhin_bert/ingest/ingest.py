"""The ingest stage: raw tweets and engagements -> validated, normalised, deduplicated Parquet.

Read top to bottom:

1. plan: expand every input (files, folders, globs; local or gs://), tell each file's format
   from its name, check CSV headers and Parquet schemas for the required columns — all
   before anything is written, so a bad input fails fast and leaves nothing behind;
2. tweets, file by file and batch by batch: parse, validate, normalise the text, extract
   hashtags, drop duplicate ids, identify the language, write the tweets;
3. engagements likewise, checked against the set of tweet ids kept in step 2, and written;
4. every rejected row goes to the quarantine with its raw text, file, line/row and
   reason; the metrics count rows in, out and quarantined by reason, and the stage refuses
   to finish unless, for both kinds, ``rows_in == rows_out + sum(quarantined)`` and every
   physical line (Parquet: row) read is a row, a blank line or a CSV header, once;
5. the stage fails (exit code 2 from the CLI) when a kind given inputs keeps fewer than
   ``min_rows_kept`` rows (by default: none, as with an empty input or one whose every row
   was quarantined) or quarantines more than ``max_quarantine_share`` of its rows, and
   warns above ``warn_quarantine_share``.

Rows that are quarantined besides unparseable ones: texts empty after normalisation (only
whitespace or control characters), a NUL anywhere in the row, timestamps later than the
start of the run plus ``max_future_skew_s``, and engagements dated before their tweet's
``created_at`` (``engaged_before_tweet``; engagements of tweets without a creation time,
such as those of text files, are not checked).

Every core (``workers``, 0 = all the pod may use; :mod:`twhin_bert.common.compute`): each
input file is cut into pieces of about ``piece_bytes`` (uncompressed JSONL at line starts,
Parquet by row groups; CSV, gzip and text files are one piece each) and the pieces are read,
parsed, validated, normalised and language-identified in worker processes — the CPU-heavy,
row-local part. What needs every earlier row stays in this process and runs serially in
input order: duplicate tweets, the tweet-id set that engagements are checked against
(unknown tweet, engaged before its tweet), duplicate engagements, quarantine, line numbers
and counts. The pieces do not depend on ``workers``, so every setting writes the same
files, byte for byte, and the same metrics (timings aside).

Memory stays bounded: one batch of rows at a time (with workers: about ``2 * workers``
pieces in flight), plus 16 bytes per tweet id (its hash and creation time) and 8 per
engagement key (:mod:`twhin_bert.ingest.dedup`).

Input fields. Tweets: ``tweet_id``, ``author_id``, ``text``, ``created_at`` (required),
``lang`` (optional). Engagements: ``user_id``, ``tweet_id``, ``engagement_type``,
``engaged_at``. Ids may be strings or integers. Text files (``*.txt``, TweetEval / UMSAB
style, one tweet per line) give ``tweet_id = "<folder>/<name>:<line>"`` (the file's
parent folder and name without ``.txt``, e.g. ``spanish/train_text:1``), no author,
``created_at`` null, language detected. When a folder is given, only its ``*_text.txt``
files are read as text and files of unknown formats are skipped (logged and counted in
``files_skipped``); a file named directly or matched by a glob must have a supported format.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa

from twhin_bert.common import schemas
from twhin_bert.common.artifacts import Ingested
from twhin_bert.common.compute import resolve_cpus
from twhin_bert.common.io import expand_uris, is_gcs
from twhin_bert.common.parallel import ordered_map
from twhin_bert.common.progress import progress
from twhin_bert.common.stage import stage
from twhin_bert.common.text import extract_hashtags, normalise_text
from twhin_bert.ingest.config import IngestConfig
from twhin_bert.ingest.dedup import NO_VALUE, HashSet, hash_keys
from twhin_bert.ingest.langid import LanguageDetector
from twhin_bert.ingest.normalise import (
    BAD_TIMESTAMP,
    DUPLICATE_ENGAGEMENT,
    DUPLICATE_TWEET,
    EMPTY_TEXT,
    ENGAGED_BEFORE_TWEET,
    ENGAGEMENT_REASONS,
    MISSING_FIELD,
    TWEET_REASONS,
    UNKNOWN_TWEET,
    WRONG_TYPE,
    EngagementTypes,
    FieldError,
    coerce_id,
    parse_timestamp,
)
from twhin_bert.ingest.readers import (
    PARQUET,
    SUPPORTED,
    TEXT,
    FileReader,
    InputError,
    RawBatch,
    UnreadableInputError,
    UnsupportedFormatError,
    detect_format,
    raw_text,
)

log = logging.getLogger(__name__)

TWEETS, ENGAGEMENTS = "tweets", "engagements"
TWEET_REQUIRED = ("tweet_id", "author_id", "text", "created_at")
TWEET_OPTIONAL = ("lang",)
ENGAGEMENT_REQUIRED = ("user_id", "tweet_id", "engagement_type", "engaged_at")

__all__ = [
    "IngestAccountingError",
    "InputError",
    "NothingKeptError",
    "TooMuchQuarantinedError",
    "plan",
    "run_ingest",
    "summarise",
]


class IngestAccountingError(RuntimeError):
    """Rows were lost or double-counted: rows_in != rows_out + quarantined (a bug)."""


class NothingKeptError(InputError):
    """A kind with inputs kept fewer than ``min_rows_kept`` rows (by default: none)."""


class TooMuchQuarantinedError(InputError):
    """More than ``max_quarantine_share`` of a kind's rows were quarantined."""


@dataclass
class KindStats:
    """Row accounting of one kind (tweets or engagements)."""

    reasons: tuple[str, ...]
    files: int = 0
    lines_read: int = 0  # physical lines (Parquet: rows), counted by the readers' splitters
    lines_skipped: int = 0  # blank lines and CSV headers
    lines_in_rows: int = 0  # physical lines the rows span (a CSV record may span several)
    rows_in: int = 0
    rows_out: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    example: str = ""  # the first quarantined row, for error messages

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines_read": self.lines_read,
            "lines_skipped": self.lines_skipped,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "quarantined": {r: self.quarantined.get(r, 0) for r in self.reasons},
            "quarantined_total": sum(self.quarantined.values()),
        }

    def check(self, kind: str) -> None:
        """Raises :class:`IngestAccountingError` unless every physical line read is a row, a
        blank line or a header, once, and every row is kept or quarantined, once."""
        if self.lines_read != self.lines_skipped + self.lines_in_rows:
            raise IngestAccountingError(
                f"{kind}: lines_read={self.lines_read} != blank or header lines="
                f"{self.lines_skipped} + lines in rows={self.lines_in_rows}"
            )
        q = self.quarantined_total
        if self.rows_in != self.rows_out + q:
            raise IngestAccountingError(
                f"{kind}: rows_in={self.rows_in} != rows_out={self.rows_out} + "
                f"quarantined={q} ({dict(self.quarantined)})"
            )

    def check_kept(self, kind: str, inputs: list[str], cfg: IngestConfig) -> None:
        """Fails a kind that was given inputs but kept nothing or quarantined too much;
        warns above ``cfg.warn_quarantine_share``.

        Raises:
            NothingKeptError: Fewer than ``min_rows_kept`` rows kept (by default: none, as
                with empty inputs or every row quarantined).
            TooMuchQuarantinedError: The quarantined share exceeds ``max_quarantine_share``.
        """
        if not inputs:
            return
        q = self.quarantined_total
        reasons = ", ".join(f"{r}={n:,}" for r, n in self.quarantined.most_common())
        if self.rows_out < cfg.min_rows_kept:
            if self.rows_in == 0:
                raise NothingKeptError(
                    f"{kind} inputs {inputs} hold no rows ({self.lines_read:,} lines read, "
                    f"all blank or headers); expected at least {cfg.min_rows_kept:,} {kind} "
                    "rows (min_rows_kept)"
                )
            raise NothingKeptError(
                f"{kind}: {self.rows_out:,} of {self.rows_in:,} rows kept, fewer than "
                f"min_rows_kept={cfg.min_rows_kept:,} ({q:,} quarantined: {reasons}), e.g. "
                f"{self.example}"
            )
        if self.rows_in == 0:
            return
        share = q / self.rows_in
        if share > cfg.max_quarantine_share:
            raise TooMuchQuarantinedError(
                f"{kind}: {q:,} of {self.rows_in:,} rows quarantined ({share:.1%} > "
                f"max_quarantine_share {cfg.max_quarantine_share:.1%}: {reasons}), e.g. "
                f"{self.example}"
            )
        if share > cfg.warn_quarantine_share:
            log.warning(
                "%s: %s of %s rows quarantined (%.1f%% > warn_quarantine_share %.1f%%: %s), "
                "e.g. %s",
                kind,
                f"{q:,}",
                f"{self.rows_in:,}",
                100 * share,
                100 * cfg.warn_quarantine_share,
                reasons,
                self.example,
            )


class _Quarantine:
    """Buffers rejected rows and writes them to the quarantine Parquet in batches."""

    def __init__(self, path: Path, batch_size: int, raw_max_chars: int) -> None:
        self._writer = schemas.writer(path, "quarantine")
        self._batch_size = batch_size
        self._raw_max_chars = raw_max_chars
        self._cols: dict[str, list[Any]] = {n: [] for n in schemas.schema("quarantine").names}
        self.written = 0

    def add(self, kind: str, source: str, row: int, reason: str, raw: Any) -> None:
        c = self._cols
        c["kind"].append(kind)
        c["source"].append(source)
        c["row"].append(row)
        c["reason"].append(reason)
        c["raw"].append(raw_text(raw, self._raw_max_chars))
        if len(c["row"]) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        if self._cols["row"]:
            table = pa.table(self._cols, schema=schemas.schema("quarantine"))
            self._writer.write_table(table)
            self.written += table.num_rows
            self._cols = {n: [] for n in self._cols}

    def close(self) -> None:
        self.flush()
        self._writer.close()


# --- planning -------------------------------------------------------------------------
def _has_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _is_folder(pattern: str, files: list[str]) -> bool:
    if _has_glob(pattern):
        return False
    if is_gcs(pattern):
        return files != [pattern]
    return Path(pattern).expanduser().is_dir()


def text_id_prefix(uri: str) -> str:
    """The tweet-id prefix of a text file: ``<parent folder>/<name without .txt[.gz]>``.

    The parent folder is kept because the shared corpora reuse file names across folders
    (``umsab/spanish/train_text.txt``, ``umsab/french/train_text.txt``); the id does not
    depend on how the file was named (folder, glob or path), so reruns agree.
    """
    path = PurePosixPath(uri.split("://", 1)[1] if is_gcs(uri) else Path(uri).as_posix())
    name = path.name
    for suffix in (".gz", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    parent = path.parent.name
    if is_gcs(uri) and str(path.parent) == path.parts[0]:
        parent = ""  # an object at the bucket's root
    return f"{parent}/{name}" if parent else name


def plan(patterns: list[str], kind: str, cfg: IngestConfig) -> tuple[list[FileReader], list[str]]:
    """Expands ``patterns`` into one reader per file and checks them before any reading.

    Args:
        patterns: Paths, folders, globs or gs:// URIs.
        kind: ``tweets`` or ``engagements``.
        cfg: The stage config.

    Returns:
        The readers, and the files skipped in folders (unknown formats).

    Raises:
        UnreadableInputError: A pattern matches nothing or a file cannot be opened.
        UnsupportedFormatError: A named or globbed file has an unknown format, or a text
            file is given as engagements.
        MissingColumnsError: A CSV/Parquet file lacks required columns.
    """
    required = TWEET_REQUIRED if kind == TWEETS else ENGAGEMENT_REQUIRED
    optional = TWEET_OPTIONAL if kind == TWEETS else ()
    readers: list[FileReader] = []
    skipped: list[str] = []
    for pattern in patterns:
        try:
            files = expand_uris([pattern])
        except FileNotFoundError as e:
            raise UnreadableInputError(f"{pattern}: {kind} input not found ({e})") from e
        is_folder = _is_folder(pattern, files)
        for uri in files:
            det = detect_format(uri)
            if det is not None and is_folder and det[0] == TEXT:
                name = PurePosixPath(uri).name.lower()
                if not (name.endswith("_text.txt") or name.endswith("_text.txt.gz")):
                    det = None  # e.g. *_labels.txt and mapping.txt beside the texts
            if det is None:
                if is_folder:
                    log.info("%s: skipped (not a %s input: %s)", uri, kind, SUPPORTED)
                    skipped.append(uri)
                    continue
                raise UnsupportedFormatError(
                    f"{uri}: unsupported {kind} input format; expected {SUPPORTED}"
                )
            fmt, gz = det
            if fmt == TEXT and kind == ENGAGEMENTS:
                raise UnsupportedFormatError(
                    f"{uri}: text files hold tweets only; engagements need columns "
                    f"{list(ENGAGEMENT_REQUIRED)} in JSONL, CSV or Parquet"
                )
            reader = FileReader(
                uri,
                fmt,
                gz,
                required=required if fmt != TEXT else (),
                optional=optional,
                batch_size=cfg.batch_size,
                chunk_bytes=cfg.read_chunk_bytes,
                max_line_bytes=cfg.max_line_bytes,
                text_id_prefix=text_id_prefix(uri) if fmt == TEXT else "",
                csv_delimiter=cfg.csv_delimiter,
                csv_max_record_lines=cfg.csv_max_record_lines,
            )
            reader.check_columns()
            readers.append(reader)
    if skipped:
        log.warning(
            "%s inputs: skipped %d files of other formats in the folders given (e.g. %s)",
            kind,
            len(skipped),
            skipped[0],
        )
    return readers, skipped


# --- the stage ------------------------------------------------------------------------
@stage("ingest")
def run_ingest(
    cfg: IngestConfig, out_dir: Path, *, tweets: list[str], engagements: list[str]
) -> dict[str, Any]:
    """Validates, normalises and deduplicates raw tweets and engagements.

    Args:
        cfg: The stage config.
        out_dir: The (staging) output folder; receives the tweets, engagements and
            quarantine (:class:`~twhin_bert.common.artifacts.Ingested`).
        tweets: Tweet inputs (local paths or gs:// URIs of files, folders or globs).
        engagements: Engagement inputs (same forms; may be empty for text-only corpora).

    Returns:
        Metrics: per kind rows_in / rows_out / quarantined by reason, the language
        histogram, files read and skipped, rows per second.

    Raises:
        InputError: An input is missing, unreadable, corrupt, of unknown format or lacks
            required columns (the message names the file and what was expected); or a
            kind with inputs kept no row or quarantined more than ``max_quarantine_share``
            (:class:`NothingKeptError`, :class:`TooMuchQuarantinedError`). The output
            folder is removed: no partial output is left.
        IngestAccountingError: A row was lost (a bug; nothing is published).
    """
    out_dir = Path(out_dir)
    try:
        return _ingest(cfg, out_dir, list(tweets), list(engagements))
    except BaseException:
        # Ingest keeps no checkpoints, so a half-written staging folder is worthless and
        # misleading: remove it (the @stage wrapper then publishes nothing).
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _ingest(
    cfg: IngestConfig, out_dir: Path, tweets: list[str], engagements: list[str]
) -> dict[str, Any]:
    t0 = time.perf_counter()
    if not tweets:
        raise InputError("ingest needs at least one tweets input (engagements may be empty)")
    tweet_readers, skipped_t = plan(tweets, TWEETS, cfg)
    engagement_readers, skipped_e = plan(engagements, ENGAGEMENTS, cfg)
    detector = LanguageDetector(
        min_confidence=cfg.langid_min_confidence,
        min_letters=cfg.langid_min_letters,
        languages=cfg.langid_languages,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    t_stats = KindStats(TWEET_REASONS)
    e_stats = KindStats(ENGAGEMENT_REASONS)
    languages: Counter[str] = Counter()
    tweet_ids = HashSet(with_values=True)  # value: created_at (ms), NO_VALUE when unknown
    engagement_keys = HashSet()
    # Nothing happens later than now: a later timestamp is a broken clock or a unit mix-up.
    max_ts = round((time.time() + cfg.max_future_skew_s) * 1000)
    workers = resolve_cpus(cfg.workers, "workers")
    t_pieces = list(_pieces(tweet_readers, TWEETS, cfg.piece_bytes))
    e_pieces = list(_pieces(engagement_readers, ENGAGEMENTS, cfg.piece_bytes))
    # The row-local checks' settings, set before the workers fork so that they inherit them
    # (the language model included) instead of receiving them with every piece.
    global _WORK
    _WORK = _Work(cfg, detector, EngagementTypes(cfg.engagement_aliases), max_ts)

    output = Ingested(out_dir)
    quarantine = _Quarantine(output.quarantine_path(), cfg.batch_size, cfg.raw_max_chars)
    writers = output.writers()
    t_writer, e_writer = writers[TWEETS], writers[ENGAGEMENTS]
    # One stream of checked pieces, tweets then engagements: the workers check engagement
    # pieces while this process still merges the last tweets.
    results = _checked_pieces([*t_pieces, *e_pieces], workers)
    try:
        t_tweets = time.perf_counter()
        for src, checked, offset in _checked(t_pieces, results, t_stats, TWEETS):
            table = _merge_tweets(checked, src, offset, tweet_ids, quarantine, t_stats, languages)
            if table.num_rows:
                t_writer.write_table(table)
            t_stats.rows_out += table.num_rows
        t_engagements = time.perf_counter()
        for src, checked, offset in _checked(e_pieces, results, e_stats, ENGAGEMENTS):
            table = _merge_engagements(
                checked, src, offset, tweet_ids, engagement_keys, quarantine, e_stats
            )
            if table.num_rows:
                e_writer.write_table(table)
            e_stats.rows_out += table.num_rows
        t_end = time.perf_counter()
    finally:
        results.close()  # stops the workers when the merge failed
        _WORK = None
        t_writer.close()
        e_writer.close()
        quarantine.close()

    t_stats.check(TWEETS)
    e_stats.check(ENGAGEMENTS)
    if quarantine.written != t_stats.quarantined_total + e_stats.quarantined_total:
        raise IngestAccountingError(
            f"{output.quarantine_path()} holds {quarantine.written} rows, counters say otherwise"
        )
    t_stats.check_kept(TWEETS, tweets, cfg)
    e_stats.check_kept(ENGAGEMENTS, engagements, cfg)
    elapsed = max(time.perf_counter() - t0, 1e-9)
    metrics: dict[str, Any] = {
        TWEETS: t_stats.as_dict(),
        ENGAGEMENTS: e_stats.as_dict(),
        "languages": dict(languages.most_common()),
        "files_read": t_stats.files + e_stats.files,
        "files_skipped": len(skipped_t) + len(skipped_e),
        "rows_in": t_stats.rows_in + e_stats.rows_in,
        "rows_out": t_stats.rows_out + e_stats.rows_out,
        "quarantined_total": quarantine.written,
        "rows_per_second": round((t_stats.rows_in + e_stats.rows_in) / elapsed, 1),
        "tweet_rows_per_second": round(t_stats.rows_in / max(t_engagements - t_tweets, 1e-9), 1),
        "engagement_rows_per_second": round(e_stats.rows_in / max(t_end - t_engagements, 1e-9), 1),
        "dedup_bytes": tweet_ids.nbytes + engagement_keys.nbytes,
        "workers": workers,
    }
    log.info("ingest: %s", summarise(metrics).replace("\n", "; "))
    return metrics


# --- row-local checks (in worker processes) -------------------------------------------
@dataclass
class _Work:
    """The settings of the row-local checks; set before the workers fork."""

    cfg: IngestConfig
    detector: LanguageDetector
    types: EngagementTypes
    max_ts: int  # the latest accepted timestamp (ms)


_WORK: _Work | None = None


@dataclass
class _Piece:
    """A unit of work: one piece of one input file (see :meth:`FileReader.pieces`)."""

    kind: str
    reader: FileReader
    start: int
    stop: int | None
    first: bool  # the file's first piece
    last: bool  # the file's last piece


class _Raws:
    """The raw rows of a batch, packed for the trip back from a worker: rows that are plain
    bytes (JSONL and text lines) travel as one blob and its offsets, not as a million
    objects for the parent to unpickle; other rows (Parquet dicts, CSV text) as a list."""

    def __init__(self, raws: list[Any]) -> None:
        self._list: list[Any] | None = None
        if all(type(r) is bytes for r in raws):
            self._blob = b"".join(raws)
            self._ends = np.cumsum([len(r) for r in raws], dtype=np.int64)
        else:
            self._list = raws

    def __getitem__(self, i: int) -> Any:
        if self._list is not None:
            return self._list[i]
        return self._blob[self._ends[i - 1] if i else 0 : self._ends[i]]


@dataclass
class _Checked:
    """One batch after the row-local checks: what the serial merge needs, nothing more."""

    rows: np.ndarray  # each row's line (Parquet: row) number, counted from the piece's start
    lines: int  # physical lines the rows span
    rejected: list[tuple[int, str]]  # (row index, reason), in row order
    raws: _Raws  # the raw form of every row, for the quarantine
    keep: np.ndarray  # the row index of each candidate (a row that passed the checks)
    ids: np.ndarray  # hash of each candidate's tweet id
    times: np.ndarray  # tweets: created_at, NO_VALUE when unknown; engagements: engaged_at
    keys: np.ndarray | None  # engagements: hash of each candidate's (user, tweet, type)
    table: pa.Table  # the candidates, in the output schema


@dataclass
class _PieceResult:
    """A piece's checked batches and its physical accounting (as :class:`FileReader` has)."""

    batches: list[_Checked]
    physical: int
    skipped: int


def _check_batches(piece: _Piece) -> Iterator[_Checked]:
    """Reads one piece and checks its rows batch by batch (no state across rows)."""
    check = _check_tweets if piece.kind == TWEETS else _check_engagements
    for batch in piece.reader.batches(piece.start, piece.stop):
        yield check(batch, piece.reader)


def _check_piece(piece: _Piece) -> _PieceResult:
    """:func:`_check_batches` of a whole piece, in a worker process."""
    batches = list(_check_batches(piece))
    return _PieceResult(batches, piece.reader.physical, piece.reader.skipped)


def _piece_label(p: _Piece) -> str:
    unit = "row group" if p.reader.fmt == PARQUET else "byte"
    return f"{p.reader.uri} ({p.kind} from {unit} {p.start})"


def _pieces(readers: list[FileReader], kind: str, piece_bytes: int) -> Iterator[_Piece]:
    for reader in readers:
        spans = reader.pieces(piece_bytes)
        for k, (start, stop) in enumerate(spans):
            yield _Piece(kind, reader, start, stop, k == 0, k == len(spans) - 1)


def _checked_pieces(
    pieces: list[_Piece], workers: int
) -> Generator[tuple[Iterable[_Checked], _PieceResult | FileReader], None, None]:
    """``(checked batches, counts)`` of each piece, in order. With one worker the pieces are
    checked here, one batch at a time, as they are consumed (the reader holds the piece's
    counts once its batches are exhausted); with more, in worker processes, a piece at a
    time and at most ``2 * workers`` pieces ahead."""
    workers = min(workers, len(pieces))  # one piece: no pool to start
    if workers <= 1:
        for p in pieces:
            yield _check_batches(p), p.reader
    else:
        mapped = ordered_map(_check_piece, pieces, workers, label=_piece_label)
        with contextlib.closing(mapped) as checked:
            for r in checked:  # closing this generator closes the pool's at once
                yield r.batches, r


def _checked(
    pieces: list[_Piece],
    results: Iterator[tuple[Iterable[_Checked], _PieceResult | FileReader]],
    stats: KindStats,
    kind: str,
) -> Iterator[tuple[str, _Checked, int]]:
    """``(file, checked batch, line offset of its piece)`` over the pieces of one kind, in
    input order, taking each piece's result from ``results`` (:func:`_checked_pieces`),
    with a progress bar over files; counts lines and rows in ``stats``."""
    files = sum(p.first for p in pieces)
    bar = progress(total=files, desc=f"ingest {kind}", unit="file")
    try:
        offset = rows_before = 0
        for piece in pieces:
            batches, counts = next(results)
            if piece.first:
                offset, rows_before = 0, stats.rows_in
            for checked in batches:
                stats.rows_in += len(checked.rows)
                stats.lines_in_rows += checked.lines
                yield piece.reader.uri, checked, offset
                bar.set_postfix(rows=f"{stats.rows_in:,}", refresh=False)
            stats.lines_read += counts.physical
            stats.lines_skipped += counts.skipped
            offset += counts.physical
            if piece.last:
                if stats.rows_in == rows_before:
                    log.warning("%s: no %s rows in this file", piece.reader.uri, kind)
                stats.files += 1
                bar.update(1)
    finally:
        bar.close()


def _check_tweets(batch: RawBatch, reader: FileReader) -> _Checked:
    """Parses, validates and normalises one batch of tweets; identifies the candidates'
    languages and extracts their hashtags."""
    assert _WORK is not None
    cfg, detector, max_ts = _WORK.cfg, _WORK.detector, _WORK.max_ts
    structured = reader.fmt != TEXT
    keep: list[int] = []
    rejected: list[tuple[int, str]] = []
    ids: list[str] = []
    authors: list[str | None] = []
    originals: list[str] = []
    texts: list[str] = []
    created: list[int | None] = []
    given_langs: list[Any] = []
    for i, rec in enumerate(batch.records):
        reason = batch.errors[i]
        if rec is not None:
            try:
                tid = coerce_id(rec.get("tweet_id"), "tweet_id")
                author = coerce_id(rec.get("author_id"), "author_id") if structured else None
                text = rec.get("text")
                if not isinstance(text, str):
                    raise FieldError(MISSING_FIELD if text is None else WRONG_TYPE, "text")
                norm = normalise_text(text)
                if not norm:
                    raise FieldError(EMPTY_TEXT, "text")
                ts = parse_timestamp(rec.get("created_at"), "created_at") if structured else None
                if ts is not None and ts > max_ts:
                    raise FieldError(BAD_TIMESTAMP, "created_at")
                lang = rec.get("lang")
                if lang is not None and not isinstance(lang, str):
                    raise FieldError(WRONG_TYPE, "lang")
            except FieldError as e:
                reason = e.reason
            else:
                keep.append(i)
                ids.append(tid)
                authors.append(author)
                originals.append(text)
                texts.append(norm)
                created.append(ts)
                given_langs.append(lang)
                continue
        rejected.append((i, reason or WRONG_TYPE))

    langs: list[str] = []
    for given, text in zip(given_langs, texts, strict=True):
        lang = detector.valid_code(given) if cfg.trust_input_lang else None
        langs.append(lang or detector.detect(text))
    table = pa.table(
        {
            "tweet_id": ids,
            "author_id": authors,
            "text": texts,
            "lang": langs,
            "hashtags": [extract_hashtags(text) for text in originals],
            "created_at": created,
        },
        schema=schemas.schema("tweets"),
    )
    return _Checked(
        rows=np.asarray(batch.rows, dtype=np.int64),
        lines=sum(batch.spans),
        rejected=rejected,
        raws=_Raws(batch.raws),
        keep=np.asarray(keep, dtype=np.int64),
        ids=hash_keys(ids, len(ids)),
        times=np.array([NO_VALUE if t is None else t for t in created], dtype=np.int64),
        keys=None,
        table=table,
    )


def _check_engagements(batch: RawBatch, reader: FileReader) -> _Checked:
    """Parses and validates one batch of engagements."""
    assert _WORK is not None
    canonical, max_ts = _WORK.types.canonical, _WORK.max_ts
    keep: list[int] = []
    rejected: list[tuple[int, str]] = []
    users: list[str] = []
    tweets: list[str] = []
    kinds: list[str] = []
    times: list[int] = []
    for i, rec in enumerate(batch.records):
        reason = batch.errors[i]
        if rec is not None:
            try:
                user = rec.get("user_id")
                tid = rec.get("tweet_id")
                # Fast path for the common clean ids; coerce_id decides everything else.
                if type(user) is not str or not user or user[0].isspace() or user[-1].isspace():
                    user = coerce_id(user, "user_id")
                if type(tid) is not str or not tid or tid[0].isspace() or tid[-1].isspace():
                    tid = coerce_id(tid, "tweet_id")
                kind = canonical(rec.get("engagement_type"))
                ts = parse_timestamp(rec.get("engaged_at"), "engaged_at")
                if ts > max_ts:
                    raise FieldError(BAD_TIMESTAMP, "engaged_at")
            except FieldError as e:
                reason = e.reason
            else:
                keep.append(i)
                users.append(user)
                tweets.append(tid)
                kinds.append(kind)
                times.append(ts)
                continue
        rejected.append((i, reason or WRONG_TYPE))

    n = len(keep)
    keys = (f"{u}\x1f{t}\x1f{k}" for u, t, k in zip(users, tweets, kinds, strict=True))
    return _Checked(
        rows=np.asarray(batch.rows, dtype=np.int64),
        lines=sum(batch.spans),
        rejected=rejected,
        raws=_Raws(batch.raws),
        keep=np.asarray(keep, dtype=np.int64),
        ids=hash_keys(tweets, n),
        times=np.asarray(times, dtype=np.int64),
        keys=hash_keys(keys, n),
        table=pa.table(
            {"user_id": users, "tweet_id": tweets, "engagement_type": kinds, "engaged_at": times},
            schema=schemas.schema("engagements"),
        ),
    )


# --- the serial merge (in input order, in this process) --------------------------------
def _reject(
    q: _Quarantine, stats: KindStats, kind: str, src: str, row: int, reason: str, raw: Any
) -> None:
    stats.quarantined[reason] += 1
    if not stats.example:
        stats.example = f"{src} row {row}: {reason}"
    q.add(kind, src, row, reason, raw)


def _reject_all(
    c: _Checked,
    rows: Iterable[int],
    offset: int,
    q: _Quarantine,
    stats: KindStats,
    kind: str,
    src: str,
    reason: str,
) -> None:
    """Quarantines rows ``rows`` (indices into the batch) of ``c`` for ``reason``."""
    for i in rows:
        _reject(q, stats, kind, src, int(c.rows[i]) + offset, reason, c.raws[i])


def _merge_tweets(
    c: _Checked,
    src: str,
    offset: int,
    tweet_ids: HashSet,
    q: _Quarantine,
    stats: KindStats,
    languages: Counter[str],
) -> pa.Table:
    """Quarantines a checked batch's rejects and duplicate ids; returns the tweets kept."""
    for i, reason in c.rejected:
        _reject(q, stats, TWEETS, src, int(c.rows[i]) + offset, reason, c.raws[i])
    new = tweet_ids.add_new(c.ids, c.times)
    _reject_all(c, c.keep[~new], offset, q, stats, TWEETS, src, DUPLICATE_TWEET)
    table = c.table if new.all() else c.table.filter(pa.array(new))
    counts = table.column("lang").value_counts()  # in order of first appearance
    values, n = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    languages.update(dict(zip(values, n, strict=True)))
    return table


def _merge_engagements(
    c: _Checked,
    src: str,
    offset: int,
    tweet_ids: HashSet,
    engagement_keys: HashSet,
    q: _Quarantine,
    stats: KindStats,
) -> pa.Table:
    """Quarantines a checked batch's rejects, engagements of unknown tweets, engagements
    dated before their tweet and duplicates; returns the engagements kept."""
    for i, reason in c.rejected:
        _reject(q, stats, ENGAGEMENTS, src, int(c.rows[i]) + offset, reason, c.raws[i])
    known, created = tweet_ids.lookup(c.ids)
    _reject_all(c, c.keep[~known], offset, q, stats, ENGAGEMENTS, src, UNKNOWN_TWEET)
    # Before its tweet existed (NO_VALUE, the smallest int64, never compares greater).
    early = known & (c.times < created)
    _reject_all(c, c.keep[early], offset, q, stats, ENGAGEMENTS, src, ENGAGED_BEFORE_TWEET)
    cand = np.flatnonzero(known & ~early)
    new = engagement_keys.add_new(c.keys[cand])
    _reject_all(c, c.keep[cand[~new]], offset, q, stats, ENGAGEMENTS, src, DUPLICATE_ENGAGEMENT)
    sel = np.zeros(len(c.keep), dtype=bool)
    sel[cand[new]] = True
    return c.table if sel.all() else c.table.filter(pa.array(sel))


def summarise(metrics: dict[str, Any]) -> str:
    """A few lines for the CLI: rows in/out, quarantine by reason, top languages, speed."""
    lines = []
    for kind in (TWEETS, ENGAGEMENTS):
        m = metrics[kind]
        reasons = ", ".join(f"{r}={n:,}" for r, n in m["quarantined"].items() if n)
        lines.append(
            f"{kind}: {m['lines_read']:,} lines read ({m['lines_skipped']:,} blank or header), "
            f"{m['rows_in']:,} rows in, {m['rows_out']:,} out, "
            f"{m['quarantined_total']:,} quarantined" + (f" ({reasons})" if reasons else "")
        )
    top = list(metrics["languages"].items())[:8]
    if top:
        lines.append("languages: " + ", ".join(f"{lang}={n:,}" for lang, n in top))
    lines.append(
        f"files: {metrics['files_read']} read, {metrics['files_skipped']} skipped; "
        f"{metrics['rows_per_second']:,.0f} rows/s"
    )
    return "\n".join(lines)
