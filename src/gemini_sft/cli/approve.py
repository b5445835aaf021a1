"""``gemini-sft approve``: promote a staged candidate when people's ratings favour it enough.

Read the human ratings of a staged candidate (gemini-sft review) and promote it when its win rate
(ties count as half, skips are excluded) reaches the config's min_human_win_rate (default 0.5);
otherwise say why not and change nothing.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemini_sft.errors import ConfigError

DEFAULT_MIN_RATINGS = 3


def add_decision_command(subparsers: Any, name: str, handler: Any, help: str, doc: str) -> argparse.ArgumentParser:
    """A command deciding about a staged candidate: registry options and RUN (approve, reject, canary set)."""
    from gemini_sft.cli.status import add_registry_command

    parser = add_registry_command(subparsers, name, handler, help, doc)
    parser.add_argument("run", metavar="RUN",
                        help="the local run folder, or the pipeline run name (or MODEL@VERSION) of the staged candidate")
    return parser


@dataclass(frozen=True)
class StagedCandidate:
    """What a decision command works on: the registry, the staged record of RUN and RUN's outputs.

    ``config`` is the environment config (None without ``--config``), ``outputs`` the run folder's
    RunOutputs (None when RUN is not a local run folder).
    """

    registry_uri: str
    config: Any
    store: Any
    staged: Any
    outputs: Any

    def ratings_file(self, given: Path | None) -> Path | None:
        """``given`` (the ``--ratings`` option), else the run folder's human ratings; None when there is neither."""
        return given or (self.outputs.ratings if self.outputs else None)


def staged_candidate(args: argparse.Namespace) -> StagedCandidate:
    """The staged candidate named by RUN, from the registry the arguments name.

    Args:
        args: the parsed arguments of a command made by :func:`add_decision_command`.

    Raises:
        ConfigError: no registry is named; PromotionError: nothing staged matches RUN.
    """
    from gemini_sft.cli.status import registry_uri_of
    from gemini_sft.promotion import PromotionStore
    from gemini_sft.review.runs import locate_run
    from gemini_sft.review.staging import find_staged

    uri, config = registry_uri_of(args)
    store = PromotionStore(uri)
    outputs = locate_run(args.run)
    staged = find_staged(store, outputs.run_name if outputs and outputs.run_name else args.run)
    return StagedCandidate(uri, config, store, staged, outputs)


def save_run_contract(candidate: StagedCandidate, versioned_name: str) -> None:
    """Learn the output contract from the run folder's train split and keep it in the registry; print where.

    Nothing happens when RUN is not a local run folder with a train split.
    """
    from gemini_sft.serving import learn_output_contract, save_contract

    outputs = candidate.outputs
    if outputs is not None and outputs.train_split is not None:
        contract = learn_output_contract(outputs.train_split, outputs.label_pattern)
        print(f"  output contract: {save_contract(candidate.store, versioned_name, contract)}")


def model_registry(args: argparse.Namespace, config: Any) -> Any:
    """Model Registry for the alias move, or None with --no-registry; ConfigError without --config."""
    from gemini_sft.vertex_client import VertexModelRegistry, VertexSettings

    if args.no_registry:
        return None
    if config is None:
        raise ConfigError("Moving the Model Registry alias needs --config (or pass --no-registry).")
    return VertexModelRegistry(VertexSettings.create(config.project, config.region, config.api_endpoint or None))


def register(subparsers: Any) -> None:
    """Add the ``approve`` sub-command."""
    parser = add_decision_command(
        subparsers, "approve", approve_command, "promote a staged candidate that people rated well enough", __doc__
    )
    parser.add_argument("--ratings", type=Path, default=None, metavar="FILE",
                        help="human_ratings.jsonl (default: the one beside the run folder's predictions)")
    parser.add_argument("--min-win-rate", type=float, default=None,
                        help="override the config's min_human_win_rate (0-1)")
    parser.add_argument("--min-ratings", type=int, default=DEFAULT_MIN_RATINGS,
                        help=f"ratings that must count, skips excluded (default {DEFAULT_MIN_RATINGS})")
    parser.add_argument("--no-registry", action="store_true",
                        help="only record the promotion; leave Model Registry aliases and labels as they are")


def approve_command(args: argparse.Namespace) -> int:
    """Promote, or print why not (exit 1)."""
    from gemini_sft.config import EnvironmentConfig
    from gemini_sft.review.staging import approve_staged
    from gemini_sft.review.ratings import read_ratings, summarize
    from gemini_sft.review.runs import approval_check

    candidate = staged_candidate(args)
    config, staged = candidate.config, candidate.staged
    ratings = candidate.ratings_file(args.ratings)
    if ratings is None:
        raise ConfigError("Give --ratings FILE (RUN is not a local run folder with human_ratings.jsonl).")
    min_win_rate = args.min_win_rate
    if min_win_rate is None:
        min_win_rate = config.min_human_win_rate if config else EnvironmentConfig.model_fields["min_human_win_rate"].default
    if not 0.0 <= min_win_rate <= 1.0:
        raise ConfigError(f"--min-win-rate must be between 0 and 1, got {min_win_rate}.")
    summary = summarize(read_ratings(ratings))
    approved, reasons = approval_check(summary, min_win_rate, args.min_ratings)
    if not approved:
        print(f"Not approved: {staged.model.versioned_name} stays staged.")
        for reason in reasons:
            print(f"  - {reason}")
        return 1
    registry = model_registry(args, config)
    record = approve_staged(candidate.store, staged, registry=registry, review_metrics=summary.as_metrics())
    print(f"Approved and promoted {record.model.versioned_name} to {record.alias!r}.")
    for reason in reasons:
        print(f"  - {reason}")
    save_run_contract(candidate, record.model.versioned_name)
    if registry is None:
        print("  Model Registry was not changed (--no-registry).")
    return 0
