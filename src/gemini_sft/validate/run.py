"""Validating one file: read it in chunks, check them (in worker processes for large files), merge, report."""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from gemini_sft.cost import estimate_tuning_cost
from gemini_sft.errors import InputFormatError
from gemini_sft.model_catalog import ModelLimits, limits_for
from gemini_sft.validate import file_rules, reading
from gemini_sft.validate.checker import ChunkParams, ChunkResult
from gemini_sft.validate.counting import TokenCounter, count_chunk_tokens, file_token_stats
from gemini_sft.validate.fast_path import check_chunk
from gemini_sft.validate.issues import RawIssue
from gemini_sft.validate.merge import Merger
from gemini_sft.validate.reading import Chunk, LongLine
from gemini_sft.validate.report import ValidationReport
from gemini_sft.validate.settings import ValidationConfig
from gemini_sft.validate.token_limit import TokenLimit, example_token_limit

log = logging.getLogger("gemini_sft.validate")

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a file is read."""


def validate_dataset(
    path: Path,
    config: ValidationConfig,
    token_counter: TokenCounter | None = None,
    progress: ProgressCallback | None = None,
) -> ValidationReport:
    """Check a Gemini tuning file against Vertex's rules; never raises on bad content.

    Args:
        path: the JSONL file.
        config: model, split, epochs, price, workers.
        token_counter: the countTokens API (on failure the offline estimate is used and the report says so).
        progress: called as ``progress(bytes_done, bytes_total)`` while the file is read.

    Returns the :class:`ValidationReport`. Raises InputFormatError only when the
    file cannot be opened (missing, a directory, unreadable).
    """
    path = Path(path)
    limit = example_token_limit(config.model, config.tuning_mode)
    if limit.assumed_mode:  # logged once per file checked, not by every settings check that reads the limit
        log.info("no tuning_mode given for %s: checking examples against the stricter %s limit of %d tokens",
                 config.model, limit.assumed_mode, limit.max_tokens)
    # every per-example rule (too long, near the limit, a line far too long) reads the limit of the mode
    limits = replace(limits_for(config.model), max_tokens_per_example=limit.max_tokens)
    try:
        file_bytes = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise InputFormatError(f"Cannot read {path}: {exc.strerror or exc}. Check the path and permissions.") from exc

    use_api = token_counter is not None
    workers = reading.workers_for(config, file_bytes, sequential=use_api)
    merger = Merger(config)
    params = ChunkParams(
        max_tokens_per_example=limit.max_tokens,
        max_stored_issues=max(config.max_stored_errors, config.max_stored_warnings),
        collect_for_api=use_api,
        limit_note=limit.note,
        limit_fix=limit.fix,
    )
    max_line_bytes = reading.MAX_LINE_BYTES
    log.info("Validating %s (%s, %d bytes, %d worker(s))", path.name, config.split, file_bytes, workers)
    with handle:
        head = handle.read(reading.HEAD_BYTES)
        skip = 0
        compression = reading.compression_of(head)
        if compression is not None:
            file_rules.report_compressed(merger, compression)
            return _finish_report(path, config, limits, file_bytes, merger, use_api)
        if head == reading.UTF8_BOM:
            skip = len(reading.UTF8_BOM)
            file_rules.report_byte_order_mark(merger)
        handle.seek(skip)
        if workers > 1:
            bom_errors = list(merger.errors)
            try:
                chunks = reading.chunk_offsets(handle, config.chunk_bytes, max_line_bytes, skip)
                _validate_parallel(path, chunks, workers, merger, params, limits, file_bytes, progress)
                return _finish_report(path, config, limits, file_bytes, merger, use_api)
            except (BrokenProcessPool, OSError) as exc:  # a worker was killed, or no processes can start
                log.warning("worker processes failed (%s); validating in this process instead", type(exc).__name__)
                merger = Merger(config)
                for issue in bom_errors:
                    merger.error(issue.line, issue.code, issue.message)
                handle.seek(skip)
        for item in reading.read_chunks(handle, config.chunk_bytes, max_line_bytes, skip):
            _merge_item(item, None, merger, params, token_counter, limits)
            if progress is not None:
                progress(item.bytes_done, file_bytes)
    return _finish_report(path, config, limits, file_bytes, merger, use_api)


def _merge_item(
    item: Chunk | LongLine,
    result: ChunkResult | None,
    merger: Merger,
    params: ChunkParams,
    token_counter: TokenCounter | None,
    limits: ModelLimits,
) -> None:
    """Merge the next item in file order, checking it here when no worker did (``result`` None)."""
    if isinstance(item, LongLine):
        merger.examples += 1
        merger.lines += 1
        file_rules.report_long_line(merger, merger.lines, limits, reading.MAX_LINE_BYTES)
        return
    line_offset = merger.lines  # a worker's result is numbered from 1
    if result is None:
        chunk_params = replace(params, collect_for_api=token_counter is not None and merger.api_ok)
        result = check_chunk(item.data if item.data is not None else b"", merger.lines + 1, chunk_params)
        line_offset = 0
    extra: list[RawIssue] = []
    if result.for_api and token_counter is not None:
        limit = TokenLimit(params.max_tokens_per_example, params.limit_note, params.limit_fix)
        extra = count_chunk_tokens(result, token_counter, merger, limit)
    merger.add(result, extra, line_offset)


def _check_file_range(path: str, offset: int, length: int, params: ChunkParams) -> ChunkResult:
    """Worker entry point: read bytes ``[offset, offset + length)`` of the file and check its lines (from line 1)."""
    return check_chunk(reading.read_range(path, offset, length), 1, params)


def _validate_parallel(
    path: Path,
    chunks: Iterator[Chunk | LongLine],
    workers: int,
    merger: Merger,
    params: ChunkParams,
    limits: ModelLimits,
    file_bytes: int,
    progress: ProgressCallback | None,
) -> None:
    """Check chunks in worker processes, keeping at most two chunks per worker in flight (bounded memory).

    Only offsets travel to the workers, which read their bytes themselves: the
    parent just finds line boundaries and merges results.
    """
    import multiprocessing

    # fork: workers need no re-import of the caller's main module (a script without a __main__
    # guard, a KFP executor) and start in milliseconds; the workers only run this package's pure code.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pending: deque[tuple[Chunk | LongLine, Future | None]] = deque()

    def merge_oldest() -> None:
        item, future = pending.popleft()
        result = future.result() if future is not None else None
        _merge_item(item, result, merger, params, None, limits)
        if progress is not None:
            progress(item.bytes_done, file_bytes)

    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for item in chunks:
            future = (
                pool.submit(_check_file_range, str(path), item.offset, item.length, params)
                if isinstance(item, Chunk)
                else None
            )
            pending.append((item, future))
            if len(pending) >= 2 * workers:
                merge_oldest()
        while pending:
            merge_oldest()


def _finish_report(
    path: Path, config: ValidationConfig, limits: ModelLimits, file_bytes: int, merger: Merger, used_api: bool
) -> ValidationReport:
    """File-level rules and aggregated warnings, token statistics and cost, then the report."""
    file_rules.check_whole_file(merger, config, limits, file_bytes)
    stats, token_source = file_token_stats(merger, used_api)
    cost = estimate_tuning_cost(
        stats,
        config.epochs,
        config.model,
        config.price_per_million_tokens_usd,
        config.padding_tokens_per_example,
    )
    if config.split == "validation":
        cost = replace(cost, estimated_cost_usd=0.0)
    report = ValidationReport(
        path=str(path),
        split=config.split,
        model=config.model,
        file_bytes=file_bytes,
        lines=merger.lines,
        examples=merger.examples,
        errors=merger.errors,
        warnings=merger.warnings,
        error_counts=dict(merger.error_counts),
        warning_counts=dict(merger.warning_counts),
        token_stats=stats,
        token_source=token_source,
        cost=cost,
        multimodal_examples=merger.multimodal_examples,
    )
    log.info(
        "Validated %s: %d examples, %d errors, %d warnings, %d tokens (%s)",
        path.name,
        merger.examples,
        report.error_count,
        report.warning_count,
        stats.total,
        token_source,
    )
    return report
