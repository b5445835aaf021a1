"""Writing an evaluation's files: the evaluation document, the predictions and both reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gemini_sft.evaluation.html_report import render_html
from gemini_sft.evaluation.markdown_report import render_markdown
from gemini_sft.evaluation.metrics import TUNED, ConfusionMatrix
from gemini_sft.evaluation.result import EvaluationResult, write_evaluation, write_predictions


@dataclass(frozen=True)
class WrittenEvaluation:
    """What a caller logs beside the files: the finite metrics, and the tuned model's confusion matrix if any."""

    metrics: dict[str, float]
    confusion: ConfusionMatrix | None


def write_outputs(
    result: EvaluationResult,
    *,
    predictions: str | Path,
    evaluation: str | Path,
    markdown: str | Path,
    html: str | Path,
) -> WrittenEvaluation:
    """Write the four files of an evaluation.

    Args:
        result: the evaluation.
        predictions: path of the predictions JSONL.
        evaluation: path of the evaluation JSON the gate reads.
        markdown: path of the Markdown report.
        html: path of the HTML report.
    """
    for path in (predictions, evaluation, markdown, html):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_predictions(result, predictions)
    write_evaluation(result, evaluation)
    markdown_text, page = render_markdown(result), render_html(result)
    if result.comparison is not None:
        from gemini_sft.evaluation.comparison_section import add_comparison_html, render_comparison_markdown

        markdown_text += render_comparison_markdown(result.comparison)
        page = add_comparison_html(page, result.comparison)
    Path(markdown).write_text(markdown_text, encoding="utf-8")
    Path(html).write_text(page, encoding="utf-8")
    finite = {name: value for name, value in sorted(result.metrics.items()) if math.isfinite(value)}
    return WrittenEvaluation(metrics=finite, confusion=result.confusion.get(TUNED))
