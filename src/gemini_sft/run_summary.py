"""The run summary a script can read (``run_summary.json``): the gate's decision, metrics, costs and tuning.

One document, built from the artifacts every run already writes: the gate's
``decision``, the evaluation document, the tune step's ``tuned_model`` and the
checkpoint choice (whose ``tuning`` section is
:func:`gemini_sft.checkpoints.run_summary_tuning`). The pipeline's last step
writes it as an artifact; ``run --local`` copies that artifact to the run folder.
"""

from __future__ import annotations

from typing import Any, Mapping

SUMMARY_VERSION = 1


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def build_run_summary(
    decision: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    tuned_model: Mapping[str, Any],
    checkpoint_choice: Mapping[str, Any],
) -> dict[str, Any]:
    """The run summary document.

    ``{"version", "gate": {"passed", "summary", "reasons"}, "metrics": {...}, "costs": {"estimated_tuning_usd",
    "actual_tuning_usd", "billable_training_tokens", "checkpoint_selection": {"planned_calls", "calls", "attempts",
    "validation_examples", "elapsed_seconds"}, "evaluation_calls"}, "tuning": {"backend", "job", "checkpoints",
    "chosen_checkpoint", "loss_curves"}}``.

    Args:
        decision: the gate's decision artifact, decoded.
        evaluation: the evaluate step's evaluation document, decoded.
        tuned_model: the tune step's tuned model metadata, decoded.
        checkpoint_choice: the choose-checkpoint step's artifact, decoded.
    """
    metrics = {k: v for k, v in (evaluation.get("metrics") or {}).items() if _number(v) is not None}
    generation = evaluation.get("generation") or {}
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
            "checkpoint_selection": {
                key: checkpoint_choice.get(key, 0)
                for key in ("planned_calls", "calls", "attempts", "validation_examples", "elapsed_seconds")
            },
            "evaluation_calls": generation.get("calls") if isinstance(generation, Mapping) else None,
        },
        "tuning": dict(checkpoint_choice.get("tuning") or {}),
        **({"comparison": evaluation["comparison"]} if evaluation.get("comparison") else {}),
    }
