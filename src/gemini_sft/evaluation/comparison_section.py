"""The evaluation report's "Managed vs self-hosted" section, in Markdown and in HTML.

Rendered from the comparison document (:func:`gemini_sft.evaluation.comparison.build_comparison`):
one row per model (open weights tuned, its base, the Gemini model) with its
scores, the interval of tuned minus it, its latency per answer and its costs,
then every cost's basis. :func:`gemini_sft.evaluation.output.write_outputs`
adds it to both reports when the evaluation has a comparison; the rest of
each report stays as it is.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

from gemini_sft.evaluation.comparison import format_figure
from gemini_sft.evaluation.report_text import METRIC_LABELS

SECTION_TITLE = "Managed vs self-hosted"
HEADERS = ("model", "source", "{metric}", "tuned − it [95% CI]", "errors", "latency per answer (mean / p95)",
           "training or tuning", "serving per 1,000 answers")


def _number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def _interval(scores: Mapping[str, Any]) -> str:
    for key, value in scores.items():
        if key.startswith("tuned_minus_") and isinstance(value, Mapping):
            return (f"{_number(value.get('value'), 3)} [{_number(value.get('ci_low'), 3)}, "
                    f"{_number(value.get('ci_high'), 3)}]")
    return "–"


def _cells(row: Mapping[str, Any], metric: str) -> list[str]:
    latency = row.get("latency_seconds") or {}
    scores = row.get("scores") or {}
    error_rate = row.get("error_rate")
    return [
        f"{row.get('label', '')}: {row.get('model', '')}",
        str(row.get("source", "")),
        _number(scores.get(metric)),
        _interval(scores),
        f"{error_rate:.1%}" if isinstance(error_rate, (int, float)) else "–",
        f"{_number(latency.get('mean'), 3)} s / {_number(latency.get('p95'), 3)} s",
        format_figure(row.get("training_cost")),
        format_figure(row.get("serving_per_1k_answers")),
    ]


def _bases(comparison: Mapping[str, Any]) -> list[str]:
    lines = []
    for row in comparison.get("models") or []:
        for kind, key in (("training or tuning", "training_cost"), ("serving", "serving_per_1k_answers")):
            figure = row.get(key) or {}
            lines.append(f"{row.get('label', '')}, {kind}: {format_figure(figure)} ({figure.get('basis', '')})")
    return lines


def _intro(comparison: Mapping[str, Any]) -> str:
    """Who answered the holdout, then the document's notes (one of which says why no Gemini model was asked)."""
    asked = ("The open model and its base answered the holdout questions." if comparison.get("gemini_skipped")
             else "The open model, its base and a Gemini model answered the same holdout questions.")
    return " ".join([asked, *(comparison.get("notes") or [])])


def _headers(comparison: Mapping[str, Any]) -> list[str]:
    metric = str(comparison.get("primary_metric", "rougeL"))
    return [h.format(metric=METRIC_LABELS.get(metric, metric)) for h in HEADERS]


def render_comparison_markdown(comparison: Mapping[str, Any]) -> str:
    """The section as Markdown (model names and notes are this run's own text, with table pipes escaped)."""
    metric = str(comparison.get("primary_metric", "rougeL"))

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    headers = _headers(comparison)
    lines = ["", f"## {SECTION_TITLE}", "", _intro(comparison), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in comparison.get("models") or []:
        lines.append("| " + " | ".join(cell(c) for c in _cells(row, metric)) + " |")
    lines += ["", "How each cost was made:", ""] + [f"- {cell(line)}" for line in _bases(comparison)]
    return "\n".join(lines) + "\n"


def render_comparison_html(comparison: Mapping[str, Any]) -> str:
    """The section as HTML, every value escaped."""
    metric = str(comparison.get("primary_metric", "rougeL"))
    out = [f"<section><h2>{SECTION_TITLE}</h2>",
           "<p>" + html.escape(_intro(comparison)) + "</p>",
           "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in _headers(comparison)) + "</tr>"]
    for row in comparison.get("models") or []:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row, metric)) + "</tr>")
    out.append("</table><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _bases(comparison))
               + "</ul></section>")
    return "\n".join(out)


def add_comparison_html(page: str, comparison: Mapping[str, Any]) -> str:
    """The HTML report with the section inserted before the end of its main content."""
    section = render_comparison_html(comparison)
    marker = "</main>"
    return page.replace(marker, section + "\n" + marker, 1) if marker in page else page + section
