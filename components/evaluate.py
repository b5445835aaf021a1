"""KFP shell of the evaluate stage: base vs tuned (vs champion) on the holdout split.

The work is done by :mod:`gemini_sft.evaluation`; this shell maps artifacts to paths and writes them.
"""

from gemini_sft.components.base import build_component
from gemini_sft.contracts import describe_component
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.vertex_client import VertexTarget
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output


@describe_component(
    """Have the base model, the tuned endpoint and (when given) the champion answer the holdout prompts; score them.

    An open model's recorded answers are scored instead, beside a Gemini model when compare_with_gemini is set.

    Raises ConfigError when the tuned endpoint is missing, EvaluationError when nothing could be scored.""",
    records=[VertexTarget, EvaluationSettings],
    inputs={
        "holdout": "The holdout split, Gemini JSONL.",
        "tuned_model": "The tuned model; when the open-weights step made it, its recorded base and tuned holdout "
                       "answers are scored instead of calling endpoints.",
        "train": "The training split, Gemini JSONL: the output contract the 'tuned with fallback' score checks.",
        "checkpoint_choice": "Optional: the checkpoint choice; the HTML report then shows the loss curves, and both "
        "reports every checkpoint's validation score and why the evaluated one was chosen.",
    },
    outputs={
        "metrics": "Flat metrics: base_rougeL, tuned_rougeL, delta_rougeL with its CI, error rates, thinking "
                   "tokens, cost, fallback_* (tuned with fallback to base), ...",
        "classification_metrics": "The tuned model's confusion matrix (when label_pattern is set).",
        "predictions": "One JSON row per example: reference, each model's answer, scores and errors.",
        "report": "The evaluation report (Markdown); with compare_with_gemini, open weights and Gemini side by side.",
        "html_report": "The evaluation report, one self-contained HTML page with charts.",
        "evaluation": "The evaluation document the gate and promotion read (metrics, models, settings).",
    },
)
def evaluate_models(
    holdout: Input[Dataset],
    train: Input[Dataset],
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
    champion_endpoint: str = "",
    champion_backend: str = "",
    max_output_tokens: int = 1024,
    thinking: str = "off-or-lowest",
    max_concurrency: int = 8,
    requests_per_minute: int = 300,
    label_pattern: str = "",
    bootstrap_samples: int = 1000,
    seed: int = 42,
    compare_with_gemini: str = "none",
    serving_machine_type: str = "g2-standard-12",
    serving_accelerator_type: str = "NVIDIA_L4",
    serving_accelerator_count: int = 1,
    tuned_model: Input[Model] = None,
    checkpoint_choice: Input[Artifact] = None,
):
    import logging

    from gemini_sft.contracts import record_from_values
    from gemini_sft.evaluation.output import write_outputs
    from gemini_sft.evaluation.progress import LogProgress
    from gemini_sft.evaluation.run import evaluate_holdout
    from gemini_sft.evaluation.settings import EvaluationSettings
    from gemini_sft.vertex_client import VertexTarget, quiet_http_logs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_logs()
    settings = record_from_values(EvaluationSettings, locals())
    vertex = record_from_values(VertexTarget, locals()).settings()
    if tuned_model is not None and tuned_model.metadata.get("tuning_backend") == "open-weights":
        from gemini_sft.open_weights.evaluation import evaluate_recorded_answers

        result = evaluate_recorded_answers(holdout.path, tuned_model.path, tuned_model.metadata, settings,
                                           progress=LogProgress(), vertex=vertex, train_path=train.path)
    else:
        result = evaluate_holdout(holdout.path, settings, vertex, progress=LogProgress(), train_path=train.path)
    files = write_outputs(result, predictions=predictions.path, evaluation=evaluation.path,
                          markdown=report.path, html=html_report.path)
    if checkpoint_choice is not None:
        import json
        from pathlib import Path

        from gemini_sft.evaluation.checkpoint_section import add_checkpoint_markdown, add_checkpoint_section

        choice = json.loads(Path(checkpoint_choice.path).read_text())
        add_checkpoint_section(html_report.path, choice)
        add_checkpoint_markdown(report.path, choice)
    for name, value in files.metrics.items():
        metrics.log_metric(name, value)
    if files.confusion is not None:
        classification_metrics.log_confusion_matrix(files.confusion.categories, files.confusion.matrix)
        classification_metrics.metadata["model_role"] = "tuned"
    predictions.metadata["examples"] = len(result.records)
    evaluation.metadata.update({"offline_standin": result.offline_standin, "n_examples": len(result.records)})
    evaluation.metadata["tuning_backend"] = (tuned_model.metadata.get("tuning_backend") if tuned_model is not None
                                             else None) or "vertex-gemini"


evaluate_models_op = build_component(evaluate_models)
