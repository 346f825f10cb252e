"""Streaming readers of raw inputs: JSONL, CSV, Parquet and one-tweet-per-line text.

Each reader yields :class:`RawBatch` es of at most ``batch_size`` rows, holding for every
row its 1-based line (or row) number, the parsed record (a dict) or the reason it could not
be parsed, and its raw form for the quarantine. Nothing reads a whole file: line-based
formats are split from fixed-size chunks, Parquet is read batch by batch.

The format comes from the file name: ``.jsonl``/``.ndjson``/``.json``, ``.csv``,
``.parquet``/``.pq`` and ``.txt``, each optionally ``.gz`` (not Parquet). Blank lines of
JSONL and CSV files are not rows; a blank line of a text file is a row (with empty text),
since text files are line-aligned with their label files.

Accounting is on the physical input: every reader counts the lines (Parquet: rows) it read
in :attr:`FileReader.physical`, independently of how they were parsed, and every batch says
how many physical lines each of its rows spans and how many it skipped (blank lines, the
CSV header), so ingest can prove that each line read is a row, a blank or the header, once.

A NUL byte is never data (it marks a corrupt or non-UTF-8 file): in every format a row
holding one is quarantined as ``unparseable_line``.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import gzip
import itertools
import json
import json.scanner
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, Any

import pyarrow as pa

from twhin_bert.common import schemas
from twhin_bert.common.io import open_uri
from twhin_bert.ingest.normalise import INVALID_UTF8, UNPARSEABLE_LINE

JSONL, CSV, PARQUET, TEXT = "jsonl", "csv", "parquet", "text"
_SUFFIXES = {
    ".jsonl": JSONL,
    ".ndjson": JSONL,
    ".json": JSONL,
    ".csv": CSV,
    ".parquet": PARQUET,
    ".pq": PARQUET,
    ".txt": TEXT,
}
SUPPORTED = (
    "JSONL (.jsonl/.ndjson/.json[.gz]), CSV (.csv[.gz]), Parquet (.parquet), text (.txt[.gz])"
)
_BOM = codecs.BOM_UTF8
# The C scanner behind json.loads, called directly: a third of json.loads' cost per line.
_SCAN_ONCE = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[attr-defined]


class InputError(ValueError):
    """An input that cannot be ingested at all (the message names the file and the problem)."""


class UnreadableInputError(InputError):
    """A missing, unreadable or corrupt input file (permissions, bad gzip, bad Parquet)."""


class MissingColumnsError(InputError):
    """A CSV or Parquet input without the required columns."""


class UnsupportedFormatError(InputError):
    """A file whose name does not tell a supported format."""


def detect_format(uri: str) -> tuple[str, bool] | None:
    """``(format, gzipped)`` from the file name, or None when it is not a supported format."""
    name = PurePosixPath(uri.split("://", 1)[-1]).name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    fmt = _SUFFIXES.get(PurePosixPath(name).suffix)
    if fmt is None or (fmt == PARQUET and gz):
        return None
    return fmt, gz


@dataclass
class RawBatch:
    """Rows of one file: parallel lists, one entry per row."""

    rows: list[int] = field(default_factory=list)  # 1-based line / row number
    records: list[dict[str, Any] | None] = field(default_factory=list)  # None when errors[i]
    errors: list[str | None] = field(default_factory=list)  # quarantine reason or None
    raws: list[Any] = field(default_factory=list)  # bytes | str | dict: the raw row
    spans: list[int] = field(default_factory=list)  # physical lines of each row (CSV: >= 1)

    def __len__(self) -> int:
        return len(self.rows)

    def add(
        self, row: int, record: dict[str, Any] | None, error: str | None, raw: Any, span: int = 1
    ) -> None:
        self.rows.append(row)
        self.records.append(record)
        self.errors.append(error)
        self.raws.append(raw)
        self.spans.append(span)


def raw_text(raw: Any, max_chars: int) -> str:
    """The raw form of a row as text for the quarantine (undecodable bytes escaped, cut)."""
    if isinstance(raw, bytes | bytearray):
        s = bytes(raw[: max_chars * 4]).decode("utf-8", errors="backslashreplace")
    elif isinstance(raw, str):
        s = raw.encode("utf-8", errors="backslashreplace").decode("utf-8")
    else:
        s = json.dumps(raw, ensure_ascii=False, default=str)
        s = s.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return s[:max_chars]


# --- line splitting -------------------------------------------------------------------
class TooLong(bytes):
    """The head of a line longer than ``max_line_bytes`` (the rest was skipped)."""


def iter_lines(
    stream: IO[bytes], chunk_bytes: int, max_line_bytes: int, *, bom: bool = True
) -> Iterator[bytes]:
    """Splits a binary stream into lines (no terminator, ``\\r\\n`` handled) from fixed chunks.

    A UTF-8 byte-order mark at the start is dropped (unless ``bom`` is False: a stream that
    starts inside a file). A line longer than ``max_line_bytes`` is yielded as a
    :class:`TooLong` holding only its first ``max_line_bytes`` bytes; its rest is skipped
    without being kept in memory. What a line is depends only on where the newlines are, so
    a file split at line starts (:meth:`FileReader.pieces`) yields the same lines.
    """
    lines = _split(stream, chunk_bytes, max_line_bytes)
    first = next(lines, None)
    if first is None:
        return
    if bom and first.startswith(_BOM):
        first = type(first)(first[len(_BOM) :])
    yield first
    yield from lines


def _split(stream: IO[bytes], chunk_bytes: int, max_line_bytes: int) -> Iterator[bytes]:
    buf = b""
    skipping = False
    while True:
        chunk = stream.read(chunk_bytes)
        if not chunk:
            break
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            chunk = chunk[nl + 1 :]
            skipping = False
        buf = buf + chunk if buf else chunk
        lines = buf.split(b"\n")
        buf = lines.pop()
        for line in lines:
            if len(line) > max_line_bytes:
                yield TooLong(line[:max_line_bytes])
            else:
                yield line[:-1] if line.endswith(b"\r") else line
        if len(buf) > max_line_bytes:
            yield TooLong(buf[:max_line_bytes])
            buf = b""
            skipping = True
    if buf and not skipping:
        yield buf[:-1] if buf.endswith(b"\r") else buf


# --- readers ----------------------------------------------------------------------------
class _Counted:
    """Counts the lines a splitter yields: the physical input, whatever the parser does."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self.n = 0

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> bytes:
        line = next(self._lines)
        self.n += 1
        return line


class FileReader:
    """Streams one input file as :class:`RawBatch` es.

    After :meth:`batches` is exhausted, :attr:`physical` holds the lines (Parquet: rows)
    read from the file, counted as they were split, and :attr:`skipped` those that were not
    rows (blank lines, the CSV header); ``physical == skipped + sum(spans of all rows)``
    holds unless a line was lost.

    Args:
        uri: Local path or gs:// URI.
        fmt: One of ``jsonl``, ``csv``, ``parquet``, ``text``.
        gz: Whether the file is gzip-compressed.
        required: Columns every row must have (checked against CSV headers / Parquet schemas).
        optional: Further columns read when present.
        batch_size: Rows per batch.
        chunk_bytes: Read size for line-based formats.
        max_line_bytes: Longest line accepted.
        text_id_prefix: For text files, tweet ids are ``f"{text_id_prefix}:{line}"``.
        csv_delimiter: CSV field delimiter.
        csv_max_record_lines: Most physical lines one CSV record (a quoted field holding
            newlines) may span; see :meth:`_csv`.
    """

    def __init__(
        self,
        uri: str,
        fmt: str,
        gz: bool,
        *,
        required: tuple[str, ...],
        optional: tuple[str, ...] = (),
        batch_size: int = 8192,
        chunk_bytes: int = 1 << 20,
        max_line_bytes: int = 1 << 20,
        text_id_prefix: str = "",
        csv_delimiter: str = ",",
        csv_max_record_lines: int = 100,
    ) -> None:
        self.uri = uri
        self.fmt = fmt
        self.gz = gz
        self.required = required
        self.optional = optional
        self.batch_size = batch_size
        self.chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.text_id_prefix = text_id_prefix
        self.csv_delimiter = csv_delimiter
        self.csv_max_record_lines = csv_max_record_lines
        self.physical = 0
        self.skipped = 0

    @property
    def splittable(self) -> bool:
        """Whether the file can be read in independent pieces: Parquet (by row groups) and
        uncompressed JSONL (by lines). A CSV record may span lines, a gzip stream cannot be
        entered mid-way, and a text file's tweet ids are its line numbers."""
        return self.fmt == PARQUET or (self.fmt == JSONL and not self.gz)

    def pieces(self, target_bytes: int) -> list[tuple[int, int | None]]:
        """Splits the file into pieces of about ``target_bytes`` that read independently.

        A piece is ``(start, stop)``: a byte range that starts at a line start (JSONL), or a
        range of row groups (Parquet); ``stop`` None is the end of the file. Reading the
        pieces in order with :meth:`batches` yields the file's rows in order, each once, with
        line (row) numbers counted from each piece's start. Files that are not
        :attr:`splittable` are one piece.

        Raises:
            UnreadableInputError: The file cannot be opened or is corrupt.
        """
        if not self.splittable:
            return [(0, None)]
        try:
            with open_uri(self.uri, "rb") as f:
                if self.fmt == PARQUET:
                    meta = schemas.open_parquet(f).metadata
                    return _group_pieces(
                        [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)],
                        target_bytes,
                    )
                return _line_pieces(f, target_bytes)
        except (OSError, pa.ArrowException) as e:
            raise UnreadableInputError(
                f"{self.uri}: cannot read this {self.fmt} input: {type(e).__name__}: {_one_line(e)}"
            ) from e

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[RawBatch]:
        """Yields the rows of the file, or of one of its :meth:`pieces`, in batches.

        Args:
            start: First byte (line formats) or row group (Parquet) of the piece.
            stop: End of the piece (exclusive); None: the end of the file.

        Raises:
            UnreadableInputError: The file cannot be opened or is corrupt (message names it).
            MissingColumnsError: A CSV/Parquet file lacks required columns.
            InputError: A CSV header that is not one line (names the line).
        """
        self.physical = self.skipped = 0
        try:
            with ExitStack() as stack:
                f = stack.enter_context(open_uri(self.uri, "rb"))
                if self.fmt == PARQUET:
                    yield from self._parquet(f, start, stop)
                    return
                if self.gz:
                    f = stack.enter_context(gzip.GzipFile(fileobj=f, mode="rb"))
                if start or stop is not None:
                    f.seek(start)
                    f = _Range(f, None if stop is None else stop - start)
                lines = _Counted(
                    iter_lines(f, self.chunk_bytes, self.max_line_bytes, bom=start == 0)
                )
                if self.fmt == JSONL:
                    yield from self._jsonl(lines)
                elif self.fmt == CSV:
                    yield from self._csv(lines)
                else:
                    yield from self._text(lines)
                self.physical = lines.n
        except (OSError, EOFError, zlib.error, pa.ArrowException) as e:
            # gzip.BadGzipFile, PermissionError, FileNotFoundError and GCS errors are OSErrors
            # or are wrapped by open_uri's client as such; Parquet corruption is ArrowInvalid.
            raise UnreadableInputError(
                f"{self.uri}: cannot read this {self.fmt}{'.gz' if self.gz else ''} input: "
                f"{type(e).__name__}: {_one_line(e)}"
            ) from e

    def _jsonl(self, lines: Iterator[bytes]) -> Iterator[RawBatch]:
        batch = RawBatch()
        rows, records, errors, raws = batch.rows, batch.records, batch.errors, batch.raws
        scan = _SCAN_ONCE
        for n, line in enumerate(lines, start=1):
            rec: Any = None
            err: str | None = None
            if isinstance(line, TooLong):
                err = UNPARSEABLE_LINE
            else:
                stripped = line.strip()
                if not stripped:
                    self.skipped += 1
                    continue  # a blank line is not a row
                try:
                    text = stripped.decode("utf-8")
                    if "\x00" in text:
                        raise ValueError("a NUL byte")
                    rec, end = scan(text, 0)
                    if end != len(text) and text[end:].strip():
                        raise ValueError("extra data after the JSON value")
                except UnicodeDecodeError:
                    err, rec = INVALID_UTF8, None
                except (ValueError, StopIteration, RecursionError):
                    err, rec = UNPARSEABLE_LINE, None
                else:
                    if not isinstance(rec, dict):
                        err, rec = UNPARSEABLE_LINE, None
                    elif b"\\u" in stripped and _has_bad_char(rec):
                        # an escaped lone surrogate is not UTF-8, an escaped NUL not data
                        err = INVALID_UTF8 if _has_lone_surrogate(rec) else UNPARSEABLE_LINE
                        rec = None
            rows.append(n)
            records.append(rec)
            errors.append(err)
            raws.append(line)
            batch.spans.append(1)
            if len(rows) >= self.batch_size:
                yield batch
                batch = RawBatch()
                rows, records, errors, raws = batch.rows, batch.records, batch.errors, batch.raws
        if batch:
            yield batch

    def _text(self, lines: Iterator[bytes]) -> Iterator[RawBatch]:
        batch = RawBatch()
        prefix = self.text_id_prefix
        for n, line in enumerate(lines, start=1):
            if isinstance(line, TooLong):
                batch.add(n, None, UNPARSEABLE_LINE, line)
            else:
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    batch.add(n, None, INVALID_UTF8, line)
                else:
                    if "\x00" in text:
                        batch.add(n, None, UNPARSEABLE_LINE, line)
                    else:
                        batch.add(n, {"tweet_id": f"{prefix}:{n}", "text": text}, None, line)
            if len(batch) >= self.batch_size:
                yield batch
                batch = RawBatch()
        if batch:
            yield batch

    def _csv(self, lines: Iterator[bytes]) -> Iterator[RawBatch]:
        """CSV records, read line-aware so that one bad quote costs one line.

        A record may span several physical lines only inside a quoted field (RFC 4180).
        An unterminated quote would otherwise swallow every following line into one field
        (until the next quote, the csv module's field-size limit or the end of the file),
        losing good rows inside one "row". So a record that spans several lines is accepted
        only when all of these hold:

        - its quoted field closes within ``csv_max_record_lines`` lines, before the end of
          the file and without a csv error (e.g. the field-size limit);
        - it has as many fields as the header;
        - none of its continuation lines is, on its own, a complete well-quoted record with
          the header's number of fields (such a line is a good row that a stray quote
          swallowed, not a line of a tweet).

        Otherwise only its first physical line is quarantined (``unparseable_line``) and
        reading resumes at the next physical line: the lines it had swallowed are read
        again as records of their own. A bad quote thus costs its own line, and every line
        read ends up in exactly one record, the header or the blanks. The price of the last
        rule: a quoted text whose inner line looks exactly like a whole row is read as
        rows (a stray quote is far more likely than such a text).

        A header that is not one complete line fails the file with its line number.
        """
        src = _CsvLines(lines, self.csv_max_record_lines)
        reader = csv.reader(src, delimiter=self.csv_delimiter, strict=False)
        header: list[str] | None = None
        columns: list[tuple[int, str]] = []
        width = 0
        batch = RawBatch()
        while True:
            src.start_record()
            try:
                fields: list[str] | None = next(reader)
            except StopIteration:
                if not src.record:
                    break
                fields = None  # the file ended inside the record
            except (csv.Error, _RecordTooLong):
                fields = None
            record = src.record
            first = record[0]
            malformed = fields is None or src.eof_in_record
            if header is None:
                if fields is not None and not any(f.strip() for f in fields) and not malformed:
                    self.skipped += len(record)
                    continue
                if malformed or len(record) > 1:
                    raise self._header_error(first.no)
                assert fields is not None
                header = [h.strip() for h in fields]
                self._check_columns(header, "CSV header")
                columns = [(i, h) for i, h in enumerate(header) if h in self.wanted]
                width = len(header)
                self.skipped += 1
                continue
            if malformed:
                pass
            elif len(record) == 1 and not any(f.strip() for f in fields):  # type: ignore[union-attr]
                self.skipped += 1
                continue  # a blank line is not a row
            elif len(fields) != width:  # type: ignore[arg-type]
                malformed = True
            elif len(record) == 1:
                malformed = first.too_long
            else:
                malformed = any(ln.too_long for ln in record) or any(
                    self._is_whole_row(ln.text, width) for ln in record[1:]
                )
            if malformed and len(record) > 1:
                src.push_back(record[1:])  # read them again: they may be good rows
                record = [first]
            if len(record) == 1:
                raw = first.text
                bad_utf8, nul = first.bad_utf8, "\x00" in raw
            else:
                raw = "\n".join(ln.text for ln in record)
                bad_utf8, nul = any(ln.bad_utf8 for ln in record), "\x00" in raw
            rec = None
            if bad_utf8:
                reason: str | None = INVALID_UTF8
            elif malformed or nul:
                reason = UNPARSEABLE_LINE
            else:
                reason = None
                assert fields is not None
                rec = {h: (fields[i] if fields[i] != "" else None) for i, h in columns}
            batch.add(first.no, rec, reason, raw, span=len(record))
            if len(batch) >= self.batch_size:
                yield batch
                batch = RawBatch()
        if header is None:
            self._check_columns([], "CSV header (the file is empty)")
        if batch:
            yield batch

    def _is_whole_row(self, text: str, width: int) -> bool:
        """Whether ``text`` alone parses as one well-quoted record of ``width`` fields."""
        try:
            fields = next(csv.reader([text], delimiter=self.csv_delimiter, strict=True), [])
        except csv.Error:
            return False
        return len(fields) == width and width > 1

    def check_columns(self) -> None:
        """Checks a CSV header or Parquet schema for the required columns before any row is
        read (no-op for JSONL and text, whose rows are checked one by one).

        Raises:
            MissingColumnsError: Required columns are missing.
            UnreadableInputError: The file cannot be opened or is corrupt.
        """
        if self.fmt not in (CSV, PARQUET):
            return
        try:
            with ExitStack() as stack:
                f = stack.enter_context(open_uri(self.uri, "rb"))
                if self.fmt == PARQUET:
                    self._check_columns(
                        schemas.open_parquet(f).schema_arrow.names, "Parquet schema"
                    )
                    return
                if self.gz:
                    f = stack.enter_context(gzip.GzipFile(fileobj=f, mode="rb"))
                lines = iter_lines(f, self.chunk_bytes, self.max_line_bytes)
                for no, line in enumerate(lines, start=1):
                    text = line.decode("utf-8", errors="replace")
                    if text.strip():
                        try:
                            header = next(
                                csv.reader([text], delimiter=self.csv_delimiter, strict=True)
                            )
                        except csv.Error:
                            raise self._header_error(no) from None
                        self._check_columns([h.strip() for h in header], "CSV header")
                        return
                self._check_columns([], "CSV header (the file is empty)")
        except (OSError, EOFError, zlib.error, pa.ArrowException) as e:
            raise UnreadableInputError(
                f"{self.uri}: cannot read this {self.fmt}{'.gz' if self.gz else ''} input: "
                f"{type(e).__name__}: {_one_line(e)}"
            ) from e

    def _header_error(self, line_no: int) -> InputError:
        return InputError(
            f"{self.uri}: line {line_no}: the CSV header is not one complete line (an "
            f"unclosed quote?); expected a header naming columns {list(self.required)}"
        )

    @property
    def wanted(self) -> tuple[str, ...]:
        return self.required + self.optional

    def _check_columns(self, names: list[str], where: str) -> None:
        missing = [c for c in self.required if c not in names]
        if missing:
            raise MissingColumnsError(
                f"{self.uri}: {where} lacks required columns {missing}; expected columns "
                f"{list(self.required)} (optional {list(self.optional)}), found {names}"
            )

    @staticmethod
    def _failing_group(pf: Any, groups: range, rows_read: int, columns: list[str]) -> int | str:
        """The first row group at or after row ``rows_read`` of ``groups`` that cannot be read
        on its own (a batch may span several groups); on the error path only."""
        ends = list(itertools.accumulate(pf.metadata.row_group(i).num_rows for i in groups))
        for g in groups[min(bisect.bisect_right(ends, rows_read), len(groups) - 1) :]:
            try:
                pf.read_row_group(g, columns=columns)
            except (OSError, pa.ArrowException):
                return g
        return f"{groups.start}-{groups.stop - 1}"

    def _parquet(self, f: IO[bytes], start: int = 0, stop: int | None = None) -> Iterator[RawBatch]:
        pf = schemas.open_parquet(f)
        names = pf.schema_arrow.names
        self._check_columns(names, "Parquet schema")
        columns = [c for c in self.wanted if c in names]
        groups = range(start, pf.metadata.num_row_groups if stop is None else stop)
        n = 0
        batches = pf.iter_batches(
            batch_size=self.batch_size, row_groups=list(groups), columns=columns
        )
        while True:
            try:
                rb = next(batches, None)
            except (OSError, pa.ArrowException) as e:  # say which row group failed
                group = self._failing_group(pf, groups, n, columns)
                raise UnreadableInputError(
                    f"{self.uri}: row group {group} cannot be read: "
                    f"{type(e).__name__}: {_one_line(e)}"
                ) from e
            if rb is None:
                break
            batch = RawBatch()
            try:
                records = rb.to_pylist()
            except UnicodeDecodeError:
                records = [_row_or_none(rb, i) for i in range(rb.num_rows)]
            for rec in records:
                n += 1
                if rec is None:
                    batch.add(n, None, INVALID_UTF8, f"<row {n}: invalid UTF-8>")
                elif _has_nul(rec):
                    batch.add(n, None, UNPARSEABLE_LINE, rec)
                else:
                    batch.add(n, rec, None, rec)
            yield batch
        # The row count of the footer, not of what was iterated: a lost row shows.
        self.physical = sum(pf.metadata.row_group(i).num_rows for i in groups)


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (Arrow's messages carry newlines)."""
    return " ".join(str(e).split())


class _Range:
    """Reads at most ``size`` bytes of a stream (None: to its end)."""

    def __init__(self, f: IO[bytes], size: int | None) -> None:
        self._f = f
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left is None:
            return self._f.read(n)
        n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n) if n else b""
        self._left -= len(data)
        return data


def _line_pieces(f: IO[bytes], target_bytes: int) -> list[tuple[int, int | None]]:
    """Byte ranges of about ``target_bytes`` that each start at a line start (just after a
    newline): the first newline at or after every ``target_bytes``-th byte ends a piece."""
    size = f.seek(0, 2)
    starts = [0]
    pos = target_bytes
    while pos < size:
        off = pos - 1
        f.seek(off)
        nl = -1
        while nl < 0:
            block = f.read(1 << 16)
            if not block:
                break
            nl = block.find(b"\n")
            if nl < 0:
                off += len(block)
        if nl < 0 or off + nl + 1 >= size:
            break  # the last line runs to the end of the file
        starts.append(off + nl + 1)
        pos = starts[-1] + target_bytes
    return [(a, b) for a, b in zip(starts, [*starts[1:], None], strict=True)]


def _group_pieces(sizes: list[int], target_bytes: int) -> list[tuple[int, int | None]]:
    """Consecutive Parquet row groups of about ``target_bytes`` (uncompressed) per piece."""
    if not sizes:
        return [(0, None)]
    pieces: list[tuple[int, int | None]] = []
    start, acc = 0, 0
    for i, size in enumerate(sizes):
        acc += size
        if acc >= target_bytes and i + 1 < len(sizes):
            pieces.append((start, i + 1))
            start, acc = i + 1, 0
    pieces.append((start, None))
    return pieces


def _has_nul(rec: dict[str, Any]) -> bool:
    """True when a top-level string of ``rec`` holds a NUL character."""
    return any(isinstance(v, str) and "\x00" in v for v in rec.values())


def _has_bad_char(rec: dict[str, Any]) -> bool:
    """True when a top-level string of ``rec`` holds a lone surrogate or a NUL."""
    return _has_nul(rec) or _has_lone_surrogate(rec)


def _has_lone_surrogate(rec: dict[str, Any]) -> bool:
    """True when a top-level string of ``rec`` holds a lone surrogate (a JSON ``\\udXXX``
    escape that is not valid UTF-8 text)."""
    for v in rec.values():
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _row_or_none(rb: pa.RecordBatch, i: int) -> dict[str, Any] | None:
    try:
        return rb.slice(i, 1).to_pylist()[0]
    except UnicodeDecodeError:
        return None


class _RecordTooLong(Exception):
    """A CSV record ran past ``csv_max_record_lines`` lines (an unclosed quote)."""


@dataclass(slots=True)
class _Line:
    """One physical line of a CSV file, decoded."""

    no: int  # 1-based
    text: str  # undecodable bytes kept as surrogate escapes
    bad_utf8: bool
    too_long: bool


class _CsvLines:
    """The line iterator fed to ``csv.reader``: decodes lines, records which lines the
    current record was made of, stops a record at ``max_lines`` lines, and serves lines
    pushed back (to be read again) before reading on."""

    def __init__(self, lines: Iterator[bytes], max_lines: int) -> None:
        self._lines = lines
        self._max_lines = max_lines
        self._pending: deque[_Line] = deque()
        self._line_no = 0
        self.record: list[_Line] = []
        self.eof_in_record = False

    def __iter__(self) -> _CsvLines:
        return self

    def start_record(self) -> None:
        self.record = []
        self.eof_in_record = False  # set when the file ends inside the record

    def push_back(self, lines: list[_Line]) -> None:
        self._pending.extendleft(reversed(lines))

    def __next__(self) -> str:
        if len(self.record) >= self._max_lines:
            raise _RecordTooLong
        if self._pending:
            line = self._pending.popleft()
        else:
            try:
                raw = next(self._lines)
            except StopIteration:
                self.eof_in_record = bool(self.record)
                raise
            self._line_no += 1
            try:
                line = _Line(self._line_no, raw.decode("utf-8"), False, isinstance(raw, TooLong))
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="surrogateescape")
                line = _Line(self._line_no, text, True, isinstance(raw, TooLong))
        self.record.append(line)
        return line.text + "\n"
