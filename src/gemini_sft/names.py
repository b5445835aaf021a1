"""Google Cloud names in one place: label rules and the resource names and URLs of Vertex objects.

Label rules (keys and values: lowercase letters, digits, ``_`` and ``-``, at
most 63 characters; keys start with a letter; at most 64 labels) are applied
here for every label this project sets: tuning jobs, pipeline runs, Model
Registry versions, promotion records.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from gemini_sft.errors import TuningSettingsError

_MAX_LABEL_LENGTH = 63
_LABEL_INVALID_CHARS = re.compile(r"[^a-z0-9_-]")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
JOB_NAME_RE = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/tuningJobs/(?P<id>[^/]+)$")
SCHEDULE_NAME_RE = re.compile(r"^projects/[^/]+/locations/[^/]+/schedules/[^/]+$")


def sanitize_label_value(value: str) -> str:
    """``value`` under GCP label rules: lowercase, only ``[a-z0-9_-]``, at most 63 characters.

    Other characters become ``-``. A longer value is cut to 54 characters and
    given an 8-character hash of the whole value, so two long run names that
    share a prefix keep distinct labels.
    """
    cleaned = _LABEL_INVALID_CHARS.sub("-", value.strip().lower())
    if len(cleaned) <= _MAX_LABEL_LENGTH:
        return cleaned
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[: _MAX_LABEL_LENGTH - 9]}-{digest}"


def sanitize_label_key(key: str) -> str:
    """``key`` under GCP label-key rules (as values, and it must start with a lowercase letter).

    Raises TuningSettingsError when nothing usable is left.
    """
    cleaned = sanitize_label_value(key)
    if not cleaned or not cleaned[0].isalpha():
        raise TuningSettingsError(
            f"Label key {key!r} must start with a letter (GCP label rules: lowercase letters, digits, '_' and '-')."
        )
    return cleaned


def validate_labels(labels: Mapping[str, str], where: str = "") -> dict[str, str]:
    """The labels when Google Cloud accepts them; ValueError naming the offending key or value.

    Keys: lowercase letter first, then lowercase letters, digits, ``_`` or ``-``
    (at most 63). Values: the same characters, at most 63, may be empty.
    At most 64 labels.
    """
    prefix = f"{where}: " if where else ""
    if len(labels) > 64:
        raise ValueError(f"{prefix}at most 64 labels are allowed, got {len(labels)}")
    checked: dict[str, str] = {}
    for key, value in labels.items():
        text = "" if value is None else str(value)
        if not _LABEL_KEY.match(str(key)):
            raise ValueError(
                f"{prefix}key {key!r} must start with a lowercase letter and use only a-z, 0-9, '_' or '-' "
                "(at most 63 characters)"
            )
        if not _LABEL_VALUE.match(text):
            raise ValueError(
                f"{prefix}value {text!r} of {key!r} may use only a-z, 0-9, '_' or '-' (at most 63 characters)"
            )
        checked[str(key)] = text
    return checked


def job_id(job_name: str) -> str:
    """The id at the end of a tuning job resource name."""
    return job_name.rstrip("/").rsplit("/", 1)[-1]


def schedule_name(project: str, location: str, schedule_id: str) -> str:
    """The resource name of a pipeline schedule from its project, region and numeric id."""
    return f"projects/{project}/locations/{location}/schedules/{schedule_id}"


def job_resource_url(job_name: str, location: str) -> str:
    """The URI GCPC's long-running components put in ``gcp_resources``: the regional v1 REST URL."""
    return f"https://{location}-aiplatform.googleapis.com/v1/{job_name}"


def model_resource_url(model_name: str, location: str) -> str:
    """The regional v1 REST URL of a Model Registry model."""
    return f"https://{location}-aiplatform.googleapis.com/v1/{model_name}"


def console_url(job_name: str, location: str, project: str) -> str:
    """The Vertex AI console page of a tuning job."""
    match = JOB_NAME_RE.match(job_name)
    if match:
        project = project or match.group("project")
        location = match.group("location")
    return (
        f"https://console.cloud.google.com/vertex-ai/generative/language/locations/{location}"
        f"/tuning/tuningJob/{job_id(job_name)}?project={project}"
    )
