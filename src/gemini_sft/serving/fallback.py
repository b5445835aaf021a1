"""When a tuned model's answer is not fit to return: the fallback rules, as pure functions.

:func:`fallback_reason` looks at one answer (its text, the API's finish
reason, the model's output contract and, when the endpoint gave them, the
average log-probability of its tokens) and returns why it should not be
returned, or None. The serving client falls back to the base model on any
reason; an evaluation can call the same function on the holdout answers to
measure what the fallback would buy. Reasons, in the order they are checked:

``blocked``       the answer was stopped by a safety or policy filter
``empty``         no text (or only whitespace)
``max_tokens``    cut off at the output token limit
``repetitive``    the text loops (a repeated phrase or character run)
``contract_lines`` a line every training answer had is missing
``contract_label`` no label, or a label the training data never had
``low_logprobs``  the average token log-probability is below the threshold
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from gemini_sft.serving.contract import OutputContract

FALLBACK_REASONS = (
    "blocked",
    "empty",
    "max_tokens",
    "repetitive",
    "contract_lines",
    "contract_label",
    "low_logprobs",
)
# Also reported by the client (not by fallback_reason): the call failed after its retries.
CALL_FAILED_REASON = "error"

# Finish reasons with which Vertex reports an answer withheld or cut by a filter.
BLOCKED_FINISH_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "MODEL_ARMOR", "BLOCKED"}
)
MAX_TOKENS_FINISH_REASON = "MAX_TOKENS"


@dataclass(frozen=True)
class FallbackRules:
    """Thresholds of the rules.

    ``min_avg_logprob`` None turns the log-probability rule off. An answer is
    repetitive when a chunk of 1-30 characters repeats ``min_repeats`` times in
    a row over at least ``min_repeat_chars`` characters, or when, among its
    word 4-grams (at least ``min_ngrams`` of them), the share of repeats is at
    least ``max_repeated_ngram_share``.
    """

    min_avg_logprob: float | None = -1.0
    min_repeats: int = 5
    min_repeat_chars: int = 40
    min_ngrams: int = 8
    max_repeated_ngram_share: float = 0.5


DEFAULT_RULES = FallbackRules()


def repeated_ngram_share(text: str, n: int = 4) -> tuple[float, int]:
    """``(share of word n-grams that repeat an earlier one, number of n-grams)``."""
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0, 0
    return 1.0 - len(set(grams)) / len(grams), len(grams)


def is_repetitive(text: str, rules: FallbackRules = DEFAULT_RULES) -> bool:
    """Whether the text loops (see :class:`FallbackRules`)."""
    pattern = re.compile(r"(.{1,30}?)\1{%d,}" % (rules.min_repeats - 1), re.DOTALL)
    for match in pattern.finditer(text):
        if len(match.group(0)) >= rules.min_repeat_chars and match.group(1).strip():
            return True
    share, count = repeated_ngram_share(text)
    return count >= rules.min_ngrams and share >= rules.max_repeated_ngram_share


def fallback_reason(
    text: str | None,
    finish_reason: str = "",
    contract: OutputContract | None = None,
    avg_logprob: float | None = None,
    rules: FallbackRules = DEFAULT_RULES,
) -> str | None:
    """Why this answer should not be returned (one of :data:`FALLBACK_REASONS`), or None when it may.

    Args:
        text: the answer text (None or "" when the model gave none).
        finish_reason: the API's finish reason (``STOP``, ``MAX_TOKENS``, ``SAFETY``, ...; "" when unknown).
        contract: the model's output contract (None checks no contract).
        avg_logprob: the average log-probability of the answer's tokens (None when not known).
        rules: the thresholds.
    """
    finish = (finish_reason or "").upper()
    if finish in BLOCKED_FINISH_REASONS:
        return "blocked"
    if not text or not text.strip():
        return "empty"
    if finish == MAX_TOKENS_FINISH_REASON:
        return "max_tokens"
    if is_repetitive(text, rules):
        return "repetitive"
    if contract is not None:
        violation = contract.violation(text)
        if violation:
            return violation
    if (
        rules.min_avg_logprob is not None
        and avg_logprob is not None
        and math.isfinite(avg_logprob)
        and avg_logprob < rules.min_avg_logprob
    ):
        return "low_logprobs"
    return None
