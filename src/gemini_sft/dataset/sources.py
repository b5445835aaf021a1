"""Reading raw data files: containers, not record formats.

A source is a JSONL file (optionally gzip-compressed, detected by its magic
bytes; optionally starting with a UTF-8 BOM) or a CSV/TSV file with a header
row (detected by extension or by sniffing the first line). Rows come out in
file order with the 1-based line where they start and their raw bytes, so a
row that cannot be decoded or parsed is rejected by the caller instead of
failing the file. Blank lines are counted, not returned.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from gemini_sft.errors import InputFormatError
from gemini_sft.dataset.records import (
    PAIR_FIELDS,
    SYSTEM_FIELDS,
    RejectReason,
    RowRejected,
    has_lone_surrogate,
)

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
# What a damaged gzip stream raises while it is read.
DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (gzip.BadGzipFile, EOFError, zlib.error)
UTF8_BOM = b"\xef\xbb\xbf"

CONTAINER_JSONL = "jsonl"
CONTAINER_CSV = "csv"
CONTAINER_TSV = "tsv"

_CSV_SUFFIXES = {".csv": CONTAINER_CSV, ".tsv": CONTAINER_TSV, ".tab": CONTAINER_TSV}
# Sources are read line by line: a large buffer makes that one system call per MB.
_READ_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class SourceInfo:
    """How a source file is read: ``container`` (jsonl, csv, tsv) and whether it is gzip-compressed."""

    container: str
    compressed: bool


def _open_binary(path: Path, buffering: int = -1) -> tuple[BinaryIO, bool]:
    try:
        raw = open(path, "rb", buffering=buffering)  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError as exc:
        raise InputFormatError(f"input file {path} does not exist; check the path or URI") from exc
    except IsADirectoryError as exc:
        raise InputFormatError(f"input {path} is a directory; give the path of a JSONL, CSV or TSV file") from exc
    except PermissionError as exc:
        raise InputFormatError(f"input file {path} cannot be read (permission denied)") from exc
    compressed = raw.read(2) == GZIP_MAGIC
    raw.seek(0)
    if compressed:
        return gzip.GzipFile(fileobj=raw, mode="rb"), True  # type: ignore[return-value]
    return raw, False


def detect_source(path: Path) -> SourceInfo:
    """Container kind of ``path``: by extension (``.csv``, ``.tsv``, also under ``.gz``), else by sniffing.

    Sniffing: a file whose first non-blank line does not start with ``{`` and
    names a known prompt/response column, separated by tabs or commas, is
    TSV/CSV. Raises :class:`InputFormatError` when the file cannot be opened
    or is a corrupt gzip stream.
    """
    stream, compressed = _open_binary(path)
    try:
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] == ".gz":
            suffixes = suffixes[:-1]
        if suffixes and suffixes[-1] in _CSV_SUFFIXES:
            return SourceInfo(_CSV_SUFFIXES[suffixes[-1]], compressed)
        try:
            first = b""
            for line in stream:
                if line.strip():
                    first = line
                    break
        except DECOMPRESSION_ERRORS as exc:
            raise InputFormatError(f"{path} looks gzip-compressed but cannot be decompressed: {exc}") from exc
        head = first.removeprefix(UTF8_BOM).strip()
        if head and not head.startswith(b"{"):
            header = head.decode("utf-8", errors="replace")
            for delimiter, container in (("\t", CONTAINER_TSV), (",", CONTAINER_CSV)):
                columns = {c.strip().strip('"').lower() for c in header.split(delimiter)}
                if len(columns) > 1 and columns & (PAIR_FIELDS | {"contents", "messages"}):
                    return SourceInfo(container, compressed)
        return SourceInfo(CONTAINER_JSONL, compressed)
    finally:
        stream.close()


@dataclass
class RowCounter:
    """Counts the source reader keeps while iterating: blank lines and data rows.

    With ``log_progress`` the reader logs the number of lines read every
    :data:`PROGRESS_LINES` lines (counts only).
    """

    blank_lines: int = 0
    rows: int = 0
    log_progress: bool = False


PROGRESS_LINES = 1 << 20


# A source row: (1-based line where it starts, raw bytes without changes, payload). The payload
# is None for a JSONL line (the caller decodes and parses it, so a bad line is rejected rather
# than failing the file), a dict for a CSV/TSV record, or a RowRejected for a CSV/TSV row that
# cannot be a record (wrong number of fields, invalid UTF-8).
SourceRow = tuple[int, bytes, "dict[str, str] | RowRejected | None"]


def iter_jsonl_lines(stream: BinaryIO, counter: RowCounter, first_line: int = 1) -> Iterator[SourceRow]:
    """Every non-blank line as a :data:`SourceRow`, numbered from ``first_line``; blank lines are counted."""
    line_number = first_line - 1
    progress_mask = PROGRESS_LINES - 1 if counter.log_progress else -1
    for line in stream:
        line_number += 1
        if not line_number & progress_mask:
            logger.info("read %d lines", line_number)
        if line_number == 1 and line.startswith(UTF8_BOM):
            line = line[len(UTF8_BOM):]
            if not line:  # the file is only a BOM
                return
        if line.isspace():  # never empty here: an empty line would be a file holding only a BOM
            counter.blank_lines += 1
            continue
        counter.rows += 1
        yield line_number, line, None


def jsonl_lines_at(path: Path, line_numbers: Iterable[int]) -> Iterator[bytes]:
    """The raw bytes of the given lines (1-based, increasing) of a JSONL file, as :func:`iter_jsonl_lines` yields them.

    The lines in between are skipped without a Python step per line.
    """
    stream, _ = _open_binary(path, buffering=_READ_BUFFER_BYTES)
    with stream:
        previous = 0
        for number in line_numbers:
            line = next(islice(stream, number - previous - 1, None))
            previous = number
            yield line.removeprefix(UTF8_BOM) if number == 1 else line


def iter_csv_rows(stream: BinaryIO, delimiter: str, counter: RowCounter) -> Iterator[SourceRow]:
    """Rows of a CSV/TSV file with a header row, as :data:`SourceRow` tuples.

    Blank rows are counted in ``counter``; a file without a header yields
    nothing. Raises :class:`InputFormatError` when the CSV quoting is broken
    beyond recovery (the csv module's own errors) and when the first row reads
    like data (no known column name, and a number or a sentence in it): a
    file without a header row, whose first example would be taken for one.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            counter.blank_lines += 1
            header = next(reader, None)
        if header is None:
            return
        columns = [_canonical_column(c) for c in header]
        if not set(columns) & _RECORD_COLUMNS and any(_looks_like_data(cell) for cell in header):
            raise InputFormatError(
                f"the first row of the CSV/TSV input (line {reader.line_num}) looks like data, not a header row: "
                f"no column is named {', '.join(sorted(_RECORD_COLUMNS))}; add a header row that names the "
                "columns, e.g. input,output"
            )
        previous_end = reader.line_num
        joiner = io.StringIO()
        writer = csv.writer(joiner, delimiter=delimiter, lineterminator="")
        for cells in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not any(cell.strip() for cell in cells):
                counter.blank_lines += reader.line_num - start + 1
                continue
            counter.rows += 1
            joiner.seek(0)
            joiner.truncate()
            writer.writerow(cells)
            joined = joiner.getvalue()
            raw = joined.encode("utf-8", errors="surrogateescape")
            payload: dict[str, str] | RowRejected
            if not joined.isascii() and has_lone_surrogate(joined):
                payload = RowRejected(RejectReason.INVALID_ENCODING, "the row is not valid UTF-8")
            elif len(cells) != len(columns):
                payload = RowRejected(
                    RejectReason.UNPARSEABLE_LINE,
                    f"the row has {len(cells)} fields but the header has {len(columns)}",
                )
            else:
                payload = dict(zip(columns, cells))
            yield start, raw, payload
    except csv.Error as exc:
        raise InputFormatError(
            f"CSV/TSV input is malformed near line {reader.line_num}: {exc}; check its quoting"
        ) from exc


# Column names that select a record format or a system instruction, matched case-insensitively
# (spreadsheet exports often capitalise headers); other columns keep their name.
_KNOWN_COLUMNS: dict[str, str] = {name.lower(): name for name in (*PAIR_FIELDS, *SYSTEM_FIELDS)}


# Columns that make a row a record: the prompt/response pairs, a system instruction, Gemini or chat JSON.
_RECORD_COLUMNS: frozenset[str] = frozenset({*PAIR_FIELDS, *SYSTEM_FIELDS, "contents", "messages"})


def _looks_like_data(cell: str) -> bool:
    """Whether a header cell reads like a value rather than a column name: a number, a sentence, long text."""
    text = cell.strip()
    if not text:
        return False
    try:
        float(text)
        return True
    except ValueError:
        pass
    return len(text) > 40 or len(text.split()) >= 4 or (" " in text and text[-1] in ".?!")


def _canonical_column(name: str) -> str:
    name = name.strip()
    return _KNOWN_COLUMNS.get(name.lower(), name)


def open_rows(
    path: Path, info: SourceInfo, counter: RowCounter, byte_range: tuple[int, int] | None = None, first_line: int = 1
) -> tuple[BinaryIO, Iterator[SourceRow]]:
    """Open ``path`` as described by ``info``; returns ``(stream, rows)``. Close ``stream`` when done.

    ``byte_range`` (uncompressed JSONL only) reads the lines starting in
    ``[start, end)``, numbering them from ``first_line``; ranges come from
    :func:`gemini_sft.parallel.line_aligned_ranges`.
    """
    stream, _ = _open_binary(path, buffering=_READ_BUFFER_BYTES)
    if info.container == CONTAINER_JSONL:
        if byte_range is not None:
            if info.compressed:
                raise ValueError("a byte range needs an uncompressed file")
            ranged = _RangeReader(stream, *byte_range)
            stream = io.BufferedReader(ranged, buffer_size=_READ_BUFFER_BYTES)  # type: ignore[assignment]
        return stream, iter_jsonl_lines(stream, counter, first_line)
    if byte_range is not None:
        raise ValueError("byte ranges are supported for JSONL only")
    delimiter = "\t" if info.container == CONTAINER_TSV else ","
    return stream, iter_csv_rows(stream, delimiter, counter)


class _RangeReader(io.RawIOBase):
    """The bytes ``[start, end)`` of a binary file, as a raw stream (wrap it in a BufferedReader)."""

    def __init__(self, raw: BinaryIO, start: int, end: int) -> None:
        super().__init__()
        self._raw = raw
        self._raw.seek(start)
        self._remaining = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._remaining <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._remaining)]
        read = self._raw.readinto(view)  # type: ignore[attr-defined]
        self._remaining -= read
        return read

    def close(self) -> None:
        self._raw.close()
        super().close()


def count_newlines(path: Path, end: int) -> int:
    """Number of newline bytes in the first ``end`` bytes of ``path``."""
    count = 0
    remaining = end
    with open(path, "rb") as stream:
        while remaining > 0:
            chunk = stream.read(min(remaining, 16 << 20))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return count
