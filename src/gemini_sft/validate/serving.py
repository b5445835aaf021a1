"""The serving calls a run makes after tuning, estimated before it: checkpoint selection and holdout evaluation.

Both are generation calls to endpoints tuned from the base model, billed at its
serving prices (input and output tokens) from the model catalogue:

* **checkpoint selection**: with intermediate checkpoints on and the rule
  ``best_validation_metric``, every checkpoint (about one per epoch, at most
  10) answers the same validation sample, sized by
  :meth:`gemini_sft.checkpoint_scoring.CheckpointSelectionSettings.sample_size`;
* **holdout evaluation**: the base and the tuned model answer every holdout
  example (a champion in production adds as many calls again);
* **Gemini comparison** (open-weights runs with ``compare_with_gemini``): one
  Gemini model (``base_model``, or the champion tuned from it, billed at the
  same prices) answers every holdout example, priced with the same token
  estimate as the holdout evaluation.

Tokens per call are offline estimates from the split itself: the prompt turns
and system instruction as input, the reference answer (capped at
``max_output_tokens``) as output; thinking tokens are not counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gemini_sft.checkpoint_scoring import (
    HOLDOUT_EVALUATION_MODELS,
    RULE_BEST_VALIDATION_METRIC,
    load_validation,
    selection_checkpoints,
)
from gemini_sft.cost import ServingCost, format_usd, serving_cost
from gemini_sft.errors import InputFormatError
from gemini_sft.evaluation.settings import COMPARE_BASE, COMPARE_NONE
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND
from gemini_sft.tokens import estimate_example_tokens, estimate_text_tokens
from gemini_sft.validate.settings import ValidationSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallTokens:
    """Usable examples of a split and the estimated tokens of one generation call on it, on average."""

    examples: int
    input_tokens_mean: float
    output_tokens_mean: float


NO_CALLS = CallTokens(0, 0.0, 0.0)


def split_call_tokens(path: Path | None, max_output_tokens: int) -> CallTokens:
    """The usable examples of a split (those with a reference answer) and their mean prompt and answer tokens.

    Args:
        path: the split's JSONL file; None or an empty file gives no examples.
        max_output_tokens: the cap on an answer's length, applied to the reference's tokens.

    A file whose lines cannot be read gives no examples (its validation report says why).
    """
    if path is None or not Path(path).is_file():
        return NO_CALLS
    try:
        cases = load_validation(str(path))
    except InputFormatError:
        return NO_CALLS
    if not cases:
        return NO_CALLS
    inputs = outputs = 0
    for holdout_case in cases:
        case = holdout_case.case
        prompt: dict = {"contents": case.contents}
        if case.system_instruction:
            prompt["systemInstruction"] = {"parts": [{"text": case.system_instruction}]}
        inputs += estimate_example_tokens(prompt)
        outputs += min(estimate_text_tokens(case.reference), max_output_tokens)
    return CallTokens(len(cases), inputs / len(cases), outputs / len(cases))


@dataclass(frozen=True)
class ServingEstimate:
    """The estimated checkpoint-selection and holdout-evaluation calls of a run, and how they were sized.

    ``evaluation`` is None when no holdout split was given (its cost is then unknown, not zero).
    """

    model: str
    checkpoints: int
    sample_size: int
    holdout_examples: int | None
    selection: ServingCost
    evaluation: ServingCost | None
    selection_note: str

    @property
    def total_usd(self) -> float:
        """Selection plus evaluation, in USD (a line without a catalogue price counts 0 and says so)."""
        lines = [self.selection] + ([self.evaluation] if self.evaluation is not None else [])
        return sum(line.cost_usd or 0.0 for line in lines)

    @property
    def ratio_to_evaluation(self) -> float | None:
        """Selection calls / holdout evaluation calls; None when there is no evaluation estimate."""
        if self.evaluation is None or not self.evaluation.calls:
            return None
        return self.selection.calls / self.evaluation.calls

    def to_dict(self) -> dict:
        """``{"checkpoint_selection": {..., "checkpoints", "validation_examples_per_checkpoint", "note"},
        "holdout_evaluation": {..., "holdout_examples"} or None, "selection_to_evaluation_calls"}``."""
        ratio = self.ratio_to_evaluation
        return {
            "checkpoint_selection": {
                **self.selection.to_dict(), "checkpoints": self.checkpoints,
                "validation_examples_per_checkpoint": self.sample_size, "note": self.selection_note,
            },
            "holdout_evaluation": None if self.evaluation is None else {
                **self.evaluation.to_dict(), "holdout_examples": self.holdout_examples,
            },
            "selection_to_evaluation_calls": None if ratio is None else round(ratio, 4),
        }

    def rows(self) -> list[tuple[str, str]]:
        """(line, figures) pairs for the reports: calls, tokens and USD of each line."""
        evaluation = (
            f"{_figures(self.evaluation)} (base and tuned x {self.holdout_examples} holdout examples; "
            "a champion in production adds as much again)"
            if self.evaluation is not None
            else "not estimated: no holdout split given"
        )
        return [("Checkpoint selection", f"{_figures(self.selection)}; {self.selection_note}"),
                ("Holdout evaluation", evaluation)]


@dataclass(frozen=True)
class ComparisonEstimate:
    """The estimated calls of an open-weights run's Gemini comparison: one Gemini model x every holdout example.

    ``cost`` is None when no holdout split was given (unknown, not zero).
    """

    compare_with_gemini: str
    model: str
    holdout_examples: int | None
    cost: ServingCost | None

    @property
    def cost_usd(self) -> float:
        """The comparison in USD (0 when unknown or without a catalogue price; :meth:`row` says which)."""
        return (self.cost.cost_usd or 0.0) if self.cost is not None else 0.0

    def to_dict(self) -> dict | None:
        """``{..., "holdout_examples", "model", "compare_with_gemini"}`` (the calls and prices of
        :meth:`ServingCost.to_dict`), or None when no holdout split was given."""
        if self.cost is None:
            return None
        return {**self.cost.to_dict(), "holdout_examples": self.holdout_examples, "model": self.model,
                "compare_with_gemini": self.compare_with_gemini}

    def row(self) -> tuple[str, str]:
        """The (line, figures) pair of the reports."""
        if self.cost is None:
            return "Gemini comparison", "not estimated: no holdout split given"
        asked = (self.model if self.compare_with_gemini == COMPARE_BASE
                 else f"the champion, tuned from {self.model} and priced as it; none is asked when nothing is in "
                      "production or an open-weights deployment is")
        return ("Gemini comparison", f"{_figures(self.cost)} ({asked}, x {self.holdout_examples} holdout examples; "
                                     "compare_with_gemini=none leaves it out)")


def _figures(line: ServingCost) -> str:
    cost = line.cost_usd
    price = "no catalogue price" if cost is None else format_usd(cost)
    return f"{price}: {line.calls:,} calls, {line.input_tokens:,} input + {line.output_tokens:,} output tokens"


def estimate_serving(
    settings: ValidationSettings, validation: Path | None, holdout: Path | None
) -> ServingEstimate:
    """Estimate the checkpoint-selection and holdout-evaluation calls of a run with these settings.

    Args:
        settings: the validate stage's settings (model, epochs, checkpoint and selection settings, answer cap).
        validation: the validation split (None: no selection calls, the rule has nothing to score).
        holdout: the holdout split (None: the evaluation is not estimated and the sample is not bounded by it).
    """
    selection_settings = settings.selection_settings()
    model, cap = settings.base_model, settings.max_output_tokens
    checkpoints = selection_checkpoints(settings.epochs, not settings.export_last_checkpoint_only)
    held_out = split_call_tokens(holdout, cap) if holdout is not None else None
    holdout_examples = held_out.examples if held_out is not None else None
    scored = split_call_tokens(validation, cap)
    if settings.checkpoint_selection_rule != RULE_BEST_VALIDATION_METRIC:
        sample, note = 0, f"no calls: the rule {settings.checkpoint_selection_rule} scores no checkpoint"
    elif checkpoints < 2:
        sample, note = 0, "no calls: the job keeps one checkpoint (export_last_checkpoint_only or one epoch)"
    elif not scored.examples:
        sample, note = 0, "no calls: the validation split is empty"
    else:
        sample = selection_settings.sample_size(scored.examples, checkpoints, holdout_examples)
        note = f"{checkpoints} checkpoints x {sample} of {scored.examples} validation examples"
        if holdout_examples:
            bound = HOLDOUT_EVALUATION_MODELS * holdout_examples * settings.checkpoint_selection_cost_ratio
            note += (f", bounded by checkpoint_selection_cost_ratio {settings.checkpoint_selection_cost_ratio:g} "
                     f"x the holdout evaluation ({bound:g} calls)" if settings.checkpoint_selection_cost_ratio > 0
                     else " (no cost ratio cap)")
    selection = _calls_cost(model, checkpoints * sample if sample else 0, scored)
    evaluation = None
    if held_out is not None:
        evaluation = _calls_cost(model, HOLDOUT_EVALUATION_MODELS * held_out.examples, held_out)
    estimate = ServingEstimate(model, checkpoints, sample, holdout_examples, selection, evaluation, note)
    log.info("serving estimate: checkpoint selection %d calls, holdout evaluation %s calls, %s",
             selection.calls, evaluation.calls if evaluation else "unknown", format_usd(estimate.total_usd))
    return estimate


def _calls_cost(model: str, calls: int, tokens: CallTokens) -> ServingCost:
    """``calls`` generation calls to ``model`` with the mean tokens of a split, at its serving prices."""
    return serving_cost(model, calls, calls * tokens.input_tokens_mean, calls * tokens.output_tokens_mean)


def estimate_gemini_comparison(settings: ValidationSettings, holdout: Path | None) -> ComparisonEstimate | None:
    """Estimate the Gemini comparison of an open-weights run: one model answering every holdout example.

    Args:
        settings: the validate stage's settings (``tuning_backend``, ``compare_with_gemini``, ``base_model``,
            the answer cap).
        holdout: the holdout split (None: the comparison is not estimated).

    Returns None when the run makes no comparison (a Gemini run, or ``compare_with_gemini=none``).
    """
    if settings.tuning_backend != OPEN_WEIGHTS_BACKEND or settings.compare_with_gemini == COMPARE_NONE:
        return None
    model = settings.base_model
    if holdout is None:
        return ComparisonEstimate(settings.compare_with_gemini, model, None, None)
    held_out = split_call_tokens(holdout, settings.max_output_tokens)
    cost = _calls_cost(model, held_out.examples, held_out)
    log.info("Gemini comparison estimate: %d calls to %s, %s", cost.calls, model, format_usd(cost.cost_usd or 0.0))
    return ComparisonEstimate(settings.compare_with_gemini, model, held_out.examples, cost)
