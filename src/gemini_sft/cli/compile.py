"""``gemini-sft compile``: write the pipeline spec.

Compile the pipeline to the YAML spec submitted to Vertex AI Pipelines.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gemini_sft.cli.common import add_command, add_repeatable


def register(subparsers: Any) -> None:
    """Add the ``compile`` sub-command."""
    from gemini_sft.components.base import DEFAULT_IMAGE
    from gemini_sft.pipelines.compiler import DEFAULT_SPEC_PATH

    parser = add_command(subparsers, "compile", _compile, "compile the pipeline to a Vertex AI Pipelines spec", __doc__)
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"component image (default {DEFAULT_IMAGE})")
    parser.add_argument("--output", type=Path, default=DEFAULT_SPEC_PATH, help=f"spec path (default {DEFAULT_SPEC_PATH})")
    add_repeatable(parser, "--notify", "EMAIL", "email the run's final state to this address (repeatable; Vertex AI only)")


def _compile(args: argparse.Namespace) -> int:
    from gemini_sft.pipelines.compiler import compile_pipeline

    path = compile_pipeline(output=args.output, image=args.image, notification_emails=args.notify)
    print(f"Wrote {path}")
    return 0
