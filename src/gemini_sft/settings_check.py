"""One rule set for pipeline parameter values, applied by every entry point before anything slow or paid.

``run --local`` (before the pipeline starts), ``submit`` (and ``--dry-run``),
``schedule create`` and ``config check`` all call :func:`setting_problems`
with the values they would send. Each stage record checks its own fields on
construction (adapter size per model, epochs, fractions, thresholds, ...);
this module builds every record from the values, collects what each refuses,
and adds the checks no single stage owns (the region, notification recipients).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gemini_sft import model_catalog
from gemini_sft.contracts import settings_of
from gemini_sft.errors import ConfigError, GeminiSftError
from gemini_sft.open_weights.pipeline_step import TUNING_BACKENDS

MAX_NOTIFICATION_RECIPIENTS = 3


def _record_problem(record: type, values: Mapping[str, Any]) -> str | None:
    """What ``record`` refuses in ``values`` (None when it accepts them); values it has no field for are ignored."""
    kwargs = {
        item.name: values[item.pipeline_name] for item in settings_of(record) if item.pipeline_name in values
    }
    try:
        record(**kwargs)
    except (GeminiSftError, ValueError, TypeError) as exc:
        return str(exc)
    return None


def _address_problems(recipients: Any) -> list[str]:
    if not isinstance(recipients, list):
        return [f"notification_emails must be a list of addresses, got {recipients!r}"]
    problems = []
    if len(recipients) > MAX_NOTIFICATION_RECIPIENTS:
        problems.append(
            f"notification_emails has {len(recipients)} addresses; Vertex e-mails at most "
            f"{MAX_NOTIFICATION_RECIPIENTS} (use a group address)"
        )
    for address in recipients:
        text = str(address)
        local, at, domain = text.partition("@")
        if not (local and at and "." in domain and " " not in text):
            problems.append(f"notification_emails: {text!r} is not an e-mail address (name@example.com)")
    return problems


def setting_problems(values: Mapping[str, Any], records: Iterable[type]) -> list[str]:
    """Every problem with pipeline parameter ``values``, one line each (empty when all are accepted).

    Args:
        values: pipeline parameter name -> value, as they would be sent.
        records: the stage records the pipeline feeds (each checks its own fields on construction).
    """
    problems = [p for p in (_record_problem(record, values) for record in records) if p]
    location = values.get("location")
    if location is not None and location not in model_catalog.TUNING_REGIONS:
        problems.append(
            f"location {location!r} is not a region where Vertex offers Gemini tuning; use e.g. us-central1 "
            "or europe-west4"
        )
    if "notification_emails" in values:
        problems.extend(_address_problems(values["notification_emails"]))
    backend = values.get("tuning_backend")
    if backend is not None and backend not in TUNING_BACKENDS:
        problems.append(f"tuning_backend must be one of {', '.join(TUNING_BACKENDS)}, got {backend!r}")
    return problems


def raise_for_settings(values: Mapping[str, Any], records: Sequence[type], where: str) -> None:
    """ConfigError listing every problem of ``values`` (nothing when they are all accepted).

    Args:
        values: pipeline parameter name -> value.
        records: the stage records the pipeline feeds.
        where: what was about to happen, for the message (e.g. "the local run").
    """
    problems = setting_problems(values, records)
    if problems:
        raise ConfigError(f"{where} was not started; fix these settings first: " + "; ".join(problems))
