"""``gemini-sft preflight --config FILE``: check a project is ready for a first real run, changing nothing."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``preflight`` sub-command."""
    parser = subparsers.add_parser(
        "preflight",
        help="check the project before a first real run (APIs, bucket, service account, region, image)",
        description=(
            "Check what a run on Vertex AI needs: the APIs are enabled; the pipeline bucket exists, is in the "
            "region and keeps object versions; the service account can read and write the pipeline root and act "
            "as itself; you may submit as it; the region tunes the model; the image is in Artifact Registry. "
            "Each check says pass, fail (with the command that fixes it) or cannot-check. Changes nothing."
        ),
    )
    parser.add_argument("--config", required=True, help="environment config, e.g. configs/dev.yaml")
    parser.add_argument("--api-endpoint", default=None,
                        help="send every call to this Google-compatible server (the offline stand-in)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=preflight_command)


def preflight_command(args: argparse.Namespace) -> int:
    """Run the checks; exit 0 when none failed, 1 otherwise."""
    from gemini_sft.config import load_config
    from gemini_sft.model_catalog import DEFAULT_BASE_MODEL
    from gemini_sft.preflight import PreflightTarget, run_preflight
    from gemini_sft.vertex_client import GoogleCloudFacts

    config = load_config(args.config)
    target = PreflightTarget(
        project=config.project,
        region=config.region,
        pipeline_root=config.pipeline_root,
        service_account=config.service_account,
        image=config.image,
        base_model=str(config.parameters.get("base_model", DEFAULT_BASE_MODEL)),
        registry_uri=config.registry_uri,
    )
    facts = GoogleCloudFacts(config.project, api_endpoint=args.api_endpoint or config.api_endpoint or None)
    report = run_preflight(target, facts)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    return 0 if report.ok else 1
