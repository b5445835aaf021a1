"""``gemini-sft run --local``: the whole pipeline on this machine, offline.

Run clean, validate, tune, evaluate and gate with kfp.local on this machine. Vertex calls go to
an offline stand-in on 127.0.0.1: nothing is billed, no Gemini model answers. To run on Vertex AI
use `gemini-sft submit`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gemini_sft.cli.common import add_command, add_repeatable


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    parser = add_command(
        subparsers, "run", _run, "run the whole pipeline locally against the offline stand-in", __doc__
    )
    parser.add_argument("--local", action="store_true", required=True, help="run locally (required)")
    parser.add_argument("--data", help="raw examples: a file, or gs://... when the Cloud Storage FUSE mount /gcs/ "
                                       "exists (default: the shipped support-ticket sample)")
    parser.add_argument("--output", type=Path, help="run folder (default: runs/local-<UTC time>)")
    add_repeatable(parser, "--param", "NAME=VALUE", "override a pipeline parameter, e.g. --param epochs=5 (repeatable)")


def _run(args: argparse.Namespace) -> int:
    from gemini_sft.local_run import format_result, run_local
    from gemini_sft.parameters import parse_assignments, pipeline_parameter_types
    from gemini_sft.pipelines.gemini_sft_pipeline import gemini_sft_pipeline

    parameters = parse_assignments(args.param, pipeline_parameter_types(gemini_sft_pipeline))
    result = run_local(data=args.data, output_dir=args.output, parameters=parameters)
    print(format_result(result))
    return 0
