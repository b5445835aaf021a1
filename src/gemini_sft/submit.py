"""Submit the compiled pipeline spec to Vertex AI Pipelines, after checking every parameter value.

The spec's own ``root.inputDefinitions`` decide what may be sent: unknown
names, values of the wrong type and required parameters without a value are
reported together, before any request leaves the machine
(:func:`check_parameter_values`). Values come, lowest first, from the spec's
defaults, the environment config (settings such as ``project`` fill the
pipeline parameters of the same meaning, then its ``parameters``), and
``--param NAME=VALUE`` on the command line (:func:`resolve_parameter_values`).
Those values over the spec's defaults then go through the pipeline's one rule
set (:mod:`gemini_sft.settings_check`: adapter size per model, epochs,
fractions, region, recipients, ...), so a bad setting is refused here, not
minutes later inside a step.

:func:`submit_pipeline` builds a ``google.cloud.aiplatform.PipelineJob`` with
a readable run id and sends it; :func:`follow_run` polls its state until it ends.
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from gemini_sft import __version__
from gemini_sft.config import EnvironmentConfig, read_user_file
from gemini_sft.names import sanitize_label_value, validate_labels
from gemini_sft.errors import PipelineRunFailedError, ParameterValueError, ConfigError, VertexApiError
from gemini_sft.parameters import coerce_value, split_assignment

log = logging.getLogger(__name__)

_TYPE_WORDS = {
    "STRING": "a string",
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "STRUCT": "a mapping (JSON object)",
    "LIST": "a list",
}
# Config settings that fill pipeline parameters of the same meaning when the spec declares them.
CONFIG_TO_PARAMETERS: dict[str, tuple[str, ...]] = {
    "project": ("project",),
    "region": ("location", "region"),
    "registry_uri": ("registry_uri",),
    "api_endpoint": ("api_endpoint",),
    "notification_emails": ("notification_emails",),
}
TERMINAL_STATES = ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")
_RUN_ID = re.compile(r"^[a-z][-a-z0-9]{0,127}$")
# Images of Google's prebuilt components (e.g. VertexNotificationEmailOp), not built from this repository.
GOOGLE_COMPONENT_IMAGE_PREFIXES = ("gcr.io/ml-pipeline/", "us-docker.pkg.dev/vertex-ai/")
NOTIFICATION_COMPONENT = "notification-email"
VERSION_LABEL = "gemini-sft-version"
TRIGGER_LABEL = "gemini-sft-trigger"


@dataclass(frozen=True)
class ParameterDefinition:
    """One input parameter of a compiled pipeline: its type, and its default when it has one."""

    name: str
    parameter_type: str
    default: Any = None
    has_default: bool = False
    optional: bool = False
    description: str = ""

    @property
    def required(self) -> bool:
        """True when a run cannot start without a value for it."""
        return not self.has_default and not self.optional


@dataclass(frozen=True)
class PipelineSpec:
    """A compiled KFP v2 pipeline spec (the YAML ``gemini-sft compile`` writes)."""

    path: Path
    document: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> "PipelineSpec":
        """Read a compiled spec. Raises ConfigError when the file is missing, not text or not a KFP v2 spec."""
        file = Path(path)
        text = read_user_file(
            file, f"Compiled spec {file} does not exist; run `gemini-sft compile` (or `make compile`).",
            "a compiled pipeline spec (YAML)",
        )
        try:
            documents = [doc for doc in yaml.safe_load_all(text) if doc]
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file} is not YAML: {exc}") from None
        for document in documents:
            if isinstance(document, dict) and "pipelineInfo" in document and "root" in document:
                return cls(path=file, document=document)
            if isinstance(document, dict) and isinstance(document.get("pipelineSpec"), dict):
                return cls(path=file, document=document["pipelineSpec"])
        raise ConfigError(f"{file} is not a compiled KFP v2 pipeline spec (no pipelineInfo/root).")

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> "PipelineSpec":
        """The spec of a KFP pipeline object in memory (what ``gemini-sft compile`` would write)."""
        from google.protobuf import json_format

        return cls(path=Path("<in memory>"), document=json_format.MessageToDict(pipeline.pipeline_spec))

    @property
    def name(self) -> str:
        return str(self.document.get("pipelineInfo", {}).get("name", ""))

    def default_values(self) -> dict[str, Any]:
        """Name -> default of every parameter that has one, typed by the spec (an integer's ``3.0`` is 3)."""
        return {
            name: _typed_default(definition.default, definition.parameter_type)
            for name, definition in self.parameters.items()
            if definition.has_default
        }

    @property
    def parameters(self) -> dict[str, ParameterDefinition]:
        """Name -> definition from ``root.inputDefinitions.parameters``."""
        raw = self.document.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) or {}
        definitions: dict[str, ParameterDefinition] = {}
        for name, entry in raw.items():
            definitions[name] = ParameterDefinition(
                name=name,
                parameter_type=str(entry.get("parameterType", "STRING")),
                default=entry.get("defaultValue"),
                has_default="defaultValue" in entry,
                optional=bool(entry.get("isOptional", False)),
                description=str(entry.get("description", "")),
            )
        return definitions

    @property
    def images(self) -> set[str]:
        """Every container image the spec's own executors run (Google's prebuilt components left out)."""
        executors = self.document.get("deploymentSpec", {}).get("executors", {}) or {}
        images = {
            str(executor["container"]["image"])
            for executor in executors.values()
            if isinstance(executor, dict) and "image" in executor.get("container", {})
        }
        return {image for image in images if not image.startswith(GOOGLE_COMPONENT_IMAGE_PREFIXES)}

    @property
    def sends_notifications(self) -> bool:
        """True when the spec was compiled with the end-of-run email (VertexNotificationEmailOp)."""
        return any(NOTIFICATION_COMPONENT in name for name in self.document.get("components", {}) or {})


def _typed_default(value: Any, parameter_type: str) -> Any:
    """A spec default as its parameter type: the spec stores every number as a double."""
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def values_to_check(spec: PipelineSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every value a run of ``spec`` would use: its defaults, overlaid by ``values``."""
    return {**spec.default_values(), **values}


def check_settings(spec: PipelineSpec, values: Mapping[str, Any], outcome: str) -> None:
    """ConfigError, one line per problem, when the pipeline's rule set refuses ``values`` over the spec's defaults.

    Args:
        spec: the compiled spec the values are for.
        values: the values that would be sent (checked against the spec's types already).
        outcome: what does not happen because of a refusal, for the message.
    """
    from gemini_sft.settings_check import pipeline_stage_records, raise_for_settings

    raise_for_settings(values_to_check(spec, values), pipeline_stage_records(), outcome)


def _type_fits(value: Any, parameter_type: str) -> bool:
    if parameter_type == "STRING":
        return isinstance(value, str)
    if parameter_type == "NUMBER_INTEGER":
        return isinstance(value, int) and not isinstance(value, bool)
    if parameter_type == "NUMBER_DOUBLE":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if parameter_type == "BOOLEAN":
        return isinstance(value, bool)
    if parameter_type == "STRUCT":
        return isinstance(value, dict)
    if parameter_type == "LIST":
        return isinstance(value, list)
    return True


def check_parameter_values(spec: PipelineSpec, values: Mapping[str, Any], complete: bool = True) -> dict[str, Any]:
    """``values`` when every one fits the spec; else ParameterValueError listing all problems.

    Checks: every name is a parameter of the spec (close spellings suggested),
    every value has the parameter's type (an integer is accepted for a
    NUMBER_DOUBLE, a bool never for a number), and (when ``complete``) every
    parameter without a default and not optional has a value.
    """
    definitions = spec.parameters
    problems: list[str] = []
    for name, value in values.items():
        definition = definitions.get(name)
        if definition is None:
            close = difflib.get_close_matches(name, list(definitions), n=2)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            problems.append(f"{name!r} is not a parameter of pipeline {spec.name!r}.{hint}")
            continue
        if not _type_fits(value, definition.parameter_type):
            problems.append(
                f"{name!r} must be {_TYPE_WORDS.get(definition.parameter_type, definition.parameter_type)} "
                f"({definition.parameter_type}); got {type(value).__name__} {value!r}."
            )
    for name, definition in sorted(definitions.items()):
        if complete and definition.required and name not in values:
            problems.append(
                f"{name!r} ({definition.parameter_type}) is required and has no default: "
                f"set it in the config's `parameters` or pass --param {name}=VALUE."
            )
    if problems:
        raise ParameterValueError(problems)
    return dict(values)


def parse_param_assignments(spec: PipelineSpec, assignments: Iterable[str]) -> dict[str, Any]:
    """Typed values for ``NAME=VALUE`` strings, using the spec's parameter types.

    Unknown names are kept as strings so :func:`check_parameter_values` reports
    them together with every other problem. Raises ConfigError for a malformed
    assignment or a value that cannot be read as its type.
    """
    definitions = spec.parameters
    values: dict[str, Any] = {}
    for assignment in assignments:
        name, raw = split_assignment(assignment)
        definition = definitions.get(name)
        values[name] = coerce_value(name, raw, definition.parameter_type) if definition else raw
    return values


def resolve_parameter_values(
    spec: PipelineSpec,
    config: EnvironmentConfig,
    assignments: Iterable[str] = (),
    overrides: Mapping[str, Any] | None = None,
    outcome: str = "nothing was sent to Vertex",
    complete: bool = True,
) -> dict[str, Any]:
    """The checked parameter values of one run.

    Lowest first: config settings filling same-meaning parameters the spec
    declares (``project``, ``region`` -> ``location``, ``registry_uri``,
    ``api_endpoint``, ``notification_emails``), the config's ``parameters``,
    ``overrides`` (e.g. the schedule's parameters), then ``assignments``
    (``NAME=VALUE``). Parameters not given keep the spec's defaults (they are
    not sent). The values must fit the spec's types, and then, over the spec's
    defaults, pass the pipeline's rule set (:func:`check_settings`).

    Args:
        spec: the compiled spec.
        config: the environment config.
        assignments: ``NAME=VALUE`` strings from the command line.
        overrides: values between the config's and the command line's (the schedule's parameters).
        outcome: what does not happen when a setting is refused, for the message.
        complete: whether a required parameter without a value is a problem (not for values that
            the command line completes later).

    Raises:
        ParameterValueError (names or types), ConfigError (a setting the rule set refuses).
    """
    definitions = spec.parameters
    values: dict[str, Any] = {}
    for setting, parameter_names in CONFIG_TO_PARAMETERS.items():
        setting_value = getattr(config, setting)
        if setting_value in ("", None, []):
            continue
        for parameter_name in parameter_names:
            if parameter_name in definitions:
                values[parameter_name] = setting_value
    values.update(config.parameters)
    values.update(overrides or {})
    values.update(parse_param_assignments(spec, assignments))
    checked = check_parameter_values(spec, values, complete)
    check_settings(spec, checked, outcome)
    return checked


def run_id_for(display_name: str, now: datetime | None = None) -> str:
    """A readable, unique-per-second run id: ``<display name as slug>-YYYYMMDD-HHMMSS`` (UTC).

    Vertex requires ``[a-z][-a-z0-9]{0,127}``; the slug is cut to fit.
    """
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    stamp = moment.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"run-{slug}".rstrip("-")
    slug = slug[: 127 - len(stamp)].rstrip("-")
    run_id = f"{slug}-{stamp}"
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"Cannot make a valid run id from display name {display_name!r}.")
    return run_id


def console_url(project: str, region: str, run_id: str) -> str:
    """The Vertex AI console page of one pipeline run."""
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{run_id}?project={project}"


def run_labels(config: EnvironmentConfig, trigger: str) -> dict[str, str]:
    """The config's labels plus the tool version and what started the run (``manual`` or ``schedule``)."""
    labels = {
        **config.labels,
        VERSION_LABEL: sanitize_label_value(__version__),
        TRIGGER_LABEL: trigger,
    }
    return validate_labels(labels)


def check_image(spec: PipelineSpec, config: EnvironmentConfig) -> list[str]:
    """Warnings when the spec does not match the config: another component image, or emails it cannot send."""
    warnings: list[str] = []
    others = sorted(image for image in spec.images if config.image and image != config.image)
    if others:
        warnings.append(
            f"The compiled spec runs image(s) {', '.join(others)} but the config names {config.image}; "
            f"recompile with `gemini-sft compile --image {config.image}` if that is not intended."
        )
    if config.notification_emails and not spec.sends_notifications:
        warnings.append(
            "The config names notification_emails but the spec was compiled without the end-of-run email; "
            "recompile with `gemini-sft compile --notify EMAIL` to send it."
        )
    return warnings


@dataclass(frozen=True)
class SubmittedRun:
    """A pipeline run Vertex accepted: its ids, console link and the values it was given."""

    run_id: str
    resource_name: str
    display_name: str
    console_url: str
    parameter_values: dict[str, Any] = field(default_factory=dict)
    state: str = ""


def build_pipeline_job(
    config: EnvironmentConfig,
    spec: PipelineSpec,
    parameter_values: Mapping[str, Any],
    *,
    run_id: str,
    display_name: str,
    trigger: str = "manual",
) -> Any:
    """A ``PipelineJob`` for this environment (nothing is sent yet).

    Initialises google-cloud-aiplatform for the config's project, region and
    API endpoint (``api_endpoint`` or ``$VERTEX_API_ENDPOINT``).
    """
    from google.cloud import aiplatform

    from gemini_sft.vertex_client import VertexSettings, init_aiplatform

    settings = VertexSettings.create(config.project, config.region, config.api_endpoint or None)
    init_aiplatform(settings)
    return aiplatform.PipelineJob(
        display_name=display_name,
        template_path=str(spec.path),
        job_id=run_id,
        pipeline_root=config.pipeline_root,
        parameter_values=dict(parameter_values),
        enable_caching=config.enable_caching,
        labels=run_labels(config, trigger),
        project=config.project,
        location=config.region,
    )


def submit_pipeline(
    config: EnvironmentConfig,
    spec: PipelineSpec,
    parameter_values: Mapping[str, Any],
    *,
    display_name: str = "",
    now: datetime | None = None,
) -> SubmittedRun:
    """Send one run of ``spec`` to Vertex AI Pipelines with the config's service account and network.

    ``parameter_values`` must come from :func:`resolve_parameter_values` (they
    are checked again here). Returns the accepted run. Raises
    ParameterValueError or ConfigError before sending anything, VertexApiError
    when Vertex refuses the run.
    """
    from google.api_core import exceptions as api_exceptions

    values = check_parameter_values(spec, parameter_values)
    check_settings(spec, values, "nothing was sent to Vertex")
    for warning in check_image(spec, config):
        log.warning(warning)
    name = display_name or config.display_name
    run_id = run_id_for(name, now)
    job = build_pipeline_job(config, spec, values, run_id=run_id, display_name=name)
    log.info("Submitting run %s with %d parameter value(s)", run_id, len(values))
    try:
        job.submit(service_account=config.service_account or None, network=config.network or None)
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(
            f"Vertex AI refused pipeline run {run_id} in {config.project}/{config.region}: {exc}"
        ) from exc
    return SubmittedRun(
        run_id=run_id,
        resource_name=job.resource_name,
        display_name=name,
        console_url=console_url(config.project, config.region, run_id),
        parameter_values=values,
        state=_state_name(job.gca_resource.state),
    )


def _state_name(state: Any) -> str:
    return getattr(state, "name", str(state or ""))


def get_run_state(resource_name: str) -> str:
    """The current state of a pipeline run (e.g. ``PIPELINE_STATE_RUNNING``); aiplatform must be initialised."""
    from google.api_core import exceptions as api_exceptions
    from google.cloud import aiplatform

    try:
        return _state_name(aiplatform.PipelineJob.get(resource_name).state)
    except api_exceptions.GoogleAPIError as exc:
        raise VertexApiError(f"Cannot read the state of {resource_name}: {exc}") from exc


def follow_run(
    resource_name: str,
    *,
    poll_seconds: float = 30.0,
    timeout_seconds: float | None = None,
    on_state: Callable[[str], None] | None = None,
    read_state: Callable[[str], str] = get_run_state,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll a run until it ends; ``on_state`` is called on every state change. Returns ``PIPELINE_STATE_SUCCEEDED``.

    Raises PipelineRunFailedError when it ends FAILED or CANCELLED or is still
    going after ``timeout_seconds``.
    """
    started = clock()
    previous = ""
    while True:
        state = read_state(resource_name)
        if state != previous:
            previous = state
            if on_state:
                on_state(state)
        if state in TERMINAL_STATES:
            if state != "PIPELINE_STATE_SUCCEEDED":
                raise PipelineRunFailedError(
                    f"Pipeline run {resource_name} ended {state.removeprefix('PIPELINE_STATE_')}; "
                    "open its console page to see which step failed and why."
                )
            return state
        if timeout_seconds is not None and clock() - started >= timeout_seconds:
            raise PipelineRunFailedError(
                f"Pipeline run {resource_name} is still {state} after {timeout_seconds:.0f} s; it keeps running."
            )
        sleep(poll_seconds)
