"""Choosing the tuned checkpoint on the validation split: every checkpoint answers a sample, the rule picks one.

The tune step's ``tuned_model`` artifact lists the job's checkpoints (one per
epoch, each with its own endpoint, and the losses at its step). With the rule
``best_validation_metric`` every checkpoint's endpoint answers the same sample
of the **validation** split (never the holdout, which is kept for the final
comparison), paced and retried as the evaluation is
(:func:`gemini_sft.evaluation.generation.generate_answers`), and its answers
are scored with the gate's primary metric
(:mod:`gemini_sft.evaluation.metrics`). :func:`gemini_sft.checkpoints.choose_checkpoint`
then picks one (ties go to the earlier epoch). The rules ``lowest_eval_loss``
and ``last`` need no call at all. A job without intermediate checkpoints passes
its default endpoint through and says so.

The cost of the choice is bounded by design: the validation sample is cut so
that checkpoints x sample stays within ``selection_cost_ratio`` times the calls
of one holdout evaluation (base and tuned model on every holdout example), but
never below :data:`MIN_SELECTION_EXAMPLES` examples, so the scores still mean
something (:meth:`CheckpointSelectionSettings.sample_size`). The validate stage
prices the same sample before the run.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from gemini_sft.checkpoints import (
    DEFAULT_SELECTION_RULE,
    RULE_BEST_VALIDATION_METRIC,
    SELECTION_RULES,
    CheckpointCandidate,
    CheckpointChoice,
    candidates_from_metadata,
    check_rule,
    choose_checkpoint,
    run_summary_tuning,
    with_validation_scores,
)
from gemini_sft.contracts import setting
from gemini_sft.errors import ConfigError
from gemini_sft.evaluation.generation import Generator, GenerationStats, RequestRateLimiter, generate_answers
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.evaluation.metrics import ALL_SCORE_METRICS, BASE, LABEL_METRICS, TUNED, ResponseScorer, summarize
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND
from gemini_sft.retry import RetryPolicy

log = logging.getLogger(__name__)

# Fewest validation examples each checkpoint answers when the cost ratio cuts the sample (the split allowing).
MIN_SELECTION_EXAMPLES = 20
# One holdout evaluation asks two models (base and tuned) per holdout example; a champion adds a third.
HOLDOUT_EVALUATION_MODELS = 2
# Vertex keeps about one checkpoint per epoch, at most this many.
MAX_CHECKPOINTS = 10


@dataclass(frozen=True)
class CheckpointSelectionSettings:
    """How the tuned checkpoint is chosen: the rule, the validation sample, the metric and the pacing."""

    selection_rule: str = setting(
        DEFAULT_SELECTION_RULE,
        "How the checkpoint is chosen: best_validation_metric (score each on validation), lowest_eval_loss, or "
        "last (off: keep the job's default).",
        choices=SELECTION_RULES, pipeline_name="checkpoint_selection_rule",
    )
    validation_sample_size: int = setting(
        50, "Validation examples each checkpoint answers (a seeded sample; 0 or more than the split: all).",
        pipeline_name="checkpoint_validation_examples",
    )
    primary_metric: str = setting("rougeL", "The metric checkpoints are scored with: the gate's primary metric.")
    label_pattern: str = setting("", "Regex taking the label from an answer (needed for the label_* metrics).")
    max_output_tokens: int = setting(1024, "Cap on the length of each answer, in tokens.")
    max_concurrency: int = setting(8, "Generation calls in flight at once.", pipeline_name="eval_max_concurrency")
    requests_per_minute: int = setting(300, "Generation requests started per minute, retries included.",
                                       pipeline_name="eval_requests_per_minute")
    seed: int = setting(42, "Seed of the validation sample and of the retry backoff jitter.")
    selection_cost_ratio: float = setting(
        1.5, "Cap on the checkpoint-selection calls (checkpoints x validation sample) as a multiple of one holdout "
        f"evaluation's calls (base and tuned on every holdout example); the sample shrinks to fit, to no fewer "
        f"than {MIN_SELECTION_EXAMPLES} examples; 0 turns the cap off.",
        pipeline_name="checkpoint_selection_cost_ratio",
    )

    def __post_init__(self) -> None:
        self.check()

    def sample_size(self, validation_examples: int, checkpoints: int, holdout_examples: int | None) -> int:
        """Validation examples each checkpoint answers.

        The requested ``validation_sample_size`` (0: all) bounded by the split, then cut so that
        ``checkpoints x sample <= selection_cost_ratio x HOLDOUT_EVALUATION_MODELS x holdout_examples``,
        but not below :data:`MIN_SELECTION_EXAMPLES` (nor above the split).

        Args:
            validation_examples: usable examples in the validation split.
            checkpoints: checkpoints that answer (each answers the same sample).
            holdout_examples: examples of the holdout evaluation; None or 0 when unknown (no cap then).
        """
        size = validation_examples
        if self.validation_sample_size > 0:
            size = min(size, self.validation_sample_size)
        if self.selection_cost_ratio > 0 and holdout_examples and checkpoints > 0:
            evaluation_calls = HOLDOUT_EVALUATION_MODELS * holdout_examples
            cap = math.floor(self.selection_cost_ratio * evaluation_calls / checkpoints)
            size = min(size, max(cap, MIN_SELECTION_EXAMPLES))
        return max(0, size)

    def check(self) -> None:
        """Raise ConfigError naming the setting when a value cannot work (before any call)."""
        check_rule(self.selection_rule)
        if self.primary_metric not in ALL_SCORE_METRICS:
            raise ConfigError(f"primary_metric {self.primary_metric!r} is not a known metric; "
                              f"use one of {', '.join(ALL_SCORE_METRICS)}")
        if self.primary_metric in LABEL_METRICS and not self.label_pattern:
            raise ConfigError(f"primary_metric {self.primary_metric} needs label_pattern to find the labels")
        if self.validation_sample_size < 0:
            raise ConfigError("checkpoint_validation_examples must be 0 (all) or more")
        if not math.isfinite(self.selection_cost_ratio) or self.selection_cost_ratio < 0:
            raise ConfigError("checkpoint_selection_cost_ratio must be 0 (no cap) or a positive number, e.g. 1.5")


def selection_checkpoints(epochs: int, intermediate_checkpoints: bool) -> int:
    """Checkpoints a job of ``epochs`` epochs keeps: one per epoch up to :data:`MAX_CHECKPOINTS`, else one.

    Args:
        epochs: the job's epoch count.
        intermediate_checkpoints: whether every epoch's checkpoint is kept (``export_last_checkpoint_only`` off).
    """
    return min(max(epochs, 1), MAX_CHECKPOINTS) if intermediate_checkpoints else 1


@dataclass
class CheckpointSelection:
    """What the step decided: every checkpoint as scored, the choice, the endpoint to evaluate, the calls made."""

    candidates: list[CheckpointCandidate]
    choice: CheckpointChoice | None
    endpoint: str
    reason: str
    settings: CheckpointSelectionSettings
    validation_examples: int = 0
    stats: GenerationStats | None = None
    errors: dict[str, int] = field(default_factory=dict)
    planned_calls: int = 0
    holdout_examples: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    def sample_note(self) -> str:
        """How many validation examples scored each checkpoint and why that many, in plain words ("" when none)."""
        if not self.validation_examples:
            return ""
        settings, evaluated = self.settings, self.holdout_examples
        note = f"Each checkpoint answered the same {self.validation_examples} validation examples"
        if settings.selection_cost_ratio > 0 and evaluated:
            scored = len([c for c in self.candidates if c.endpoint]) or 1
            evaluation_calls = HOLDOUT_EVALUATION_MODELS * evaluated
            note += (f" ({scored} x {self.validation_examples} = {scored * self.validation_examples} calls, "
                     f"{scored * self.validation_examples / evaluation_calls:.2f}x the {evaluation_calls} calls of "
                     f"the holdout evaluation; checkpoint_selection_cost_ratio {settings.selection_cost_ratio:g}, "
                     f"at least {MIN_SELECTION_EXAMPLES} examples)")
        return note + "."

    def document(self, tuned_model: Mapping[str, Any], loss_curves: Mapping[str, Any]) -> dict[str, Any]:
        """The ``checkpoint_choice`` artifact: every checkpoint, the chosen one, rule, reason, calls and tuning."""
        stats = self.stats
        return {
            "endpoint": self.endpoint,
            "rule": self.choice.rule if self.choice else self.settings.selection_rule,
            "requested_rule": self.settings.selection_rule,
            "reason": self.reason,
            "primary_metric": self.settings.primary_metric,
            "validation_examples": self.validation_examples,
            "chosen": self.choice.as_dict() if self.choice else None,
            "checkpoints": [c.as_dict() for c in self.candidates],
            "failed_calls": dict(self.errors),
            "planned_calls": self.planned_calls,
            "calls": stats.calls if stats else 0,
            "attempts": stats.attempts if stats else 0,
            "elapsed_seconds": round(stats.elapsed_seconds, 3) if stats else 0.0,
            "holdout_examples": self.holdout_examples,
            "selection_cost_ratio": self.settings.selection_cost_ratio,
            "sample_note": self.sample_note(),
            "base_model": str(tuned_model.get("base_model") or ""),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "thinking_tokens": self.thinking_tokens,
            "overfitting": tuned_model.get("overfitting"),
            "loss_curves_note": str(loss_curves.get("note") or tuned_model.get("loss_curves_note") or ""),
            "tuning": run_summary_tuning(tuned_model, loss_curves, self.candidates, self.choice),
        }


def validation_sample(cases: Sequence[HoldoutCase], size: int, seed: int) -> list[HoldoutCase]:
    """A seeded sample of ``size`` cases in file order (all of them when ``size`` is 0 or not smaller).

    Args:
        cases: the validation split's cases.
        size: how many to keep.
        seed: seed of the sample (the same seed gives the same cases).
    """
    if size <= 0 or size >= len(cases):
        return list(cases)
    keep = sorted(random.Random(seed).sample(range(len(cases)), size))
    return [cases[i] for i in keep]


def score_answers(
    cases: Sequence[HoldoutCase], answers: Sequence[Any], scorer: ResponseScorer, metric: str
) -> float | None:
    """One checkpoint's validation score: ``metric`` over the answered cases; None when none was answered."""
    scores = [scorer.score(c.case.reference, a.text or "") if a.ok else None for c, a in zip(cases, answers)]
    if all(s is None for s in scores):
        return None
    labels = [scorer.reference_label(c.case.reference) for c in cases] if scorer.label_pattern else None
    # summarize compares two models; the same scores on both sides give this checkpoint's own aggregate.
    summary = summarize([c.case.reference for c in cases], {BASE: scores, TUNED: scores},
                        reference_labels=labels, bootstrap_samples=0)
    value = summary.metrics.get(f"{TUNED}_{metric}")
    return None if value is None or not math.isfinite(value) else float(value)


def choose_on_validation(
    tuned_model: Mapping[str, Any],
    cases: Sequence[HoldoutCase],
    generator_for: Callable[[str], Generator],
    settings: CheckpointSelectionSettings,
    *,
    holdout_examples: int | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckpointSelection:
    """Score the checkpoints on validation (when the rule needs it) and choose one.

    Args:
        tuned_model: the tune step's ``tuned_model`` metadata (``endpoint``, ``checkpoints`` with losses).
        cases: the validation split's cases (the sample is taken here).
        generator_for: a generator for one endpoint resource name.
        settings: the rule, sample size, cost ratio, metric and pacing.
        holdout_examples: examples the holdout evaluation will ask about (bounds the sample, see
            :meth:`CheckpointSelectionSettings.sample_size`); None: unknown, no bound.
        retry: backoff of transient call failures (default :class:`RetryPolicy`).
        sleep: how to wait between retries.

    Returns:
        The selection; its ``endpoint`` is the chosen checkpoint's (the job's default one when there is no choice,
        empty for an open-weights model, which is passed through).

    Raises:
        ConfigError: for a bad setting, or no endpoint at all in ``tuned_model``.
    """
    settings.check()
    if tuned_model.get("tuning_backend") == OPEN_WEIGHTS_BACKEND:
        # An open model has no endpoint before its deploy step; its training keeps the best epoch itself.
        log.info("checkpoint choice: open-weights model, passed through")
        return CheckpointSelection([], None, "", "An open-weights model: its training kept the epoch with the "
                                   "lowest eval loss, so there is no checkpoint to choose.", settings)
    default_endpoint = str(tuned_model.get("endpoint") or "")
    candidates = candidates_from_metadata(tuned_model)
    with_endpoint = [c for c in candidates if c.endpoint]
    if len(with_endpoint) < 2:
        if not default_endpoint:
            # A job that reports no endpoint (an open model Vertex tuned) says why in its outcome.
            raise ConfigError(str(tuned_model.get("no_endpoint_reason") or
                                  "the tuned model names no endpoint: the tune step's output is incomplete"))
        reason = (f"The job has {len(candidates)} checkpoint(s) with an endpoint: intermediate checkpoints were "
                  "off (export_last_checkpoint_only), so its default endpoint is evaluated.")
        log.info("checkpoint choice: nothing to choose, the default endpoint is kept")
        choice = choose_checkpoint(candidates, settings.selection_rule) if candidates else None
        return CheckpointSelection(candidates, choice, default_endpoint, reason, settings)

    stats = None
    planned = 0
    errors: dict[str, int] = {}
    sample: list[HoldoutCase] = []
    tokens = {"input_tokens": 0, "output_tokens": 0, "thinking_tokens": 0}
    if settings.selection_rule == RULE_BEST_VALIDATION_METRIC and cases:
        size = settings.sample_size(len(cases), len(with_endpoint), holdout_examples)
        sample = validation_sample(cases, size, settings.seed)
        scorer = ResponseScorer(settings.label_pattern)
        generators = {c.checkpoint_id: generator_for(str(c.endpoint)) for c in with_endpoint}
        planned = len(generators) * len(sample)
        log.info("checkpoint choice: %d checkpoints x %d validation examples = %d calls planned",
                 len(generators), len(sample), planned)
        answers, stats = generate_answers(
            sample, generators, max_concurrency=settings.max_concurrency,
            limiter=RequestRateLimiter(settings.requests_per_minute), retry=retry, seed=settings.seed, sleep=sleep,
        )
        scores: dict[str, float] = {}
        for checkpoint_id, answered in answers.items():
            errors[checkpoint_id] = sum(1 for a in answered if not a.ok)
            for key in tokens:
                tokens[key] += sum(getattr(a, key) for a in answered if a.ok)
            value = score_answers(sample, answered, scorer, settings.primary_metric)
            if value is not None:
                scores[checkpoint_id] = value
        candidates = with_validation_scores(candidates, scores)
        log.info("checkpoint choice: %d checkpoints scored on %d validation examples, %d calls",
                 len(scores), len(sample), stats.calls)
    choice = choose_checkpoint([c for c in candidates if c.endpoint], settings.selection_rule)
    reason = choice.reason
    if settings.selection_rule == RULE_BEST_VALIDATION_METRIC and not cases:
        reason = f"The validation split is empty, so no checkpoint could be scored. {reason}"
    log.info("checkpoint choice: %s (rule %s)", choice.checkpoint.checkpoint_id, choice.rule)
    return CheckpointSelection(candidates, choice, str(choice.checkpoint.endpoint), reason, settings,
                               validation_examples=len(sample), stats=stats, errors=errors, planned_calls=planned,
                               holdout_examples=holdout_examples, **tokens)


def load_validation(path: str) -> list[HoldoutCase]:
    """The validation split's usable cases; an empty split gives none (the rule then falls back, and says so).

    Args:
        path: the clean step's validation JSONL.

    Raises:
        InputFormatError: when the file is missing or a line is not a JSON object.
    """
    from pathlib import Path

    from gemini_sft.errors import EvaluationError
    from gemini_sft.evaluation.holdout import load_holdout

    file = Path(path)
    if file.is_file() and not file.read_text(encoding="utf-8").strip():
        return []
    try:
        return load_holdout(file)[0]
    except EvaluationError:
        return []  # no example with a model turn: nothing to score on
