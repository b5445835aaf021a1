"""Scoring the open model's recorded holdout answers with the pipeline's own evaluation.

The evaluate step calls :func:`evaluate_recorded_answers` when its tuned model
came from the open-weights step: the base is that model with its adapter off,
the tuned model the same with it on, both answered on the training machine.
Everything else (scores, intervals, reports, the gate's document) is the
evaluation of :mod:`gemini_sft.evaluation.run`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping

from gemini_sft.evaluation.generation import RequestRateLimiter
from gemini_sft.evaluation.holdout import load_holdout
from gemini_sft.evaluation.progress import ProgressReporter
from gemini_sft.evaluation.result import EvaluationResult
from gemini_sft.evaluation.run import run_evaluation
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.open_weights.pipeline_step import PREDICTIONS_FILE
from gemini_sft.open_weights.recorded_answers import recorded_generators

log = logging.getLogger(__name__)

RECORDED_ANSWERS_PER_MINUTE = 6_000_000


def evaluate_recorded_answers(
    holdout_path: str | Path,
    model_dir: str | Path,
    metadata: Mapping[str, Any],
    settings: EvaluationSettings,
    *,
    progress: ProgressReporter | None = None,
) -> EvaluationResult:
    """Score the base and tuned answers recorded in an open-weights training folder on the holdout.

    Args:
        holdout_path: the holdout split the answers were made for.
        model_dir: the tuned model artifact's folder (``predictions.jsonl`` in it).
        metadata: the tuned model artifact's metadata (its base and tuned model versions).
        settings: the evaluation settings; the models are renamed after the open model.

    Raises:
        InputFormatError, EvaluationError: as :func:`run_evaluation`, and when the folder holds no answers.
    """
    predictions = Path(model_dir) / str(metadata.get("predictions") or PREDICTIONS_FILE)
    generators = recorded_generators(predictions)
    named = dataclasses.replace(
        settings,
        base_model=str(metadata.get("base_model_version") or generators["base"].model_version),
        tuned_endpoint=str(metadata.get("tuned_model_version") or generators["tuned"].model_version),
        champion_endpoint="",  # a Gemini champion is not compared with answers recorded elsewhere
    )
    cases, skipped = load_holdout(holdout_path)
    # recorded answers cost no request: the request pacing of live models does not apply
    limiter = RequestRateLimiter(RECORDED_ANSWERS_PER_MINUTE)
    result = run_evaluation(cases, generators, named, progress=progress, limiter=limiter, skipped_examples=skipped)
    log.info("open-weights evaluation: %d recorded examples scored", len(result.records))
    return result
