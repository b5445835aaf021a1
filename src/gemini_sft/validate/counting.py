"""Token counts of the checked examples: the countTokens API when a counter is given, else the offline estimate.

The fast path always computes the offline estimate. With a counter, the
structurally valid examples of each chunk are sent to it and their estimates
replaced by its counts; when it fails, or the file has more examples than
``max_api_examples``, the whole file falls back to the estimate and the report
says so with a warning.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from gemini_sft.cost import EMPTY_TOKEN_STATS, TokenStats, token_stats_from_histogram
from gemini_sft.errors import VertexApiError
from gemini_sft.validate.checker import ChunkResult
from gemini_sft.validate.issues import RawIssue
from gemini_sft.validate.merge import Merger
from gemini_sft.validate.token_limit import COUNT_TOKENS_API, OFFLINE_ESTIMATE, TokenLimit, too_many_tokens_message

log = logging.getLogger(__name__)

TOKEN_SOURCE_API = "count_tokens_api"
TOKEN_SOURCE_ESTIMATE = "offline_estimate"


@runtime_checkable
class TokenCounter(Protocol):
    """Counts the tokens of whole examples (input + output, system instruction included).

    ``count_example_tokens`` returns one count per example, in order, and raises
    VertexApiError when counting is not possible (the validator then falls back
    to the offline estimate and says so in its report).
    """

    def count_example_tokens(self, examples: Sequence[Mapping[str, Any]]) -> list[int]: ...


class _ApiCapReached(Exception):
    """More examples than ``ValidationConfig.max_api_examples``: the offline estimate is used instead."""


def count_chunk_tokens(chunk: ChunkResult, counter: TokenCounter, merger: Merger, limit: TokenLimit) -> list[RawIssue]:
    """Count the chunk's valid examples with ``counter``, or fall back to the estimate; returns token-limit errors.

    Args:
        chunk: a checked chunk whose ``for_api`` holds the examples to count.
        counter: the token counter.
        merger: the file's figures (API totals, ``api_ok``; fallback warnings are recorded here).
        limit: the per-example token limit.
    """
    cap = merger.config.max_api_examples
    try:
        if cap is not None and merger.api_counted + len(chunk.for_api) > cap:
            raise _ApiCapReached(cap)
        return _count_with_api(chunk, counter, merger, limit)
    except _ApiCapReached:
        merger.api_ok = False
        calibration = ""
        if merger.api_counted and merger.api_estimated_total:
            ratio = merger.api_total / merger.api_estimated_total
            calibration = (
                f" On the {merger.api_counted:,} examples counted before, the API counted "
                f"{ratio:.2f}x the offline estimate."
            )
        log.info("more than %d examples: using the offline token estimate instead of countTokens", cap)
        merger.warning(
            None,
            "token_count_api_skipped",
            f"The file has more than {cap:,} examples, too many to count one by one with the countTokens API; "
            f"token figures and limits use the offline estimate.{calibration}",
        )
    except VertexApiError as exc:
        log.warning("countTokens failed (%s); using the offline token estimate for the whole file.", exc)
        merger.api_ok = False
        merger.warning(
            None,
            "token_count_api_unavailable",
            f"The countTokens API failed ({exc}); token figures and limits use the offline estimate instead.",
        )
    return estimate_limit_errors(chunk, limit)


def estimate_limit_errors(chunk: ChunkResult, limit: TokenLimit) -> list[RawIssue]:
    """``too_many_tokens`` for the chunk's collected examples whose offline estimate is above the limit."""
    return [
        (line, "too_many_tokens",
         too_many_tokens_message(tokens, OFFLINE_ESTIMATE, limit.max_tokens, limit.note, limit.fix))
        for line, _, tokens in chunk.for_api
        if tokens > limit.max_tokens
    ]


def _count_with_api(chunk: ChunkResult, counter: TokenCounter, merger: Merger, limit: TokenLimit) -> list[RawIssue]:
    """Replace the chunk's estimates of valid examples by API counts; returns too_many_tokens errors."""
    if not chunk.for_api:
        return []
    counts = counter.count_example_tokens([example for _, example, _ in chunk.for_api])
    if len(counts) != len(chunk.for_api):
        raise VertexApiError(f"countTokens returned {len(counts)} counts for {len(chunk.for_api)} examples.")
    errors: list[RawIssue] = []
    for (line, _, estimate), count in zip(chunk.for_api, counts):
        merger.api_histogram[count] += 1
        merger.api_estimate_histogram[estimate] += 1
        merger.api_counted += 1
        merger.api_total += count
        merger.api_estimated_total += estimate
        if count > limit.max_tokens:
            errors.append((line, "too_many_tokens",
                           too_many_tokens_message(count, COUNT_TOKENS_API, limit.max_tokens, limit.note, limit.fix)))
    return errors


def file_token_stats(merger: Merger, used_api: bool) -> tuple[TokenStats, str]:
    """The file's token statistics and where they come from (``TOKEN_SOURCE_API`` or ``TOKEN_SOURCE_ESTIMATE``).

    Args:
        merger: the merged figures of the whole file.
        used_api: whether a token counter was given.
    """
    token_source = TOKEN_SOURCE_API if used_api and merger.api_ok else TOKEN_SOURCE_ESTIMATE
    if token_source == TOKEN_SOURCE_API:
        histogram = Counter(merger.estimate_histogram)
        histogram.subtract(merger.api_estimate_histogram)
        histogram.update(merger.api_histogram)
        stats = token_stats_from_histogram(histogram)
    else:
        stats = token_stats_from_histogram(merger.estimate_histogram)
    if stats.examples == 0:
        stats = EMPTY_TOKEN_STATS
    return stats, token_source
