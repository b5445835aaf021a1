"""``gemini-sft evaluate``: compare two models (or endpoints) on a holdout file, outside the pipeline.

Have two models answer the prompts of a Gemini-format JSONL holdout file and compare them with
ROUGE, exact match and (with --label-pattern) label accuracy, with bootstrap confidence
intervals. The first --model is the baseline (reported as 'base'), the second the candidate
(reported as 'tuned'). Writes evaluation.json, predictions.jsonl, report.md and report.html.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from datetime import datetime, timezone
from pathlib import Path

from gemini_sft.cli.common import add_command
from gemini_sft.contracts import add_cli_options, record_from_cli
from gemini_sft.errors import ConfigError
from gemini_sft.evaluation.settings import EvaluationSettings

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
# The models come from --model (twice) and --champion, not from per-role options.
MODEL_FIELDS = ("base_model", "tuned_endpoint", "champion_endpoint")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    parser = add_command(subparsers, "evaluate", _evaluate, "compare two models or endpoints on a holdout file", __doc__)
    parser.add_argument("--holdout", type=Path, required=True, help="Gemini-format JSONL file of examples")
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="MODEL",
        help="model id (gemini-2.5-flash) or endpoint (projects/P/locations/L/endpoints/ID); give it twice",
    )
    parser.add_argument("--champion", default="", help="optional third model: the one now in production")
    parser.add_argument("--project", default=os.environ.get(PROJECT_ENV, ""), help=f"Google Cloud project (default ${PROJECT_ENV})")
    parser.add_argument("--region", default="us-central1", help="Vertex AI region (default us-central1)")
    parser.add_argument("--api-endpoint", default="", help="Vertex-compatible API endpoint (default $VERTEX_API_ENDPOINT, else Vertex)")
    parser.add_argument("--out", type=Path, help="output folder (default runs/evaluate-<UTC time>)")
    add_cli_options(parser, EvaluationSettings, skip=MODEL_FIELDS)
    # the short names of earlier releases
    parser.add_argument("--rpm", dest="requests_per_minute", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", dest="max_concurrency", type=int, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    # the budget-only option of earlier releases; --thinking takes a budget, a level or a named choice
    parser.add_argument("--thinking-budget", dest="thinking", type=str, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    parser.add_argument("--train", type=Path, default=None,
                        help="training split: its output contract is checked when scoring 'tuned with fallback'")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress line on stderr")


def _evaluate(args: argparse.Namespace) -> int:
    from gemini_sft.evaluation.output import write_outputs
    from gemini_sft.evaluation.progress import StderrProgress
    from gemini_sft.evaluation.report_text import headline
    from gemini_sft.evaluation.run import evaluate_holdout
    from gemini_sft.vertex_client import VertexSettings, quiet_http_logs

    if len(args.model) != 2:
        raise ConfigError(f"give --model exactly twice (baseline, then candidate); got {len(args.model)}")
    if args.requests_per_minute < 1 or args.max_concurrency < 1:
        raise ConfigError("--requests-per-minute and --max-concurrency must be at least 1")
    settings = dataclasses.replace(
        record_from_cli(EvaluationSettings, args),
        base_model=args.model[0], tuned_endpoint=args.model[1], champion_endpoint=args.champion,
    )
    quiet_http_logs()
    vertex = VertexSettings.create(args.project, args.region, args.api_endpoint or None)
    out = args.out or Path("runs") / ("evaluate-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
    result = evaluate_holdout(
        args.holdout, settings, vertex,
        progress=None if args.no_progress else StderrProgress(), train_path=args.train,
    )
    write_outputs(result, predictions=out / "predictions.jsonl", evaluation=out / "evaluation.json",
                  markdown=out / "report.md", html=out / "report.html")

    m = result.metrics
    if result.offline_standin:
        print("NOTE: answers were made by the offline stand-in, not by Gemini.")
    print(headline(result))
    for role in result.roles:
        print(
            f"  {role:8s} {result.models[role]}: ROUGE-L {m[f'{role}_rougeL']:.3f}, "
            f"error rate {100 * m[f'{role}_error_rate']:.1f}%"
        )
    print(f"Wrote {out / 'report.html'}, report.md, predictions.jsonl and evaluation.json in {out}")
    return 0
