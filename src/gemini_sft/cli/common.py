"""What the sub-commands share: how a command declares itself, and the options several commands take."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any, Callable, Literal

Handler = Callable[[argparse.Namespace], int]
ConfigOption = Literal["required", "optional"]

CONFIG_HELP = "environment config, e.g. configs/dev.yaml"


def add_command(
    subparsers: Any,
    name: str,
    handler: Handler | None,
    help: str,
    doc: str | None = None,
    *,
    config: ConfigOption | None = None,
    config_help: str = CONFIG_HELP,
    api_endpoint: bool = False,
) -> argparse.ArgumentParser:
    """Add the sub-command (or action) ``name`` run by ``handler``; returns its parser for its own options.

    Args:
        subparsers: the ``add_subparsers()`` action of the parent command.
        name: the command's name on the command line.
        handler: the function run with the parsed arguments, returning the exit code; None for a
            command whose actions each set their own.
        help: the one line shown in the parent's ``--help``.
        doc: the command module's docstring: its first paragraph names the command, the rest is
            the command's own ``--help`` description (without it, ``help`` is).
        config: add ``--config FILE`` as a required or an optional option (None: no such option).
        config_help: the help text of ``--config``.
        api_endpoint: add ``--api-endpoint`` (a Vertex-compatible endpoint such as the stand-in).
    """
    parser = subparsers.add_parser(name, help=help, description=command_description(doc) or help)
    if config is not None:
        parser.add_argument("--config", type=Path, required=config == "required", default=None, metavar="FILE",
                            help=config_help)
    if api_endpoint:
        parser.add_argument("--api-endpoint", default="",
                            help="Vertex-compatible API endpoint (default $VERTEX_API_ENDPOINT, else Vertex)")
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def command_description(doc: str | None) -> str:
    """The ``--help`` description kept in a command module's docstring: the paragraphs after the first."""
    _title, _sep, rest = inspect.cleandoc(doc or "").partition("\n\n")
    return rest.strip()


def add_repeatable(parser: argparse.ArgumentParser, flag: str, metavar: str, help: str) -> None:
    """An option that may be given several times; its values are collected in a list (empty by default)."""
    parser.add_argument(flag, action="append", default=[], metavar=metavar, help=help)


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    """``--spec`` and ``--param`` of the commands that start runs of a compiled spec (submit, schedule create)."""
    parser.add_argument("--spec", type=Path, default=None,
                        help="compiled spec to run (default: the config's template_path)")
    add_repeatable(parser, "--param", "NAME=VALUE",
                   "pipeline parameter value, typed by the spec (repeatable; wins over the config)")
