"""Scoring the open model's recorded holdout answers with the pipeline's own evaluation.

The evaluate step calls :func:`evaluate_recorded_answers` when its tuned model
came from the open-weights step: the base is that model with its adapter off,
the tuned model the same with it on, both answered on the training machine.
With ``compare_with_gemini`` set, a Gemini model answers the same holdout now
(through the Gemini generation path) and the result carries the side-by-side
comparison (:mod:`gemini_sft.evaluation.comparison`). Everything else (scores,
intervals, reports, the gate's document) is the evaluation of
:mod:`gemini_sft.evaluation.run`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from gemini_sft.evaluation.comparison import (
    OpenWeightsTraining,
    build_comparison,
    gemini_comparison_model,
    gemini_generator,
)
from gemini_sft.evaluation.generation import Generator, RequestRateLimiter
from gemini_sft.evaluation.holdout import load_holdout
from gemini_sft.evaluation.metrics import GEMINI
from gemini_sft.evaluation.progress import ProgressReporter
from gemini_sft.evaluation.result import EvaluationResult
from gemini_sft.evaluation.run import run_evaluation
from gemini_sft.evaluation.settings import COMPARE_NONE, EvaluationSettings
from gemini_sft.open_weights.pipeline_step import PREDICTIONS_FILE
from gemini_sft.open_weights.recorded_answers import recorded_generators

if TYPE_CHECKING:
    from gemini_sft.vertex_client import VertexSettings

log = logging.getLogger(__name__)

RECORDED_ANSWERS_PER_MINUTE = 6_000_000


def evaluate_recorded_answers(
    holdout_path: str | Path,
    model_dir: str | Path,
    metadata: Mapping[str, Any],
    settings: EvaluationSettings,
    *,
    progress: ProgressReporter | None = None,
    vertex: VertexSettings | None = None,
    train_path: str | Path | None = None,
) -> EvaluationResult:
    """Score the base and tuned answers recorded in an open-weights training folder on the holdout.

    Args:
        holdout_path: the holdout split the answers were made for.
        model_dir: the tuned model artifact's folder (``predictions.jsonl`` and ``training_summary.json`` in it).
        metadata: the tuned model artifact's metadata (its base and tuned model versions).
        settings: the evaluation settings; the models are renamed after the open model. Its ``base_model``
            and ``champion_endpoint`` name the Gemini model ``compare_with_gemini`` picks.
        progress: told of every finished call.
        vertex: where to ask the compared Gemini model (required when ``compare_with_gemini`` is not none).
        train_path: the training split, for the tuning cost of a tuned Gemini champion.

    Raises:
        InputFormatError, EvaluationError: as :func:`run_evaluation`, and when the folder holds no answers.
        ConfigError: when a comparison is asked for without ``vertex``.
    """
    predictions = Path(model_dir) / str(metadata.get("predictions") or PREDICTIONS_FILE)
    generators: dict[str, Generator] = dict(recorded_generators(predictions))
    gemini_model = gemini_comparison_model(settings)
    named = dataclasses.replace(
        settings,
        base_model=str(metadata.get("base_model_version") or generators["base"].model_version),
        tuned_endpoint=str(metadata.get("tuned_model_version") or generators["tuned"].model_version),
        champion_endpoint="",  # the gate compares the open model with its own base only
    )
    if gemini_model:
        if vertex is None:
            from gemini_sft.errors import ConfigError

            raise ConfigError("compare_with_gemini needs the Vertex target (project, location) to ask Gemini")
        generators[GEMINI] = gemini_generator(gemini_model, settings, vertex)
    cases, skipped = load_holdout(holdout_path)
    # recorded answers cost no request; a compared Gemini model is paced as any live model
    per_minute = settings.requests_per_minute if gemini_model else RECORDED_ANSWERS_PER_MINUTE
    limiter = RequestRateLimiter(per_minute)
    result = run_evaluation(cases, generators, named, progress=progress, limiter=limiter, skipped_examples=skipped)
    log.info("open-weights evaluation: %d recorded examples scored%s", len(result.records),
             f", {gemini_model} asked the same holdout" if gemini_model else "")
    if settings.compare_with_gemini != COMPARE_NONE:
        training = OpenWeightsTraining.from_folder(model_dir, metadata)
        document, metrics = build_comparison(
            result, settings, training, gemini_model=gemini_model,
            region=vertex.location if vertex is not None else "", train_path=train_path,
        )
        result.metrics.update(metrics)
        result.comparison = document
    return result
