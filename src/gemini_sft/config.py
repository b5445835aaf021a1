"""One YAML file per environment: where and how the pipeline runs on Vertex AI.

A file such as ``configs/prod.yaml`` holds the project, region, pipeline root,
service account, network, labels, caching choice, component image, promotion
registry, notification recipients, default pipeline parameter values and the
schedule defaults. :func:`load_config` reads it, applies environment
variable overrides and validates it, raising :class:`ConfigError` whose message
names the file, each wrong field and how to fix it.

Environment variables override single fields (empty values are ignored)::

    GEMINI_SFT_PROJECT, GEMINI_SFT_REGION, GEMINI_SFT_PIPELINE_ROOT,
    GEMINI_SFT_SERVICE_ACCOUNT, GEMINI_SFT_NETWORK, GEMINI_SFT_IMAGE,
    GEMINI_SFT_REGISTRY_URI, GEMINI_SFT_TEMPLATE_PATH, GEMINI_SFT_DISPLAY_NAME,
    GEMINI_SFT_ENABLE_CACHING (true/false/default), GEMINI_SFT_API_ENDPOINT,
    GEMINI_SFT_NOTIFICATION_EMAILS (comma-separated),
    GEMINI_SFT_LABELS (comma-separated key=value, merged over the file's labels)
"""

from __future__ import annotations

import os
import re
import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from gemini_sft.errors import ConfigError
from gemini_sft.settings_check import recipient_problems

ENV_PREFIX = "GEMINI_SFT_"
DEFAULT_TEMPLATE_PATH = "compiled/gemini_sft_pipeline.yaml"

_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
_SERVICE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9-]*@[a-z0-9.-]+\.(iam\.)?gserviceaccount\.com$")
_NETWORK = re.compile(r"^projects/[0-9]+/global/networks/[a-z][-a-z0-9]*$")
_CRON_ITEM = re.compile(r"^(?:(?P<all>\*)|(?P<low>[A-Za-z0-9]+)(?:-(?P<high>[A-Za-z0-9]+))?)(?:/(?P<step>[0-9]+))?$")
# The five fields of a unix-cron expression (what Vertex schedules take): name, lowest, highest, names.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_TZ_PREFIX = re.compile(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$")
_DISPLAY_NAME_MAX = 128

# Settings checked against a pattern: (pattern, what the message says, whether "" is allowed).
_PATTERN_RULES: dict[str, tuple[re.Pattern[str], str, bool]] = {
    "project": (_PROJECT_ID, "is not a project id: 6-30 characters, lowercase letters, digits and '-', "
                "starting with a letter (the id, not the project name or number)", False),
    "region": (_REGION, "is not a region such as us-central1 or europe-west4", False),
    "service_account": (_SERVICE_ACCOUNT, "is not a service account email such as "
                        "gemini-sft-pipelines@PROJECT.iam.gserviceaccount.com", True),
    "network": (_NETWORK, "is not a VPC network name: use projects/PROJECT_NUMBER/global/networks/NAME "
                "(the project number, not its id)", True),
}
# Settings that are Cloud Storage URIs, with an example each; only pipeline_root is required.
_GCS_URI_EXAMPLES = {
    "pipeline_root": "gs://my-bucket/pipeline-root",
    "registry_uri": "gs://my-bucket/gemini-sft/registry",
}


from gemini_sft.names import validate_labels  # noqa: E402,F401 (config checks labels with it)


def _cron_number(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    """The value of one cron number or name (``5``, ``MON``), or None when it is outside ``low..high``."""
    if text.upper() in names:
        return names.index(text.upper()) + low
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    return None


def _cron_field_problem(value: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    """Why one field of a cron expression is wrong (None when it is right)."""
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    for item in value.split(","):
        match = _CRON_ITEM.match(item)
        if not match:
            return f"{name} {value!r} is not cron syntax (*, N, N-M, */N, lists with ',')"
        bounds = [match.group("low"), match.group("high")] if not match.group("all") else []
        numbers = [_cron_number(text, low, high, names) for text in bounds if text is not None]
        if None in numbers:
            return f"{name} {value!r} is out of range: use {allowed}"
        if len(numbers) == 2 and numbers[0] > numbers[1]:  # type: ignore[operator]
            return f"{name} {value!r} is a range that runs backwards"
        if match.group("step") is not None and int(match.group("step")) < 1:
            return f"{name} {value!r} has a step of 0"
    return None


def split_cron(cron: str) -> tuple[str | None, str]:
    """``(time zone or None, five-field expression)`` of ``"TZ=Europe/Amsterdam 0 3 * * 1"``.

    The one cron rule set: the config's ``schedule.cron`` and ``schedule create --cron`` both go through it.
    Raises ValueError when the time zone is unknown, the expression does not have five fields, or a
    field is not unix-cron syntax within its range (minute 0-59, hour 0-23, day 1-31, month 1-12,
    day of week 0-7).
    """
    text = " ".join(cron.split())
    zone: str | None = None
    match = _TZ_PREFIX.match(text)
    if match:
        zone, text = match.group(1), match.group(2)
        validate_time_zone(zone)
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"{cron!r} is not a cron expression: expected five fields 'MINUTE HOUR DAY MONTH WEEKDAY', "
            "optionally after 'TZ=Area/City', e.g. 'TZ=Europe/Amsterdam 0 3 * * 1'"
        )
    for value, (name, low, high, names) in zip(fields, _CRON_FIELDS):
        problem = _cron_field_problem(value, name, low, high, names)
        if problem:
            raise ValueError(f"{cron!r} is not a cron expression: {problem}")
    return zone, text


def validate_time_zone(zone: str) -> str:
    """The IANA time zone name when it is known here, else ValueError."""
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{zone!r} is not an IANA time zone, e.g. Europe/Amsterdam or UTC") from exc
    return zone


def cron_with_time_zone(cron: str, time_zone: str | None) -> str:
    """The cron string Vertex expects: ``"TZ=<zone> <expression>"`` (a zone in ``cron`` itself wins)."""
    zone, expression = split_cron(cron)
    zone = zone or time_zone
    return f"TZ={zone} {expression}" if zone else expression


def parse_timestamp(value: str, field: str) -> str:
    """``value`` when it is an RFC 3339 time with a zone (``2026-12-01T00:00:00Z``), else ValueError."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} is not an RFC 3339 time such as 2026-12-01T03:00:00Z") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{field}: {value!r} has no time zone; add 'Z' or an offset such as +01:00")
    return value


class ScheduleDefaults(BaseModel):
    """Defaults for ``gemini-sft schedule create``; every field can be overridden on the command line.

    ``parameters`` are merged over the config's ``parameters`` for scheduled runs only.
    """

    model_config = ConfigDict(extra="forbid")

    display_name: str = "gemini-sft-retraining"
    cron: str = "0 3 * * 1"
    time_zone: str = "UTC"
    max_concurrent_run_count: int = Field(1, ge=1)
    max_run_count: int | None = Field(None, ge=1)
    allow_queueing: bool = False
    start_time: str | None = None
    end_time: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        split_cron(value)
        return value

    @field_validator("time_zone")
    @classmethod
    def _check_time_zone(cls, value: str) -> str:
        return validate_time_zone(value)

    @field_validator("start_time", "end_time")
    @classmethod
    def _check_times(cls, value: str | None, info: Any) -> str | None:
        return parse_timestamp(value, info.field_name) if value else None

    @model_validator(mode="after")
    def _check_window(self) -> "ScheduleDefaults":
        if self.start_time and self.end_time:
            start = datetime.fromisoformat(self.start_time.replace("Z", "+00:00"))
            end = datetime.fromisoformat(self.end_time.replace("Z", "+00:00"))
            if end <= start:
                raise ValueError(f"end_time {self.end_time} must be after start_time {self.start_time}")
        return self

    @property
    def vertex_cron(self) -> str:
        """The cron string sent to Vertex, time zone included."""
        return cron_with_time_zone(self.cron, self.time_zone)


class EnvironmentConfig(BaseModel):
    """Everything needed to submit or schedule the pipeline in one environment.

    ``parameters`` are pipeline parameter values used by every submission
    (command-line ``--param`` wins over them); ``enable_caching`` None keeps
    each task's own caching setting from the compiled spec.
    """

    model_config = ConfigDict(extra="forbid")

    project: str
    region: str = "us-central1"
    pipeline_root: str
    service_account: str = ""
    network: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    enable_caching: bool | None = None
    image: str = ""
    template_path: str = DEFAULT_TEMPLATE_PATH
    display_name: str = "gemini-sft"
    registry_uri: str = ""
    min_human_win_rate: float = Field(0.5, ge=0.0, le=1.0)  # share of human ratings the tuned model must win to be approved
    notification_emails: list[str] = Field(default_factory=list)
    api_endpoint: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    schedule: ScheduleDefaults = Field(default_factory=ScheduleDefaults)

    @field_validator(*_PATTERN_RULES)
    @classmethod
    def _check_pattern(cls, value: str, info: ValidationInfo) -> str:
        pattern, expected, may_be_empty = _PATTERN_RULES[info.field_name]
        if not pattern.match(value) and not (may_be_empty and not value):
            raise ValueError(f"{value!r} {expected}")
        return value

    @field_validator(*_GCS_URI_EXAMPLES)
    @classmethod
    def _check_gcs_uri(cls, value: str, info: ValidationInfo) -> str:
        if (value or info.field_name == "pipeline_root") and (
            not value.startswith("gs://") or len(value) <= len("gs://")
        ):
            raise ValueError(
                f"{value!r} must be a Cloud Storage URI such as {_GCS_URI_EXAMPLES[info.field_name]}"
            )
        return value.rstrip("/")

    @field_validator("labels", mode="before")
    @classmethod
    def _check_labels(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("labels must be a mapping of key: value")
        return validate_labels(value)

    @field_validator("notification_emails")
    @classmethod
    def _check_emails(cls, value: list[str]) -> list[str]:
        # The rule the pipeline parameter notification_emails is checked by, so config and spec agree.
        problems = recipient_problems(value, setting="notification_emails")
        if problems:
            # pydantic's message already starts with the field's name
            raise ValueError("; ".join(problem.removeprefix("notification_emails: ") for problem in problems))
        return value

    @field_validator("display_name")
    @classmethod
    def _check_display_name(cls, value: str) -> str:
        if not value.strip() or len(value) > _DISPLAY_NAME_MAX:
            raise ValueError(f"display_name must be 1-{_DISPLAY_NAME_MAX} characters")
        return value

    @property
    def console_project_url(self) -> str:
        """The Vertex AI Pipelines page of this project and region."""
        return f"https://console.cloud.google.com/vertex-ai/pipelines?project={self.project}&region={self.region}"


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Field values from ``GEMINI_SFT_*`` variables (unset or empty ones ignored)."""
    overrides: dict[str, Any] = {}
    simple = (
        "project", "region", "pipeline_root", "service_account", "network", "image",
        "registry_uri", "template_path", "display_name", "api_endpoint",
    )
    for field in simple:
        value = environ.get(ENV_PREFIX + field.upper(), "").strip()
        if value:
            overrides[field] = value
    caching = environ.get(ENV_PREFIX + "ENABLE_CACHING", "").strip().lower()
    if caching:
        choices = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "default": None}
        if caching not in choices:
            raise ConfigError(f"{ENV_PREFIX}ENABLE_CACHING={caching!r}: use true, false or default.")
        overrides["enable_caching"] = choices[caching]
    emails = environ.get(ENV_PREFIX + "NOTIFICATION_EMAILS", "").strip()
    if emails:
        overrides["notification_emails"] = [address.strip() for address in emails.split(",") if address.strip()]
    labels = environ.get(ENV_PREFIX + "LABELS", "").strip()
    if labels:
        parsed: dict[str, str] = {}
        for pair in labels.split(","):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{ENV_PREFIX}LABELS: {pair!r} is not key=value (e.g. team=support,env=prod).")
            parsed[key.strip()] = value.strip()
        overrides["labels"] = parsed
    return overrides


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source} is not a valid environment config:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required"
        elif item["type"] == "extra_forbidden":
            message = "is not a known setting (check the spelling; see configs/dev.yaml)"
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config", environ: Mapping[str, str] | None = None) -> EnvironmentConfig:
    """Validate a config mapping (as read from YAML) with environment overrides applied.

    ``environ`` defaults to ``os.environ``. Raises ConfigError listing every problem.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a YAML mapping of settings (project: ..., region: ...).")
    overrides = _env_overrides(os.environ if environ is None else environ)
    merged = dict(data)
    for key, value in overrides.items():
        if key == "labels":
            merged["labels"] = {**(data.get("labels") or {}), **value}
        else:
            merged[key] = value
    try:
        return EnvironmentConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def read_user_file(file: Path, missing: str, expected: str) -> str:
    """The UTF-8 text of a file a user named; ConfigError in one line when it cannot be that.

    Args:
        file: the file.
        missing: the message when it does not exist (it says how to make one).
        expected: what it should be, e.g. "a YAML config", for the messages about a folder or a binary file.
    """
    if file.is_dir():
        raise ConfigError(f"{file} is a folder; expected {expected} file.")
    if not file.is_file():
        raise ConfigError(missing)
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file} is not a text file (byte {exc.start} is not UTF-8); expected {expected}.") from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> EnvironmentConfig:
    """Read, override from the environment and validate one environment's YAML file.

    Raises ConfigError when the file is missing, is not YAML, or a field is invalid.
    """
    file = Path(path)
    text = read_user_file(file, f"Config file {file} does not exist; start from configs/dev.yaml.", "a YAML config")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    return parse_config(data, source=str(file), environ=environ)


def env_overrides_in_use(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the ``GEMINI_SFT_*`` variables that override the file (for ``config check``)."""
    env = os.environ if environ is None else environ
    return sorted(name for name, value in env.items() if name.startswith(ENV_PREFIX) and value.strip())
