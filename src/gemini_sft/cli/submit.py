"""``gemini-sft submit``: check the parameter values against the compiled spec, then submit a run to Vertex AI.

Check parameter values against the compiled spec's input definitions, then submit one run with the
config's project, region, pipeline root, service account, network, labels and caching.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from gemini_sft.cli.common import add_command, add_spec_options


def register(subparsers: Any) -> None:
    """Add the ``submit`` sub-command."""
    parser = add_command(
        subparsers, "submit", submit_command, "submit the compiled pipeline to Vertex AI Pipelines", __doc__, config="required"
    )
    add_spec_options(parser)
    parser.add_argument("--display-name", default="", help="run display name (default: the config's display_name)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything and print what would be sent, without sending it")
    parser.add_argument("--wait", action="store_true", help="follow the run's state until it ends")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="seconds between state checks with --wait")
    parser.add_argument("--timeout-minutes", type=float, default=None,
                        help="stop following after this long (the run goes on)")


def submit_command(args: argparse.Namespace) -> int:
    """Submit (or dry-run) one run; 0 when accepted (and, with --wait, succeeded), 1 when it failed."""
    from gemini_sft.config import load_config
    from gemini_sft.submit import (
        PipelineSpec, check_image, console_url, follow_run, resolve_parameter_values, run_id_for, submit_pipeline,
    )

    config = load_config(args.config)
    spec = PipelineSpec.load(args.spec or config.template_path)
    values = resolve_parameter_values(spec, config, args.param)
    if args.dry_run:
        run_id = run_id_for(args.display_name or config.display_name)
        for warning in check_image(spec, config):
            print(f"warning: {warning}", file=sys.stderr)
        print(f"Dry run: would submit {spec.path} as {run_id} to {config.project}/{config.region}")
        print(f"  pipeline root:   {config.pipeline_root}")
        print(f"  service account: {config.service_account or '(project default)'}")
        print(f"  console:         {console_url(config.project, config.region, run_id)}")
        print("  parameter values:")
        print("    " + json.dumps(values, indent=2, sort_keys=True).replace("\n", "\n    "))
        return 0
    run = submit_pipeline(config, spec, values, display_name=args.display_name)
    print(f"Submitted {run.run_id} ({len(values)} parameter value(s))")
    print(f"  resource: {run.resource_name}")
    print(f"  console:  {run.console_url}")
    if not args.wait:
        return 0

    def show(state: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"  {stamp} {state.removeprefix('PIPELINE_STATE_')}", flush=True)

    timeout = args.timeout_minutes * 60 if args.timeout_minutes else None
    try:
        follow_run(run.resource_name, poll_seconds=args.poll_seconds, timeout_seconds=timeout, on_state=show)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"stopped following {run.run_id}; the run goes on ({run.console_url})") from None
    print(f"Run {run.run_id} succeeded.")
    return 0
