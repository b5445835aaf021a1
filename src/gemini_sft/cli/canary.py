"""``gemini-sft canary set|clear``: let a staged candidate answer a share of requests, or answer in shadow.

A staged candidate answers a sticky share of requests (by request key) or, with --shadow, answers
every request into the shadow log without its answers being returned. Every change is a record
in the promotion registry.
"""

from __future__ import annotations

import argparse
from typing import Any

from gemini_sft.errors import ConfigError


def parse_share(text: str) -> float:
    """``0.1`` or ``10%`` as a fraction; ConfigError otherwise."""
    value = text.strip()
    try:
        share = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ConfigError(f"--share {text!r} is not a number: use 0.1 or 10%.") from None
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"--share {text!r} must be between 0 and 1 (0% and 100%).")
    return share


def register(subparsers: Any) -> None:
    """Add the ``canary`` sub-command with ``set`` and ``clear``."""
    from gemini_sft.cli.approve import add_decision_command
    from gemini_sft.cli.common import add_command
    from gemini_sft.cli.status import add_registry_command

    parser = add_command(subparsers, "canary", None, "send a share of requests to a staged candidate, or run it in shadow",
                         __doc__)
    actions = parser.add_subparsers(dest="canary_action", required=True, metavar="ACTION")
    set_parser = add_decision_command(actions, "set", canary_set_command,
                                      "start or change the canary of a staged candidate", None)
    mode = set_parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--share", help="share of requests it answers: 0.1 or 10%%")
    mode.add_argument("--shadow", action="store_true", help="answer every request in shadow (logged, never returned)")
    set_parser.add_argument("--reason", default="", help="why (kept in the record)")
    clear_parser = add_registry_command(actions, "clear", canary_clear_command,
                                        "stop the canary in force (production answers everything)", None)
    clear_parser.add_argument("--reason", default="", help="why (kept in the record)")


def canary_set_command(args: argparse.Namespace) -> int:
    """Record the new share (or shadow); saves the candidate's output contract when RUN is a run folder."""
    from gemini_sft.cli.approve import save_run_contract, staged_candidate
    from gemini_sft.review.staging import set_canary

    candidate = staged_candidate(args)
    share = 0.0 if args.shadow else parse_share(args.share)
    record = set_canary(candidate.store, candidate.staged, share=share, shadow=args.shadow, reason=args.reason)
    mode = "answers in shadow" if record.shadow else f"answers {100 * record.canary_share:g}% of requests"
    print(f"Canary: {record.model.versioned_name} {mode}.")
    save_run_contract(candidate, record.model.versioned_name)
    return 0


def canary_clear_command(args: argparse.Namespace) -> int:
    """Record share 0 for the canary in force; says so when there is none."""
    from gemini_sft.cli.status import registry_uri_of
    from gemini_sft.promotion import PromotionStore
    from gemini_sft.review.staging import active_canary, set_canary, staged_candidates

    uri, _ = registry_uri_of(args)
    store = PromotionStore(uri)
    current = active_canary(store)
    if current is None:
        print("No canary is in force; production answers every request.")
        return 0
    staged = next(r for r in staged_candidates(store) if r.model == current.model)
    set_canary(store, staged, share=0.0, shadow=False, reason=args.reason)
    print(f"Canary of {current.model.versioned_name} cleared; production answers every request.")
    return 0
