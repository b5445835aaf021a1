"""The tune step's Markdown summary and the files of its outputs.

The loss chart is an SVG inside an ``<img>`` with a ``data:`` URI: a Markdown
artifact is one file, so a chart linked beside it would have to be fetched
from Cloud Storage, which the console's viewer does not do for a ``gs://``
link. The same numbers follow in a table, which every Markdown viewer shows.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from gemini_sft.tune.curves import loss_chart_svg, svg_data_uri
from gemini_sft.tune.data_stats import TokenDistribution, TruncatedExample
from gemini_sft.tune.outcome import TuningOutcome
from gemini_sft.tune.sub_states import short_name
from gemini_sft.tune.service import TERMINAL_STATES
from gemini_sft.tune.settings import TuningSettings
from gemini_sft.tune.open_model_rules import hyper_parameter_rows

log = logging.getLogger(__name__)


def _duration(start: str, end: str) -> str:
    """``end - start`` of two ISO 8601 times as ``1h 02m 03s``, or ``n/a``."""
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return "n/a"
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _difference(actual: float | None, estimated: float) -> float | None:
    return None if actual is None or estimated <= 0 else actual - estimated


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


# At most this many truncated examples are listed in the summary (the artifact has them all).
MAX_LISTED_TRUNCATED = 20


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _distribution_row(name: str, value: TokenDistribution | None) -> str:
    if value is None:
        return f"| {name} | n/a | | | | | |"
    cells = [value.min, value.p5, value.median, value.mean, value.p95, value.max]
    return f"| {name} | " + " | ".join("n/a" if v is None else f"{v:,.0f}" for v in cells) + " |"


def _truncated_table(examples: tuple[TruncatedExample, ...], truncated_count: int) -> list[str]:
    """The truncated examples Vertex named: where each is (raw file and line, else the training split's) and the fix."""
    if not examples:
        return []
    listed = examples[:MAX_LISTED_TRUNCATED]
    lines = ["", "| example in train split | file | line | reason |", "|---|---|---|---|"]
    lines += [f"| {e.index} | `{e.source or 'n/a'}` | {e.line or 'n/a'} | {e.reason} |" for e in listed]
    if any(e.in_raw_file for e in listed):
        lines.append("\nLines are of the raw file the clean step read, counting every line (blank and rejected "
                     "ones too), as in its rejected rows.")
    else:
        lines.append("\nThe clean step's source lines were not given or do not describe this training file (a run "
                     "made before the clean step recorded them, or a training split given directly): lines are of "
                     "the training split file.")
    lines += ["", "How to fix:", ""] + [f"- {fix}" for fix in dict.fromkeys(e.fix for e in listed if e.fix)]
    if len(examples) > MAX_LISTED_TRUNCATED or truncated_count > len(examples):
        lines.append(f"\nListed {len(listed)} of {truncated_count:,}; Vertex names a sample only, the tuned model "
                     "artifact lists every one it named.")
    return lines


def _insight_sections(outcome: TuningOutcome) -> list[str]:
    """Sub-states, Vertex's data stats with truncated examples, loss curves and checkpoints."""
    lines = ["", "## Sub-states", ""]
    if outcome.sub_states:
        lines += ["| sub-state | began (UTC) | seconds observed |", "|---|---|---|"]
        lines += [f"| {short_name(s.sub_state)} | {s.began_at} | {s.seconds:.0f} |" for s in outcome.sub_states]
    else:
        lines.append("The job reported no sub-state while this step watched it.")
    stats = outcome.data_stats
    lines += ["", "## Training data as Vertex saw it", ""]
    if stats is None:
        lines.append("Vertex reported no data statistics.")
    else:
        truncated_count = stats.total_truncated_example_count or 0
        lines += [
            f"- Examples: {_count(stats.example_count)}; tuning steps: {_count(stats.tuning_step_count)}",
            f"- Truncated or dropped examples: {truncated_count:,}",
            "",
            "| tokens per example | min | p5 | median | mean | p95 | max |",
            "|---|---|---|---|---|---|---|",
            _distribution_row("input", stats.user_input_tokens),
            _distribution_row("output", stats.user_output_tokens),
            _distribution_row("messages", stats.messages_per_example),
        ]
        lines += _truncated_table(outcome.truncated_examples, truncated_count)
    lines += ["", "## Loss curves", ""]
    curves = outcome.loss_curves
    candidates = outcome.checkpoint_candidates()
    if curves.empty:
        lines.append(f"No loss curves: {curves.note}")
    else:
        steps = [c.step for c in candidates if c.step is not None]
        lines.append(f'<img alt="train and eval loss by step" src="{svg_data_uri(loss_chart_svg(curves, steps))}"/>')
        lines.append("")
    if outcome.overfitting is not None:
        lines += ["", f"**{outcome.overfitting.message}**"]
    lines += ["", "## Checkpoints", "", "| checkpoint | epoch | step | endpoint | train loss | eval loss |",
              "|---|---|---|---|---|---|"]
    for c in candidates:
        lines.append(f"| {c.checkpoint_id} | {c.epoch if c.epoch is not None else 'n/a'} | "
                     f"{c.step if c.step is not None else 'n/a'} | `{c.endpoint or 'n/a'}` | "
                     f"{_loss(c.train_loss)} | {_loss(c.eval_loss)} |")
    if len(candidates) <= 1:
        lines += ["", "One checkpoint only (intermediate checkpoints off, export_last_checkpoint_only): there is "
                  "no earlier checkpoint to fall back on."]
    return lines


def render_summary(outcome: TuningOutcome, settings: TuningSettings) -> str:
    """A Markdown summary of the job: settings, durations, tokens, estimated vs actual cost, links."""
    request = outcome.request
    lines = [
        "# Tuning job",
        "",
    ]
    if outcome.offline_standin:
        lines += ["> Made by the **offline stand-in** of the Vertex API, not by Gemini.", ""]
    for warning in outcome.wait_warnings:
        lines += [f"> **Warning:** {warning}", ""]
    lines += [
        f"- Job: [`{outcome.tuning_job}`]({outcome.console_url}) — {outcome.state}"
        + (" (resumed from an earlier attempt)" if outcome.resumed else ""),
        f"- Tuned model: `{outcome.tuned_model}` (version {outcome.model_version or 'n/a'})",
        f"- Endpoint: `{outcome.endpoint or 'n/a'}`" + (f" — {outcome.no_endpoint_reason}" if outcome.no_endpoint_reason
                                                         else ""),
        f"- Checkpoints: {len(outcome.checkpoints)}",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| base model | `{outcome.base_model}` |",
        f"| continuous tuning from | `{outcome.continuous_from or '-'}` |",
        f"| epochs | {settings.epochs} |",
        *hyper_parameter_rows(settings),
        f"| display name | {request.tuned_model_display_name if request else settings.display_name()} |",
        f"| validation dataset | {'yes' if request and request.validation_dataset_uri else 'no'} |",
        f"| CMEK key | `{settings.encryption_key or '-'}` |",
        f"| output URI | `{settings.output_uri or '-'}` |",
        f"| export last checkpoint only | {settings.export_last_checkpoint_only} |",
        f"| labels | {', '.join(f'`{k}={v}`' for k, v in sorted(settings.job_labels().items()))} |",
        "",
        "## Durations",
        "",
        "| state | seconds (observed by this step) |",
        "|---|---|",
    ]
    for state_name, seconds in outcome.state_durations.items():
        if state_name in TERMINAL_STATES:
            continue
        lines.append(f"| {state_name.removeprefix('JOB_STATE_')} | {seconds:.0f} |")
    lines += [
        "",
        f"Vertex times: created {outcome.create_time or 'n/a'}, started {outcome.start_time or 'n/a'}, "
        f"ended {outcome.end_time or 'n/a'}; queued {_duration(outcome.create_time, outcome.start_time)}, "
        f"trained {_duration(outcome.start_time, outcome.end_time)}.",
        "",
        "## Tokens and cost",
        "",
        "| | value |",
        "|---|---|",
        f"| epochs | {outcome.epochs} |",
        f"| billable training tokens (all epochs) | {_count(outcome.billable_tokens)} |",
        f"| totalBillableTokenCount reported by the job | {_count(outcome.reported_billable_tokens)} |",
        f"| price per 1M training tokens | ${outcome.price_per_million_tokens_usd:,.2f} |",
        f"| estimated cost (validate stage) | {_money(outcome.estimated_cost_usd)} |",
        f"| actual cost | {_money(outcome.actual_cost_usd)} |",
        f"| actual - estimated | {_money(_difference(outcome.actual_cost_usd, outcome.estimated_cost_usd))} |",
        "",
        "Actual cost = billable training tokens (dataset tokens x epochs) x list price per 1M tokens; "
        "list prices are not guaranteed and the invoice is authoritative.",
    ]
    lines += _insight_sections(outcome)
    return "\n".join(lines) + "\n"


def write_step_outputs(
    outcome: TuningOutcome,
    settings: TuningSettings,
    model_file: str | Path,
    summary_file: str | Path,
    curves_file: str | Path | None = None,
) -> dict[str, Any]:
    """Write the tuned model's metadata as JSON, the Markdown summary and the loss curves; returns the metadata.

    Args:
        outcome: the succeeded job.
        settings: the stage's settings (shown in the summary).
        model_file: where the tuned model artifact's JSON goes.
        summary_file: where the Markdown summary goes.
        curves_file: where the loss curves JSON goes (``{"train": [[step, value], ...], "eval": [...], ...}``);
            None writes none.
    """
    metadata = outcome.artifact_metadata()
    files = [
        (Path(model_file), json.dumps(metadata, indent=2, sort_keys=True)),
        (Path(summary_file), render_summary(outcome, settings)),
    ]
    if curves_file is not None:
        files.append((Path(curves_file), json.dumps(outcome.loss_curves.as_json(), indent=1)))
    for path, text in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    log.info(
        "tuned model ready: %d checkpoints, %s billable tokens, actual cost %s USD (estimated %.4f)",
        len(outcome.checkpoints),
        outcome.billable_tokens,
        "n/a" if outcome.actual_cost_usd is None else f"{outcome.actual_cost_usd:.4f}",
        outcome.estimated_cost_usd,
    )
    return metadata
