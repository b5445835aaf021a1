"""Managed against self-hosted on the same holdout: the open model, its base and a Gemini model side by side.

With ``tuning_backend=open-weights`` and ``compare_with_gemini`` set, the
evaluation also asks a Gemini model (the base model, or the Gemini champion in
production) the same holdout questions, through the same generation path as
any Gemini evaluation (:class:`gemini_sft.vertex_client.GenAIGenerator`). This
module names that model, and after scoring builds the comparison: per model
the scores (the evaluation's own metrics, with the intervals of tuned minus
each other model), latency per answer, and cost at list prices. The open model
costs GPU hours x its training machine's price and, served, its endpoint
machine's price over the measured seconds per answer (machine catalogue,
:mod:`gemini_sft.open_weights.costs`); Gemini costs tokens x the model
catalogue's token prices, plus, for a tuned champion, what tuning it on this
training split costs. The gate never reads any of it.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from gemini_sft.cost import estimate_tuning_cost, format_usd, token_stats
from gemini_sft.evaluation.metrics import BASE, GEMINI, TEXT_METRICS, TUNED
from gemini_sft.evaluation.result import OFFLINE_STANDIN_PREFIX, EvaluationResult
from gemini_sft.evaluation.settings import (
    COMPARE_BASE,
    COMPARE_CHAMPION,
    GENERATION_TIMEOUT_MS,
    EvaluationSettings,
)
from gemini_sft.evaluation.usage import PER_MILLION, usage_metrics
from gemini_sft.examples import read_examples
from gemini_sft.machine_catalog import MachineSpec
from gemini_sft.model_catalog import input_price_per_million, is_tuned_model, output_price_per_million
from gemini_sft.open_weights.costs import PricedFigure, measured_training_cost, serving_cost_per_1k_answers
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND
from gemini_sft.tokens import estimate_example_tokens

if TYPE_CHECKING:
    from gemini_sft.evaluation.generation import Answer, Generator
    from gemini_sft.vertex_client import VertexSettings

log = logging.getLogger(__name__)

TRAINING_SUMMARY_FILE = "training_summary.json"
TINY_MODEL_NOTE = "tiny local model (random weights, trained on CPU here): says nothing about a real model"
STANDIN_NOTE = "offline stand-in of the Vertex API: no Gemini model answered, nothing was billed"
NO_CHAMPION = "no model is in production; nothing to compare with Gemini"
OPEN_WEIGHTS_CHAMPION = "the model in production is an open-weights deployment; nothing to compare with Gemini"


def no_comparison_reason(settings: EvaluationSettings) -> str:
    """Why ``compare_with_gemini=champion`` asks no Gemini model ("" when it asks one, or for another choice).

    The champion is asked as a tuned Gemini model; an open-weights deployment (the promotion record's
    ``tuning_backend``, given as ``champion_backend``) serves no Gemini API, so it is not asked.

    Args:
        settings: the evaluation settings as the pipeline gave them.
    """
    if settings.compare_with_gemini != COMPARE_CHAMPION:
        return ""
    if not settings.champion_endpoint:
        return NO_CHAMPION
    if settings.champion_backend == OPEN_WEIGHTS_BACKEND:
        return OPEN_WEIGHTS_CHAMPION
    return ""


def gemini_comparison_model(settings: EvaluationSettings) -> str:
    """The Gemini model ``compare_with_gemini`` names ("" for none, or for a champion that is no Gemini model).

    Args:
        settings: the evaluation settings as the pipeline gave them (``base_model`` is the Gemini base).
    """
    if settings.compare_with_gemini == COMPARE_BASE:
        return settings.base_model
    if settings.compare_with_gemini == COMPARE_CHAMPION:
        reason = no_comparison_reason(settings)
        if reason:
            log.warning("compare_with_gemini=champion: %s", reason)
            return ""
        return settings.champion_endpoint
    return ""


def gemini_generator(model: str, settings: EvaluationSettings, vertex: VertexSettings) -> Generator:
    """A google-genai generator asking ``model`` as every Gemini evaluation does (thinking by the base's rules).

    Args:
        model: the Gemini model id or endpoint.
        settings: the evaluation settings (answer cap, thinking, the Gemini base model).
        vertex: where to call Vertex.

    Raises:
        ConfigError: when the model's thinking rules refuse ``settings.thinking``.
    """
    from gemini_sft.model_catalog import thinking_config_for
    from gemini_sft.vertex_client import GenAIGenerator, genai_client

    thinking = thinking_config_for(model, settings.thinking, rules_of=settings.base_model, setting="eval_thinking")
    client = genai_client(vertex, timeout_ms=GENERATION_TIMEOUT_MS)
    return GenAIGenerator(vertex, model, max_output_tokens=settings.max_output_tokens, thinking=thinking,
                          client=client)


@dataclass(frozen=True)
class OpenWeightsTraining:
    """What the comparison reads of the open model's training: its machine, tokens, GPU hours and epochs."""

    machine: MachineSpec
    training_tokens: int
    gpu_hours: float
    epochs: int
    tiny_local_model: bool

    @classmethod
    def from_folder(cls, model_dir: str | Path, metadata: Mapping[str, Any]) -> OpenWeightsTraining:
        """Read ``training_summary.json`` of a training folder (its settings and figures).

        Args:
            model_dir: the tuned model artifact's folder.
            metadata: the tuned model artifact's metadata (``tiny_local_model``, ``gpu_hours``).
        """
        path = Path(model_dir) / TRAINING_SUMMARY_FILE
        summary = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        settings, figures = summary.get("settings") or {}, summary.get("figures") or {}
        return cls(
            machine=MachineSpec(str(settings.get("machine_type", "")), str(settings.get("accelerator_type", "")),
                                int(settings.get("accelerator_count", 0) or 0)),
            training_tokens=int(figures.get("train_tokens", 0) or 0),
            gpu_hours=float(figures.get("gpu_hours", metadata.get("gpu_hours", 0.0)) or 0.0),
            epochs=int(summary.get("epochs_trained") or settings.get("epochs") or 1),
            tiny_local_model=bool(summary.get("tiny_local_model", metadata.get("tiny_local_model", False))),
        )


def _latency(answers: list[Answer]) -> dict[str, float]:
    seconds = sorted(a.latency_seconds for a in answers if a.ok)
    if not seconds:
        return {"mean": math.nan, "p50": math.nan, "p95": math.nan}
    p95 = seconds[min(len(seconds) - 1, math.ceil(0.95 * len(seconds)) - 1)]
    return {"mean": statistics.fmean(seconds), "p50": statistics.median(seconds), "p95": p95}


def _answers(result: EvaluationResult, role: str) -> list[Answer]:
    return [record.answers[role] for record in result.records if role in record.answers]


def _gemini_serving(answers: list[Answer], model: str, base_model: str) -> PricedFigure:
    """Gemini's list price per 1,000 answers at the measured tokens per answer."""
    answered = [a for a in answers if a.ok]
    input_price = input_price_per_million(model, rules_of=base_model)
    output_price = output_price_per_million(model, rules_of=base_model)
    if not answered or input_price is None or output_price is None:
        return PricedFigure(None, f"no token price for {model} in the model catalogue: unknown price", False)
    tokens_in = sum(a.input_tokens for a in answered) / len(answered)
    tokens_out = sum(a.output_tokens + a.thinking_tokens for a in answered) / len(answered)
    usd = 1000 * (tokens_in * input_price + tokens_out * output_price) / PER_MILLION
    return PricedFigure(usd, f"1,000 answers x ({tokens_in:.0f} input tokens x ${input_price:g}/1M + "
                             f"{tokens_out:.0f} output and thinking tokens x ${output_price:g}/1M), measured tokens "
                             "per answer, model catalogue list prices", False)


def _gemini_tuning(model: str, base_model: str, train_path: str | Path | None, epochs: int) -> PricedFigure:
    """What tuning Gemini on this run's training split costs (for a tuned champion); none for a base model."""
    if not is_tuned_model(model) and "/endpoints/" not in model:
        return PricedFigure(0.0, "a base model: nothing to tune", True)
    if train_path is None or not Path(train_path).is_file():
        return PricedFigure(None, "no training split to count: unknown price", False)
    stats = token_stats(estimate_example_tokens(example) for _, example in read_examples(train_path))
    estimate = estimate_tuning_cost(stats, max(epochs, 1), base_model)
    return PricedFigure(estimate.estimated_cost_usd,
                        f"tuning {base_model} on this run's training split: {estimate.billable_tokens_per_epoch:,} "
                        f"billable tokens (offline estimate) x {estimate.epochs} epochs x "
                        f"${estimate.price_per_million_tokens_usd:g}/1M", False)


def _scores(metrics: Mapping[str, float], role: str, primary: str) -> dict[str, Any]:
    names = [name for name in TEXT_METRICS if f"{role}_{name}" in metrics]
    scores: dict[str, Any] = {name: metrics[f"{role}_{name}"] for name in names}
    prefix = {BASE: "delta", GEMINI: "delta_vs_gemini"}.get(role)
    if prefix is not None:
        scores[f"tuned_minus_{role}"] = {
            key: metrics.get(f"{prefix}_{primary}{suffix}", math.nan)
            for key, suffix in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"))
        }
    return scores


def build_comparison(
    result: EvaluationResult,
    settings: EvaluationSettings,
    training: OpenWeightsTraining,
    *,
    gemini_model: str,
    region: str = "",
    train_path: str | Path | None = None,
    primary_metric: str = "rougeL",
) -> tuple[dict[str, Any], dict[str, float]]:
    """The comparison document and its flat metrics, from an evaluation that scored tuned, base and Gemini.

    Args:
        result: the evaluation (roles tuned, base and, when compared, gemini).
        settings: the evaluation settings as given (the Gemini base model, the serving machine).
        training: the open model's training facts.
        gemini_model: the compared Gemini model ("" when none).
        region: the Vertex region whose machine prices apply.
        train_path: the training split, for a tuned Gemini champion's tuning cost.
        primary_metric: the metric the intervals are shown for.

    Returns:
        ``(document, metrics)``: the document for the reports and the evaluation document's ``comparison``;
        the metrics (``{role}_latency_seconds_mean``, ``open_weights_training_cost_usd``,
        ``{role}_serving_cost_per_1k_answers_usd``, ``gemini_tuning_cost_usd``, ...; NaN when unknown).
    """
    metrics: dict[str, float] = {}
    serving = MachineSpec(settings.serving_machine_type, settings.serving_accelerator_type,
                          settings.serving_accelerator_count)
    measured_on = training.machine.machine_type + (" with the tiny local model" if training.tiny_local_model else "")
    train_cost = measured_training_cost(training.gpu_hours, training.training_tokens, training.machine, region=region)
    open_source = TINY_MODEL_NOTE if training.tiny_local_model else "open model trained by this run"
    rows = []
    for role, label in ((TUNED, "Open weights, tuned (LoRA)"), (BASE, "Open weights, base")):
        latency = _latency(_answers(result, role))
        per_1k = serving_cost_per_1k_answers(latency["mean"], serving, region=region, measured_on=measured_on)
        rows.append({
            "role": role, "label": label, "model": result.models.get(role, ""), "source": open_source,
            "scores": _scores(result.metrics, role, primary_metric),
            "error_rate": result.metrics.get(f"{role}_error_rate", math.nan),
            "latency_seconds": latency,
            "training_cost": train_cost.cost.to_dict() if role == TUNED else PricedFigure(0.0, "not trained",
                                                                                            True).to_dict(),
            "serving_per_1k_answers": per_1k.to_dict(),
        })
        metrics[f"{role}_latency_seconds_mean"] = latency["mean"]
        metrics[f"{role}_serving_cost_per_1k_answers_usd"] = _usd(per_1k)
    metrics["open_weights_training_cost_usd"] = _usd(train_cost.cost)
    metrics["open_weights_training_gpu_hours"] = train_cost.gpu_hours if train_cost.gpu_hours is not None else math.nan
    if gemini_model and GEMINI in result.roles:
        answers = _answers(result, GEMINI)
        # priced as the Gemini model it is (an endpoint as the Gemini base it was tuned from)
        metrics.update(usage_metrics({GEMINI: answers}, {GEMINI: gemini_model}, settings.base_model))
        latency = _latency(answers)
        tuning = _gemini_tuning(gemini_model, settings.base_model, train_path, training.epochs)
        per_1k = _gemini_serving(answers, gemini_model, settings.base_model)
        versions = result.model_versions.get(GEMINI, [])
        standin = any(v.startswith(OFFLINE_STANDIN_PREFIX) for v in versions)
        rows.append({
            "role": GEMINI,
            "label": "Gemini, " + ("champion (tuned)" if settings.compare_with_gemini == COMPARE_CHAMPION
                                   else "base"),
            "model": gemini_model, "source": STANDIN_NOTE if standin else "Gemini on Vertex AI",
            "scores": _scores(result.metrics, GEMINI, primary_metric),
            "error_rate": result.metrics.get(f"{GEMINI}_error_rate", math.nan),
            "latency_seconds": latency,
            "training_cost": tuning.to_dict(),
            "serving_per_1k_answers": per_1k.to_dict(),
        })
        metrics[f"{GEMINI}_latency_seconds_mean"] = latency["mean"]
        metrics[f"{GEMINI}_serving_cost_per_1k_answers_usd"] = _usd(per_1k)
        metrics[f"{GEMINI}_tuning_cost_usd"] = _usd(tuning)
    compared = any(row["role"] == GEMINI for row in rows)
    skipped = "" if compared else (no_comparison_reason(settings) or "no Gemini model answered")
    document = {
        "compare_with_gemini": settings.compare_with_gemini,
        # the catalogued model whose token prices the Gemini calls are billed at (an endpoint: its base)
        "gemini_priced_as": settings.base_model,
        "gemini_skipped": skipped,
        "primary_metric": primary_metric,
        "region": region,
        "serving_machine": asdict(serving),
        "training": train_cost.to_dict(),
        "models": rows,
        "notes": ([f"No Gemini model was asked: {skipped}."] if skipped else []) + [
            "Information only: the gate compares the tuned model with its own base.",
            "Open-weights latency is per answer on the training machine, one request at a time; serving per "
            "1,000 answers at that pace is an upper bound for a batching server (vLLM), and an endpoint is "
            "paid while it is up, answering or not.",
            "Prices are list prices from gemini_sft/data/machines.json and models.json; values marked "
            "unverified there were not checked against the pricing pages.",
        ],
    }
    log.info("comparison: %d models side by side, open-weights training %s", len(rows), train_cost.cost.text())
    return _finite_document(document), metrics


def _usd(figure: PricedFigure) -> float:
    return figure.usd if figure.usd is not None else math.nan


def _finite_document(value: Any) -> Any:
    """The document with NaN and infinities as None, so it is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_document(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_document(v) for v in value]
    return value


def format_figure(figure: Mapping[str, Any] | None) -> str:
    """A priced figure of the document as text: the amount or "unknown price"."""
    usd = (figure or {}).get("usd")
    return format_usd(usd) if isinstance(usd, (int, float)) else "unknown price"
