"""The safety net measured: "tuned with fallback" scored on the holdout.

For each example the serving client would return the tuned answer unless
:func:`gemini_sft.serving.fallback.fallback_reason` finds it unfit (blocked,
empty, cut at max tokens, repetitive, breaking the output contract learned
from the training split), and then the base answer; a tuned call that failed
after its retries falls back too (reason ``error``). This module applies the
same rule to the answers the evaluation already has, so no extra call is made,
and scores the answers that system would have returned. Its metrics are named
``fallback_*``; the gate does not read them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from gemini_sft.evaluation.metrics import BASE, TUNED, ExampleScores, summarize
from gemini_sft.serving.fallback import CALL_FAILED_REASON, FALLBACK_REASONS, fallback_reason

if TYPE_CHECKING:
    from gemini_sft.evaluation.generation import Answer
    from gemini_sft.serving.contract import OutputContract

FALLBACK = "fallback"
FALLBACK_LABEL = "Tuned with fallback"
ALL_REASONS: tuple[str, ...] = FALLBACK_REASONS + (CALL_FAILED_REASON,)


@dataclass(frozen=True)
class FallbackOutcome:
    """Per example: why the tuned answer would not be returned (None: it would) and the score of what would be."""

    reasons: list[str | None]
    scores: list[ExampleScores | None]
    contract_checked: bool

    @property
    def fallbacks(self) -> int:
        return sum(1 for reason in self.reasons if reason is not None)

    def reason_counts(self) -> Counter[str]:
        return Counter(reason for reason in self.reasons if reason is not None)


def apply_fallback(
    tuned: Sequence[Answer],
    base: Sequence[Answer],
    tuned_scores: Sequence[ExampleScores | None],
    base_scores: Sequence[ExampleScores | None],
    contract: OutputContract | None,
) -> FallbackOutcome:
    """Which answer "tuned with fallback" returns for each example, and its score.

    Args:
        tuned: the tuned model's answers, one per holdout example.
        base: the base model's answers, aligned with ``tuned``.
        tuned_scores: the tuned answers' scores (None where the call failed).
        base_scores: the base answers' scores (None where the call failed).
        contract: the output contract learned from the training split (None: contract rules off).
    """
    reasons: list[str | None] = []
    scores: list[ExampleScores | None] = []
    for tuned_answer, tuned_score, base_score in zip(tuned, tuned_scores, base_scores, strict=True):
        if not tuned_answer.ok:
            reason: str | None = CALL_FAILED_REASON
        else:
            # log-probabilities are not asked for in the evaluation: that rule stays off
            reason = fallback_reason(tuned_answer.text, tuned_answer.finish_reason, contract, None)
        reasons.append(reason)
        scores.append(tuned_score if reason is None else base_score)
    if len(base) != len(tuned):
        raise ValueError(f"{len(tuned)} tuned answers but {len(base)} base answers")
    return FallbackOutcome(reasons=reasons, scores=scores, contract_checked=contract is not None)


def fallback_metrics(
    outcome: FallbackOutcome,
    references: Sequence[str],
    base_scores: Sequence[ExampleScores | None],
    *,
    reference_labels: Sequence[str | None] | None,
    bootstrap_samples: int,
    seed: int,
    confidence: float,
) -> dict[str, float]:
    """The ``fallback_*`` metrics.

    ``fallback_M`` for every score metric M, ``fallback_delta_M`` (with fallback minus base, and
    its paired bootstrap interval ``_ci_low``/``_ci_high``), ``fallback_rate`` (share of examples
    answered by the base model), ``fallback_count``, ``fallback_reason_R`` (count per reason R),
    ``fallback_error_rate`` (neither model answered) and ``fallback_contract_checked`` (1 or 0).
    """
    summary = summarize(
        references,
        {BASE: list(base_scores), TUNED: outcome.scores},
        reference_labels=reference_labels,
        bootstrap_samples=bootstrap_samples,
        seed=seed,
        confidence=confidence,
    )
    metrics: dict[str, float] = {}
    for name, value in summary.metrics.items():
        if name.startswith(f"{TUNED}_"):
            metrics[f"{FALLBACK}_{name[len(TUNED) + 1:]}"] = value
        elif name.startswith("delta_"):
            metrics[f"{FALLBACK}_{name}"] = value
    n = len(outcome.reasons)
    metrics[f"{FALLBACK}_count"] = float(outcome.fallbacks)
    metrics[f"{FALLBACK}_rate"] = outcome.fallbacks / n if n else 0.0
    counts = outcome.reason_counts()
    for reason in ALL_REASONS:
        metrics[f"{FALLBACK}_reason_{reason}"] = float(counts.get(reason, 0))
    metrics[f"{FALLBACK}_contract_checked"] = 1.0 if outcome.contract_checked else 0.0
    return metrics
