"""``gemini-sft reject``: record that people rejected a staged candidate, and why.

Record the rejection of a staged candidate (and any canary of it ends); production stays.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``reject`` sub-command."""
    from gemini_sft.cli.approve import add_decision_command

    parser = add_decision_command(subparsers, "reject", reject_command, "reject a staged candidate with a reason", __doc__)
    parser.add_argument("--reason", required=True, help="why (kept in the rejection record)")
    parser.add_argument("--ratings", type=Path, default=None, metavar="FILE",
                        help="human ratings whose summary goes into the record (default: the run folder's, if any)")


def reject_command(args: argparse.Namespace) -> int:
    """Record the rejection."""
    from gemini_sft.cli.approve import staged_candidate
    from gemini_sft.review.staging import reject_staged
    from gemini_sft.review.ratings import read_ratings, summarize

    candidate = staged_candidate(args)
    ratings = candidate.ratings_file(args.ratings)
    metrics = summarize(read_ratings(ratings)).as_metrics() if ratings and ratings.is_file() else {}
    record = reject_staged(candidate.store, candidate.staged, args.reason, review_metrics=metrics)
    print(f"Rejected {record.model.versioned_name}: {record.reasons[0]}")
    print(f"  record: {record.record_id} in {candidate.registry_uri}")
    return 0
