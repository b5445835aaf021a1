"""``gemini-sft status``: the model in production and the promotion history.

Show the model in production (from the promotion records), the candidates staged for human review
(with the canary or shadow in force), and every promotion, rollback and rejected candidate, newest first.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from gemini_sft.cli.common import Handler, add_command
from gemini_sft.errors import ConfigError


def add_registry_command(subparsers: Any, name: str, handler: Handler, help: str, doc: str) -> argparse.ArgumentParser:
    """A command reading the promotion registry: ``--config`` and ``--registry-uri`` (one is needed); with rollback."""
    parser = add_command(subparsers, name, handler, help, doc, config="optional",
                         config_help="environment config (its registry_uri, project and region)")
    parser.add_argument("--registry-uri", default="",
                        help="promotion registry (gs://BUCKET/PREFIX or a local folder); overrides the config's")
    return parser


def registry_uri_of(args: argparse.Namespace) -> tuple[str, Any]:
    """``(registry URI, config or None)`` from the arguments; ConfigError when neither gives a URI."""
    from gemini_sft.config import load_config

    config = load_config(args.config) if args.config else None
    uri = args.registry_uri or (config.registry_uri if config else "")
    if not uri:
        raise ConfigError("No promotion registry: pass --registry-uri or a --config with registry_uri.")
    return uri, config


def register(subparsers: Any) -> None:
    """Add the ``status`` sub-command."""
    parser = add_registry_command(
        subparsers, "status", status_command, "show the production model and its promotion history", __doc__
    )
    parser.add_argument("--limit", type=int, default=20, help="history entries to show (default 20, 0 = all)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--check-registry", action="store_true",
                        help="also check in Model Registry that the production alias is on the champion "
                             "(needs --config)")


def _short(model: Any) -> str:
    return model.versioned_name.split("/models/", 1)[-1] if model else "-"


def status_command(args: argparse.Namespace) -> int:
    """Print the champion and the history; 1 when --check-registry finds the alias elsewhere."""
    from gemini_sft.promotion import PromotionStore
    from gemini_sft.review.staging import active_canary, staged_candidates

    uri, config = registry_uri_of(args)
    store = PromotionStore(uri)
    history = store.history()
    champion = store.champion()
    staged = staged_candidates(store)
    canary = active_canary(store)
    shown = list(reversed(history))[: args.limit or None]
    if args.json:
        print(json.dumps({
            "registry_uri": uri,
            "champion": champion.model_dump(mode="json") if champion else None,
            "staged": [record.model_dump(mode="json") for record in staged],
            "canary": canary.model_dump(mode="json") if canary else None,
            "history": [record.model_dump(mode="json") for record in shown],
        }, indent=2))
    else:
        _print_status(uri, champion, shown, len(history), staged, canary)
    if args.check_registry and champion is not None:
        return _check_registry(config, champion)
    return 0


def _print_status(uri: str, champion: Any, shown: list[Any], total: int, staged: list[Any], canary: Any) -> None:
    if champion is None:
        print(f"Nothing is in production yet (registry {uri}).")
    else:
        print(f"In production ({champion.alias!r}): {champion.model.versioned_name}")
        print(f"  endpoint:      {champion.model.endpoint or '-'}")
        print(f"  since:         {champion.created_at} ({champion.kind}, run {champion.pipeline_run or '-'})")
        print(f"  dataset hash:  {champion.dataset_hash or '-'}")
        metrics = ", ".join(f"{name}={champion.metrics[name]:.4g}" for name in _headline_metrics(champion.metrics))
        print(f"  metrics:       {metrics or '-'}")
        print(f"  replaced:      {champion.previous_champion.versioned_name if champion.previous_champion else '-'}")
    _print_staged(staged, canary)
    if not shown:
        return
    print(f"History ({len(shown)} of {total}, newest first):")
    for record in shown:
        reasons = "; ".join(record.reasons)
        print(f"  {record.created_at}  {record.kind:<9}  {_short(record.model):<16}  "
              f"run={record.pipeline_run or '-':<28}  {reasons}".rstrip())


def _print_staged(staged: list[Any], canary: Any) -> None:
    """The candidates waiting for human review, and the canary or shadow in force."""
    if not staged:
        return
    print(f"Staged for human review ({len(staged)}, oldest first; gemini-sft approve / reject RUN):")
    for record in staged:
        serving = ""
        if canary is not None and canary.model == record.model:
            serving = "  shadow" if canary.shadow else f"  canary {100 * canary.canary_share:.0f}% of requests"
        print(f"  {record.created_at}  {_short(record.model):<16}  run={record.pipeline_run or '-'}{serving}")


HEADLINE_METRICS = (
    "tuned_rougeL", "base_rougeL", "delta_rougeL", "champion_rougeL",
    "tuned_label_accuracy", "tuned_exact_match", "tuned_error_rate",
)


def _headline_metrics(metrics: dict[str, float]) -> list[str]:
    """The metric names worth a glance: the evaluation's headline ones when present, else the first eight."""
    names = [name for name in HEADLINE_METRICS if name in metrics]
    return names or sorted(metrics)[:8]


def _check_registry(config: Any, champion: Any) -> int:
    from gemini_sft.vertex_client import VertexModelRegistry, VertexSettings

    if config is None:
        raise ConfigError("--check-registry needs --config (project and region of the Model Registry).")
    registry = VertexModelRegistry(VertexSettings.create(config.project, config.region, config.api_endpoint or None))
    aliases = registry.version_aliases(champion.model)
    if champion.alias in aliases:
        print(f"Model Registry agrees: {champion.model.versioned_name} carries alias {champion.alias!r}.")
        return 0
    print(f"Model Registry disagrees: {champion.model.versioned_name} does not carry alias {champion.alias!r} "
          f"(it has: {', '.join(aliases) or 'none'}). Someone moved the alias outside gemini-sft; "
          "promote or roll back with gemini-sft to make them agree.")
    return 1
