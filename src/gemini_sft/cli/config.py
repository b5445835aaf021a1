"""``gemini-sft config check FILE``: validate one environment's config and show what it resolves to.

Validate an environment config (configs/ENV.yaml) with GEMINI_SFT_* overrides applied.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gemini_sft.cli.common import add_command


def register(subparsers: Any) -> None:
    """Add the ``config`` sub-command with its ``check`` action."""
    parser = add_command(subparsers, "config", None, "check an environment config file", __doc__)
    actions = parser.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    check = add_command(actions, "check", check_config, help="validate FILE and print the resolved settings")
    check.add_argument("file", type=Path, metavar="FILE", help="the YAML config, e.g. configs/dev.yaml")
    check.add_argument("--json", action="store_true", help="print the resolved config as JSON")
    check.add_argument("--spec", type=Path, default=None,
                       help="check the config's parameters against this compiled spec "
                            "(default: the config's template_path when it exists, else this version's pipeline)")


def check_config(args: argparse.Namespace) -> int:
    """Validate the file and the parameter values its runs would send (over the spec's defaults).

    The values are checked against the compiled spec (``--spec``, else the config's template_path),
    or this version's pipeline when there is none, with the rules every entry point applies.
    ConfigError (exit 2) on a problem, one line each.
    """
    from gemini_sft.config import env_overrides_in_use, load_config
    from gemini_sft.errors import ConfigError
    from gemini_sft.submit import PipelineSpec, resolve_parameter_values

    config = load_config(args.file)
    spec_path = args.spec or Path(config.template_path)
    compiled = args.spec is not None or spec_path.is_file()
    if compiled:
        spec = PipelineSpec.load(spec_path)
        checked_spec = str(spec_path)
    else:
        from gemini_sft.pipelines.gemini_sft_pipeline import gemini_sft_pipeline

        spec = PipelineSpec.from_pipeline(gemini_sft_pipeline)
        checked_spec = f"this version's pipeline (no compiled spec at {spec_path})"
    # The values a submission and a scheduled run would send, through the same rules as theirs; without a
    # compiled spec the required values may still come from --param, so only what is given is judged.
    resolve_parameter_values(spec, config, outcome="a run with this config would be refused", complete=compiled)
    try:
        resolve_parameter_values(
            spec, config, overrides=config.schedule.parameters, outcome="its scheduled runs would be refused",
            complete=compiled,
        )
    except ConfigError as exc:
        raise ConfigError(f"With the schedule's parameters (schedule.parameters): {exc}") from exc
    if args.json:
        print(json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True))
        return 0
    print(f"{args.file}: valid")
    print(f"  project/region:   {config.project} / {config.region}")
    print(f"  pipeline root:    {config.pipeline_root}")
    print(f"  service account:  {config.service_account or '(the project default: set one for production)'}")
    print(f"  network:          {config.network or '(none)'}")
    print(f"  caching:          {_caching(config.enable_caching)}")
    print(f"  registry:         {config.registry_uri or '(none: promotion records cannot be kept)'}")
    print(f"  labels:           {', '.join(f'{k}={v}' for k, v in sorted(config.labels.items())) or '(none)'}")
    print(f"  notifications:    {len(config.notification_emails)} recipient(s)")
    print(f"  schedule:         {config.schedule.vertex_cron} ({config.schedule.display_name})")
    print(f"  parameters:       {', '.join(sorted(config.parameters)) or '(spec defaults)'}")
    print(f"  parameter values: accepted by {checked_spec}")
    overrides = env_overrides_in_use()
    if overrides:
        print(f"  overridden by:    {', '.join(overrides)}")
    return 0


def _caching(value: bool | None) -> str:
    return "per task (as compiled)" if value is None else ("on" if value else "off")
