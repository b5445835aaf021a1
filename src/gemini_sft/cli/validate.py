"""``gemini-sft validate PATH [VALIDATION_PATH]``: check tuning data the way Vertex will, without KFP.

Exit codes: 0 valid (and within the budget when one is given), 1 invalid or
over budget, 2 usage error (missing file, unknown model, bad option).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, TextIO

from gemini_sft.model_catalog import DEFAULT_BASE_MODEL
from gemini_sft.validate import DEFAULT_MAX_API_EXAMPLES

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

# Progress bars are shown for files at least this large when stderr is a terminal,
# and for files at least PROGRESS_ALWAYS_BYTES large in any case (long runs in logs).
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
PROGRESS_ALWAYS_BYTES = 256 * 1024 * 1024
ERRORS_SHOWN_PER_CODE = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` sub-command."""
    parser = subparsers.add_parser(
        "validate",
        help="check a Gemini tuning file against Vertex's rules and estimate the tuning cost",
        description=(
            "Check every line of a Gemini tuning JSONL file (and optionally a validation file) against the "
            "rules Vertex applies, count tokens (countTokens API with --project, else an offline estimate) and "
            "estimate the tuning cost. Exit code 0: valid; 1: invalid or over --max-budget-usd; 2: usage error."
        ),
    )
    parser.add_argument("path", type=Path, help="training file (JSONL, one Gemini example per line)")
    parser.add_argument(
        "validation_path", type=Path, nargs="?", default=None,
        help="optional validation file (same rules, at most 5,000 examples)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--model", default=DEFAULT_BASE_MODEL, help=f"base model to tune ({DEFAULT_BASE_MODEL})")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, for the cost estimate (3)")
    parser.add_argument(
        "--price-per-million-usd", type=float, default=None,
        help="price per million training tokens (default: the catalogue price of --model)",
    )
    parser.add_argument(
        "--max-budget-usd", type=float, default=None,
        help="fail (exit 1) when the estimated cost is above this many USD",
    )
    parser.add_argument("--project", default="", help="Google Cloud project: count tokens with the countTokens API")
    parser.add_argument("--region", default="us-central1", help="Vertex region for countTokens (us-central1)")
    parser.add_argument(
        "--api-endpoint", default="",
        help="Vertex-compatible API endpoint (e.g. the offline stand-in); default $VERTEX_API_ENDPOINT or Vertex",
    )
    parser.add_argument(
        "--max-api-examples", type=int, default=DEFAULT_MAX_API_EXAMPLES,
        help=f"count tokens with the API only up to this many examples ({DEFAULT_MAX_API_EXAMPLES:,})",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: automatic)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.set_defaults(handler=_validate)


def _progress_bar(path: Path, enabled: bool) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A progress callback drawing a tqdm bar on stderr, and a function closing it."""
    size = path.stat().st_size
    interactive = sys.stderr.isatty()
    if not enabled or size < PROGRESS_MIN_BYTES or not (interactive or size >= PROGRESS_ALWAYS_BYTES):
        return None, lambda: None
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: validation may fork worker processes
    bar = tqdm(
        total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=f"validating {path.name}",
        file=sys.stderr, mininterval=0.5 if interactive else 10.0, leave=False,
    )

    def update(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return update, bar.close


def _print_report(report: Any, out: TextIO) -> None:
    """A readable summary table, then the first errors and warnings grouped by code with line numbers."""
    from gemini_sft.validate import ERROR_CODES, WARNING_CODES

    rows = report.summary_rows()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}", file=out)
    for title, issues, counts, meanings in (
        ("Errors", report.errors, report.error_counts, ERROR_CODES),
        ("Warnings", report.warnings, report.warning_counts, WARNING_CODES),
    ):
        if not counts:
            continue
        print(f"\n{title} ({sum(counts.values()):,}), by code:", file=out)
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            print(f"  {code} ({count:,}): {meanings.get(code, code)}", file=out)
            shown = [issue for issue in issues if issue.code == code][:ERRORS_SHOWN_PER_CODE]
            for issue in shown:
                where = f"line {issue.line}" if issue.line is not None else "file"
                print(f"    {where}: {issue.message}", file=out)
            if count > len(shown):
                print(f"    ... and {count - len(shown):,} more", file=out)
    if report.token_source == "offline_estimate":
        print("\n  Token counts are offline estimates; pass --project to count them with the countTokens API.", file=out)


def _validate(args: argparse.Namespace) -> int:
    from gemini_sft.cost import check_budget
    from gemini_sft.errors import BudgetExceededError, ConfigError
    from gemini_sft.validate import ValidationConfig, validate_dataset
    from gemini_sft.vertex_client import ApiTokenCounter, VertexSettings

    paths = [args.path] + ([args.validation_path] if args.validation_path is not None else [])
    for path in paths:
        if not path.is_file():
            print(f"gemini-sft validate: {path}: no such file", file=sys.stderr)
            return EXIT_USAGE
    if args.max_budget_usd is not None and args.max_budget_usd < 0:
        raise ConfigError(f"--max-budget-usd must be >= 0, got {args.max_budget_usd}")
    config = ValidationConfig(
        model=args.model,
        epochs=args.epochs,
        price_per_million_tokens_usd=args.price_per_million_usd,
        workers=args.workers,
        max_api_examples=args.max_api_examples,
    )
    token_counter = None
    if args.project:
        settings = VertexSettings.create(args.project, args.region, args.api_endpoint or None)
        token_counter = ApiTokenCounter(settings, args.model)
    elif args.api_endpoint:
        raise ConfigError("--api-endpoint needs --project (the project the countTokens requests are made for)")

    reports = []
    for path, split in zip(paths, ("training", "validation")):
        progress, close = _progress_bar(path, enabled=not args.no_progress)
        try:
            reports.append(validate_dataset(path, replace(config, split=split), token_counter, progress))
        finally:
            close()
    train_report = reports[0]
    valid = all(report.valid for report in reports)
    over_budget = ""
    try:
        check_budget(train_report.estimated_cost_usd, args.max_budget_usd)
    except BudgetExceededError as exc:
        over_budget = str(exc)

    if args.json:
        document = train_report.to_json_dict()
        if len(reports) > 1:
            document["valid"] = valid
            document["validation"] = reports[1].to_json_dict()
        print(json.dumps(document, indent=2))
    else:
        for report in reports:
            print(f"Validation of {report.path} ({report.split})")
            _print_report(report, sys.stdout)
            print()
        if not valid:
            print("INVALID: fix the errors above before tuning.")
        else:
            print("VALID" + (", but the estimated cost is over the budget." if over_budget else ""))
    if over_budget:
        print(f"gemini-sft validate: {over_budget}", file=sys.stderr)
    return EXIT_VALID if valid and not over_budget else EXIT_INVALID
