"""What the promotion steps read from and write to their pipeline artifacts.

The gate's decision and the evaluation's metrics are read (:func:`read_gate_decision`,
:func:`candidate_provenance`); each record a step writes is also its output artifact
(:func:`write_record_artifact`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from gemini_sft.errors import PromotionError
from gemini_sft.promotion.records import PromotionRecord, Provenance


def write_record_artifact(path: str | Path, record: PromotionRecord, registry_uri: str) -> dict[str, Any]:
    """Write ``record`` as JSON to an output artifact's ``path``; returns the metadata the artifact carries.

    The metadata names the record, its kind and model, and the registry; a rejection adds the
    number of reasons, a promotion or rollback the endpoint, alias and previous champion.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(record.to_json(), encoding="utf-8")
    metadata: dict[str, Any] = {"record_id": record.record_id, "kind": record.kind, "model": record.model.versioned_name}
    if record.kind == "rejection":
        metadata["reasons"] = len(record.reasons)
    else:
        metadata.update(
            endpoint=record.model.endpoint,
            alias=record.alias,
            previous_champion=record.previous_champion.versioned_name if record.previous_champion else "",
        )
    metadata["registry_uri"] = registry_uri
    return metadata


def read_metrics(evaluation_json: str) -> dict[str, float]:
    """The flat numeric metrics of an evaluation file's ``{"metrics": {...}}``; non-numbers are skipped.

    Raises PromotionError when the text is not a JSON object.
    """
    try:
        payload = json.loads(evaluation_json) if evaluation_json.strip() else {}
    except json.JSONDecodeError as exc:
        raise PromotionError(f"The evaluation file is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PromotionError("The evaluation file must hold a JSON object with a `metrics` object.")
    metrics = payload.get("metrics", {})
    if not isinstance(metrics, dict):
        raise PromotionError("The evaluation file's `metrics` must be an object of name -> number.")
    return {
        str(name): float(value)
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def read_decision(decision_json: str) -> tuple[bool, list[str]]:
    """``(passed, reasons)`` from the gate's decision JSON.

    Raises PromotionError when the text is not a decision object.
    """
    try:
        payload = json.loads(decision_json)
    except json.JSONDecodeError as exc:
        raise PromotionError(f"The gate decision is not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("passed"), bool):
        raise PromotionError("The gate decision must be a JSON object with a boolean `passed`.")
    reasons = payload.get("reasons") or []
    if not isinstance(reasons, list):
        raise PromotionError("The gate decision's `reasons` must be a list of strings.")
    return payload["passed"], [str(reason) for reason in reasons]


def read_gate_decision(path: str | Path, *, refuse_unless_passed: str = "", hint: str = "") -> tuple[bool, list[str]]:
    """``(passed, reasons)`` of the gate's decision file; optionally refuse to go on when it did not pass.

    Args:
        path: the decision artifact's file (the gate's decision JSON).
        refuse_unless_passed: what the step does with a passing candidate ("promote", "deploy"); when given,
            a decision that did not pass raises PromotionError saying the step refuses to do it.
        hint: a sentence added to that error (how to wire the step).

    Raises PromotionError when the file is not a decision object, or as said above.
    """
    passed, reasons = read_decision(Path(path).read_text(encoding="utf-8"))
    if refuse_unless_passed and not passed:
        message = f"The gate did not pass ({len(reasons)} reason(s)); refusing to {refuse_unless_passed}."
        raise PromotionError(f"{message} {hint}" if hint else message)
    return passed, reasons


def candidate_provenance(
    tuned_model_metadata: Mapping[str, Any],
    metrics_path: str | Path,
    *,
    dataset_hash: str,
    pipeline_run: str,
    checkpoint_id: str = "",
) -> Provenance:
    """The provenance a step records for the tuned model, with the metrics of the file at ``metrics_path``.

    Args:
        tuned_model_metadata: the tuned-model artifact's metadata (it names the base model and tuning job).
        metrics_path: the evaluation JSON, or the gate's decision (which carries the metrics it read).
        dataset_hash: hash of the cleaned splits the model was tuned on.
        pipeline_run: the run that writes the record.
        checkpoint_id: the checkpoint chosen on validation; empty when none was chosen.

    Raises PromotionError when the metrics file is not a JSON object with a ``metrics`` object.
    """
    return Provenance.of_tuned_model(
        tuned_model_metadata, metrics=read_metrics(Path(metrics_path).read_text(encoding="utf-8")),
        dataset_hash=dataset_hash, pipeline_run=pipeline_run, checkpoint_id=checkpoint_id,
    )
