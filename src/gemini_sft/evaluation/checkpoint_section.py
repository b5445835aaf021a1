"""The evaluation report's "Which checkpoint" section: loss curves, per-checkpoint scores and why one was chosen.

Rendered from the choose-checkpoint step's artifact (see
:meth:`gemini_sft.checkpoint_scoring.CheckpointSelection.document`), whose
``tuning`` section carries the loss curves. The evaluate component adds it to
the HTML report (:func:`add_checkpoint_section`) and the Markdown report
(:func:`add_checkpoint_markdown`, rendered by
:func:`gemini_sft.evaluation.markdown_report.render_checkpoint_markdown`) when
it receives that artifact; the reports themselves stay as they are.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping

from gemini_sft.tune.curves import LossCurves, loss_chart_svg

SECTION_TITLE = "Which checkpoint"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def render_checkpoint_section(choice: Mapping[str, Any]) -> str:
    """The section as HTML (inline SVG chart, one table row per checkpoint, the chosen one in bold).

    Args:
        choice: the checkpoint choice document (``checkpoints``, ``chosen``, ``rule``, ``reason``, ``tuning``).
    """
    tuning = choice.get("tuning") or {}
    curves = LossCurves.from_json(tuning.get("loss_curves") or {})
    checkpoints = list(choice.get("checkpoints") or [])
    chosen = (choice.get("chosen") or {}).get("checkpoint_id")
    steps = [int(c["step"]) for c in checkpoints if c.get("step") is not None]
    metric = html.escape(str(choice.get("primary_metric", "")))
    out = [f"<section><h2>{SECTION_TITLE}</h2>",
           f"<p><strong>Rule: {html.escape(str(choice.get('rule', '')))}.</strong> "
           f"{html.escape(str(choice.get('reason', '')))}</p>",
           f'<p class="sub">Scored on {int(choice.get("validation_examples") or 0)} validation examples '
           f"({int(choice.get('calls') or 0)} calls); the holdout above judged only the chosen checkpoint. "
           f"{html.escape(str(choice.get('sample_note') or ''))}</p>"]
    out.append(loss_chart_svg(curves, steps) if not curves.empty else
               f"<p>No loss curves: {html.escape(curves.note or 'the job reported none')}.</p>")
    out.append(f'<table><tr><th>checkpoint</th><th>epoch</th><th>step</th><th>validation {metric}</th>'
               "<th>train loss</th><th>eval loss</th></tr>")
    for c in checkpoints:
        row = "".join(f"<td>{_cell(c.get(k))}</td>" for k in
                      ("checkpoint_id", "epoch", "step", "validation_score", "train_loss", "eval_loss"))
        style = ' style="font-weight:bold"' if c.get("checkpoint_id") == chosen else ""
        out.append(f"<tr{style}>{row}</tr>")
    out.append("</table></section>")
    return "\n".join(out)


def add_checkpoint_section(report: str | Path, choice: Mapping[str, Any]) -> None:
    """Insert the section into the HTML report at ``report``, before the end of its main content.

    Args:
        report: the HTML report file (rewritten in place: it is this step's own output, not an input).
        choice: the checkpoint choice document.
    """
    path = Path(report)
    page = path.read_text(encoding="utf-8")
    section = render_checkpoint_section(choice)
    marker = "</main>"
    page = page.replace(marker, section + "\n" + marker, 1) if marker in page else page + section
    path.write_text(page, encoding="utf-8")


def add_checkpoint_markdown(report: str | Path, choice: Mapping[str, Any]) -> None:
    """Append the section to the Markdown report at ``report``.

    Args:
        report: the Markdown report file (rewritten in place: it is this step's own output, not an input).
        choice: the checkpoint choice document.
    """
    from gemini_sft.evaluation.markdown_report import render_checkpoint_markdown

    path = Path(report)
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n"
    path.write_text(text + render_checkpoint_markdown(choice) + "\n", encoding="utf-8")
