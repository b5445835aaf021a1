"""Scheduled retraining: Vertex AI ``PipelineJobSchedule`` create, list, pause, resume and delete.

A schedule runs the compiled spec on a cron expression in a time zone
(``"TZ=Europe/Amsterdam 0 3 * * 1"``: Mondays 03:00 Amsterdam time), one run
at a time by default, between optional start and end times, with the
parameter values checked against the spec like a submission
(:func:`gemini_sft.submit.resolve_parameter_values`).

Picking up the newest data. A schedule stores fixed parameter values, so the
data a scheduled run reads is found *at run time*: ``raw_data_uri`` may hold
placeholders that :func:`resolve_data_uri` fills when the run starts:

* ``{date}`` (``YYYY-MM-DD``), ``{yyyy}``, ``{mm}``, ``{dd}``: the run's date (UTC);
* ``{latest}``: the newest sub-folder (greatest name, so ISO dates sort right)
  of the folder before it, e.g. ``gs://b/raw/{latest}/tickets.jsonl`` reads
  ``gs://b/raw/2026-11-23/tickets.jsonl`` when that is the newest dated folder.

Every scheduled run also looks up the model in production (the pipeline's
"Find production model" step reads the promotion registry), so each new
candidate is compared with the current champion on fresh data.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from gemini_sft.config import EnvironmentConfig, cron_with_time_zone, parse_timestamp, validate_time_zone
from gemini_sft.errors import ScheduleNotFoundError, ConfigError, InputFormatError, VertexApiError
from gemini_sft.names import SCHEDULE_NAME_RE, schedule_name
from gemini_sft.storage import local_path
from gemini_sft.submit import PipelineSpec, build_pipeline_job, resolve_parameter_values, run_id_for

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{(date|yyyy|mm|dd|latest)\}")


@dataclass(frozen=True)
class ScheduleRequest:
    """A schedule to create: when it fires and with which checked parameter values."""

    display_name: str
    cron: str
    parameter_values: dict[str, Any]
    max_concurrent_run_count: int = 1
    max_run_count: int | None = None
    start_time: str | None = None
    end_time: str | None = None
    allow_queueing: bool = False

    def timing(self) -> dict[str, Any]:
        """When runs start, as ``PipelineJobSchedule.create`` takes it (cron, window, run counts, queueing)."""
        return {
            name: getattr(self, name)
            for name in ("cron", "start_time", "end_time", "allow_queueing", "max_run_count",
                         "max_concurrent_run_count")
        }


@dataclass(frozen=True)
class ScheduleSummary:
    """A schedule as Vertex reports it."""

    name: str
    display_name: str
    state: str
    cron: str
    next_run_time: str = ""
    started_run_count: int = 0
    max_concurrent_run_count: int = 1
    max_run_count: int = 0
    start_time: str = ""
    end_time: str = ""
    parameter_values: dict[str, Any] = field(default_factory=dict)

    @property
    def schedule_id(self) -> str:
        return self.name.rsplit("/", 1)[-1]


def build_schedule_request(
    config: EnvironmentConfig,
    spec: PipelineSpec,
    assignments: Iterable[str] = (),
    *,
    display_name: str | None = None,
    cron: str | None = None,
    time_zone: str | None = None,
    max_concurrent_run_count: int | None = None,
    max_run_count: int | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
) -> ScheduleRequest:
    """A checked schedule from the config's ``schedule`` defaults, overridden by the arguments given.

    Parameter values: the config's ``parameters``, then ``schedule.parameters``,
    then ``assignments`` (``NAME=VALUE``), checked against the spec and, over
    its defaults, by the pipeline's rule set; the cron expression by the same
    rules as the config's. Raises ConfigError (ParameterValueError for
    parameters) naming what is wrong, before any request is sent.
    """
    defaults = config.schedule
    try:
        zone = validate_time_zone(time_zone) if time_zone else defaults.time_zone
        vertex_cron = cron_with_time_zone(cron or defaults.cron, zone)
        start = parse_timestamp(start_time, "start_time") if start_time else defaults.start_time
        end = parse_timestamp(end_time, "end_time") if end_time else defaults.end_time
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if start and end and _as_datetime(end) <= _as_datetime(start):
        raise ConfigError(f"end_time {end} must be after start_time {start}.")
    if end and _as_datetime(end) <= datetime.now(timezone.utc):
        raise ConfigError(f"end_time {end} is in the past: the schedule would never run.")
    concurrent = max_concurrent_run_count if max_concurrent_run_count is not None else defaults.max_concurrent_run_count
    if concurrent < 1:
        raise ConfigError("max_concurrent_run_count must be at least 1.")
    run_count = max_run_count if max_run_count is not None else defaults.max_run_count
    if run_count is not None and run_count < 1:
        raise ConfigError("max_run_count must be at least 1 (leave it out for no limit).")
    values = resolve_parameter_values(
        spec, config, assignments, overrides=defaults.parameters, outcome="the schedule was not created"
    )
    return ScheduleRequest(
        display_name=display_name or defaults.display_name,
        cron=vertex_cron,
        parameter_values=values,
        max_concurrent_run_count=concurrent,
        max_run_count=run_count,
        start_time=start,
        end_time=end,
        allow_queueing=defaults.allow_queueing,
    )


def _as_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _enum_name(value: Any) -> str:
    return getattr(value, "name", str(value or ""))


def _timestamp_text(value: Any) -> str:
    if not value:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value)


def summarize(resource: Any) -> ScheduleSummary:
    """A :class:`ScheduleSummary` of a ``Schedule`` proto (``PipelineJobSchedule.gca_resource``)."""
    runtime = resource.create_pipeline_job_request.pipeline_job.runtime_config
    values = {name: value for name, value in runtime.parameter_values.items()}
    return ScheduleSummary(
        name=resource.name,
        display_name=resource.display_name,
        state=_enum_name(resource.state),
        cron=resource.cron,
        next_run_time=_timestamp_text(resource.next_run_time),
        started_run_count=int(resource.started_run_count or 0),
        max_concurrent_run_count=int(resource.max_concurrent_run_count or 0),
        max_run_count=int(resource.max_run_count or 0),
        start_time=_timestamp_text(resource.start_time),
        end_time=_timestamp_text(resource.end_time),
        parameter_values=values,
    )


def _init(config: EnvironmentConfig) -> None:
    from gemini_sft.vertex_client import VertexSettings, init_aiplatform

    init_aiplatform(VertexSettings.create(config.project, config.region, config.api_endpoint or None))


def create_schedule(config: EnvironmentConfig, spec: PipelineSpec, request: ScheduleRequest) -> ScheduleSummary:
    """Create the schedule on Vertex (runs as the config's service account, on its network).

    Raises VertexApiError when Vertex refuses it.
    """
    from google.api_core import exceptions as api_exceptions
    from google.cloud import aiplatform

    job = build_pipeline_job(
        config,
        spec,
        request.parameter_values,
        run_id=run_id_for(request.display_name),
        display_name=request.display_name,
        trigger="schedule",
    )
    schedule = aiplatform.PipelineJobSchedule(pipeline_job=job, display_name=request.display_name)
    try:
        schedule.create(
            **request.timing(), service_account=config.service_account or None, network=config.network or None
        )
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(f"Vertex AI refused schedule {request.display_name!r}: {exc}") from exc
    log.info("Created schedule %s (%s)", schedule.resource_name, request.cron)
    return summarize(schedule.gca_resource)


def list_schedules(config: EnvironmentConfig, display_name: str = "") -> list[ScheduleSummary]:
    """The project's pipeline schedules in the config's region (only ``display_name`` when given)."""
    from google.api_core import exceptions as api_exceptions
    from google.cloud import aiplatform

    _init(config)
    query = f'display_name="{display_name}"' if display_name else None
    try:
        schedules = aiplatform.PipelineJobSchedule.list(filter=query, project=config.project, location=config.region)
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(f"Cannot list schedules in {config.project}/{config.region}: {exc}") from exc
    return [summarize(schedule.gca_resource) for schedule in schedules]


def resolve_schedule_name(config: EnvironmentConfig, reference: str) -> str:
    """The full resource name of a schedule given its name, numeric id or unique display name.

    Raises ScheduleNotFoundError when no schedule, or several, have that display name.
    """
    if SCHEDULE_NAME_RE.match(reference):
        return reference
    if reference.isdigit():
        return schedule_name(config.project, config.region, reference)
    matches = list_schedules(config, display_name=reference)
    if not matches:
        raise ScheduleNotFoundError(
            f"No schedule named {reference!r} in {config.project}/{config.region}; see `gemini-sft schedule list`."
        )
    if len(matches) > 1:
        ids = ", ".join(summary.schedule_id for summary in matches)
        raise ScheduleNotFoundError(f"{len(matches)} schedules are named {reference!r} (ids {ids}); give the id.")
    return matches[0].name


def _schedule(config: EnvironmentConfig, reference: str) -> Any:
    from google.api_core import exceptions as api_exceptions
    from google.cloud import aiplatform

    _init(config)
    name = resolve_schedule_name(config, reference)
    try:
        return aiplatform.PipelineJobSchedule.get(name, project=config.project, location=config.region)
    except api_exceptions.NotFound as exc:
        raise ScheduleNotFoundError(f"Schedule {name} does not exist.") from exc
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(f"Cannot read schedule {name}: {exc}") from exc


def pause_schedule(config: EnvironmentConfig, reference: str) -> ScheduleSummary:
    """Pause a schedule (no new runs until resumed). Raises ScheduleNotFoundError or VertexApiError."""
    from google.api_core import exceptions as api_exceptions

    schedule = _schedule(config, reference)
    try:
        schedule.pause()
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(f"Cannot pause {schedule.resource_name}: {exc}") from exc
    return _refreshed(schedule)


def resume_schedule(config: EnvironmentConfig, reference: str, catch_up: bool = False) -> ScheduleSummary:
    """Resume a paused schedule; ``catch_up`` also starts the runs missed while paused."""
    from google.api_core import exceptions as api_exceptions

    schedule = _schedule(config, reference)
    try:
        # PipelineJobSchedule.resume() does not pass catch_up on; call the API directly.
        schedule.api_client.resume_schedule(name=schedule.resource_name, catch_up=catch_up)
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(f"Cannot resume {schedule.resource_name}: {exc}") from exc
    return _refreshed(schedule)


def delete_schedule(config: EnvironmentConfig, reference: str) -> str:
    """Delete a schedule (runs already started go on); returns its resource name."""
    from google.api_core import exceptions as api_exceptions

    schedule = _schedule(config, reference)
    name = schedule.resource_name
    try:
        schedule.delete()
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(f"Cannot delete {name}: {exc}") from exc
    return name


def _refreshed(schedule: Any) -> ScheduleSummary:
    from google.cloud import aiplatform

    return summarize(aiplatform.PipelineJobSchedule.get(schedule.resource_name).gca_resource)


def list_folders(uri: str) -> list[str]:
    """Names of the sub-folders directly in ``uri``.

    A ``gs://`` folder is listed through the Cloud Storage API (folders made by
    uploads have no directory objects, which a FUSE mount may not show).
    Raises InputFormatError when a local folder is missing, OSError
    subclasses when Cloud Storage refuses.
    """
    if uri.startswith("gs://"):
        from gemini_sft.vertex_client import CloudStorageFiles

        return CloudStorageFiles(uri).folders()
    folder = local_path(uri)
    if not folder.is_dir():
        raise InputFormatError(f"Folder {uri} does not exist; cannot find the newest data in it.")
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def resolve_data_uri(
    template: str,
    run_time: datetime | None = None,
    list_names: Callable[[str], list[str]] = list_folders,
) -> str:
    """The data URI of one run: date placeholders filled with the run's date, ``{latest}`` with the newest entry.

    ``{latest}`` takes the greatest sub-folder name in the folder before it
    (ISO dates and zero-padded numbers sort right; files there are ignored);
    only one ``{latest}`` is allowed.
    A template without placeholders is returned unchanged. Raises ConfigError
    for more than one ``{latest}``, InputFormatError when the folder is
    missing or empty.
    """
    moment = (run_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    dates = {"date": moment.strftime("%Y-%m-%d"), "yyyy": moment.strftime("%Y"),
             "mm": moment.strftime("%m"), "dd": moment.strftime("%d")}
    if template.count("{latest}") > 1:
        raise ConfigError(f"{template!r} has more than one {{latest}}; use one.")
    resolved = _PLACEHOLDER.sub(lambda m: dates.get(m.group(1), m.group(0)), template)
    if "{latest}" in resolved:
        prefix, _, rest = resolved.partition("{latest}")
        if not prefix.endswith("/"):
            raise ConfigError(f"In {template!r}, {{latest}} must be a whole path segment (.../{{latest}}/...).")
        names = list_names(prefix.rstrip("/"))
        if not names:
            raise InputFormatError(f"{prefix} has no sub-folders: no data to pick for {{latest}}.")
        resolved = prefix + max(names) + rest
    return resolved


def describe_schedule(summary: ScheduleSummary) -> str:
    """One line for ``schedule list``: id, state, cron, next run, display name."""
    return (
        f"{summary.schedule_id:<20} {summary.state:<8} {summary.cron:<34} "
        f"next={summary.next_run_time or '-':<28} runs={summary.started_run_count:<4} {summary.display_name}"
    )


def parameter_values_text(values: Mapping[str, Any]) -> str:
    """``name=value`` pairs, sorted, for printing what a schedule will send."""
    return ", ".join(f"{name}={values[name]!r}" for name in sorted(values))


__all__ = [
    "ScheduleNotFoundError",
    "ScheduleRequest",
    "ScheduleSummary",
    "build_schedule_request",
    "create_schedule",
    "delete_schedule",
    "describe_schedule",
    "list_folders",
    "list_schedules",
    "pause_schedule",
    "resolve_data_uri",
    "resolve_schedule_name",
    "resume_schedule",
    "summarize",
]
