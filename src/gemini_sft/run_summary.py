"""The run summary a script can read (``run_summary.json``): the gate's decision, metrics, costs and tuning.

One document, built from the artifacts every run already writes: the gate's
``decision``, the evaluation document, the tune step's ``tuned_model``, the
checkpoint choice (whose ``tuning`` section is
:func:`gemini_sft.checkpoints.run_summary_tuning`) and the validate step's
result (the estimate before the run). The serving calls after tuning (checkpoint
selection, holdout evaluation, an open-weights run's Gemini comparison) are
priced from their token counts exactly as the estimate was
(:func:`gemini_sft.cost.serving_cost`), so estimate and actual sit side by side.
The pipeline's last step writes it as an artifact; ``run --local`` copies that
artifact to the run folder.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from gemini_sft.cost import ServingCost, serving_cost
from gemini_sft.evaluation.metrics import GEMINI

SUMMARY_VERSION = 1
SELECTION_KEYS = ("planned_calls", "calls", "attempts", "validation_examples", "elapsed_seconds")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(value: Any) -> float:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else 0.0


def selection_actual(checkpoint_choice: Mapping[str, Any], model: str) -> ServingCost:
    """The checkpoint selection's calls and tokens (thinking billed as output), at ``model``'s serving prices."""
    return serving_cost(
        model, int(_count(checkpoint_choice.get("calls"))), _count(checkpoint_choice.get("input_tokens")),
        _count(checkpoint_choice.get("output_tokens")) + _count(checkpoint_choice.get("thinking_tokens")),
    )


def _role_tokens(metrics: Mapping[str, Any], roles: list[str]) -> tuple[float, float]:
    """Input tokens and output tokens (thinking billed as output) of these roles' answers, all together."""
    inputs = sum(_count(metrics.get(f"{role}_input_tokens")) for role in roles)
    outputs = sum(_count(metrics.get(f"{role}_output_tokens")) + _count(metrics.get(f"{role}_thinking_tokens"))
                  for role in roles)
    return inputs, outputs


def _comparison_calls(evaluation: Mapping[str, Any]) -> int:
    """The calls to the compared Gemini model: one per holdout example when it answered, else none."""
    return int(_count(evaluation.get("n_examples"))) if GEMINI in (evaluation.get("models") or {}) else 0


def evaluation_actual(evaluation: Mapping[str, Any], model: str) -> ServingCost:
    """The holdout evaluation's calls and tokens over every model that answered, at ``model``'s serving prices.

    A compared Gemini model is left out: :func:`comparison_actual` prices its calls.
    """
    roles = [role for role in (evaluation.get("models") or {}) if role != GEMINI]
    inputs, outputs = _role_tokens(evaluation.get("metrics") or {}, roles)
    calls = _count((evaluation.get("generation") or {}).get("calls")) - _comparison_calls(evaluation)
    return serving_cost(model, int(max(calls, 0)), inputs, outputs)


def comparison_actual(evaluation: Mapping[str, Any]) -> ServingCost | None:
    """The Gemini comparison's calls and tokens, at the Gemini model's serving prices; None without a comparison.

    The model priced is the one the comparison names (``gemini_priced_as``: an endpoint is priced as the Gemini
    base it was tuned from), as validate's estimate priced ``base_model``.
    """
    comparison = evaluation.get("comparison")
    if not isinstance(comparison, Mapping):
        return None
    inputs, outputs = _role_tokens(evaluation.get("metrics") or {}, [GEMINI])
    model = str(comparison.get("gemini_priced_as") or "")  # "" (an older document): no price, cost unknown
    return serving_cost(model, _comparison_calls(evaluation), inputs, outputs)


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return round(part / whole, 4)


def serving_costs(
    evaluation: Mapping[str, Any], tuned_model: Mapping[str, Any], checkpoint_choice: Mapping[str, Any],
    estimate: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``checkpoint_selection``, ``holdout_evaluation`` and ``gemini_comparison`` cost entries: estimate,
    actual and the selection's ratio to the evaluation (the comparison entry None when the run made none and
    none was estimated).

    Args:
        evaluation: the evaluation document, decoded.
        tuned_model: the tune step's tuned model metadata (its ``base_model`` prices the calls).
        checkpoint_choice: the choose-checkpoint artifact, decoded (calls, tokens, seconds).
        estimate: the validate step's ``costs`` (its result JSON), empty when unknown.
    """
    model = str(checkpoint_choice.get("base_model") or tuned_model.get("base_model")
                or (evaluation.get("models") or {}).get("base") or "")
    selection = selection_actual(checkpoint_choice, model)
    holdout = evaluation_actual(evaluation, model)
    comparison = comparison_actual(evaluation)
    seconds = _number((evaluation.get("generation") or {}).get("elapsed_seconds"))
    relative = {
        "calls": _ratio(selection.calls, holdout.calls),
        "tokens": _ratio(selection.tokens, holdout.tokens),
        "usd": _ratio(selection.cost_usd, holdout.cost_usd),
        "seconds": _ratio(_number(checkpoint_choice.get("elapsed_seconds")), seconds),
    }
    return {
        "checkpoint_selection": {
            **{key: checkpoint_choice.get(key, 0) for key in SELECTION_KEYS},
            "estimate": estimate.get("checkpoint_selection"),
            "actual": selection.to_dict(),
            "relative_to_holdout_evaluation": relative,
        },
        "holdout_evaluation": {"estimate": estimate.get("holdout_evaluation"), "actual": holdout.to_dict()},
        "gemini_comparison": None if comparison is None and not estimate.get("gemini_comparison") else {
            "estimate": estimate.get("gemini_comparison"),
            "actual": comparison.to_dict() if comparison is not None else None,
        },
    }


def build_run_summary(
    decision: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    tuned_model: Mapping[str, Any],
    checkpoint_choice: Mapping[str, Any],
    validation_result: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run summary document.

    ``{"version", "gate": {"passed", "summary", "reasons"}, "metrics": {...}, "costs": {"estimated_tuning_usd",
    "actual_tuning_usd", "billable_training_tokens", "checkpoint_selection": {"planned_calls", "calls", "attempts",
    "validation_examples", "elapsed_seconds", "estimate", "actual", "relative_to_holdout_evaluation": {"calls",
    "tokens", "usd", "seconds"}}, "holdout_evaluation": {"estimate", "actual"}, "gemini_comparison": {"estimate",
    "actual"} or None, "evaluation_calls",
    "estimated_total_usd"}, "tuning": {"backend", "job", "checkpoints", "chosen_checkpoint", "loss_curves",
    "truncated_examples": [{"split_index", "source", "line", "in_raw_file", "reason", "fix"}]}}``.
    An ``estimate`` or ``actual`` is ``{"calls", "input_tokens", "output_tokens", "cost_usd", ...}``.

    Args:
        decision: the gate's decision artifact, decoded.
        evaluation: the evaluate step's evaluation document, decoded.
        tuned_model: the tune step's tuned model metadata, decoded.
        checkpoint_choice: the choose-checkpoint step's artifact, decoded.
        validation_result: the validate step's result JSON, decoded (None: the estimates are unknown).
    """
    metrics = {k: v for k, v in (evaluation.get("metrics") or {}).items() if _number(v) is not None}
    generation = evaluation.get("generation") or {}
    estimate = (validation_result or {}).get("costs") or {}
    return {
        "version": SUMMARY_VERSION,
        "gate": {
            "passed": bool(decision.get("passed")),
            "summary": str(decision.get("summary", "")),
            "reasons": [str(r) for r in decision.get("reasons", [])],
        },
        "metrics": metrics,
        "costs": {
            "estimated_tuning_usd": _number(tuned_model.get("estimated_cost_usd")),
            "actual_tuning_usd": _number(tuned_model.get("actual_cost_usd")),
            "billable_training_tokens": tuned_model.get("billable_tokens"),
            **serving_costs(evaluation, tuned_model, checkpoint_choice, estimate),
            "evaluation_calls": generation.get("calls") if isinstance(generation, Mapping) else None,
            "estimated_total_usd": _number(estimate.get("total_usd")),
        },
        "tuning": {
            **dict(checkpoint_choice.get("tuning") or {}),
            "truncated_examples": truncated_examples(tuned_model),
        },
        **({"comparison": evaluation["comparison"]} if evaluation.get("comparison") else {}),
    }


def truncated_examples(tuned_model: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The examples Vertex truncated or dropped, from the tuned model's metadata, where to fix them and how.

    ``source`` and ``line`` are the raw file and its line when ``in_raw_file``, else the training split and its
    line; ``split_index`` is Vertex's 1-based index in the training split.

    Args:
        tuned_model: the tune step's tuned model metadata, decoded.
    """
    return [
        {"split_index": item.get("index"), "source": item.get("source", ""), "line": item.get("line"),
         "in_raw_file": bool(item.get("in_raw_file")), "reason": item.get("reason", ""), "fix": item.get("fix", "")}
        for item in tuned_model.get("truncated_examples") or [] if isinstance(item, Mapping)
    ]
