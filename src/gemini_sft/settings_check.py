"""One rule set for pipeline parameter values, applied by every entry point before anything slow or paid.

``run --local`` (before the pipeline starts), ``submit`` (and ``--dry-run``),
``schedule create`` and ``config check`` all call :func:`raise_for_settings`
with the values they would send: the spec's defaults, overlaid by the
config's ``parameters`` (and the schedule's), overlaid by ``--param``. Each
stage record checks its own fields on construction (adapter size per model,
epochs, fractions, thresholds, ...); this module builds every record from the
values, collects what each refuses, one line per problem, and adds the checks
no single stage owns (the region, notification recipients). The records are
the pipeline's own list, ``STAGE_RECORDS`` in ``pipelines/gemini_sft_pipeline.py``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gemini_sft import model_catalog
from gemini_sft.contracts import settings_of
from gemini_sft.errors import ConfigError, GeminiSftError
from gemini_sft.open_weights.pipeline_step import TUNING_BACKENDS

MAX_NOTIFICATION_RECIPIENTS = 3
EMAIL_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def pipeline_stage_records() -> tuple[type, ...]:
    """The stage records the pipeline feeds (its ``STAGE_RECORDS``), the records every entry point checks."""
    from gemini_sft.pipelines.gemini_sft_pipeline import STAGE_RECORDS

    return STAGE_RECORDS


def _problem_lines(message: str) -> list[str]:
    """A record's error as one line per problem (a ``Header:`` line over ``- item`` lines loses its header)."""
    lines = [line.strip().removeprefix("- ").strip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    return lines


def _record_problems(record: type, values: Mapping[str, Any]) -> list[str]:
    """What ``record`` refuses in ``values``, one line each; values it has no field for are ignored.

    A field without a default whose parameter has no value is reported (the record cannot be built).
    """
    fields = settings_of(record)
    missing = [
        item.pipeline_name for item in fields
        if item.default is inspect.Parameter.empty and item.pipeline_name not in values
    ]
    if missing:
        return [f"{name} has no value; set it in the config's parameters or pass --param {name}=VALUE"
                for name in missing]
    kwargs = {item.name: values[item.pipeline_name] for item in fields if item.pipeline_name in values}
    try:
        record(**kwargs)
    except (GeminiSftError, ValueError, TypeError) as exc:
        return _problem_lines(str(exc))
    return []


def _setting_named(line: str, names: Iterable[str]) -> str:
    """The parameter a problem line speaks of (the one named first), else the line itself."""
    found = [(match.start(), name) for name in names if (match := re.search(rf"\b{re.escape(name)}\b", line))]
    return min(found)[1] if found else line


def recipient_problems(recipients: Any, setting: str = "notification_emails") -> list[str]:
    """What Vertex would refuse in a list of notification recipients: at most three, each an e-mail address.

    Args:
        recipients: the addresses (a list).
        setting: the setting's name, for the messages.
    """
    if not isinstance(recipients, (list, tuple)):
        return [f"{setting} must be a list of addresses, got {recipients!r}"]
    problems = []
    if len(recipients) > MAX_NOTIFICATION_RECIPIENTS:
        problems.append(
            f"{setting} has {len(recipients)} addresses; Vertex e-mails at most "
            f"{MAX_NOTIFICATION_RECIPIENTS} (use a group address)"
        )
    for address in recipients:
        if not EMAIL_ADDRESS.match(str(address)):
            problems.append(f"{setting}: {str(address)!r} is not an e-mail address (name@example.com)")
    return problems


def setting_problems(values: Mapping[str, Any], records: Iterable[type]) -> list[str]:
    """Every problem with pipeline parameter ``values``, one line each (empty when all are accepted).

    A setting two records check (``epochs`` in validate and tune) is reported once, by the first record.

    Args:
        values: pipeline parameter name -> value, as they would be sent.
        records: the stage records the pipeline feeds (each checks its own fields on construction).
    """
    problems: list[str] = []
    reported: set[str] = set()
    for record in records:
        names = [item.pipeline_name for item in settings_of(record)]
        lines = _record_problems(record, values)
        keys = [_setting_named(line, names) for line in lines]
        problems.extend(line for line, key in zip(lines, keys) if key not in reported)
        reported.update(keys)
    location = values.get("location")
    open_model = model_catalog.managed_open_model(str(values.get("base_model", "")))
    if location is not None and open_model is not None and open_model.open_model is not None:
        if location not in open_model.open_model.regions:
            problems.append(f"location {location!r} does not offer tuning of {open_model.name}; use one of "
                            + ", ".join(open_model.open_model.regions))
    elif location is not None and location not in model_catalog.TUNING_REGIONS:
        problems.append(
            f"location {location!r} is not a region where Vertex offers Gemini tuning; use e.g. us-central1 "
            "or europe-west4"
        )
    if "notification_emails" in values:
        problems.extend(recipient_problems(values["notification_emails"]))
    backend = values.get("tuning_backend")
    if backend is not None and backend not in TUNING_BACKENDS:
        problems.append(f"tuning_backend must be one of {', '.join(TUNING_BACKENDS)}, got {backend!r}")
    return problems


def raise_for_settings(values: Mapping[str, Any], records: Sequence[type], outcome: str) -> None:
    """ConfigError listing every problem of ``values``, one line each (nothing when they are all accepted).

    Args:
        values: pipeline parameter name -> value.
        records: the stage records the pipeline feeds.
        outcome: what did not happen because of them, for the message (e.g. "the local run was not started").
    """
    problems = setting_problems(values, records)
    if problems:
        count = f"{len(problems)} setting{'s' if len(problems) > 1 else ''}"
        raise ConfigError(
            f"{count} would be refused ({outcome}); fix {'them' if len(problems) > 1 else 'it'} first:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


__all__ = [
    "EMAIL_ADDRESS",
    "MAX_NOTIFICATION_RECIPIENTS",
    "pipeline_stage_records",
    "raise_for_settings",
    "recipient_problems",
    "setting_problems",
]
