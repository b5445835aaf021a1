"""The second pass: converted lines copied to their split files, rejected rows written in source order."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gemini_sft.dataset.decisions import Decisions
from gemini_sft.dataset.fates import FATE_REJECT_BASE, LATE, LATE_FATES, REASONS
from gemini_sft.dataset.first_pass import FirstPass, rejected_line
from gemini_sft.dataset.records import RejectReason
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.dataset.sources import CONTAINER_JSONL, RowCounter, SourceInfo, jsonl_lines_at, open_rows
from gemini_sft.dataset.version import FileRecord
from gemini_sft.errors import CleanInvariantError


def _lines(paths: list[Path]) -> Iterator[bytes]:
    """The lines of ``paths`` one after the other."""
    for path in paths:
        with open(path, "rb") as stream:
            yield from stream


_ROUTE_CHUNK_BYTES = 16 << 20
_ROUTE_BUFFER_BYTES = 1 << 20  # runs are a few kB: buffered, they cost a system call per MB, not per run


def route_converted(state: FirstPass, destinations: np.ndarray, outputs: SplitPaths) -> list[FileRecord]:
    """Copy each converted line to its split file (late rejections are skipped); returns what was written.

    Consecutive lines with the same destination form a run, located from the
    line lengths and copied with one read and one write, so no per-line work
    runs in Python; hashes the split files as it writes them. Deletes each
    temporary file once copied, which spares the disk from writing back data
    nobody will read again.

    Args:
        state: the first pass (its converted-line files and line lengths).
        destinations: per converted row, a split code or LATE.
        outputs: the split files to write.
    """
    if sum(state.converted_rows) != len(destinations) or len(state.line_lengths) != len(destinations):
        raise CleanInvariantError("converted lines and converted rows differ in number")
    lengths = np.frombuffer(state.line_lengths, dtype=np.uint32)
    counts = [0, 0, 0]
    sizes = [0, 0, 0]
    digests = [hashlib.sha256(), hashlib.sha256(), hashlib.sha256()]
    position = 0
    with (
        open(outputs.train, "wb", buffering=_ROUTE_BUFFER_BYTES) as train_out,
        open(outputs.validation, "wb", buffering=_ROUTE_BUFFER_BYTES) as validation_out,
        open(outputs.holdout, "wb", buffering=_ROUTE_BUFFER_BYTES) as holdout_out,
    ):
        writers = (train_out.write, validation_out.write, holdout_out.write)
        for path, rows in zip(state.converted_paths, state.converted_rows):
            file_destinations = destinations[position:position + rows]
            file_lengths = lengths[position:position + rows]
            position += rows
            if int(file_lengths.sum(dtype=np.int64)) != path.stat().st_size:
                raise CleanInvariantError(f"the converted lines of {path.name} do not add up to its size")
            with open(path, "rb", buffering=_ROUTE_BUFFER_BYTES) as stream:
                for split, lines, size in _runs(file_destinations, file_lengths):
                    if split == LATE:
                        stream.seek(size, os.SEEK_CUR)
                        continue
                    counts[split] += lines
                    sizes[split] += size
                    while size > 0:  # in bounded pieces: a run may be most of the file
                        data = stream.read(min(size, _ROUTE_CHUNK_BYTES))
                        if not data:
                            raise CleanInvariantError(f"{path.name} ended before its last converted line")
                        writers[split](data)
                        digests[split].update(data)
                        size -= len(data)
            path.unlink()
    return [FileRecord(rows=counts[i], bytes=sizes[i], sha256=digests[i].hexdigest()) for i in range(3)]


def _runs(destinations: np.ndarray, lengths: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """``(destination, lines, bytes)`` of each run of consecutive lines with the same destination, in order."""
    if len(destinations) == 0:
        return
    starts = np.flatnonzero(destinations[1:] != destinations[:-1]) + 1
    starts = np.concatenate(([0], starts))
    stops = np.append(starts[1:], len(destinations))
    ends = np.cumsum(lengths, dtype=np.int64)
    run_bytes = np.diff(ends[stops - 1], prepend=0)
    yield from zip(destinations[starts].tolist(), (stops - starts).tolist(), run_bytes.tolist())


def write_rejected(
    source: Path, info: SourceInfo, state: FirstPass, decisions: Decisions, config: CleanConfig, path: Path
) -> int:
    """Write every rejected row to ``path`` in source order; returns the rows written.

    Early rejections are copied from the first pass; late ones (duplicates,
    conflicts, validation overflow) take their raw text from the source, read
    again only when there are any.

    Args:
        source: the raw data file.
        info: how it is read.
        state: the first pass (fates, lines, early rejections).
        decisions: the referenced line of each late rejection.
        config: the settings, named in the late rejections' details.
        path: the rejected file to write.
    """
    fate_bytes = state.fates
    fates = np.frombuffer(fate_bytes, dtype=np.uint8)
    rejected_rows = np.flatnonzero(fates >= FATE_REJECT_BASE)
    late_fates = np.array(sorted(LATE_FATES), dtype=np.uint8)
    late_rows = rejected_rows[np.isin(fates[rejected_rows], late_fates)]
    was_converted = (fates < FATE_REJECT_BASE) | np.isin(fates, late_fates)
    converted_index_of_row = np.cumsum(was_converted) - 1
    line_of_row = np.frombuffer(state.lines, dtype=np.int64)
    written = 0
    early_rejects = _lines(state.early_rejects_paths)
    late_raws = _raw_rows(source, info, late_rows, line_of_row)
    with open(path, "wb") as rejected_out, contextlib.closing(early_rejects), contextlib.closing(late_raws):
        for row_index in rejected_rows.tolist():
            fate = fate_bytes[row_index]
            if fate not in LATE_FATES:
                rejected_out.write(next(early_rejects))
            else:
                reason = REASONS[fate - FATE_REJECT_BASE]
                reference = int(decisions.reference_lines[converted_index_of_row[row_index]])
                detail = _late_detail(reason, reference, config)
                line = rejected_line(int(line_of_row[row_index]), reason, detail, next(late_raws))
                rejected_out.write(line.encode("utf-8"))
            written += 1
    return written


def _raw_rows(source: Path, info: SourceInfo, rows: np.ndarray, line_of_row: np.ndarray) -> Iterator[bytes]:
    """The raw bytes of ``rows`` (row indices, increasing) of ``source``, read again; nothing is read for none."""
    if len(rows) == 0:
        return
    if info.container == CONTAINER_JSONL:  # a JSONL row is one line: skip to it without looking at the others
        yield from jsonl_lines_at(source, line_of_row[rows].tolist())
        return
    wanted = iter(rows.tolist())
    next_row = next(wanted)
    stream, source_rows = open_rows(source, info, RowCounter())
    try:
        for row_index, (_, raw, _) in enumerate(source_rows):
            if row_index == next_row:
                yield raw
                next_row = next(wanted, None)
                if next_row is None:
                    return
    finally:
        stream.close()


def _late_detail(reason: RejectReason, reference_line: int, config: CleanConfig) -> str:
    """Plain-language detail of a rejection decided from the whole file."""
    if reason is RejectReason.DUPLICATE:
        return f"exact duplicate (same system instruction, prompt and response) of line {reference_line}"
    if reason is RejectReason.CONFLICTING_RESPONSE:
        if config.conflict_policy == "drop_all":
            return (
                f"the same prompt has a different response on line {reference_line}; conflict_policy "
                "'drop_all' drops every row of a conflicting prompt (use 'keep_first' to keep the first)"
            )
        return f"the same prompt has a different response on line {reference_line}, which is kept (keep_first)"
    return (
        f"the validation split is capped at {config.max_validation_examples} examples and "
        "validation_overflow is 'drop'"
    )
