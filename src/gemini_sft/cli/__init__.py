"""The ``gemini-sft`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``handler`` to a
function ``(argparse.Namespace) -> int``.

Exit codes: 0 success, 1 failure (invalid data, failed job, ...), 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from gemini_sft import __version__
from gemini_sft.errors import ConfigError, GeminiSftError

COMMAND_MODULES: tuple[str, ...] = (
    "clean",
    "validate",
    "compile",
    "run",
    "evaluate",
    "standin",
    "submit",
    "schedule",
    "status",
    "rollback",
    "dag",
    "config",
    "preflight",
    "review",
    "ask",
    "approve",
    "reject",
    "canary",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="gemini-sft",
        description="Clean, validate, tune, evaluate and promote Gemini fine-tunes on Vertex AI.",
    )
    parser.add_argument("--version", action="version", version=f"gemini-sft {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"gemini_sft.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or EXIT_OK)
    except ConfigError as exc:
        print(f"gemini-sft: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GeminiSftError as exc:
        print(f"gemini-sft: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
