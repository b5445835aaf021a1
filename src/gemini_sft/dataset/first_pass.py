"""The first pass of cleaning: convert every row once, keep a few integers per row.

Each converted line goes to a temporary file and each early rejection to
another; per row the pass keeps a fate byte and a line number, per converted
row three hashes, a line length and a label id. Large plain JSONL files are
converted by several processes over line-aligned byte ranges
(:mod:`gemini_sft.parallel`), with the same result as one process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from array import array
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gemini_sft.dataset.fates import FATE_OF_REASON, FATE_PENDING
from gemini_sft.dataset.formats import SingleTurnFields, convert_record, prompt_key_of, single_turn_fields
from gemini_sft.dataset.json_lines import parse_line, read_json_line
from gemini_sft.dataset.output_lines import gemini_json_line, single_turn_line, single_turn_line_utf8
from gemini_sft.dataset.pii import PiiCounts, mask_pii
from gemini_sft.dataset.records import ConvertedRecord, RejectReason, RowRejected, has_lone_surrogate, normalize_text
from gemini_sft.dataset.settings import MAX_STRATA, NO_LABEL, TOO_MANY_STRATA, CleanConfig
from gemini_sft.dataset.sources import (
    CONTAINER_JSONL,
    DECOMPRESSION_ERRORS,
    RowCounter,
    SourceInfo,
    count_newlines,
    open_rows,
)
from gemini_sft.errors import ConfigError, InputFormatError
from gemini_sft.parallel import line_aligned_ranges, worker_count
from gemini_sft.dataset.version import file_sha256

logger = logging.getLogger(__name__)


@dataclass
class FirstPass:
    """What the first pass keeps: per row a fate byte and a line number; per converted row three hashes
    and the length of its converted line.

    The hashes come from Python's ``hash`` (process-local); every decision made
    from them depends only on equality and on file order, so results are the
    same in every process.
    """

    counter: RowCounter = field(default_factory=lambda: RowCounter(log_progress=True))
    fates: bytearray = field(default_factory=bytearray)  # per row: FATE_PENDING or an early rejection
    lines: array = field(default_factory=lambda: array("q"))  # per row: 1-based source line
    conflict_keys: array = field(default_factory=lambda: array("q"))  # per converted row: system + prompt
    response_keys: array = field(default_factory=lambda: array("q"))  # per converted row: response
    group_keys: array = field(default_factory=lambda: array("q"))  # per converted row: prompt only
    label_ids: array = field(default_factory=lambda: array("h"))  # per converted row, when stratifying
    label_names: dict[str, int] = field(default_factory=dict)
    format_counts: dict[str, int] = field(default_factory=dict)
    pii: PiiCounts = field(default_factory=PiiCounts)
    system_instructions_replaced: int = 0
    line_lengths: array = field(default_factory=lambda: array("I"))  # per converted row: bytes of its line
    converted_paths: list[Path] = field(default_factory=list)  # converted lines, in row order across files
    converted_rows: list[int] = field(default_factory=list)  # per converted-lines file: its lines
    early_rejects_paths: list[Path] = field(default_factory=list)  # early rejections, in row order across files
    source_sha256: str = ""  # when already computed
    # Distinct system instructions seen (None included), up to two: with one, prompt groups and
    # (system, prompt) groups coincide and the split needs no grouping of its own.
    system_variants: set[str | None] = field(default_factory=set)



RowConverter = Callable[[dict[str, Any], "SingleTurnFields | None", bytes], tuple[bytes, int, int, int]]


def row_converter(config: CleanConfig, state: FirstPass) -> RowConverter:
    """A function turning a parsed record into its output line and keys, applying ``config``.

    It takes ``(record, single_turn_fields(record), raw line)`` and returns
    ``(UTF-8 output line with newline, conflict key, response key, group
    key)``; it counts formats, PII matches and labels in ``state`` for the rows
    it accepts, and raises RowRejected for the others. A closure, because it
    runs once per row and local lookups are the cheapest.

    Args:
        config: the settings applied to every row (system instruction, PII, minimum length, labels).
        state: where the accepted rows' formats, PII matches and labels are counted.
    """
    configured_system = normalize_text(config.system_instruction) or None
    min_chars = config.min_response_chars
    mask = config.mask_pii
    stratify_field = config.stratify_field
    stratify_pattern = config.stratify_pattern
    format_counts = state.format_counts
    pii_counts = state.pii
    label_names = state.label_names
    label_append = state.label_ids.append
    # The last system instruction seen: rows usually repeat one, and reusing one string
    # object reuses its cached hash.
    last_system: list[str | None] = [None]
    system_variants = state.system_variants

    def add_label(label: str) -> None:
        label_id = label_names.get(label)
        if label_id is None:
            if len(label_names) >= MAX_STRATA:
                raise ConfigError(TOO_MANY_STRATA)
            label_id = label_names[label] = len(label_names)
        label_append(label_id)

    def convert(record: dict[str, Any], fields: SingleTurnFields | None, raw: bytes) -> tuple[bytes, int, int, int]:
        if fields is not None:  # the fast path: one user text, one answer
            fmt, system, prompt_key, response = fields
            converted = None
            if mask:
                prompt_key = mask_pii(prompt_key, pii_counts)
                response = mask_pii(response, pii_counts)
        else:
            converted = convert_record(record)
            if mask:
                converted = _masked(converted, pii_counts)
            fmt, system, prompt_key, response = (
                converted.source_format, converted.system_instruction, converted.prompt_key, converted.response,
            )
        replaced_system = False
        if configured_system is not None:
            replaced_system = system is not None and system != configured_system
            system = configured_system
        elif system is not None:
            if system == last_system[0]:
                system = last_system[0]
            else:
                last_system[0] = system
        if min_chars and len(response) < min_chars:
            raise RowRejected(
                RejectReason.RESPONSE_TOO_SHORT,
                f"the response has {len(response)} characters; min_response_chars is {min_chars}",
            )
        if converted is None:
            try:
                output_line = single_turn_line_utf8(system, prompt_key, response, b"\n")
            except TypeError:  # a lone surrogate, which orjson cannot encode
                output_line = _utf8_line(single_turn_line(system, prompt_key, response, "\n"), raw)
        else:
            output_line = _utf8_line(gemini_json_line(system, converted, "\n"), raw)
        group_key = hash(prompt_key)
        if stratify_field is not None:
            add_label(field_label(record, stratify_field, raw))
        elif stratify_pattern is not None:
            match = stratify_pattern.search(response)
            add_label(match.group(1) if match and match.group(1) else NO_LABEL)
        format_counts[fmt] = format_counts.get(fmt, 0) + 1
        if replaced_system:
            state.system_instructions_replaced += 1
        if len(system_variants) < 2 and system not in system_variants:
            system_variants.add(system)
        return (
            output_line,
            group_key if system is None else hash((system, prompt_key)),
            hash(response),
            group_key,
        )

    return convert


def _utf8_line(line: str, raw: bytes) -> bytes:
    """``line`` encoded as UTF-8; raises RowRejected when it holds a lone surrogate from a ``\\u`` escape of ``raw``."""
    # A lone surrogate (from a "\\udXXX" escape) cannot be written as UTF-8; it makes a line non-ASCII.
    if not line.isascii() and b"\\u" in raw and has_lone_surrogate(line):
        raise RowRejected(RejectReason.INVALID_ENCODING, "the text contains an unpaired \\u surrogate escape")
    return line.encode("utf-8")



# Files at least this large (uncompressed JSONL) are converted by several processes.
PARALLEL_MIN_BYTES = 64 << 20
MAX_WORKERS = 4


def _worker_count(source: Path, info: SourceInfo) -> int:
    """How many processes convert ``source``: one per CPU for large plain JSONL files, else one.

    Workers are forked, so they share this process's string-hash secret and
    their hashes agree; where fork is unavailable the work stays in one process.
    """
    if info.container != CONTAINER_JSONL or info.compressed:
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    size = source.stat().st_size
    # At least PARALLEL_MIN_BYTES per worker: below that, starting a process costs more than it saves.
    return max(1, min(worker_count(size, PARALLEL_MIN_BYTES, MAX_WORKERS), size // PARALLEL_MIN_BYTES))


def first_pass(source: Path, info: SourceInfo, config: CleanConfig, work_dir: Path) -> FirstPass:
    """Convert every row once: converted lines and early rejections to temporary files, keys to arrays.

    Large plain JSONL files are cut into line-aligned byte ranges converted in
    parallel; the parts are merged in file order, so the result is the same
    as in one process.

    Args:
        source: the raw data file.
        info: how it is read (container, compression).
        config: the settings of the stage.
        work_dir: local scratch folder for the temporary files.
    """
    workers = _worker_count(source, info)
    if workers <= 1:
        state = _convert_part(source, info, config, work_dir, 0, None)
    else:
        ranges = line_aligned_ranges(source, workers)
        logger.info("converting in %d processes", len(ranges))
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
            futures = [
                pool.submit(_convert_part, source, info, config, work_dir, index, byte_range)
                for index, byte_range in enumerate(ranges)
            ]
            source_sha256 = file_sha256(source)  # meanwhile, this process hashes the source
            state = _merge_parts([future.result() for future in futures])
        state.source_sha256 = source_sha256
    logger.info(
        "first pass: %d rows, %d blank lines, %d converted", state.counter.rows, state.counter.blank_lines,
        len(state.conflict_keys),
    )
    return state


def _convert_part(
    source: Path,
    info: SourceInfo,
    config: CleanConfig,
    work_dir: Path,
    index: int,
    byte_range: tuple[int, int] | None,
) -> FirstPass:
    """Convert the rows of ``source`` (or of one line-aligned byte range of it); see :func:`first_pass`."""
    state = FirstPass(
        converted_paths=[work_dir / f"converted-{index}.jsonl"],
        early_rejects_paths=[work_dir / f"rejected-early-{index}.jsonl"],
    )
    first_line = count_newlines(source, byte_range[0]) + 1 if byte_range else 1
    convert = row_converter(config, state)
    fates_append = state.fates.append
    lines_append = state.lines.append
    conflict_append = state.conflict_keys.append
    response_append = state.response_keys.append
    group_append = state.group_keys.append
    length_append = state.line_lengths.append
    stream, rows = open_rows(source, info, state.counter, byte_range, first_line)
    try:
        with (
            open(state.converted_paths[0], "wb", buffering=1 << 20) as converted_out,
            open(state.early_rejects_paths[0], "w", encoding="utf-8", newline="\n", buffering=1 << 16) as rejects_out,
        ):
            write_converted = converted_out.write
            for line_number, raw, payload in rows:
                lines_append(line_number)
                try:
                    if payload is None:
                        record, fields = read_json_line(raw)
                    elif type(payload) is dict:
                        record, fields = payload, single_turn_fields(payload)
                    else:
                        raise payload
                    output_line, conflict_key, response_key, group_key = convert(record, fields, raw)
                except RowRejected as rejection:
                    fates_append(FATE_OF_REASON[rejection.reason])
                    rejects_out.write(rejected_line(line_number, rejection.reason, rejection.detail, raw))
                    continue
                fates_append(FATE_PENDING)
                write_converted(output_line)
                length_append(len(output_line))
                conflict_append(conflict_key)
                response_append(response_key)
                group_append(group_key)
    except DECOMPRESSION_ERRORS as exc:
        raise InputFormatError(
            f"{source} cannot be read to the end ({exc}); the file may be truncated or corrupt"
        ) from exc
    finally:
        stream.close()
    state.converted_rows.append(len(state.conflict_keys))
    return state


def _merge_parts(parts: list[FirstPass]) -> FirstPass:
    """One first-pass state from the states of consecutive parts of a file, as one process would build it."""
    merged = FirstPass()
    for part in parts:
        merged.counter.rows += part.counter.rows
        merged.counter.blank_lines += part.counter.blank_lines
        merged.fates += part.fates
        for name in ("lines", "conflict_keys", "response_keys", "group_keys", "line_lengths"):
            getattr(merged, name).extend(getattr(part, name))
        if part.label_names:
            # Label ids are numbered by first appearance: renumber each part's into the merged numbering.
            renumber = np.empty(len(part.label_names), dtype=np.int16)
            for label, local_id in part.label_names.items():
                renumber[local_id] = merged.label_names.setdefault(label, len(merged.label_names))
            if len(merged.label_names) > MAX_STRATA:
                raise ConfigError(TOO_MANY_STRATA)
            merged.label_ids.frombytes(renumber[np.frombuffer(part.label_ids, dtype=np.int16)].tobytes())
        for fmt, count in part.format_counts.items():
            merged.format_counts[fmt] = merged.format_counts.get(fmt, 0) + count
        for kind, count in part.pii.counts.items():
            merged.pii.counts[kind] += count
        merged.system_instructions_replaced += part.system_instructions_replaced
        merged.system_variants |= part.system_variants
        merged.converted_paths += part.converted_paths
        merged.converted_rows += part.converted_rows
        merged.early_rejects_paths += part.early_rejects_paths
    return merged


def _masked(converted: ConvertedRecord, counts: PiiCounts) -> ConvertedRecord:
    """A copy of ``converted`` with personal data masked in every prompt and response text."""
    if converted.history is None or converted.response_parts is None:
        return ConvertedRecord(
            converted.source_format, converted.system_instruction,
            mask_pii(converted.prompt_key, counts), mask_pii(converted.response, counts),
        )
    history = [
        {**turn, "parts": [{**p, "text": mask_pii(p["text"], counts)} if "text" in p else p for p in turn["parts"]]}
        for turn in converted.history
    ]
    response_parts = [{**p, "text": mask_pii(p["text"], counts)} if "text" in p else p for p in converted.response_parts]
    response = "\n".join(p["text"] for p in response_parts if "text" in p)
    return ConvertedRecord(
        converted.source_format, converted.system_instruction, prompt_key_of(history), response, history,
        response_parts,
    )


def field_label(record: dict[str, Any], name: str, raw: bytes) -> str:
    """The stratification label of ``record``: its field ``name`` as normalised text, or NO_LABEL.

    Args:
        record: the parsed row.
        name: the field to read.
        raw: the row's raw bytes, parsed again by the stdlib when orjson read a number differently.
    """
    value = record.get(name)
    if type(value) is float:
        # orjson reads integers beyond 64 bits as floats: take the number as the stdlib reads it.
        value = parse_line(raw).get(name)
    if value is None or isinstance(value, (dict, list)):
        return NO_LABEL
    text = normalize_text(str(value))
    return text or NO_LABEL


def rejected_line(line: int, reason: RejectReason, detail: str, raw: bytes) -> str:
    text = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    return json.dumps({"line": line, "reason": reason.value, "detail": detail, "raw": text}) + "\n"
