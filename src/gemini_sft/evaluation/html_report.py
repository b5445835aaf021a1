"""The evaluation report as one self-contained HTML page with inline SVG charts.

The page loads nothing from anywhere (no scripts, fonts, style sheets or
images by URL), so it renders the same in the Vertex console, a browser opened
from a run folder, or an email attachment. Every piece of example text is
HTML-escaped.
"""

from __future__ import annotations

import html
import math
from typing import Sequence

from gemini_sft.evaluation.metrics import BASE, CHAMPION, TUNED, ConfusionMatrix
from gemini_sft.evaluation.report_text import (
    METHOD_NOTES, METRIC_LABELS, OFFLINE_NOTICE, PRIMARY_METRIC, ROLE_COLOURS, ROLE_LABELS, SAMPLE_KINDS,
    THINKING_HEADER, THINKING_NOTE, WORST_REGRESSIONS, aligned_confusion, ci, confidence_pct, error_kinds, fallback_row,
    fallback_sentences, headline, metric_names, num, pct, sample_answers, significance, thinking_rows,
    worst_regressions,
)
from gemini_sft.evaluation.result import EvaluationResult, ExampleRecord

# Confusion matrices share a row up to this many categories; larger ones get the card's full width.
MATRICES_SIDE_BY_SIDE_UP_TO = 6

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0;
  background: #f6f7f9; color: #1f2328; line-height: 1.45; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; }
.sub { color: #57606a; margin: 0 0 16px; }
section { background: #fff; border: 1px solid #d8dee4; border-radius: 10px; padding: 18px 20px; margin: 16px 0; }
.banner { background: #fff4ce; border: 2px solid #bf8700; border-radius: 10px; padding: 14px 18px; margin: 12px 0 4px;
  font-size: 16px; }
.headline { font-size: 17px; font-weight: 600; }
.headline.better { color: #1a7f37; } .headline.worse { color: #cf222e; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 6px 10px; border-bottom: 1px solid #eaeef2; text-align: right; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td, th { white-space: nowrap; }
table.left th, table.left td { text-align: left; white-space: normal; }
td.better { color: #1a7f37; font-weight: 600; } td.worse { color: #cf222e; font-weight: 600; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; word-break: break-all; }
.charts { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
.charts.stacked { grid-template-columns: minmax(0, 1fr); }
.chart h3 { font-size: 15px; margin: 0 0 6px; }
.chart svg { width: 100%; height: auto; }
.legend { font-size: 13px; color: #57606a; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin: 0 4px 0 10px; vertical-align: -1px; }
.case { border: 1px solid #d8dee4; border-radius: 8px; margin: 12px 0; overflow: hidden; }
.case-head { background: #f6f8fa; padding: 6px 12px; font-size: 13px; display: flex; justify-content: space-between; }
.case-head .diff { font-weight: 600; } .case-head .diff.worse { color: #cf222e; } .case-head .diff.better { color: #1a7f37; }
.kind { font-size: 15px; margin: 18px 0 0; } .kind span { font-weight: 400; color: #57606a; font-size: 13px; }
.prompt { padding: 8px 12px; border-bottom: 1px solid #eaeef2; }
.cols { display: grid; grid-template-columns: 1fr 1fr 1fr; }
.cols > div { padding: 8px 12px; border-right: 1px solid #eaeef2; min-width: 0; }
.cols > div:last-child { border-right: 0; }
.label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #57606a; margin-bottom: 4px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13px; max-height: 14em; overflow: auto; }
.score { font-size: 12px; color: #57606a; margin-top: 4px; }
.error { color: #cf222e; }
table.cm { table-layout: fixed; }
.cm td, .cm th { text-align: center; white-space: normal; overflow-wrap: anywhere; padding: 4px 3px; font-size: 13px; }
.cm th:first-child { width: 22%; text-align: left; }
ul.notes { padding-left: 20px; margin: 0; font-size: 14px; color: #3d444d; }
@media (max-width: 800px) { .charts, .cols { grid-template-columns: minmax(0, 1fr); } }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _svg_histogram(series: dict[str, Sequence[float]], bins: int = 10, width: int = 520, height: int = 260) -> str:
    """Side-by-side bars of each series' share of examples per score bin on [0, 1]."""
    left, right, top, bottom = 44, 10, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    shares: dict[str, list[float]] = {}
    for role, values in series.items():
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, max(0, int(v * bins)))] += 1
        total = max(1, len(values))
        shares[role] = [c / total for c in counts]
    peak = max([s for role_shares in shares.values() for s in role_shares] + [0.01])
    # a round top so that the quarter gridlines land on round percentages
    y_max = min(1.0, math.ceil(peak * 5) / 5) if peak > 0.2 else math.ceil(peak * 25) / 25
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="score distribution">']
    for i in range(5):
        frac = i / 4
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#57606a">'
                     f'{100 * y_max * frac:.0f}%</text>')
    group_w = plot_w / bins
    bar_w = (group_w - 6) / max(1, len(shares))
    for b in range(bins):
        for k, (role, role_shares) in enumerate(shares.items()):
            h = plot_h * min(1.0, role_shares[b] / y_max)
            x = left + b * group_w + 3 + k * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                f'fill="{ROLE_COLOURS[role]}"><title>{_e(ROLE_LABELS[role])} {b / bins:.1f}–{(b + 1) / bins:.1f}: '
                f'{100 * role_shares[b]:.1f}% of examples</title></rect>'
            )
    for b in range(bins + 1):
        x = left + b * group_w
        if b % 2 == 0:
            parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle" '
                         f'fill="#57606a">{b / bins:.1f}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#8c959f"/>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="12" text-anchor="middle" '
                 f'fill="#3d444d">{METRIC_LABELS[PRIMARY_METRIC]} per example</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_wins(result: EvaluationResult, width: int = 520, height: int = 200) -> str:
    """Stacked horizontal bars: share of examples where tuned wins, ties, loses against base."""
    left, right, top = 84, 14, 14
    row_h, gap = 36, 18
    plot_w = width - left - right
    colours = {"wins": "#1a7f37", "ties": "#afb8c1", "losses": "#cf222e"}
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="wins, ties and losses">']
    for i, name in enumerate(("rouge1", "rouge2", "rougeL")):
        y = top + i * (row_h + gap)
        counts = {k: int(result.metrics.get(f"{k}_{name}", 0)) for k in ("wins", "ties", "losses")}
        total = max(1, sum(counts.values()))
        parts.append(f'<text x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" font-size="12" text-anchor="end" '
                     f'fill="#1f2328">{METRIC_LABELS[name]}</text>')
        x = float(left)
        for kind, count in counts.items():
            w = plot_w * count / total
            if w <= 0:
                continue
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h}" fill="{colours[kind]}">'
                         f'<title>{kind}: {count}</title></rect>')
            if w >= 34:
                parts.append(f'<text x="{x + w / 2:.1f}" y="{y + row_h / 2 + 4:.1f}" font-size="12" '
                             f'text-anchor="middle" fill="#fff">{count}</text>')
            x += w
    legend_y = top + 3 * (row_h + gap) + 4
    x = float(left)
    for kind in ("wins", "ties", "losses"):
        parts.append(f'<rect x="{x:.1f}" y="{legend_y - 9}" width="11" height="11" fill="{colours[kind]}"/>')
        parts.append(f'<text x="{x + 15:.1f}" y="{legend_y}" font-size="12" fill="#3d444d">tuned {kind}</text>')
        x += 110
    parts.append("</svg>")
    return "".join(parts)


def _svg_deltas(result: EvaluationResult, width: int = 1060) -> str:
    """A forest plot: tuned − base per metric with its confidence interval, around zero."""
    names = metric_names(result)
    left, right, top, row_h = 190, 30, 26, 30
    height = top + row_h * len(names) + 30
    plot_w = width - left - right
    values = []
    for name in names:
        for key in (f"delta_{name}", f"delta_{name}_ci_low", f"delta_{name}_ci_high"):
            v = result.metrics.get(key)
            if v is not None and math.isfinite(v):
                values.append(v)
    largest = max([abs(v) for v in values] + [0.0]) * 1.1
    span = next((s for s in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0) if s >= largest), largest)

    def sx(v: float) -> float:
        return left + plot_w * (v + span) / (2 * span)

    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="differences with confidence intervals">']
    for frac in (-1, -0.5, 0, 0.5, 1):
        v = frac * span
        x = sx(v)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 8}" y2="{height - 24}" '
                     f'stroke="{"#57606a" if frac == 0 else "#eaeef2"}" '
                     f'stroke-dasharray="{"" if frac == 0 else "3 3"}"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" font-size="11" text-anchor="middle" fill="#57606a">'
                     f'{v:+.2f}</text>')
    parts.append(f'<text x="{sx(span * 0.5):.1f}" y="{top - 12}" font-size="11" text-anchor="middle" '
                 f'fill="#1a7f37">tuned better →</text>')
    parts.append(f'<text x="{sx(-span * 0.5):.1f}" y="{top - 12}" font-size="11" text-anchor="middle" '
                 f'fill="#cf222e">← base better</text>')
    for i, name in enumerate(names):
        y = top + i * row_h + row_h / 2
        parts.append(f'<text x="{left - 12}" y="{y + 4:.1f}" font-size="12" text-anchor="end" fill="#1f2328">'
                     f'{METRIC_LABELS[name]}</text>')
        delta = result.metrics.get(f"delta_{name}")
        low, high = result.metrics.get(f"delta_{name}_ci_low"), result.metrics.get(f"delta_{name}_ci_high")
        verdict = significance(result, f"delta_{name}")
        colour = {"better": "#1a7f37", "worse": "#cf222e"}.get(verdict, "#57606a")
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            parts.append(f'<line x1="{sx(low):.1f}" x2="{sx(high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{colour}" stroke-width="3" stroke-linecap="round"/>')
        if delta is not None and math.isfinite(delta):
            parts.append(f'<circle cx="{sx(delta):.1f}" cy="{y:.1f}" r="6" fill="{colour}">'
                         f'<title>{METRIC_LABELS[name]}: {delta:+.3f} {ci(result, f"delta_{name}")}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _confusion_html(matrix: ConfusionMatrix) -> str:
    peak = max([v for row in matrix.matrix for v in row] + [1])
    cells = ["<table class=\"cm\"><tr><th>reference \\ predicted</th>"]
    cells += [f"<th>{_e(c)}</th>" for c in matrix.categories]
    cells.append("</tr>")
    for i, (category, row) in enumerate(zip(matrix.categories, matrix.matrix)):
        cells.append(f"<tr><th>{_e(category)}</th>")
        for j, value in enumerate(row):
            alpha = 0.08 + 0.72 * value / peak if value else 0.0
            hue = "26,127,55" if i == j else "207,34,46"
            style = f' style="background: rgba({hue},{alpha:.2f})"' if value else ""
            cells.append(f"<td{style}>{value}</td>")
        cells.append("</tr>")
    cells.append("</table>")
    return "".join(cells)


def _answer_html(record: ExampleRecord, role: str) -> str:
    answer = record.answers[role]
    scores = record.scores.get(role)
    if not answer.ok:
        body = f'<div class="text error">call failed after {answer.attempts} attempts: {_e(answer.error)}</div>'
    else:
        body = f'<div class="text">{_e(answer.text or "")}</div>'
        if scores is not None:
            body += (f'<div class="score">ROUGE-L {scores.rougeL:.3f} · ROUGE-1 {scores.rouge1:.3f}'
                     + (f" · label {_e(scores.label)}" if scores.label is not None else "") + "</div>")
    return f'<div><div class="label">{_e(ROLE_LABELS[role])}</div>{body}</div>'


def _case_html(record: ExampleRecord, diff: float, roles: list[str]) -> str:
    """One example: prompt, then reference and each model's answer side by side."""
    trend = "better" if diff > 0 else "worse" if diff < 0 else ""
    columns = len(roles) + 1
    return (
        f'<div class="case"><div class="case-head"><span>example <code>{_e(record.example_id)}</code></span>'
        f'<span class="diff {trend}">ROUGE-L tuned − base {diff:+.3f}</span></div>'
        f'<div class="prompt"><div class="label">Prompt</div><div class="text">{_e(record.prompt)}</div></div>'
        f'<div class="cols" style="grid-template-columns: repeat({columns}, minmax(0, 1fr))">'
        f'<div><div class="label">Reference</div><div class="text">{_e(record.reference)}</div></div>'
        + "".join(_answer_html(record, role) for role in roles) + "</div></div>"
    )


def _samples_html(result: EvaluationResult, roles: list[str]) -> str:
    samples = sample_answers(result)
    out = [f"<section><h2>Sample answers</h2><p class=\"sub\">Answers side by side, chosen by tuned − base "
           f"{METRIC_LABELS[PRIMARY_METRIC]} among the examples both models answered.</p>"]
    if not samples:
        out.append("<p>No example was answered by both models.</p>")
    for kind, description in SAMPLE_KINDS.items():
        picked = [sample for sample in samples if sample.kind == kind]
        if picked:
            out.append(f'<h3 class="kind">{_e(kind.capitalize())} <span>{_e(description)}</span></h3>')
            out += [_case_html(sample.record, sample.diff, roles) for sample in picked]
    out.append("</section>")
    return "".join(out)


def render_html(result: EvaluationResult) -> str:
    """The evaluation report as one self-contained HTML page (inline CSS and SVG, no external resources)."""
    m = result.metrics
    roles = result.roles
    has_champion = CHAMPION in roles
    verdict = significance(result, f"delta_{PRIMARY_METRIC}")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Evaluation: tuned vs base</title>",
        f"<style>{_CSS}</style></head><body><main>",
    ]
    if result.offline_standin:
        out.append(f'<div class="banner"><strong>Offline stand-in.</strong> {_e(OFFLINE_NOTICE)}</div>')
    out.append("<h1>Evaluation: tuned vs base</h1>")
    out.append(f'<p class="sub">{len(result.records)} holdout examples'
               + (f", {result.skipped_examples} skipped (no reference turn)" if result.skipped_examples else "")
               + f" · {result.stats.calls} calls · temperature 0</p>")
    out.append(f'<p class="headline {verdict.split()[0]}">{_e(headline(result))}</p>')

    out.append("<section><h2>Models</h2><table class=\"left\"><tr><th>role</th><th>model or endpoint</th><th>model versions</th>"
               "<th>error rate</th></tr>")
    for role in roles:
        versions = ", ".join(result.model_versions.get(role, [])) or "n/a"
        out.append(f"<tr><td><span class=\"swatch\" style=\"background:{ROLE_COLOURS[role]}\"></span>"
                   f"{_e(ROLE_LABELS[role])}</td><td><code>{_e(result.models[role])}</code></td>"
                   f"<td><code>{_e(versions)}</code></td><td>{pct(m[f'{role}_error_rate'])}</td></tr>")
    out.append("</table></section>")

    out.append(f"<section><h2>Summary</h2><table><tr><th>metric</th><th>base</th><th>tuned</th>"
               f"<th>tuned − base</th><th>{confidence_pct(result)} CI</th>")
    if has_champion:
        out.append("<th>champion</th><th>tuned − champion</th><th>CI vs champion</th>")
    out.append("</tr>")
    for name in metric_names(result):
        cls = {"better": "better", "worse": "worse"}.get(significance(result, f"delta_{name}"), "")
        out.append(f"<tr><td>{METRIC_LABELS[name]}</td><td>{num(m.get(f'base_{name}'))}</td>"
                   f"<td>{num(m.get(f'tuned_{name}'))}</td>"
                   f"<td class=\"{cls}\">{num(m.get(f'delta_{name}'), signed=True)}</td>"
                   f"<td>{ci(result, f'delta_{name}')}</td>")
        if has_champion:
            champion_cls = {"better": "better", "worse": "worse"}.get(
                significance(result, f"delta_vs_champion_{name}"), ""
            )
            out.append(f"<td>{num(m.get(f'champion_{name}'))}</td>"
                       f"<td class=\"{champion_cls}\">{num(m.get(f'delta_vs_champion_{name}'), signed=True)}</td>"
                       f"<td>{ci(result, f'delta_vs_champion_{name}')}</td>")
        out.append("</tr>")
    label, base_value, fallback_value, fallback_delta, fallback_ci, fallback_verdict = fallback_row(result)
    fallback_cls = {"better": "better", "worse": "worse"}.get(fallback_verdict, "")
    out.append(f"<tr class=\"fallback\"><td>{_e(label)}</td><td>{base_value}</td><td>{fallback_value}</td>"
               f"<td class=\"{fallback_cls}\">{fallback_delta}</td><td>{_e(fallback_ci)}</td>"
               + "<td></td>" * (3 * has_champion) + "</tr>")
    out.append("</table>")
    out.append(f'<div class="chart" style="margin-top:14px"><h3>Tuned − base with {confidence_pct(result)} '
               f"confidence intervals</h3>{_svg_deltas(result)}</div></section>")

    legend = "".join(f'<span class="swatch" style="background:{ROLE_COLOURS[r]}"></span>{_e(ROLE_LABELS[r])}'
                     for r in roles)
    series = {role: [r.scores[role].rougeL for r in result.records if r.scores.get(role) is not None] for role in roles}
    out.append('<section><h2>Per-example scores</h2><div class="charts">')
    out.append(f'<div class="chart"><h3>Distribution of {METRIC_LABELS[PRIMARY_METRIC]} (share of answered '
               f'examples)</h3><div class="legend">{legend}</div>{_svg_histogram(series)}</div>')
    out.append(f'<div class="chart"><h3>Wins, ties and losses: tuned vs base per example</h3>'
               f"{_svg_wins(result)}</div>")
    out.append("</div></section>")

    out.append("<section><h2>Errors and answer lengths</h2><table><tr><th>role</th><th>answered</th>"
               "<th>failed calls</th><th>error rate</th><th>failure kinds</th><th>cut at max tokens</th>"
               "<th>mean chars</th>"
               "<th>median chars</th><th>p95 chars</th></tr>")
    for role in roles:
        kinds = ", ".join(f"{k} × {c}" for k, c in error_kinds(result, role).most_common()) or "—"
        out.append(f"<tr><td>{_e(ROLE_LABELS[role])}</td><td>{int(m[f'{role}_answered'])}</td>"
                   f"<td>{int(m[f'{role}_errors'])}</td><td>{pct(m[f'{role}_error_rate'])}</td><td>{_e(kinds)}</td>"
                   f"<td>{pct(m.get(f'{role}_max_tokens_rate'))}</td>"
                   f"<td>{num(m[f'{role}_response_chars_mean'], 0)}</td>"
                   f"<td>{num(m[f'{role}_response_chars_median'], 0)}</td>"
                   f"<td>{num(m[f'{role}_response_chars_p95'], 0)}</td></tr>")
    out.append(f"<tr><td>Reference</td><td colspan=\"5\"></td><td>{num(m.get('reference_chars_mean'), 0)}</td>"
               "<td></td><td></td></tr></table></section>")

    out.append("<section><h2>Thinking and cost</h2><table><tr>"
               + "".join(f"<th>{_e(h)}</th>" for h in THINKING_HEADER) + "</tr>")
    out += ["<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in thinking_rows(result)]
    out.append(f"</table><p class=\"sub\">{_e(THINKING_NOTE.format(setting=result.settings.thinking))}</p></section>")
    out.append("<section><h2>Tuned with fallback</h2><ul class=\"notes\">"
               + "".join(f"<li>{_e(sentence)}</li>" for sentence in fallback_sentences(result)) + "</ul></section>")

    if result.settings.label_pattern and result.confusion:
        matrices = aligned_confusion(result)
        size = max(len(matrix.categories) for matrix in matrices.values())
        layout = "charts" if size <= MATRICES_SIDE_BY_SIDE_UP_TO else "charts stacked"
        out.append(f"<section><h2>Labels</h2><p>Pattern <code>{_e(result.settings.label_pattern)}</code>; "
                   f"{int(m.get('n_label_examples', 0))} examples with a reference label, "
                   f"{len(result.label_classes)} classes. Rows: reference label; columns: label found in the "
                   f"answer (“(other)”: none or not a reference class).</p><div class=\"{layout}\">")
        for role in roles:
            if role in matrices:
                out.append(f'<div class="chart"><h3>{_e(ROLE_LABELS[role])}: accuracy '
                           f"{num(m.get(f'{role}_label_accuracy'))}, macro-F1 {num(m.get(f'{role}_label_macro_f1'))}"
                           f"</h3>{_confusion_html(matrices[role])}</div>")
        out.append("</div></section>")

    shown = [BASE, TUNED] + ([CHAMPION] if has_champion else [])
    out.append(_samples_html(result, shown))

    worst = worst_regressions(result)
    out.append(f"<section><h2>Worst regressions</h2><p class=\"sub\">Examples where the tuned model's "
               f"{METRIC_LABELS[PRIMARY_METRIC]} fell furthest below the base model's (up to {WORST_REGRESSIONS}).</p>")
    if not worst:
        out.append("<p>No example where the tuned model scored below the base model.</p>")
    out += [_case_html(record, diff, shown) for diff, record in worst]
    out.append("</section>")

    out.append('<section><h2>Method</h2><ul class="notes">')
    out += [f"<li>{_e(note)}</li>" for note in METHOD_NOTES]
    out.append(f"<li>Confidence intervals: {result.settings.bootstrap_samples} paired bootstrap replicates "
               f"(seed {result.settings.seed}), percentile method.</li></ul></section>")
    out.append("</main></body></html>")
    return "\n".join(out)
