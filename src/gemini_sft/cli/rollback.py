"""``gemini-sft rollback``: return production to the previous champion (Model Registry alias and record).

Move the production alias back to the previous champion (or --to MODEL@VERSION, an earlier
champion) in Model Registry and record the rollback. Repeat to go further back. An open-weights
deployment also gives its endpoint's traffic back to the previous deployment and undeploys itself.
"""

from __future__ import annotations

import argparse
from typing import Any

from gemini_sft.cli.status import add_registry_command, registry_uri_of
from gemini_sft.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add the ``rollback`` sub-command."""
    parser = add_registry_command(
        subparsers, "rollback", rollback_command, "return production to the previous model", __doc__
    )
    parser.add_argument("--to", default="", metavar="MODEL@VERSION",
                        help="an earlier champion, e.g. projects/P/locations/L/models/ID@1 (default: the previous one)")
    parser.add_argument("--reason", default="", help="why (kept in the rollback record)")
    parser.add_argument("--no-registry", action="store_true",
                        help="only record the rollback; leave Model Registry aliases and labels as they are")
    parser.add_argument("--dry-run", action="store_true", help="show what would change without changing it")


def rollback_command(args: argparse.Namespace) -> int:
    """Roll back (or show the plan); PromotionError when there is nothing to return to."""
    from gemini_sft.promotion import PromotionStore, rollback, rollback_target
    from gemini_sft.vertex_client import VertexModelRegistry, VertexSettings

    uri, config = registry_uri_of(args)
    store = PromotionStore(uri)
    current, target = rollback_target(store, args.to)
    if args.dry_run:
        print(f"Dry run: would move {current.alias!r} from {current.model.versioned_name} "
              f"to {target.model.versioned_name}.")
        return 0
    registry = None
    if not args.no_registry:
        if config is None:
            raise ConfigError("Rolling back Model Registry aliases needs --config (or pass --no-registry).")
        registry = VertexModelRegistry(VertexSettings.create(config.project, config.region, config.api_endpoint or None))
    if registry is not None and current.tuning_backend == "open-weights":
        from gemini_sft.deployment import rollback_deployment
        from gemini_sft.vertex_client import VertexDeployments

        settings = VertexSettings.create(config.project, config.region, config.api_endpoint or None)
        print(rollback_deployment(VertexDeployments(settings), current, target))
    record = rollback(store, registry=registry, to_model=args.to, reason=args.reason)
    print(f"Rolled back {record.alias!r}: {record.previous_champion.versioned_name} -> {record.model.versioned_name}")
    print(f"  endpoint: {record.model.endpoint or '-'}")
    print(f"  record:   {record.record_id} in {uri}")
    if registry is None:
        print("  Model Registry was not changed (--no-registry).")
    return 0
