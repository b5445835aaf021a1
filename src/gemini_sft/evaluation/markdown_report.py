"""The evaluation report as Markdown: every piece of example text made inert (no links, images or HTML)."""

from __future__ import annotations

import re
from typing import Any, Mapping

from gemini_sft.evaluation.metrics import BASE, CHAMPION, TUNED
from gemini_sft.evaluation.report_text import (
    METHOD_NOTES,
    METRIC_LABELS,
    OFFLINE_NOTICE,
    PRIMARY_METRIC,
    ROLE_LABELS,
    SAMPLE_KINDS,
    THINKING_HEADER,
    THINKING_NOTE,
    aligned_confusion,
    ci,
    confidence_pct,
    error_kinds,
    fallback_row,
    fallback_sentences,
    headline,
    metric_names,
    num,
    pct,
    sample_answers,
    significance,
    thinking_rows,
    worst_regressions,
)
from gemini_sft.evaluation.result import EvaluationResult

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def _md_cell(text: str, limit: int = 160) -> str:
    """Text made inert for Markdown: one line, shortened, every Markdown/HTML special character escaped.

    Example text must not become a link, an image that loads from the network, HTML or a table break.
    """
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def _md_code(text: str) -> str:
    """A Markdown code span safe inside a table cell."""
    return "`" + " ".join(text.split()).replace("`", "'").replace("|", "\\|") + "`"


def _samples_markdown(result: EvaluationResult) -> list[str]:
    roles = [role for role in (BASE, TUNED, CHAMPION) if role in result.roles]
    lines = ["", "## Sample answers", "",
             f"Chosen by tuned − base {METRIC_LABELS[PRIMARY_METRIC]}: "
             + "; ".join(f"{kind}: {description}" for kind, description in SAMPLE_KINDS.items()) + ".", ""]
    samples = sample_answers(result)
    if not samples:
        return lines + ["No example was answered by both models."]
    lines.append("| kind | example | Δ | prompt | reference | " + " | ".join(r for r in roles) + " |")
    lines.append("|---" * (5 + len(roles)) + "|")
    for sample in samples:
        record = sample.record
        answers = " | ".join(_md_cell(record.answers[role].text or f"(failed: {record.answers[role].error})")
                             for role in roles)
        lines.append(f"| {sample.kind} | {_md_cell(record.example_id, 40)} | {sample.diff:+.3f} "
                     f"| {_md_cell(record.prompt)} | {_md_cell(record.reference)} | {answers} |")
    return lines


def render_markdown(result: EvaluationResult) -> str:
    """The evaluation report as Markdown (summary with CIs, errors, lengths, labels, worst regressions)."""
    m = result.metrics
    roles = result.roles
    has_champion = CHAMPION in roles
    lines: list[str] = ["# Evaluation: tuned vs base", ""]
    if result.offline_standin:
        lines += [f"> **Offline stand-in.** {OFFLINE_NOTICE}", ""]
    lines += [headline(result), ""]
    lines += ["| model | role | versions |", "|---|---|---|"]
    for role in roles:
        versions = ", ".join(result.model_versions.get(role, [])) or "n/a"
        lines.append(f"| {_md_code(result.models[role])} | {ROLE_LABELS[role]} | {_md_cell(versions)} |")
    lines += ["", "## Summary", ""]
    header = f"| metric | base | tuned | tuned − base | {confidence_pct(result)} CI | verdict |"
    sep = "|---|---|---|---|---|---|"
    if has_champion:
        header += " champion | tuned − champion | CI vs champion |"
        sep += "---|---|---|"
    lines += [header, sep]
    for name in metric_names(result):
        row = (
            f"| {METRIC_LABELS[name]} | {num(m.get(f'base_{name}'))} | {num(m.get(f'tuned_{name}'))} "
            f"| {num(m.get(f'delta_{name}'), signed=True)} | {ci(result, f'delta_{name}')} "
            f"| {significance(result, f'delta_{name}')} |"
        )
        if has_champion:
            row += (
                f" {num(m.get(f'champion_{name}'))} | {num(m.get(f'delta_vs_champion_{name}'), signed=True)} "
                f"| {ci(result, f'delta_vs_champion_{name}')} |"
            )
        lines.append(row)
    # our own labels and numbers only: no escaping needed
    lines.append("| " + " | ".join(fallback_row(result)) + " |" + " | | |" * has_champion)
    lines += ["", "## Wins, ties and losses (tuned vs base, per example)", ""]
    lines += ["| metric | wins | ties | losses |", "|---|---|---|---|"]
    for name in ("rouge1", "rouge2", "rougeL"):
        lines.append(
            f"| {METRIC_LABELS[name]} | {int(m[f'wins_{name}'])} | {int(m[f'ties_{name}'])} | {int(m[f'losses_{name}'])} |"
        )
    lines += ["", "## Errors and answer lengths", ""]
    lines += ["| role | answered | failed calls | error rate | cut at max tokens | mean chars | median chars | p95 chars |",
              "|---|---|---|---|---|---|---|---|"]
    for role in roles:
        lines.append(
            f"| {ROLE_LABELS[role]} | {int(m[f'{role}_answered'])} | {int(m[f'{role}_errors'])} "
            f"| {pct(m[f'{role}_error_rate'])} | {pct(m.get(f'{role}_max_tokens_rate'))} "
            f"| {num(m[f'{role}_response_chars_mean'], 0)} "
            f"| {num(m[f'{role}_response_chars_median'], 0)} | {num(m[f'{role}_response_chars_p95'], 0)} |"
        )
    lines.append(f"\nReferences: mean {num(m.get('reference_chars_mean'), 0)} chars.")
    lines += ["", "## Thinking and cost", "", "| " + " | ".join(THINKING_HEADER) + " |",
              "|---" * len(THINKING_HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in thinking_rows(result)]
    lines += ["", THINKING_NOTE.format(setting=_md_code(result.settings.thinking))]
    lines += ["", "## Tuned with fallback", ""]
    lines += [f"- {sentence}" for sentence in fallback_sentences(result)]
    for role in roles:
        kinds = error_kinds(result, role)
        if kinds:
            listed = ", ".join(f"{kind} × {count}" for kind, count in kinds.most_common())
            lines.append(f"\n{ROLE_LABELS[role]} failures: {_md_cell(listed, 400)}.")
    if result.settings.label_pattern:
        lines += ["", "## Labels", "",
                  f"Pattern {_md_code(result.settings.label_pattern)}; {int(m.get('n_label_examples', 0))} examples "
                  f"with a reference label, {len(result.label_classes)} classes.", ""]
        matrices = aligned_confusion(result)
        for role in roles:
            matrix = matrices.get(role)
            if matrix is None:
                continue
            lines += [f"{ROLE_LABELS[role]} confusion matrix (rows: reference, columns: predicted):", ""]
            lines.append("| reference \\ predicted | " + " | ".join(_md_cell(c) for c in matrix.categories) + " |")
            lines.append("|---" * (len(matrix.categories) + 1) + "|")
            for category, row in zip(matrix.categories, matrix.matrix):
                lines.append(f"| {_md_cell(category)} | " + " | ".join(str(v) for v in row) + " |")
            lines.append("")
    lines += _samples_markdown(result)
    worst = worst_regressions(result)
    lines += ["", f"## Worst regressions ({METRIC_LABELS[PRIMARY_METRIC]}, tuned below base)", ""]
    if not worst:
        lines.append("No example where the tuned model scored below the base model.")
    else:
        lines += ["| example | Δ | prompt | reference | base | tuned |", "|---|---|---|---|---|---|"]
        for diff, record in worst:
            lines.append(
                f"| {_md_cell(record.example_id, 40)} | {diff:+.3f} | {_md_cell(record.prompt)} "
                f"| {_md_cell(record.reference)} | {_md_cell(record.answers[BASE].text or '')} "
                f"| {_md_cell(record.answers[TUNED].text or '')} |"
            )
    lines += ["", "## Method", ""]
    lines += [f"- {note}" for note in METHOD_NOTES]
    lines.append(
        f"- Confidence intervals: {result.settings.bootstrap_samples} paired bootstrap replicates "
        f"(seed {result.settings.seed}), percentile method."
    )
    lines.append("")
    return "\n".join(lines)




def _md_prose(text: str) -> str:
    """This project's own sentences (rule, reason, notes) on one line, with no HTML and no table break."""
    return " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _md_number(value: Any) -> str:
    """A checkpoint figure for the table: 4 decimals, "–" when unknown."""
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) else _md_cell(str(value), 60)


def render_checkpoint_markdown(choice: Mapping[str, Any]) -> str:
    """The report's "Which checkpoint" section as Markdown, from the checkpoint choice document.

    A table of the checkpoints (epoch, step, validation score, train and eval loss; the chosen one marked), the
    rule and why it chose that one, how many validation examples scored each checkpoint, the overfitting flag in
    words, and a note when there were no intermediate checkpoints or no loss curves.

    Args:
        choice: the choose-checkpoint step's document (``checkpoints``, ``chosen``, ``rule``, ``reason``,
            ``validation_examples``, ``sample_note``, ``overfitting``, ``tuning``).
    """
    checkpoints = list(choice.get("checkpoints") or [])
    chosen = (choice.get("chosen") or {}).get("checkpoint_id")
    metric = METRIC_LABELS.get(str(choice.get("primary_metric", "")), str(choice.get("primary_metric", "")))
    lines = ["", "## Which checkpoint", "",
             f"**Rule: {_md_prose(str(choice.get('rule', '')))}.** {_md_prose(str(choice.get('reason', '')))}",
             ""]
    examples = int(choice.get("validation_examples") or 0)
    if examples:
        note = str(choice.get("sample_note") or f"Each checkpoint answered the same {examples} validation examples.")
        lines += [f"{_md_prose(note)} The holdout above judged only the chosen checkpoint.", ""]
    if len(checkpoints) < 2:
        lines += ["No intermediate checkpoints: the job kept one checkpoint (or none was reported), so there was "
                  "nothing to choose and its default endpoint was evaluated.", ""]
    if checkpoints:
        lines += [f"| checkpoint | epoch | step | validation {metric} | train loss | eval loss | chosen |",
                  "|---|---|---|---|---|---|---|"]
        for checkpoint in checkpoints:
            cells = [_md_number(checkpoint.get(key)) for key in
                     ("checkpoint_id", "epoch", "step", "validation_score", "train_loss", "eval_loss")]
            mark = "**chosen**" if checkpoint.get("checkpoint_id") == chosen else ""
            lines.append("| " + " | ".join(cells) + f" | {mark} |")
        lines.append("")
    curves = (choice.get("tuning") or {}).get("loss_curves") or {}
    if not curves.get("train") and not curves.get("eval"):
        why = str(choice.get("loss_curves_note") or "the job reported none")
        lines += [f"No loss curves: {_md_prose(why).rstrip('.')}. The choice did not depend on them.", ""]
    verdict = choice.get("overfitting") or {}
    if verdict.get("message"):
        message = _md_prose(str(verdict["message"]))
        lines += [f"**{message}**" if verdict.get("overfitting") else message, ""]
    else:
        lines += ["Overfitting was not judged: the tune step reported no verdict.", ""]
    return "\n".join(lines)
