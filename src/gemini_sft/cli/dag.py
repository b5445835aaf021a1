"""``gemini-sft dag``: draw the compiled pipeline's DAG (Mermaid or Graphviz DOT).

Print the DAG of a compiled spec with the task names the Vertex AI console shows; condition,
exit-handler and loop groups are drawn as boxes. Render DOT with:
gemini-sft dag --format dot | dot -Tsvg > dag.svg
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gemini_sft.cli.common import add_command
from gemini_sft.config import DEFAULT_TEMPLATE_PATH

DEFAULT_SPEC = Path(DEFAULT_TEMPLATE_PATH)


def register(subparsers: Any) -> None:
    """Add the ``dag`` sub-command."""
    parser = add_command(
        subparsers, "dag", draw_dag, "draw the compiled pipeline's DAG as Mermaid or Graphviz DOT", __doc__
    )
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help=f"compiled spec (default {DEFAULT_SPEC})")
    parser.add_argument("--format", choices=("mermaid", "dot"), default="mermaid", help="output format")
    parser.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")


def draw_dag(args: argparse.Namespace) -> int:
    """Print or write the drawing; ConfigError when the spec is missing or not a pipeline."""
    from gemini_sft.dag import render

    text = render(args.spec, args.format)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}")
    else:
        print(text, end="")
    return 0
