"""Reading a file as chunks of whole lines, in bounded memory, and choosing how many workers check them.

In-process checking reads the bytes as it goes (:func:`read_chunks`); the
parallel path only finds line boundaries (:func:`chunk_offsets`) and each worker
reads its own byte range. Both are one reader, so they yield the same chunks,
and both skip a line longer than ``max_line_bytes`` without keeping it.

The parallel reader of :mod:`gemini_sft.parallel` (:func:`~gemini_sft.parallel.line_aligned_ranges`)
cuts a file into a few large ranges; validation needs many small chunks instead,
so that memory stays bounded, progress is reported as it goes and a line too
long to be an example is skipped unread.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from gemini_sft.parallel import worker_count
from gemini_sft.validate.settings import ValidationConfig

# A line longer than this cannot be a valid example (the token limit is far lower);
# it is reported and skipped without being held in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024
# Files smaller than this are checked in-process: starting workers would cost more than it saves.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
MAX_AUTO_WORKERS = 4
UTF8_BOM = b"\xef\xbb\xbf"
COMPRESSED_MAGIC = ((b"\x1f\x8b", "gzip"), (b"PK\x03", "zip"), (b"BZh", "bzip2"), (b"\xfd7z", "xz"))
HEAD_BYTES = len(UTF8_BOM)
# How much of a file input_problem() reads to tell a text file from a binary or non-UTF-8 one.
SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class Chunk:
    """A run of whole lines, each ending with a newline: bytes ``[offset, offset + length)`` of the file.

    ``data`` holds the bytes when the reader keeps them (a final line without a
    newline gets one). Line numbers are not known here: results are numbered
    from 1 and shifted when merged in file order.
    """

    data: bytes | None
    bytes_done: int
    offset: int
    length: int


@dataclass(frozen=True)
class LongLine:
    """A line longer than MAX_LINE_BYTES, skipped unread; it is the line after everything merged before it."""

    bytes_done: int


def compression_of(head: bytes) -> str | None:
    """The compression format a file's first bytes announce ("gzip", "zip", ...), or None for plain text."""
    return next((name for magic, name in COMPRESSED_MAGIC if head.startswith(magic)), None)


def input_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a JSONL input, in a few words with the fix; None when it can be read as one.

    A missing path, a directory, a binary file (NUL bytes: binary or UTF-16)
    and a file whose start is not UTF-8 are problems; a compressed file is not
    (validation reports it as ``compressed_file``). Only the first
    ``SNIFF_BYTES`` are read.
    """
    if path.is_dir():
        return f"is a directory; pass the JSONL file in it, e.g. {path / 'train.jsonl'}"
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "is not a regular file; pass a JSONL file"
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}); check the path and permissions"
    if compression_of(head) is not None:
        return None
    nul = head.find(b"\x00")
    if nul >= 0:
        return (
            f"is not a text file (byte {nul + 1} is a NUL byte: a binary or UTF-16 file); "
            "pass a UTF-8 JSONL file, or convert it with `iconv -t UTF-8`"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        truncated = exc.reason == "unexpected end of data" and len(head) == SNIFF_BYTES
        if not truncated:  # else a character was cut at the end of what was read
            line = head.count(b"\n", 0, exc.start) + 1
            return (
                f"is not UTF-8 text (byte {exc.start + 1}, on line {line}, is not UTF-8); "
                "save it as UTF-8, e.g. with `iconv -f LATIN1 -t UTF-8`"
            )
    return None


def workers_for(config: ValidationConfig, file_bytes: int, sequential: bool) -> int:
    """Worker processes to check a file: 1 when ``sequential`` or in a daemon process, else the config's or automatic.

    Args:
        config: its ``workers`` (None: automatic, several only for large files and as many CPUs as are usable).
        file_bytes: the size of the file.
        sequential: the caller needs one process (a token counter is used in order).
    """
    if sequential or multiprocessing.current_process().daemon:  # daemon processes may not start workers
        return 1
    if config.workers is not None:
        return config.workers
    return worker_count(file_bytes, PARALLEL_MIN_BYTES, MAX_AUTO_WORKERS)


def read_chunks(handle: Any, chunk_bytes: int, max_line_bytes: int, skip: int = 0) -> Iterator[Chunk | LongLine]:
    """Split a binary stream into chunks of whole lines, keeping their bytes.

    Args:
        handle: the stream, positioned at ``skip``.
        chunk_bytes: how much to read at a time.
        max_line_bytes: a longer line is yielded as :class:`LongLine` and skipped without being kept.
        skip: the file offset of the stream's position (bytes skipped at the start, e.g. a BOM).
    """
    return _chunks(handle, chunk_bytes, max_line_bytes, skip, keep_data=True)


def chunk_offsets(handle: Any, chunk_bytes: int, max_line_bytes: int, skip: int = 0) -> Iterator[Chunk | LongLine]:
    """Like :func:`read_chunks` without keeping or copying any bytes: offsets only (``data`` is None)."""
    return _chunks(handle, chunk_bytes, max_line_bytes, skip, keep_data=False)


def _chunks(
    handle: Any, chunk_bytes: int, max_line_bytes: int, skip: int, keep_data: bool
) -> Iterator[Chunk | LongLine]:
    position = skip  # file offset of the next byte to read
    chunk_start = skip  # file offset of the first line not yet yielded
    rest = b""  # with keep_data: the bytes since the last newline
    pending = 0  # bytes since the last newline
    skipping = False  # inside a line longer than max_line_bytes
    while True:
        block = handle.read(chunk_bytes)
        if not block:
            break
        block_start = position
        position += len(block)
        if skipping:
            newline = block.find(b"\n")
            if newline < 0:
                continue
            block = block[newline + 1 :]
            block_start += newline + 1
            chunk_start = block_start
            pending = 0
            skipping = False
        cut = block.rfind(b"\n")
        if cut < 0:
            pending += len(block)
            if pending > max_line_bytes:
                yield LongLine(position)
                skipping = True
                rest = b""
            elif keep_data:
                rest += block
            continue
        end = block_start + cut + 1
        if keep_data:
            data: bytes | None = rest + block[: cut + 1] if rest else block[: cut + 1]
            rest = block[cut + 1 :]
        else:
            data = None
        yield Chunk(data, position, chunk_start, end - chunk_start)
        chunk_start = end
        pending = len(block) - cut - 1
    if chunk_start < position and not skipping:
        yield Chunk(rest + b"\n" if keep_data else None, position, chunk_start, position - chunk_start)


def read_range(path: str, offset: int, length: int) -> bytes:
    """Bytes ``[offset, offset + length)`` of a file, ending with a newline (one is added when missing)."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    if not data.endswith(b"\n"):
        data += b"\n"
    return data
