"""The result of an evaluation, and the files the gate, promotion and people read.

``evaluation.json`` (:meth:`EvaluationResult.to_document`) carries the flat
metrics the gate decides on; ``predictions.jsonl`` carries one row per example.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gemini_sft.evaluation.generation import Answer, GenerationStats
from gemini_sft.evaluation.metrics import BASE, MODEL_ROLES, TUNED, ConfusionMatrix, ExampleScores
from gemini_sft.evaluation.settings import CONFIDENCE, EvaluationSettings

OFFLINE_STANDIN_PREFIX = "offline-stand-in"

ERROR_POLICY = (
    "A call that still failed after its retries is recorded as an error for that example and model. "
    "Errors are excluded from that model's score means (they are not scored as empty answers) and "
    "counted in its error rate, which the gate checks. Differences are the candidate's mean minus the "
    "baseline's mean; the bootstrap resamples holdout examples, the same ones for both models."
)


@dataclass
class ExampleRecord:
    """Everything about one holdout example, for the predictions file and the report."""

    example_id: str
    prompt: str
    reference: str
    reference_label: str | None
    answers: dict[str, Answer]
    scores: dict[str, ExampleScores | None]
    # why "tuned with fallback" would answer with the base model here (None: the tuned answer stands)
    fallback_reason: str | None = None


@dataclass
class EvaluationResult:
    """The outcome of an evaluation: flat metrics, per-example records and run facts."""

    metrics: dict[str, float]
    models: dict[str, str]  # role -> model name or endpoint as given
    records: list[ExampleRecord]
    model_versions: dict[str, list[str]]
    confusion: dict[str, ConfusionMatrix]
    label_classes: list[str]
    settings: EvaluationSettings
    stats: GenerationStats
    skipped_examples: int = 0
    confidence: float = CONFIDENCE
    # role -> the thinking config its model was sent (None: none sent); empty when not known
    thinking: dict[str, dict[str, int | str] | None] = field(default_factory=dict)
    contract_checked: bool = False
    # an open-weights run's side-by-side comparison with a Gemini model (gemini_sft.evaluation.comparison)
    comparison: dict[str, Any] | None = None

    @property
    def offline_standin(self) -> bool:
        """True when any answer came from the offline stand-in rather than Gemini."""
        return any(v.startswith(OFFLINE_STANDIN_PREFIX) for versions in self.model_versions.values() for v in versions)

    @property
    def roles(self) -> list[str]:
        return [role for role in MODEL_ROLES if role in self.models]

    def to_document(self) -> dict[str, Any]:
        """The ``evaluation`` artifact: JSON the gate and promotion read. Non-finite values become null."""
        return {
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "models": {
                role: {
                    "model": self.models[role],
                    "model_versions": self.model_versions.get(role, []),
                    "errors": int(self.metrics.get(f"{role}_errors", 0)),
                    "error_rate": self.metrics.get(f"{role}_error_rate"),
                }
                for role in self.roles
            },
            "offline_standin": self.offline_standin,
            "n_examples": len(self.records),
            "skipped_examples": self.skipped_examples,
            "label_pattern": self.settings.label_pattern,
            "label_classes": self.label_classes,
            "bootstrap": {
                "samples": self.settings.bootstrap_samples,
                "seed": self.settings.seed,
                "confidence": self.confidence,
                "method": "paired bootstrap over holdout examples, percentile interval",
            },
            "error_policy": ERROR_POLICY,
            "generation": asdict(self.stats),
            "thinking": {"setting": self.settings.thinking, "sent": self.thinking},
            "fallback": {
                "rate": self.metrics.get("fallback_rate"),
                "contract_checked": self.contract_checked,
                "reasons": {
                    name[len("fallback_reason_"):]: int(value)
                    for name, value in self.metrics.items()
                    if name.startswith("fallback_reason_") and value
                },
            },
            **({"comparison": self.comparison} if self.comparison is not None else {}),
        }

    def prediction_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per example: id, reference, each model's answer, scores and errors."""
        rows = []
        for record in self.records:
            row: dict[str, Any] = {
                "example_id": record.example_id,
                "prompt": record.prompt,
                "reference": record.reference,
            }
            if self.settings.label_pattern:
                row["reference_label"] = record.reference_label
            for role in self.roles:
                answer = record.answers[role]
                scores = record.scores[role]
                row[role] = {
                    "answer": answer.text,
                    "error": answer.error,
                    "attempts": answer.attempts,
                    "model_version": answer.model_version,
                    "finish_reason": answer.finish_reason,
                    "output_tokens": answer.output_tokens,
                    "thinking_tokens": answer.thinking_tokens,
                    "scores": scores.as_dict() if scores is not None else None,
                }
            row["fallback"] = {
                "answered_by": BASE if record.fallback_reason else TUNED,
                "reason": record.fallback_reason,
            }
            rows.append(row)
        return rows


def write_predictions(result: EvaluationResult, path: str | Path) -> None:
    """Write the predictions JSONL (one row per example, see EvaluationResult.prediction_rows)."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in result.prediction_rows():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_evaluation(result: EvaluationResult, path: str | Path) -> None:
    """Write the evaluation JSON document the gate reads."""
    Path(path).write_text(json.dumps(result.to_document(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
