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
    from gemini_sft.cli.approve import staged_for
    from gemini_sft.cli.status import registry_uri_of
    from gemini_sft.promotion import PromotionStore
    from gemini_sft.review.staging import reject_staged
    from gemini_sft.review.ratings import read_ratings, summarize

    uri, _ = registry_uri_of(args)
    store = PromotionStore(uri)
    staged, outputs = staged_for(store, args.run)
    ratings_path = args.ratings or (outputs.ratings if outputs else None)
    metrics = summarize(read_ratings(ratings_path)).as_metrics() if ratings_path and ratings_path.is_file() else {}
    record = reject_staged(store, staged, args.reason, review_metrics=metrics)
    print(f"Rejected {record.model.versioned_name}: {record.reasons[0]}")
    print(f"  record: {record.record_id} in {uri}")
    return 0
