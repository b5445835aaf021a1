"""``gemini-sft evaluate``: compare two models (or endpoints) on a holdout file, outside the pipeline."""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from pathlib import Path

from gemini_sft.errors import ConfigError

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare two models or endpoints on a holdout file",
        description=(
            "Have two models answer the prompts of a Gemini-format JSONL holdout file and compare them with "
            "ROUGE, exact match and (with --label-pattern) label accuracy, with bootstrap confidence "
            "intervals. The first --model is the baseline (reported as 'base'), the second the candidate "
            "(reported as 'tuned'). Writes evaluation.json, predictions.jsonl, report.md and report.html."
        ),
    )
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
    parser.add_argument("--label-pattern", default="", help=r"regex whose first group is the label, e.g. 'Category: (\w+)'")
    parser.add_argument("--out", type=Path, help="output folder (default runs/evaluate-<UTC time>)")
    parser.add_argument("--rpm", type=int, default=300, help="requests per minute, all models together (default 300)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight at once (default 8)")
    parser.add_argument("--max-output-tokens", type=int, default=1024, help="answer length cap (default 1024)")
    parser.add_argument(
        "--thinking-budget",
        type=int,
        default=None,
        help="thinking token budget for every model (0 = off; default: each model's own default)",
    )
    parser.add_argument("--bootstrap-samples", type=int, default=1000, help="bootstrap replicates for CIs (default 1000)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the bootstrap and backoff jitter (default 42)")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress line on stderr")
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from gemini_sft.evaluate import (
        EvaluationSettings,
        StderrProgress,
        load_holdout,
        run_evaluation,
        write_evaluation,
        write_predictions,
    )
    from gemini_sft.report import headline, render_html, render_markdown
    from gemini_sft.vertex_client import GenAIGenerator, VertexSettings, genai_client, quiet_http_logs

    if len(args.model) != 2:
        raise ConfigError(f"give --model exactly twice (baseline, then candidate); got {len(args.model)}")
    if args.rpm < 1 or args.concurrency < 1:
        raise ConfigError("--rpm and --concurrency must be at least 1")
    quiet_http_logs()
    settings = VertexSettings.create(args.project, args.region, args.api_endpoint or None)
    cases, skipped = load_holdout(args.holdout)
    out = args.out or Path("runs") / ("evaluate-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)

    models = {"base": args.model[0], "tuned": args.model[1]}
    if args.champion:
        models["champion"] = args.champion
    client = genai_client(settings, timeout_ms=120_000)
    generators = {
        role: GenAIGenerator(
            settings, model, max_output_tokens=args.max_output_tokens, thinking_budget=args.thinking_budget, client=client
        )
        for role, model in models.items()
    }
    result = run_evaluation(
        cases,
        generators,
        models,
        EvaluationSettings(
            max_concurrency=args.concurrency,
            requests_per_minute=args.rpm,
            label_pattern=args.label_pattern,
            bootstrap_samples=args.bootstrap_samples,
            seed=args.seed,
        ),
        progress=None if args.no_progress else StderrProgress(),
        skipped_examples=skipped,
    )
    write_evaluation(result, out / "evaluation.json")
    write_predictions(result, out / "predictions.jsonl")
    (out / "report.md").write_text(render_markdown(result), encoding="utf-8")
    (out / "report.html").write_text(render_html(result), encoding="utf-8")

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
