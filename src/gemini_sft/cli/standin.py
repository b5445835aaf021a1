"""``gemini-sft standin``: run the offline Vertex stand-in in the foreground until Ctrl-C or SIGTERM.

Serve a local, offline stand-in of the Vertex AI API on 127.0.0.1: tuning jobs, generateContent
and countTokens answered by deterministic stand-in models, not Gemini. Requests are checked as
Vertex checks them (v1 REST routes and messages, unknown fields refused, the models of the catalogue).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from gemini_sft.cli.common import add_command
from gemini_sft.errors import ConfigError
from gemini_sft.standin import LOCAL_RUN_FIRST_RESOURCE_ID, VertexStandIn, replay_request_log, write_request_log
from gemini_sft.vertex_client import API_ENDPOINT_ENV

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``standin`` sub-command."""
    parser = add_command(
        subparsers, "standin", run_standin, "run the offline stand-in of the Vertex API (for tests and demos; not Gemini)", __doc__
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free port)")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS",
                        help="delay added to every request (default: 0)")
    parser.add_argument("--polls-per-state", type=int, default=1, metavar="N",
                        help="GETs that see each of PENDING and RUNNING before a tuning job moves on (default: 1)")
    parser.add_argument("--fail-jobs-with", default=None, metavar="MESSAGE",
                        help="make every tuning job fail with this error message")
    parser.add_argument("--request-log", type=Path, default=None, metavar="FILE",
                        help="when stopping, write every request received to FILE, one JSON object a line "
                             "(method, path with query, body, status)")
    parser.add_argument("--replay", type=Path, default=None, metavar="FILE",
                        help="first send again the requests of a local run's standin_requests.jsonl, so its tuned "
                             "models answer again (e.g. for gemini-sft ask --registry-uri RUN/registry)")


def serve(args: argparse.Namespace, stop: threading.Event, out: TextIO = sys.stdout) -> int:
    """Run the stand-in until ``stop`` is set; prints its base URL first. ConfigError for bad options."""
    for flag, value, fits, rule in (
        ("--latency", args.latency, args.latency >= 0, ">= 0"),
        ("--polls-per-state", args.polls_per_state, args.polls_per_state >= 0, ">= 0"),
        ("--port", args.port, 0 <= args.port <= 65535, "within 0-65535"),
    ):
        if not fits:
            raise ConfigError(f"{flag} must be {rule}, got {value}.")
    request_log: Path | None = getattr(args, "request_log", None)
    if request_log is not None and not request_log.parent.is_dir():
        raise ConfigError(f"--request-log {request_log}: the folder {request_log.parent} does not exist.")
    standin = VertexStandIn(
        port=args.port,
        latency_seconds=args.latency,
        polls_per_state=args.polls_per_state,
        fail_jobs_with=args.fail_jobs_with,
        # A replay numbers resources as the local run's stand-in did.
        first_resource_id=LOCAL_RUN_FIRST_RESOURCE_ID if getattr(args, "replay", None) is not None else None,
    )
    replay: Path | None = getattr(args, "replay", None)
    if replay is not None and not replay.is_file():
        raise ConfigError(f"--replay {replay}: no such file (a local run folder's standin_requests.jsonl).")
    with standin:
        if replay is not None:
            try:
                count = replay_request_log(standin.base_url, replay)
            except ValueError as exc:
                raise ConfigError(f"--replay: {exc}") from exc
            print(f"Replayed {count} requests of {replay}", file=out)
        print(f"Offline Vertex stand-in (not Vertex AI, not Gemini) listening on {standin.base_url}", file=out)
        print(f"Point gemini-sft at it with: export {API_ENDPOINT_ENV}={standin.base_url}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        try:
            stop.wait()
        finally:
            if request_log is not None:
                count = write_request_log(standin.requests, request_log)
                print(f"{count} requests written to {request_log}", file=out, flush=True)
    print("Offline Vertex stand-in stopped.", file=out, flush=True)
    return 0


def run_standin(args: argparse.Namespace) -> int:
    """Handler of ``gemini-sft standin``: serve until Ctrl-C or SIGTERM; returns the exit code."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        return serve(args, stop)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
