"""The ``gemini-sft`` command line.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which declares it with
:func:`gemini_sft.cli.common.add_command` (its parser, its ``handler``
``(argparse.Namespace) -> int`` and the common options).

Exit codes: 0 success, 1 failure (invalid data, failed job, ...), 2 usage or
configuration error (missing Google Cloud credentials included), 130 interrupted
(Ctrl-C). Each of them prints one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from google.auth import exceptions as auth_exceptions

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
EXIT_INTERRUPTED = 130

CREDENTIALS_FIX = (
    "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a service "
    "account key file) and try again"
)


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
    """Run the CLI; returns the process exit code (Ctrl-C included, even while the commands load)."""
    try:
        return _run_command(argv)
    except KeyboardInterrupt as exc:
        print(f"gemini-sft: interrupted{f'; {exc}' if str(exc) else ''}.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_command(argv: list[str] | None) -> int:
    """Parse the arguments and run the command's handler; every error it meets on purpose becomes one line."""
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
    except (auth_exceptions.DefaultCredentialsError, auth_exceptions.RefreshError) as exc:
        print(f"gemini-sft: no usable Google Cloud credentials ({_first_line(exc)}): {CREDENTIALS_FIX}.",
              file=sys.stderr)
        return EXIT_USAGE


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else type(error).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
