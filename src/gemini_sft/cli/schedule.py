"""``gemini-sft schedule create|list|pause|resume|delete``: scheduled retraining on Vertex AI Pipelines.

Manage Vertex AI PipelineJobSchedules of the compiled pipeline. Defaults come from the config's
`schedule` section; a raw_data_uri with {date} or {latest} picks up the newest data at run time.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gemini_sft.cli.common import add_command, add_spec_options


def register(subparsers: Any) -> None:
    """Add the ``schedule`` sub-command and its actions."""
    parser = add_command(
        subparsers, "schedule", None, "create, list, pause, resume or delete scheduled pipeline runs", __doc__
    )
    actions = parser.add_subparsers(dest="schedule_action", required=True, metavar="ACTION")

    create = add_command(actions, "create", create_command, config="required",
                         help="create a schedule (cron + time zone, one run at a time by default)")
    add_spec_options(create)
    create.add_argument("--display-name", default=None, help="schedule name (default: config schedule.display_name)")
    create.add_argument("--cron", default=None,
                        help='cron expression, e.g. "0 3 * * 1" or "TZ=Europe/Amsterdam 0 3 * * 1"')
    create.add_argument("--time-zone", default=None, help="IANA time zone for --cron, e.g. Europe/Amsterdam")
    create.add_argument("--max-concurrent-runs", type=int, default=None, help="runs at the same time (default 1)")
    create.add_argument("--max-runs", type=int, default=None, help="stop after this many runs (default: no limit)")
    create.add_argument("--start-time", default=None, help="first run not before, e.g. 2026-12-01T00:00:00Z")
    create.add_argument("--end-time", default=None, help="no runs after, e.g. 2027-06-30T00:00:00Z")
    create.add_argument("--dry-run", action="store_true", help="check and print the schedule without creating it")

    listing = add_command(actions, "list", list_command, config="required",
                          help="list the schedules of the config's project and region")
    listing.add_argument("--display-name", default="", help="only schedules with this display name")
    listing.add_argument("--json", action="store_true", help="print JSON")

    for action, help_text in (("pause", "pause a schedule"), ("resume", "resume a paused schedule"),
                              ("delete", "delete a schedule")):
        sub = add_command(actions, action, change_command, config="required", help=help_text)
        sub.add_argument("schedule", metavar="SCHEDULE", help="schedule id, full resource name or display name")
        if action == "resume":
            sub.add_argument("--catch-up", action="store_true", help="also start the runs missed while paused")
        sub.set_defaults(schedule_action=action)


def create_command(args: argparse.Namespace) -> int:
    """Create (or dry-run) a schedule and print it."""
    from gemini_sft.config import load_config
    from gemini_sft.schedule import build_schedule_request, create_schedule, parameter_values_text
    from gemini_sft.submit import PipelineSpec, check_image

    config = load_config(args.config)
    spec = PipelineSpec.load(args.spec or config.template_path)
    for warning in check_image(spec, config):
        print(f"warning: {warning}", file=sys.stderr)
    request = build_schedule_request(
        config, spec, args.param,
        display_name=args.display_name, cron=args.cron, time_zone=args.time_zone,
        max_concurrent_run_count=args.max_concurrent_runs, max_run_count=args.max_runs,
        start_time=args.start_time, end_time=args.end_time,
    )
    if args.dry_run:
        print(f"Dry run: would create schedule {request.display_name!r} in {config.project}/{config.region}")
    else:
        summary = create_schedule(config, spec, request)
        print(f"Created schedule {summary.schedule_id} ({summary.display_name}), state {summary.state}")
        print(f"  resource: {summary.name}")
        print(f"  console:  https://console.cloud.google.com/vertex-ai/locations/{config.region}/pipelines/"
              f"schedules/{summary.schedule_id}?project={config.project}")
    print(f"  cron:     {request.cron}")
    print(f"  runs:     at most {request.max_concurrent_run_count} at a time"
          + (f", {request.max_run_count} in all" if request.max_run_count else ""))
    if request.start_time or request.end_time:
        print(f"  window:   {request.start_time or 'now'} .. {request.end_time or 'no end'}")
    print(f"  values:   {parameter_values_text(request.parameter_values)}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    """Print one line per schedule (or JSON)."""
    from dataclasses import asdict

    from gemini_sft.config import load_config
    from gemini_sft.schedule import describe_schedule, list_schedules

    config = load_config(args.config)
    summaries = list_schedules(config, args.display_name)
    if args.json:
        print(json.dumps([asdict(summary) for summary in summaries], indent=2, default=str))
        return 0
    if not summaries:
        print(f"No schedules in {config.project}/{config.region}.")
        return 0
    for summary in summaries:
        print(describe_schedule(summary))
    return 0


def change_command(args: argparse.Namespace) -> int:
    """Pause, resume or delete one schedule."""
    from gemini_sft.config import load_config
    from gemini_sft.schedule import delete_schedule, pause_schedule, resume_schedule

    config = load_config(args.config)
    if args.schedule_action == "pause":
        summary = pause_schedule(config, args.schedule)
        print(f"Schedule {summary.schedule_id} ({summary.display_name}) is {summary.state}.")
    elif args.schedule_action == "resume":
        summary = resume_schedule(config, args.schedule, catch_up=args.catch_up)
        print(f"Schedule {summary.schedule_id} ({summary.display_name}) is {summary.state}; "
              f"next run {summary.next_run_time or 'not planned'}.")
    else:
        name = delete_schedule(config, args.schedule)
        print(f"Deleted schedule {name}.")
    return 0


