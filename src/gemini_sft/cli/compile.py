"""``gemini-sft compile``: write the pipeline spec."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from gemini_sft.components.base import DEFAULT_IMAGE
    from gemini_sft.pipelines.compiler import DEFAULT_SPEC_PATH

    parser = subparsers.add_parser(
        "compile",
        help="compile the pipeline to a Vertex AI Pipelines spec",
        description="Compile the pipeline to the YAML spec submitted to Vertex AI Pipelines.",
    )
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"component image (default {DEFAULT_IMAGE})")
    parser.add_argument("--output", type=Path, default=DEFAULT_SPEC_PATH, help=f"spec path (default {DEFAULT_SPEC_PATH})")
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="EMAIL",
        help="email the run's final state to this address (repeatable; Vertex AI only)",
    )
    parser.set_defaults(handler=_compile)


def _compile(args: argparse.Namespace) -> int:
    from gemini_sft.pipelines.compiler import compile_pipeline

    path = compile_pipeline(output=args.output, image=args.image, notification_emails=args.notify)
    print(f"Wrote {path}")
    return 0
