"""KFP shell of the evaluate stage: base vs tuned (vs champion) on the holdout split."""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Output

from gemini_sft.components.base import build_component


def evaluate_models(
    holdout: Input[Dataset],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    predictions: Output[Dataset],
    report: Output[Markdown],
    html_report: Output[HTML],
    evaluation: Output[Artifact],
    project: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    base_model: str = "gemini-2.5-flash",
    tuned_endpoint: str = "",
    champion_model: str = "",
    max_output_tokens: int = 1024,
    max_concurrency: int = 8,
    requests_per_minute: int = 300,
    label_pattern: str = "",
    bootstrap_samples: int = 1000,
    seed: int = 42,
):
    """Have the base model, the tuned endpoint and (when given) the champion answer the holdout prompts; score them.

    Writes flat metrics (base_rougeL, tuned_rougeL, delta_rougeL with its CI, error rates, ...),
    a confusion matrix when ``label_pattern`` is set, per-example predictions (JSONL), a Markdown
    and a self-contained HTML report, and the ``evaluation`` JSON read by the gate.
    Raises ConfigError when the tuned endpoint is missing, EvaluationError when nothing could be scored.
    """
    import logging
    import math

    from gemini_sft.errors import ConfigError
    from gemini_sft.evaluate import (
        EvaluationSettings,
        LogProgress,
        load_holdout,
        run_evaluation,
        write_evaluation,
        write_predictions,
    )
    from gemini_sft.report import render_html, render_markdown
    from gemini_sft.vertex_client import GenAIGenerator, VertexSettings, genai_client, quiet_http_logs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs()
    log = logging.getLogger("gemini_sft.components.evaluate")
    if not tuned_endpoint:
        raise ConfigError("tuned_endpoint is required: the endpoint (or model) of the tuned model to evaluate")

    cases, skipped = load_holdout(holdout.path)
    settings = VertexSettings.create(project, location, api_endpoint or None)
    client = genai_client(settings, timeout_ms=120_000)
    models = {"base": base_model, "tuned": tuned_endpoint}
    if champion_model:
        models["champion"] = champion_model
    generators = {
        role: GenAIGenerator(settings, model, max_output_tokens=max_output_tokens, client=client)
        for role, model in models.items()
    }
    result = run_evaluation(
        cases,
        generators,
        models,
        EvaluationSettings(
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            label_pattern=label_pattern,
            bootstrap_samples=bootstrap_samples,
            seed=seed,
        ),
        progress=LogProgress(),
        skipped_examples=skipped,
    )

    for name, value in sorted(result.metrics.items()):
        if math.isfinite(value):
            metrics.log_metric(name, value)
    if "tuned" in result.confusion:
        matrix = result.confusion["tuned"]
        classification_metrics.log_confusion_matrix(matrix.categories, matrix.matrix)
        classification_metrics.metadata["model_role"] = "tuned"
    write_predictions(result, predictions.path)
    predictions.metadata["examples"] = len(result.records)
    with open(report.path, "w", encoding="utf-8") as handle:
        handle.write(render_markdown(result))
    with open(html_report.path, "w", encoding="utf-8") as handle:
        handle.write(render_html(result))
    write_evaluation(result, evaluation.path)
    evaluation.metadata["offline_standin"] = result.offline_standin
    evaluation.metadata["n_examples"] = len(result.records)
    log.info(
        "evaluation written: %d examples, base error rate %.3f, tuned error rate %.3f",
        len(result.records),
        result.metrics["base_error_rate"],
        result.metrics["tuned_error_rate"],
    )


evaluate_models_op = build_component(evaluate_models)
