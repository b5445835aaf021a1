"""``gemini-sft review``: rate base and tuned answers blind, side by side, in a local web page.

Serve the holdout prompts of an evaluation with the two models' answers side by side, names hidden
and order shuffled per prompt. Keys: 1 / 2 (that answer is better), = (tie), s (skip). Ratings are
appended to human_ratings.jsonl beside the predictions as they are given; come back any time to
go on where you stopped.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8765


def register(subparsers: Any) -> None:
    """Add the ``review`` sub-command."""
    from gemini_sft.cli.common import add_command

    parser = add_command(subparsers, "review", review_command, "rate base vs tuned answers blind in a local web page",
                         __doc__)
    parser.add_argument("location", metavar="RUN_OR_EVALUATION_DIR", type=Path,
                        help="a local run folder, an evaluation folder (gemini-sft evaluate --out) or a predictions file")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; any other address requires a token)")
    parser.add_argument("--token", default="", help="token to require (default: one is made for a non-loopback --host)")
    parser.add_argument("--ratings", type=Path, default=None, metavar="FILE",
                        help="ratings file (default: human_ratings.jsonl beside the predictions)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")


def review_command(args: argparse.Namespace) -> int:
    """Serve the review page until Ctrl-C or SIGTERM; prints the address first."""
    from gemini_sft.errors import ConfigError
    from gemini_sft.review.server import ReviewServer, ReviewSession

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be within 0-65535, got {args.port}.")
    session = ReviewSession.open(args.location, args.ratings)
    server = ReviewServer(session, host=args.host, port=args.port, token=args.token)
    state = session.state()
    print(f"Reviewing {state['total']} prompts of {session.predictions} ({state['done']} rated so far"
          + (f"; {session.left_out} left out: a model failed to answer" if session.left_out else "") + ").")
    print(f"Ratings go to {session.ratings.path}")
    print(f"Open {server.url}", flush=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    server.start()
    try:
        if not args.no_browser:
            import webbrowser

            webbrowser.open(server.url)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    summary = session.state()["summary"]
    print(f"Stopped. {summary['rated']} rating(s) count; tuned win rate "
          f"{summary['win_rate']:.2f} (ties as half)." if summary["rated"] else "Stopped. No ratings yet.",
          file=sys.stdout)
    return 0
