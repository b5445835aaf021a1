"""The whole evaluation: every model answers every holdout case; the answers are scored and compared."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from gemini_sft.errors import ConfigError, EvaluationError
from gemini_sft.evaluation.fallback import apply_fallback, fallback_metrics
from gemini_sft.evaluation.generation import Generator, RequestRateLimiter, generate_answers
from gemini_sft.evaluation.holdout import HoldoutCase, load_holdout
from gemini_sft.evaluation.metrics import BASE, MODEL_ROLES, TUNED, ResponseScorer, summarize
from gemini_sft.evaluation.progress import ProgressReporter
from gemini_sft.evaluation.result import EvaluationResult, ExampleRecord
from gemini_sft.evaluation.settings import COMPARE_NONE, CONFIDENCE, EvaluationSettings, build_generators
from gemini_sft.evaluation.usage import usage_metrics
from gemini_sft.retry import RetryPolicy
from gemini_sft.serving.contract import learn_output_contract

if TYPE_CHECKING:
    from gemini_sft.serving.contract import OutputContract
    from gemini_sft.vertex_client import VertexSettings

log = logging.getLogger(__name__)

MAX_TOKENS_FINISH_REASON = "MAX_TOKENS"


def run_evaluation(
    cases: Sequence[HoldoutCase],
    generators: Mapping[str, Generator],
    settings: EvaluationSettings,
    *,
    retry: RetryPolicy | None = None,
    confidence: float = CONFIDENCE,
    progress: ProgressReporter | None = None,
    limiter: RequestRateLimiter | None = None,
    skipped_examples: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    contract: OutputContract | None = None,
    thinking: Mapping[str, Mapping[str, int | str] | None] | None = None,
) -> EvaluationResult:
    """Generate answers from every model, score them and compare tuned against base (and champion).

    Args:
        cases: the holdout cases (see :func:`gemini_sft.evaluation.holdout.load_holdout`).
        generators: a generator per role: ``base``, ``tuned`` and optionally ``champion`` and ``gemini``.
        settings: the stage settings; the result names each role's model from them.
        retry: the backoff for transient call failures (default :class:`RetryPolicy`).
        confidence: the level of the bootstrap intervals.
        progress: told of every finished call.
        limiter: the pacing of requests (default: ``settings.requests_per_minute``).
        skipped_examples: holdout lines without a reference, reported in the result.
        sleep: how to wait between retries (tests pass a recorder).
        contract: the tuned model's output contract, checked when scoring "tuned with fallback"
            (None: only the contract-free fallback rules apply).
        thinking: the thinking config each role's model was sent, for the report (None: not known).

    Raises:
        ConfigError: for unknown roles or a bad label pattern (before any call is made).
        EvaluationError: when there are no cases or every call of base or tuned failed.
    """
    unknown = set(generators) - set(MODEL_ROLES)
    if unknown or BASE not in generators or TUNED not in generators:
        raise ConfigError(f"generators must be keyed by {MODEL_ROLES} with base and tuned present, got {sorted(generators)}")
    if not cases:
        raise EvaluationError("no holdout examples to evaluate")
    scorer = ResponseScorer(settings.label_pattern)  # validates the pattern before any call is made
    roles = [role for role in MODEL_ROLES if role in generators]
    # a role the settings do not name (a compared Gemini model) is named by its generator
    models = {**{role: str(getattr(generators[role], "model", "")) for role in roles}, **settings.models()}
    limiter = limiter or RequestRateLimiter(settings.requests_per_minute)
    answers, stats = generate_answers(
        cases,
        {role: generators[role] for role in roles},
        max_concurrency=settings.max_concurrency,
        limiter=limiter,
        retry=retry,
        progress=progress,
        seed=settings.seed,
        sleep=sleep,
    )
    for role in (BASE, TUNED):
        if all(not a.ok for a in answers[role]):
            first = answers[role][0].error
            raise EvaluationError(
                f"every call to the {role} model ({models.get(role) or '?'}) failed, e.g. {first}; "
                "check the model name or endpoint, the region and your quota"
            )

    records: list[ExampleRecord] = []
    for index, holdout in enumerate(cases):
        reference = holdout.case.reference
        per_role_answers = {role: answers[role][index] for role in roles}
        per_role_scores = {
            role: scorer.score(reference, a.text or "") if a.ok else None for role, a in per_role_answers.items()
        }
        records.append(
            ExampleRecord(
                example_id=holdout.example_id,
                prompt=holdout.case.prompt_text,
                reference=reference,
                reference_label=scorer.reference_label(reference),
                answers=per_role_answers,
                scores=per_role_scores,
            )
        )
    if settings.label_pattern and not any(r.reference_label for r in records):
        log.warning("the label pattern matched no reference answer: label metrics cannot be computed")
    summary = summarize(
        [r.reference for r in records],
        {role: [r.scores[role] for r in records] for role in roles},
        reference_labels=[r.reference_label for r in records] if settings.label_pattern else None,
        bootstrap_samples=settings.bootstrap_samples,
        seed=settings.seed,
        confidence=confidence,
    )
    base_scores = [r.scores[BASE] for r in records]
    outcome = apply_fallback(
        answers[TUNED], answers[BASE], [r.scores[TUNED] for r in records], base_scores, contract
    )
    for record, reason in zip(records, outcome.reasons):
        record.fallback_reason = reason
    summary.metrics.update(
        fallback_metrics(
            outcome,
            [r.reference for r in records],
            base_scores,
            reference_labels=[r.reference_label for r in records] if settings.label_pattern else None,
            bootstrap_samples=settings.bootstrap_samples,
            seed=settings.seed,
            confidence=confidence,
        )
    )
    summary.metrics.update(usage_metrics(answers, models, settings.base_model))
    for role in roles:
        # answers cut off by max_output_tokens: a sign the cap is too low for a fair comparison
        answered = [a for a in answers[role] if a.ok]
        cut = sum(1 for a in answered if a.finish_reason == MAX_TOKENS_FINISH_REASON)
        summary.metrics[f"{role}_max_tokens_rate"] = cut / len(answered) if answered else math.nan
        if cut:
            log.warning("%s model: %d of %d answers stopped at max_output_tokens", role, cut, len(answered))
    versions = {
        role: sorted({a.model_version for a in answers[role] if a.ok and a.model_version}) for role in roles
    }
    return EvaluationResult(
        metrics=summary.metrics,
        models={role: models.get(role, "") for role in roles},
        records=records,
        model_versions=versions,
        confusion=summary.confusion,
        label_classes=summary.label_classes,
        settings=settings,
        stats=stats,
        skipped_examples=skipped_examples,
        confidence=confidence,
        thinking=dict(thinking) if thinking is not None else {},
        contract_checked=contract is not None,
    )


def evaluate_holdout(
    holdout_path: str | Path,
    settings: EvaluationSettings,
    vertex: VertexSettings,
    *,
    progress: ProgressReporter | None = None,
    train_path: str | Path | None = None,
) -> EvaluationResult:
    """Read the holdout file, build a generator per model from ``settings`` and run the evaluation.

    What the component and ``gemini-sft evaluate`` both do.

    Args:
        holdout_path: the Gemini-format JSONL holdout file.
        settings: the stage settings (models, pacing, scoring).
        vertex: where to call Vertex.
        progress: told of every finished call.
        train_path: the training split; when given, the output contract learned from it
            (:func:`gemini_sft.serving.learn_output_contract`) is applied to score "tuned with fallback".

    Raises:
        ConfigError: for a missing tuned model or an invalid setting, before any call is made.
        InputFormatError, EvaluationError: see :func:`load_holdout` and :func:`run_evaluation`.
    """
    if settings.compare_with_gemini != COMPARE_NONE:
        log.warning("compare_with_gemini=%s applies to tuning_backend=open-weights only: no extra model is asked",
                    settings.compare_with_gemini)
    cases, skipped = load_holdout(holdout_path)
    contract = learn_output_contract(train_path, settings.label_pattern) if train_path is not None else None
    generators = build_generators(settings, vertex)
    result = run_evaluation(
        cases, generators, settings, progress=progress, skipped_examples=skipped, contract=contract,
        thinking=settings.thinking_configs(),
    )
    log.info(
        "evaluation: %d examples, base error rate %.3f, tuned error rate %.3f",
        len(result.records), result.metrics["base_error_rate"], result.metrics["tuned_error_rate"],
    )
    return result
