"""The tune step's Markdown summary and the files of its outputs."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from gemini_sft.tune.outcome import TuningOutcome
from gemini_sft.tune.service import TERMINAL_STATES
from gemini_sft.tune.settings import TuningSettings

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


def render_summary(outcome: TuningOutcome, settings: TuningSettings) -> str:
    """A Markdown summary of the job: settings, durations, tokens, estimated vs actual cost, links."""
    request = outcome.request
    lines = [
        "# Tuning job",
        "",
    ]
    if outcome.offline_standin:
        lines += ["> Made by the **offline stand-in** of the Vertex API, not by Gemini.", ""]
    lines += [
        f"- Job: [`{outcome.tuning_job}`]({outcome.console_url}) — {outcome.state}"
        + (" (resumed from an earlier attempt)" if outcome.resumed else ""),
        f"- Tuned model: `{outcome.tuned_model}` (version {outcome.model_version or 'n/a'})",
        f"- Endpoint: `{outcome.endpoint or 'n/a'}`",
        f"- Checkpoints: {len(outcome.checkpoints)}",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| base model | `{outcome.base_model}` |",
        f"| continuous tuning from | `{outcome.continuous_from or '-'}` |",
        f"| epochs | {settings.epochs} |",
        f"| adapter size | {settings.adapter_size or 'Vertex default'} |",
        f"| learning-rate multiplier | {settings.learning_rate_multiplier:g} |",
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
    return "\n".join(lines) + "\n"


def write_step_outputs(
    outcome: TuningOutcome, settings: TuningSettings, model_file: str | Path, summary_file: str | Path
) -> dict[str, Any]:
    """Write the tuned model's metadata as JSON and the Markdown summary; returns the metadata.

    Args:
        outcome: the succeeded job.
        settings: the stage's settings (shown in the summary).
        model_file: where the tuned model artifact's JSON goes.
        summary_file: where the Markdown summary goes.
    """
    metadata = outcome.artifact_metadata()
    for path, text in (
        (Path(model_file), json.dumps(metadata, indent=2, sort_keys=True)),
        (Path(summary_file), render_summary(outcome, settings)),
    ):
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
