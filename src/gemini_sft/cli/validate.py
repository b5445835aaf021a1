"""``gemini-sft validate PATH [VALIDATION_PATH]``: check tuning data the way Vertex will, without KFP.

Check every line of a Gemini tuning JSONL file (and optionally a validation file) against the
rules Vertex applies, count tokens (countTokens API with --project, else an offline estimate) and
estimate the cost: the tuning job, the checkpoint selection (every checkpoint answers the validation
sample) and, with --holdout, the holdout evaluation. Exit code 0: valid; 1: invalid or over --max-budget-usd; 2: usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from gemini_sft.cli.common import add_command
from gemini_sft.contracts import add_cli_options, record_from_cli
from gemini_sft.validate import DEFAULT_MAX_API_EXAMPLES, ValidationSettings

# 0: valid (and within the budget when one is given); 1: invalid or over budget; 2: usage error (a missing
# file, a directory, a binary or non-UTF-8 file, an unknown model, a bad option).
EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

# Progress bars are shown for files at least this large when stderr is a terminal,
# and for files at least PROGRESS_ALWAYS_BYTES large in any case (long runs in logs).
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
PROGRESS_ALWAYS_BYTES = 256 * 1024 * 1024
# The option names this command had before its options came from ValidationSettings; still accepted.
CLI_ALIASES: dict[str, tuple[str, type]] = {
    "--model": ("base_model", str),
    "--region": ("location", str),
    "--price-per-million-usd": ("price_per_million_tokens_usd", float),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` sub-command."""
    parser = add_command(subparsers, "validate", _validate,
                         "check a Gemini tuning file against Vertex's rules and estimate the tuning cost", __doc__)
    parser.add_argument("path", type=Path, help="training file (JSONL, one Gemini example per line)")
    parser.add_argument(
        "validation_path", type=Path, nargs="?", default=None,
        help="optional validation file (same rules, at most 5,000 examples)",
    )
    parser.add_argument(
        "--holdout", type=Path, default=None, metavar="PATH",
        help="the holdout split: its evaluation calls are estimated and bound the checkpoint-selection sample",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    add_cli_options(parser, ValidationSettings)
    for alias, (dest, value_type) in CLI_ALIASES.items():
        parser.add_argument(alias, dest=dest, type=value_type, default=argparse.SUPPRESS,
                            help=f"same as --{dest.replace('_', '-')}")
    # The CLI has no budget unless one is given (the pipeline's max_budget_usd defaults to 100).
    parser.add_argument(
        "--max-budget-usd", dest="budget_usd", metavar="USD", type=float, default=None,
        help="fail (exit 1) when the estimated total cost is above this many USD (default: no budget)",
    )
    parser.add_argument(
        "--max-api-examples", type=int, default=DEFAULT_MAX_API_EXAMPLES,
        help=f"count tokens with the API only up to this many examples ({DEFAULT_MAX_API_EXAMPLES:,})",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: automatic)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")


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


def _validate(args: argparse.Namespace) -> int:
    from gemini_sft.errors import ConfigError
    from gemini_sft.validate import input_problem, validate_splits

    paths = [args.path] + [p for p in (args.validation_path, args.holdout) if p is not None]
    for path in paths:
        problem = input_problem(path)
        if problem is not None:
            print(f"gemini-sft validate: {path}: {problem}", file=sys.stderr)
            return EXIT_USAGE
    if args.budget_usd is not None and args.budget_usd < 0:
        raise ConfigError(f"--max-budget-usd must be >= 0, got {args.budget_usd}")
    settings = record_from_cli(ValidationSettings, args)
    if args.api_endpoint and not args.project:
        raise ConfigError("--api-endpoint needs --project (the project the countTokens requests are made for)")

    outcome = validate_splits(
        args.path, args.validation_path, settings, args.budget_usd, holdout=args.holdout, workers=args.workers,
        max_api_examples=args.max_api_examples, progress=lambda path: _progress_bar(path, not args.no_progress),
    )
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2))
    else:
        print(outcome.to_text(), end="")
    if not outcome.within_budget:
        print(f"gemini-sft validate: {outcome.over_budget_message()}", file=sys.stderr)
    return EXIT_VALID if outcome.valid and outcome.within_budget else EXIT_INVALID
