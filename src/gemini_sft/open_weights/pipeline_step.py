"""What the pipeline's open-weights step publishes from a finished training folder.

The training job (:func:`gemini_sft.open_weights.train.run_training_job`) writes
its folder; this module turns its summary into the step's outputs: the tuned
model's metadata (which the evaluate, deploy and rejection steps read), the loss
curves and predictions as artifacts of their own, and the figures as metrics.
It imports no machine-learning library.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gemini_sft.errors import EvaluationError

OPEN_WEIGHTS_BACKEND = "open-weights"
VERTEX_GEMINI_BACKEND = "vertex-gemini"
TUNING_BACKENDS = (VERTEX_GEMINI_BACKEND, OPEN_WEIGHTS_BACKEND)
PREDICTIONS_FILE = "predictions.jsonl"
CURVES_FILE = "loss_curves.json"


@dataclass(frozen=True)
class StepOutputs:
    """The open-weights step's outputs besides the files: model metadata, figures, answered examples."""

    model_metadata: dict[str, Any]
    figures: dict[str, float]
    examples: int


def write_step_outputs(summary: Mapping[str, Any], folder: Path, loss_curves: Path, predictions: Path) -> StepOutputs:
    """Copy the loss curves and predictions to their artifacts and gather the model's metadata and figures.

    Args:
        summary: the training summary (``training_summary.json``) with its ``answers`` section.
        folder: the training folder (the tuned model artifact).
        loss_curves: the loss curves artifact file to write.
        predictions: the predictions artifact file to write.

    Raises:
        EvaluationError: when the training wrote no holdout answers.
    """
    answers = summary.get("answers") or {}
    source = folder / answers.get("predictions", PREDICTIONS_FILE)
    if not source.is_file():
        raise EvaluationError(f"the training wrote no holdout answers ({source}); the evaluation needs them")
    shutil.copyfile(source, predictions)
    shutil.copyfile(folder / summary.get("loss_curves", CURVES_FILE), loss_curves)
    figures = dict(summary.get("figures") or {})
    versions = answers.get("model_versions", {})
    chosen = summary.get("chosen_checkpoint") or {}
    metadata = {
        "tuning_backend": OPEN_WEIGHTS_BACKEND,
        "base_model": summary.get("base_model", ""),
        "tiny_local_model": bool(summary.get("tiny_local_model")),
        "adapter": summary.get("adapter", "adapter"),
        "predictions": answers.get("predictions", PREDICTIONS_FILE),
        "base_model_version": versions.get("base", ""),
        "tuned_model_version": versions.get("tuned", ""),
        "epochs_trained": summary.get("epochs_trained", 0),
        "chosen_checkpoint": chosen.get("checkpoint", ""),
        "chosen_checkpoint_epoch": chosen.get("epoch"),
        "chosen_checkpoint_step": chosen.get("step"),
        "chosen_checkpoint_eval_loss": chosen.get("eval_loss"),
        "chosen_by": chosen.get("chosen_by", ""),
        "tokens_per_second": float(figures.get("tokens_per_second", 0.0)),
        "gpu_hours": float(figures.get("gpu_hours", 0.0)),
    }
    numbers = {
        "tokens_per_second": float(figures.get("tokens_per_second", 0.0)),
        "gpu_hours": float(figures.get("gpu_hours", 0.0)),
        "wall_seconds": float(figures.get("wall_seconds", 0.0)),
        "train_tokens": float(figures.get("train_tokens", 0)),
        "epochs_trained": float(summary.get("epochs_trained", 0)),
    }
    curves = read_loss_curves(loss_curves)
    for name in ("train", "eval"):
        if curves.get(name):
            numbers[f"final_{name}_loss"] = float(curves[name][-1][1])
    return StepOutputs(
        model_metadata=metadata,
        figures={k: v for k, v in numbers.items() if math.isfinite(v)},
        examples=int(answers.get("examples", 0)),
    )


def read_loss_curves(path: Path) -> dict[str, list[list[float]]]:
    """The ``{"train": [[step, loss], ...], "eval": [...]}`` document of a training (empty lists when absent)."""
    if not path.is_file():
        return {"train": [], "eval": []}
    document = json.loads(path.read_text(encoding="utf-8"))
    return {"train": list(document.get("train", [])), "eval": list(document.get("eval", []))}


def is_open_weights_model(metadata: Mapping[str, Any]) -> bool:
    """True when a tuned model artifact's metadata says the open-weights step made it."""
    return metadata.get("tuning_backend") == OPEN_WEIGHTS_BACKEND
