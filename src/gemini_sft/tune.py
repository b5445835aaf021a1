"""The tune stage: launch, watch, resume, cancel and account for a Vertex supervised tuning job.

This module is the plain-Python core of ``components/tune.py``. It never
imports a cloud SDK: it talks to a :class:`TuningService` (the real one is
``gemini_sft.vertex_client.GenAITuningService``; tests pass a fake or point the
real one at the offline stand-in).

Flow of :func:`run_tuning`:

1. :meth:`TuningSettings.check` validates every setting before any call
   (:class:`~gemini_sft.errors.TuningSettingsError` lists every problem).
2. Idempotent resume: a job recorded in an earlier attempt's ``gcp_resources``
   file, or any job carrying this step's identity labels (``gemini-sft-run=<run>``
   and ``gemini-sft-request=<fingerprint of the settings>``, so two tune steps
   of one run never take each other's job), is resumed instead of launching a
   second paid job.
   A SUCCEEDED job is reused as is. A job that ended FAILED, CANCELLED or
   EXPIRED is *not* relaunched automatically: the step fails again with that
   job's error, because paying for a second attempt must be a decision
   (``retry_failed_job=True``, or a new pipeline run, which has a new label).
3. Otherwise the job is created. A transient error on create is followed by a
   label search before trying again, so a create that reached the server is
   never repeated.
4. The job is polled with exponential backoff and jitter until it ends; each
   state change is logged with the elapsed time; transient API errors (429,
   5xx, dropped connections, timeouts) are retried.
5. On SIGTERM (the pipeline run was cancelled) the job is cancelled and the
   step fails (:class:`TuningStoppedError`); this holds from the resume lookup
   on, so a stop during the create call cancels the job it made. A preempted
   pod also gets SIGTERM and cannot be told apart: on preemptible nodes set
   ``cancel_on_stop=False`` so the retry resumes the job instead.
6. A job that ends FAILED, CANCELLED or EXPIRED raises
   :class:`~gemini_sft.errors.TuningJobFailedError` with the job's own error
   message and resource name; a SUCCEEDED job gives a :class:`TuningOutcome`.

Maximum wait: when the job has not ended after ``WatchSettings.max_wait_seconds``
of watching, :class:`~gemini_sft.errors.TuningTimeoutError` is raised and, by
default, the job is **left running**: its tokens are being paid for anyway, and
a retry of the step (or of the pipeline run, same label) resumes watching it
and uses the result. Set ``cancel_on_timeout=True`` to cancel it instead.

Cost: Vertex bills training tokens = dataset tokens x epochs. The job reports
``tuningDataStats.supervisedTuningDataStats.totalBillableTokenCount``; its
field documentation says "in the tuning dataset", but the job also reports
``totalTuningCharacterCount`` (one pass) next to ``totalBillableCharacterCount``,
and the billable count is taken to cover every epoch already (as the offline
stand-in reports it). When the job's own character counts show otherwise
(billable characters about equal to one pass while epochs > 1), the token
count is multiplied by the epochs. So, normally,
``actual_cost_usd = totalBillableTokenCount x price per 1M training tokens / 1e6``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import random
import re
import signal
import string
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence, TypeVar

from gemini_sft import model_catalog
from gemini_sft.names import (
    JOB_NAME_RE,
    console_url,
    job_id,
    job_resource_url,
    model_resource_url,
    sanitize_label_key,
    sanitize_label_value,
)
from gemini_sft.retry import RetryPolicy, call_with_retries
from gemini_sft.errors import (
    ConfigError,
    TransientApiError,
    TuningStoppedError,
    TuningJobFailedError,
    TuningSettingsError,
    TuningTimeoutError,
    VertexApiError,
)

log = logging.getLogger(__name__)

RUN_LABEL_KEY = "gemini-sft-run"
REQUEST_LABEL_KEY = "gemini-sft-request"
DATASET_LABEL_KEY = "gemini-sft-dataset"
MANAGED_BY_LABEL_KEY = "managed-by"
MANAGED_BY_LABEL_VALUE = "gemini-sft"
RESERVED_LABEL_KEYS = frozenset({RUN_LABEL_KEY, REQUEST_LABEL_KEY, DATASET_LABEL_KEY, MANAGED_BY_LABEL_KEY})

STATE_PENDING = "JOB_STATE_PENDING"
STATE_RUNNING = "JOB_STATE_RUNNING"
STATE_SUCCEEDED = "JOB_STATE_SUCCEEDED"
STATE_FAILED = "JOB_STATE_FAILED"
STATE_CANCELLED = "JOB_STATE_CANCELLED"
STATE_EXPIRED = "JOB_STATE_EXPIRED"
FAILED_STATES = frozenset({STATE_FAILED, STATE_CANCELLED, STATE_EXPIRED})
TERMINAL_STATES = FAILED_STATES | {STATE_SUCCEEDED}

GCP_RESOURCE_TYPE = "TuningJob"
OFFLINE_STANDIN_MARKER = "offline-stand-in"

_MAX_LABELS = 64
_MAX_DISPLAY_NAME_LENGTH = 128
_DISPLAY_NAME_FIELDS = frozenset({"run", "dataset_hash", "base_model"})
_TUNED_MODEL_RE = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/models/(?P<model>[^/@]+)(@(?P<version>[A-Za-z0-9_-]+))?$"
)
_KMS_KEY_RE = re.compile(
    r"^projects/[^/]+/locations/(?P<location>[^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$"
)


def gcp_resources_json(job_name: str, location: str) -> str:
    """The ``gcp_resources`` document Google's long-running components write (see GCPC job_remote_runner)."""
    return json.dumps(
        {"resources": [{"resourceType": GCP_RESOURCE_TYPE, "resourceUri": job_resource_url(job_name, location)}]}
    )


def job_name_from_gcp_resources(text: str) -> str | None:
    """The tuning job named in a ``gcp_resources`` document, or None when it names none."""
    if not text.strip():
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        log.warning("gcp_resources of an earlier attempt is not JSON; ignoring it")
        return None
    for resource in document.get("resources", []):
        if resource.get("resourceType") == GCP_RESOURCE_TYPE:
            uri = str(resource.get("resourceUri", ""))
            marker = uri.find("/v1/")
            if marker >= 0 and JOB_NAME_RE.match(uri[marker + 4 :]):
                return uri[marker + 4 :]
    return None


# --------------------------------------------------------------------------------------------
# Settings and request
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuningRequest:
    """Everything sent to Vertex to create one supervised tuning job (SDK-independent).

    ``base_model`` is a publisher model id, or a tuned model resource
    (``projects/P/locations/L/models/ID@alias``) for continuous tuning.
    Optional fields are None when not sent.
    """

    base_model: str
    training_dataset_uri: str
    validation_dataset_uri: str | None
    epoch_count: int
    adapter_size: str | None
    learning_rate_multiplier: float
    tuned_model_display_name: str
    description: str
    labels: dict[str, str]
    kms_key_name: str | None
    output_uri: str | None
    export_last_checkpoint_only: bool

    def fingerprint(self) -> str:
        """16 hex characters identifying everything but the labels: equal for a retry of the same step."""
        fields = {k: v for k, v in asdict(self).items() if k != "labels"}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def identity_labels(request: TuningRequest) -> dict[str, str]:
    """The labels that say "launched by this step of this pipeline run": run and request fingerprint.

    Empty when no pipeline run is known (such a job can never be resumed).
    Two tune steps of one run with different settings (e.g. in a ParallelFor)
    get different fingerprints, so neither resumes the other's job.
    """
    if RUN_LABEL_KEY not in request.labels:
        return {}
    return {key: request.labels[key] for key in (RUN_LABEL_KEY, REQUEST_LABEL_KEY) if key in request.labels}


@dataclass(frozen=True)
class TuningSettings:
    """Every supported tuning setting, as the pipeline passes them.

    Attributes:
        training_uri: the training JSONL (gs:// on Vertex; a local path for a local server).
        validation_uri: the validation JSONL, "" for none.
        base_model: publisher model id, e.g. ``gemini-2.5-flash``.
        epochs: passes over the training data (>= 1).
        adapter_size: LoRA adapter size; allowed values per model in ``model_catalog``; 0 lets Vertex choose.
        learning_rate_multiplier: > 0.
        tuned_model_display_name: template; ``{run}``, ``{dataset_hash}`` and ``{base_model}`` are filled in.
        description: job description ("" gives a default naming the pipeline run).
        labels: user labels (sanitised to GCP label rules); the run and dataset labels are added.
        pipeline_run: pipeline run name; its label makes the step idempotent ("" disables resume).
        dataset_hash: hash of the cleaned splits from the clean stage (a label).
        encryption_key: CMEK key ``projects/P/locations/L/keyRings/R/cryptoKeys/K`` in the job's region, or "".
        output_uri: Cloud Storage prefix for the job's outputs, or "".
        export_last_checkpoint_only: export only the final checkpoint.
        continuous_from_model: tuned model to continue from (``projects/.../models/ID@alias``), or "".
        price_per_million_tokens_usd: price override for the actual cost; 0 = catalogue price.
    """

    training_uri: str
    validation_uri: str = ""
    base_model: str = model_catalog.DEFAULT_BASE_MODEL
    epochs: int = 3
    adapter_size: int = 4
    learning_rate_multiplier: float = 1.0
    tuned_model_display_name: str = "gemini-sft-{run}"
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    pipeline_run: str = ""
    dataset_hash: str = ""
    encryption_key: str = ""
    output_uri: str = ""
    export_last_checkpoint_only: bool = False
    continuous_from_model: str = ""
    price_per_million_tokens_usd: float = 0.0

    @property
    def effective_base_model(self) -> str:
        """The model the job starts from: the production model for continuous tuning, else the base model."""
        return self.continuous_from_model or self.base_model

    @property
    def run_label(self) -> str:
        """The sanitised pipeline-run label value ("" when no run is known)."""
        return sanitize_label_value(self.pipeline_run) if self.pipeline_run.strip() else ""

    def check(self, location: str, remote: bool = True) -> None:
        """Check every setting before any call; raises TuningSettingsError listing every problem.

        ``remote`` is False when the API endpoint is a local server, which reads
        local paths; on Vertex, dataset and output URIs must be ``gs://``.
        """
        problems: list[str] = []
        if location not in model_catalog.TUNING_REGIONS:
            problems.append(
                f"region {location!r} does not offer Gemini tuning; use one of: "
                + ", ".join(sorted(model_catalog.TUNING_REGIONS))
            )
        limits: model_catalog.ModelLimits | None = None
        try:
            limits = model_catalog.limits_for(self.base_model)
        except ConfigError as error:
            problems.append(str(error))
        if self.continuous_from_model:
            match = _TUNED_MODEL_RE.match(self.continuous_from_model)
            if not match:
                problems.append(
                    f"continuous_from_model {self.continuous_from_model!r} is not a tuned model resource "
                    "like projects/P/locations/L/models/ID@production"
                )
            elif match.group("location") != location:
                problems.append(
                    f"continuous_from_model is in {match.group('location')!r} but the job runs in {location!r}; "
                    "continuous tuning must run in the model's region"
                )
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            problems.append(f"epochs must be a whole number >= 1, got {self.epochs!r}")
        if not (math.isfinite(self.learning_rate_multiplier) and self.learning_rate_multiplier > 0):
            problems.append(f"learning_rate_multiplier must be > 0, got {self.learning_rate_multiplier!r}")
        if self.adapter_size != 0:
            allowed = limits.adapter_sizes if limits else tuple(model_catalog.ADAPTER_SIZE_ENUM)
            if self.adapter_size not in allowed or self.adapter_size not in model_catalog.ADAPTER_SIZE_ENUM:
                problems.append(
                    f"adapter_size {self.adapter_size} is not allowed for {self.base_model}; "
                    f"allowed: {', '.join(map(str, allowed))} (or 0 to let Vertex choose)"
                )
        if not self.training_uri.strip():
            problems.append("the training dataset URI is empty; the tune step needs the clean stage's train split")
        elif remote and not self.training_uri.startswith("gs://"):
            problems.append(f"training dataset {self.training_uri!r} must be a gs:// URI for Vertex to read it")
        if self.validation_uri and remote and not self.validation_uri.startswith("gs://"):
            problems.append(f"validation dataset {self.validation_uri!r} must be a gs:// URI for Vertex to read it")
        if self.output_uri and remote and not self.output_uri.startswith("gs://"):
            problems.append(f"output_uri {self.output_uri!r} must be a gs:// prefix")
        if self.encryption_key:
            key_match = _KMS_KEY_RE.match(self.encryption_key)
            if not key_match:
                problems.append(
                    f"encryption_key {self.encryption_key!r} is not a Cloud KMS key name like "
                    "projects/P/locations/L/keyRings/R/cryptoKeys/K"
                )
            elif key_match.group("location") != location:
                problems.append(
                    f"encryption_key is in {key_match.group('location')!r}; the key must be in the job's region "
                    f"{location!r}"
                )
        if self.price_per_million_tokens_usd < 0:
            problems.append("price_per_million_tokens_usd must be >= 0 (0 = catalogue price)")
        for problem in self._label_problems() + self._display_name_problems():
            problems.append(problem)
        if problems:
            raise TuningSettingsError(
                "Tuning settings are invalid (nothing was launched):\n- " + "\n- ".join(problems)
            )

    def _label_problems(self) -> list[str]:
        try:
            labels = self.job_labels()
        except TuningSettingsError as error:
            return [str(error)]
        if len(labels) + 1 > _MAX_LABELS:  # + the request fingerprint label
            return [f"{len(labels) + 1} labels in all; Vertex accepts at most {_MAX_LABELS}"]
        return []

    def _display_name_problems(self) -> list[str]:
        try:
            self.display_name()
        except TuningSettingsError as error:
            return [str(error)]
        return []

    def job_labels(self) -> dict[str, str]:
        """User labels plus the run, dataset and managed-by labels, all sanitised.

        :meth:`build_request` adds the request fingerprint label.

        Raises TuningSettingsError when a user label uses a reserved key or two keys collide.
        """
        labels: dict[str, str] = {}
        for key, value in self.labels.items():
            clean_key = sanitize_label_key(str(key))
            if clean_key in RESERVED_LABEL_KEYS:
                raise TuningSettingsError(
                    f"Label {key!r} is set by the tune step itself; remove it from the labels parameter."
                )
            if clean_key in labels:
                raise TuningSettingsError(f"Labels {key!r} and another key both become {clean_key!r}; rename one.")
            labels[clean_key] = sanitize_label_value(str(value))
        labels[MANAGED_BY_LABEL_KEY] = MANAGED_BY_LABEL_VALUE
        if self.run_label:
            labels[RUN_LABEL_KEY] = self.run_label
        if self.dataset_hash:
            labels[DATASET_LABEL_KEY] = sanitize_label_value(self.dataset_hash)
        return labels

    def display_name(self) -> str:
        """The tuned model display name with the template filled in (cut to Vertex's 128 characters).

        Raises TuningSettingsError for an unknown ``{field}`` or a malformed template.
        """
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.tuned_model_display_name) if name}
        except ValueError as error:
            raise TuningSettingsError(
                f"tuned_model_display_name {self.tuned_model_display_name!r} is not a valid template: {error}"
            ) from error
        unknown = fields - _DISPLAY_NAME_FIELDS
        if unknown:
            raise TuningSettingsError(
                f"tuned_model_display_name uses unknown field(s) {sorted(unknown)}; "
                f"available: {{run}}, {{dataset_hash}}, {{base_model}}"
            )
        name = self.tuned_model_display_name.format(
            run=self.pipeline_run or "adhoc",
            dataset_hash=self.dataset_hash[:12],
            base_model=model_catalog.base_model_id(self.base_model),
        ).strip()
        if not name:
            raise TuningSettingsError("tuned_model_display_name is empty")
        return name[:_MAX_DISPLAY_NAME_LENGTH]

    def build_request(self) -> TuningRequest:
        """The create request for these settings (call :meth:`check` first)."""
        description = self.description or (
            f"Supervised fine-tune of {self.effective_base_model} by the gemini-sft pipeline"
            + (f" (run {self.pipeline_run})" if self.pipeline_run else "")
        )
        request = TuningRequest(
            base_model=self.effective_base_model,
            training_dataset_uri=self.training_uri,
            validation_dataset_uri=self.validation_uri or None,
            epoch_count=self.epochs,
            adapter_size=model_catalog.ADAPTER_SIZE_ENUM[self.adapter_size] if self.adapter_size else None,
            learning_rate_multiplier=float(self.learning_rate_multiplier),
            tuned_model_display_name=self.display_name(),
            description=description,
            labels=self.job_labels(),
            kms_key_name=self.encryption_key or None,
            output_uri=self.output_uri or None,
            export_last_checkpoint_only=self.export_last_checkpoint_only,
        )
        if not self.run_label:
            return request
        return replace(request, labels={**request.labels, REQUEST_LABEL_KEY: request.fingerprint()})

    def price_per_million_tokens(self) -> float:
        """The price used for the actual cost: the override, else the catalogue price of the base model."""
        if self.price_per_million_tokens_usd > 0:
            return self.price_per_million_tokens_usd
        return model_catalog.limits_for(self.base_model).price_per_million_training_tokens_usd


@dataclass(frozen=True)
class WatchSettings:
    """How the job is watched.

    Polls start ``initial_poll_seconds`` apart and grow by ``backoff_factor``
    up to ``max_poll_seconds``; each wait is jittered by +-``jitter_fraction``.
    ``max_consecutive_errors`` transient errors in a row end the watch with
    VertexApiError (the job is left running and a retry resumes it).
    """

    max_poll_seconds: float = 60.0
    initial_poll_seconds: float = 5.0
    backoff_factor: float = 1.5
    jitter_fraction: float = 0.2
    max_wait_seconds: float = 24 * 3600.0
    max_consecutive_errors: int = 30
    cancel_on_timeout: bool = False
    cancel_on_stop: bool = True
    retry_failed_job: bool = False
    create_attempts: int = 5

    def __post_init__(self) -> None:
        if self.max_poll_seconds <= 0 or self.initial_poll_seconds <= 0:
            raise TuningSettingsError("poll intervals must be > 0 seconds")
        if self.max_wait_seconds <= 0:
            raise TuningSettingsError("the maximum wait must be > 0")
        if self.backoff_factor < 1 or not 0 <= self.jitter_fraction < 1:
            raise TuningSettingsError("backoff_factor must be >= 1 and jitter_fraction in [0, 1)")

    @classmethod
    def from_pipeline(
        cls,
        poll_interval_seconds: float,
        max_wait_hours: float,
        **overrides: Any,
    ) -> "WatchSettings":
        """Watch settings from the pipeline parameters (poll interval is the backoff ceiling)."""
        if poll_interval_seconds <= 0:
            raise TuningSettingsError(f"poll_interval_seconds must be > 0, got {poll_interval_seconds}")
        if max_wait_hours <= 0:
            raise TuningSettingsError(f"max_wait_hours must be > 0, got {max_wait_hours}")
        return cls(
            max_poll_seconds=poll_interval_seconds,
            initial_poll_seconds=min(5.0, poll_interval_seconds),
            max_wait_seconds=max_wait_hours * 3600.0,
            **overrides,
        )


# --------------------------------------------------------------------------------------------
# The service the core talks to
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a tuned model."""

    checkpoint_id: str
    epoch: int | None = None
    step: int | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class JobSnapshot:
    """What one read of a tuning job tells (SDK-independent).

    ``state`` is the Vertex state name (``JOB_STATE_RUNNING``, ...); times are
    ISO 8601 strings as reported; ``billable_tokens`` is the job's
    ``total_billable_token_count``; ``tuning_characters`` and
    ``billable_characters`` are its one-pass and billable character counts.
    """

    name: str
    state: str
    error_message: str = ""
    error_code: int | None = None
    tuned_model: str = ""
    endpoint: str = ""
    checkpoints: tuple[Checkpoint, ...] = ()
    billable_tokens: int | None = None
    tuning_characters: int | None = None
    billable_characters: int | None = None
    epoch_count: int | None = None
    tuning_step_count: int | None = None
    training_examples: int | None = None
    base_model: str = ""
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    create_time: str = ""
    start_time: str = ""
    end_time: str = ""

    @property
    def has_ended(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def has_failed(self) -> bool:
        return self.state in FAILED_STATES


class TuningService(Protocol):
    """The four tuning calls the core needs.

    Implementations raise :class:`TransientApiError` for failures worth
    retrying (429, 5xx, timeouts, dropped connections) and
    :class:`~gemini_sft.errors.VertexApiError` for the rest.
    """

    def create(self, request: TuningRequest) -> JobSnapshot: ...

    def get(self, name: str) -> JobSnapshot: ...

    def find_by_labels(self, labels: Mapping[str, str]) -> list[JobSnapshot]: ...

    def cancel(self, name: str) -> None: ...


# --------------------------------------------------------------------------------------------
# Outcome
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TuningOutcome:
    """A succeeded tuning job, as the tune step reports it.

    ``model_resource`` is the Model Registry resource without version
    (``projects/P/locations/L/models/ID``); ``tuned_model`` has the version
    (``...@1``). ``billable_tokens`` are the training tokens billed (every
    epoch); ``reported_billable_tokens`` is the job's raw count.
    ``actual_cost_usd`` is None when Vertex reported no billable token count.
    ``state_durations`` holds seconds spent in each state as observed by this
    step (a resumed job's earlier time is not included;
    ``create_time``/``start_time``/``end_time`` are Vertex's own).
    """

    tuning_job: str
    state: str
    tuned_model: str
    model_resource: str
    model_version: str
    endpoint: str
    checkpoints: tuple[Checkpoint, ...]
    billable_tokens: int | None
    reported_billable_tokens: int | None
    epochs: int
    price_per_million_tokens_usd: float
    actual_cost_usd: float | None
    estimated_cost_usd: float
    base_model: str
    continuous_from: str
    offline_standin: bool
    resumed: bool
    location: str
    project: str
    state_durations: dict[str, float]
    watched_seconds: float
    create_time: str
    start_time: str
    end_time: str
    request: TuningRequest | None

    @property
    def console_url(self) -> str:
        return console_url(self.tuning_job, self.location, self.project)

    @property
    def model_url(self) -> str:
        return model_resource_url(self.model_resource, self.location)

    def artifact_metadata(self) -> dict[str, Any]:
        """Metadata for the tuned model artifact (keys fixed by the pipeline contract, plus links).

        ``billable_tokens`` and ``actual_cost_usd`` are None when Vertex reported no token count.
        """
        return {
            "model_resource": self.model_resource,
            "model_version": self.model_version,
            "tuned_model": self.tuned_model,
            "endpoint": self.endpoint,
            "tuning_job": self.tuning_job,
            "checkpoints": [asdict(c) for c in self.checkpoints],
            "billable_tokens": self.billable_tokens,
            "actual_cost_usd": round(self.actual_cost_usd, 6) if self.actual_cost_usd is not None else None,
            "estimated_cost_usd": round(self.estimated_cost_usd, 6),
            "base_model": self.base_model,
            "continuous_from": self.continuous_from,
            "offline_standin": self.offline_standin,
            "resumed": self.resumed,
            "console_url": self.console_url,
            "model_url": self.model_url,
        }


def split_model_version(tuned_model: str) -> tuple[str, str]:
    """``projects/.../models/ID@1`` -> (``projects/.../models/ID``, ``"1"``); no ``@`` gives version ""."""
    resource, _, version = tuned_model.partition("@")
    return resource, version


def is_offline_standin(job: JobSnapshot, uses_local_server: bool) -> bool:
    """True when the job came from the offline stand-in rather than Vertex."""
    if uses_local_server:
        return True
    texts = [job.description, job.tuned_model, job.endpoint, *job.labels.values()]
    return any(OFFLINE_STANDIN_MARKER in text for text in texts if text)


def billable_count_covers_epochs(job: JobSnapshot, epochs: int) -> bool:
    """Whether the job's billable token count already covers every epoch (see the module docstring).

    True unless the job's character counts show the billable count is a single
    pass (billable characters below 1.5x the one-pass count while epochs > 1).
    """
    if epochs <= 1 or not job.tuning_characters or job.billable_characters is None:
        return True
    return job.billable_characters >= 1.5 * job.tuning_characters


def build_outcome(
    job: JobSnapshot,
    settings: TuningSettings,
    *,
    location: str,
    project: str,
    estimated_cost_usd: float,
    uses_local_server: bool,
    resumed: bool,
    state_durations: Mapping[str, float],
    watched_seconds: float,
    request: TuningRequest | None,
) -> TuningOutcome:
    """The outcome of a SUCCEEDED job; raises VertexApiError when Vertex reported no tuned model."""
    if not job.tuned_model:
        raise VertexApiError(
            f"Tuning job {job.name} succeeded but reports no tuned model; "
            f"open {console_url(job.name, location, project)}"
        )
    resource, version = split_model_version(job.tuned_model)
    epochs = job.epoch_count or settings.epochs
    price = settings.price_per_million_tokens()
    billable_tokens: int | None = None
    if job.billable_tokens is not None:
        covers_epochs = billable_count_covers_epochs(job, epochs)
        billable_tokens = job.billable_tokens if covers_epochs else job.billable_tokens * epochs
    actual_cost = billable_tokens * price / 1_000_000 if billable_tokens is not None else None
    return TuningOutcome(
        tuning_job=job.name,
        state=job.state,
        tuned_model=job.tuned_model,
        model_resource=resource,
        model_version=version,
        endpoint=job.endpoint,
        checkpoints=job.checkpoints,
        billable_tokens=billable_tokens,
        reported_billable_tokens=job.billable_tokens,
        epochs=epochs,
        price_per_million_tokens_usd=price,
        actual_cost_usd=actual_cost,
        estimated_cost_usd=estimated_cost_usd,
        base_model=job.base_model or settings.base_model,
        continuous_from=settings.continuous_from_model,
        offline_standin=is_offline_standin(job, uses_local_server),
        resumed=resumed,
        location=location,
        project=project,
        state_durations=dict(state_durations),
        watched_seconds=watched_seconds,
        create_time=job.create_time,
        start_time=job.start_time,
        end_time=job.end_time,
        request=request,
    )


def failure_error(
    job: JobSnapshot, location: str, project: str, previous_attempt: bool = False
) -> TuningJobFailedError:
    """The error for a job that ended FAILED, CANCELLED or EXPIRED, with its own message and name."""
    state = job.state.removeprefix("JOB_STATE_")
    reason = job.error_message or "Vertex gave no error message"
    code = f" (code {job.error_code})" if job.error_code is not None else ""
    text = f"Tuning job {job.name} ended {state}{code}: {reason}. Details: {console_url(job.name, location, project)}"
    if previous_attempt:
        text += (
            ". It was launched by an earlier attempt of this pipeline run; the step does not pay for a second job "
            "on its own. Fix the cause and start a new pipeline run, or set retry_failed_job=True."
        )
    return TuningJobFailedError(text)


# --------------------------------------------------------------------------------------------
# Watching
# --------------------------------------------------------------------------------------------

Clock = Callable[[], float]
Sleep = Callable[[float], None]
T = TypeVar("T")


@dataclass
class _Watch:
    """State of one watch: the latest job read, when its state began, seconds per state so far."""

    job: JobSnapshot
    started_at: float
    state_since: float
    durations: dict[str, float] = field(default_factory=dict)


def _log_state(job: JobSnapshot, previous: str | None, elapsed: float, in_previous: float) -> None:
    if previous is None:
        log.info("tuning job %s is %s (elapsed %.0fs)", job_id(job.name), job.state, elapsed)
    else:
        log.info(
            "tuning job %s: %s -> %s after %.0fs in %s (elapsed %.0fs)",
            job_id(job.name),
            previous,
            job.state,
            in_previous,
            previous,
            elapsed,
        )


def watch_job(
    service: TuningService,
    job: JobSnapshot,
    watch: WatchSettings,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
) -> tuple[JobSnapshot, dict[str, float], float]:
    """Poll ``job`` until it ends; returns (final job, seconds per observed state, seconds watched).

    The maximum wait counts from when this call starts watching (a resumed job
    gets a full wait). Raises TuningTimeoutError after
    ``watch.max_wait_seconds`` (cancelling the job only when
    ``watch.cancel_on_timeout``), VertexApiError on a non-transient error or
    too many transient errors in a row.
    """
    rng = rng or random.Random()
    start = clock()
    state = _Watch(job=job, started_at=start, state_since=start)
    _log_state(job, None, 0.0, 0.0)
    delay = watch.initial_poll_seconds
    consecutive_errors = 0
    polls = 0
    while not state.job.has_ended:
        elapsed = clock() - start
        remaining = watch.max_wait_seconds - elapsed
        if remaining <= 0:
            _on_timeout(service, state.job, watch, elapsed, sleep)
        jittered = delay * (1 + rng.uniform(-watch.jitter_fraction, watch.jitter_fraction))
        sleep(max(0.0, min(jittered, remaining)))
        delay = min(delay * watch.backoff_factor, watch.max_poll_seconds)
        polls += 1
        try:
            current = service.get(state.job.name)
        except TransientApiError as error:
            consecutive_errors += 1
            log.warning(
                "polling tuning job %s failed transiently (%s; %d in a row); retrying",
                job_id(state.job.name),
                error.status_code or type(error).__name__,
                consecutive_errors,
            )
            if consecutive_errors >= watch.max_consecutive_errors:
                raise VertexApiError(
                    f"Polling tuning job {state.job.name} failed {consecutive_errors} times in a row; the job "
                    f"was left running and a retry of this step resumes it. Last error: {error}"
                ) from error
            continue
        consecutive_errors = 0
        now = clock()
        if current.state != state.job.state:
            in_previous = now - state.state_since
            state.durations[state.job.state] = state.durations.get(state.job.state, 0.0) + in_previous
            _log_state(current, state.job.state, now - start, in_previous)
            state.state_since = now
        state.job = current
    end = clock()
    state.durations[state.job.state] = state.durations.get(state.job.state, 0.0) + (end - state.state_since)
    log.info(
        "tuning job %s ended %s after %d polls (%.0fs watched)",
        job_id(state.job.name),
        state.job.state,
        polls,
        end - start,
    )
    return state.job, state.durations, end - start


def _on_timeout(
    service: TuningService, job: JobSnapshot, watch: WatchSettings, elapsed: float, sleep: Sleep
) -> None:
    hours = watch.max_wait_seconds / 3600
    if watch.cancel_on_timeout:
        _cancel_quietly(service, job.name, sleep=sleep)
        raise TuningTimeoutError(
            f"Tuning job {job.name} was still {job.state} after {elapsed:.0f}s (max_wait_hours={hours:g}); "
            "it was cancelled (cancel_on_timeout)."
        )
    raise TuningTimeoutError(
        f"Tuning job {job.name} was still {job.state} after {elapsed:.0f}s (max_wait_hours={hours:g}). "
        "It was left running: retry this step (same pipeline run) to resume watching it, or cancel it in the "
        "console; raise max_wait_hours for long jobs."
    )


def _cancel_quietly(service: TuningService, name: str, attempts: int = 3, sleep: Sleep = time.sleep) -> bool:
    """Ask Vertex to cancel ``name``; retries transient errors; True when the request was accepted."""
    for attempt in range(1, attempts + 1):
        try:
            service.cancel(name)
            log.info("cancel requested for tuning job %s", job_id(name))
            return True
        except TransientApiError as error:
            log.warning("cancel of tuning job %s failed transiently (attempt %d): %s", job_id(name), attempt, error)
            sleep(min(2.0**attempt, 10.0))
        except VertexApiError as error:
            log.error("cancel of tuning job %s failed: %s", job_id(name), error)
            return False
    return False


class _StopRequested(BaseException):
    """Raised by the SIGTERM handler to unwind the watch (BaseException: nothing may swallow it)."""


@dataclass
class StopScope:
    """What a SIGTERM must cancel: the job once known, else this step's live jobs (found by identity labels)."""

    identity: Mapping[str, str] = field(default_factory=dict)
    job_name: str | None = None

    def jobs_to_cancel(self, service: TuningService, sleep: Sleep) -> list[str]:
        if self.job_name:
            return [self.job_name]
        # Stopped between create and its answer: the job may exist without us knowing its name.
        return [j.name for j in jobs_labelled(service, self.identity, sleep) if not j.has_ended]


@contextlib.contextmanager
def cancel_on_sigterm(
    service: TuningService, scope: StopScope, enabled: bool = True, sleep: Sleep = time.sleep
) -> Iterator[StopScope]:
    """While active, SIGTERM cancels the scope's tuning job and raises TuningStoppedError.

    The handler only unwinds the stack; the cancel call is made after the
    interrupted HTTP request is gone, on a fresh client. Signal handlers can be
    set only in the main thread: elsewhere this does nothing.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield scope
        return

    def _handler(signum: int, frame: FrameType | None) -> None:
        raise _StopRequested()

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield scope
    except _StopRequested:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cancel
        names = scope.jobs_to_cancel(service, sleep)
        log.warning("SIGTERM received: cancelling %d tuning job(s)", len(names))
        cancelled = [name for name in names if _cancel_quietly(service, name, sleep=sleep)]
        if not names:
            outcome = "no tuning job had been launched."
        elif len(cancelled) == len(names):
            outcome = f"tuning job {', '.join(names)} was cancelled."
        else:
            outcome = f"cancelling tuning job {', '.join(names)} FAILED: cancel it in the console."
        raise TuningStoppedError(f"The step was stopped (SIGTERM); {outcome}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------
# Launch or resume
# --------------------------------------------------------------------------------------------


def _latest(jobs: Sequence[JobSnapshot]) -> JobSnapshot:
    return max(jobs, key=lambda j: (j.create_time, j.name))


def jobs_labelled(service: TuningService, labels: Mapping[str, str], sleep: Sleep = time.sleep) -> list[JobSnapshot]:
    """Jobs carrying every one of ``labels`` (none for no labels); transient errors retried."""
    if not labels:
        return []
    found = _with_retries(lambda: service.find_by_labels(labels), "list", sleep=sleep)
    # A label filter the server ignored must not make another run's job ours.
    return [j for j in found if all(j.labels.get(k) == v for k, v in labels.items())]


def find_previous_job(
    service: TuningService, identity: Mapping[str, str], recorded_job: str | None, sleep: Sleep = time.sleep
) -> JobSnapshot | None:
    """The job an earlier attempt of this step launched, or None.

    Looks at the job named in the earlier ``gcp_resources`` first, then at
    jobs carrying this step's identity labels (run and request fingerprint).
    Prefers a live or succeeded job over a failed one; among equals, the newest.
    """
    candidates: list[JobSnapshot] = []
    if recorded_job:
        try:
            candidates.append(_with_retries(lambda: service.get(recorded_job), "get", sleep=sleep))
        except VertexApiError as error:
            log.warning("the job recorded by an earlier attempt cannot be read (%s); searching by label", error)
    known = {job.name for job in candidates}
    candidates.extend(job for job in jobs_labelled(service, identity, sleep) if job.name not in known)
    if not candidates:
        return None
    usable = [j for j in candidates if not j.has_failed]
    if len(usable) > 1:
        log.warning("%d tuning jobs carry this step's labels; resuming the newest", len(usable))
    return _latest(usable) if usable else _latest(candidates)


# Bounded, short backoff for the step's own calls (create, get, list, cancel); the watch loop has its own pace.
API_RETRY = RetryPolicy(max_attempts=5, initial_backoff=2.0, max_backoff=30.0, multiplier=2.0, jitter=0.5)


def _with_retries(call: Callable[[], T], what: str, attempts: int = 5, sleep: Sleep = time.sleep) -> T:
    """``call()`` with transient errors retried through the shared policy; VertexApiError when they run out."""
    policy = RetryPolicy(
        max_attempts=attempts, initial_backoff=API_RETRY.initial_backoff, max_backoff=API_RETRY.max_backoff,
        multiplier=API_RETRY.multiplier, jitter=API_RETRY.jitter,
    )
    try:
        return call_with_retries(
            call, retryable=lambda e: isinstance(e, TransientApiError), policy=policy, what=f"Vertex {what} call",
            sleep=sleep,
        )
    except TransientApiError as error:
        raise VertexApiError(f"Vertex {what} call failed {attempts} times: {error}") from error


def create_job(
    service: TuningService,
    request: TuningRequest,
    watch: WatchSettings,
    sleep: Sleep = time.sleep,
) -> JobSnapshot:
    """Create the job; after a transient failure, look for it by label before trying again.

    Raises VertexApiError when creation keeps failing or fails for good.
    """
    for attempt in range(1, watch.create_attempts + 1):
        try:
            job = service.create(request)
            log.info("launched tuning job %s (%s)", job_id(job.name), job.state)
            return job
        except TransientApiError as error:
            log.warning("creating the tuning job failed transiently (attempt %d/%d)", attempt, watch.create_attempts)
            if attempt == watch.create_attempts:
                raise VertexApiError(
                    f"Creating the tuning job failed {attempt} times; last error: {error}"
                ) from error
            sleep(min(watch.initial_poll_seconds * 2 ** (attempt - 1), watch.max_poll_seconds))
            landed = [j for j in jobs_labelled(service, identity_labels(request), sleep) if not j.has_failed]
            if landed:
                job = _latest(landed)
                log.info("the create call had reached Vertex: using tuning job %s", job_id(job.name))
                return job
    raise AssertionError("unreachable")


def write_gcp_resources(path: str | Path | None, job_name: str, location: str) -> None:
    """Write the ``gcp_resources`` output for ``job_name`` (no-op without a path)."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(gcp_resources_json(job_name, location))


def read_recorded_job(path: str | Path | None) -> str | None:
    """The job named in an existing ``gcp_resources`` file from an earlier attempt, or None."""
    if path is None:
        return None
    target = Path(path)
    if not target.is_file():
        return None
    return job_name_from_gcp_resources(target.read_text())


def launch_or_resume(
    service: TuningService,
    request: TuningRequest,
    watch: WatchSettings,
    project: str,
    location: str,
    gcp_resources_path: str | Path | None,
    sleep: Sleep = time.sleep,
) -> tuple[JobSnapshot, bool]:
    """The job to watch and whether it was resumed: an earlier attempt's live or succeeded job, else a new one.

    Raises TuningJobFailedError when the earlier attempt's job ended badly and
    ``watch.retry_failed_job`` is off (nothing is launched).
    """
    previous = find_previous_job(
        service, identity_labels(request), read_recorded_job(gcp_resources_path), sleep=sleep
    )
    if previous is not None and not previous.has_failed:
        log.info("resuming tuning job %s launched by an earlier attempt (%s)", job_id(previous.name), previous.state)
        return previous, True
    if previous is not None and not watch.retry_failed_job:
        write_gcp_resources(gcp_resources_path, previous.name, location)
        raise failure_error(previous, location, project, previous_attempt=True)
    if previous is not None:
        log.warning(
            "earlier tuning job %s ended %s; launching a new one (retry_failed_job)",
            job_id(previous.name),
            previous.state,
        )
    return create_job(service, request, watch, sleep=sleep), False


def run_tuning(
    settings: TuningSettings,
    watch: WatchSettings,
    service: TuningService,
    *,
    project: str,
    location: str,
    uses_local_server: bool = False,
    estimated_cost_usd: float = 0.0,
    gcp_resources_path: str | Path | None = None,
    handle_sigterm: bool = True,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
) -> TuningOutcome:
    """Launch (or resume) the tuning job for ``settings`` and watch it to the end.

    Inputs: checked settings, watch policy, a service, where the job runs.
    Output: the :class:`TuningOutcome` of a SUCCEEDED job; ``gcp_resources``
    is written as soon as the job is known.
    Raises TuningSettingsError (before any call), TuningJobFailedError (job
    ended FAILED/CANCELLED/EXPIRED, now or in an earlier attempt),
    TuningStoppedError (SIGTERM), TuningTimeoutError, VertexApiError.
    """
    settings.check(location, remote=not uses_local_server)
    request = settings.build_request()
    if not settings.run_label:
        log.warning("no pipeline run name given: a retry of this step cannot find this job and would launch another")

    scope = StopScope(identity=identity_labels(request))
    with cancel_on_sigterm(service, scope, enabled=handle_sigterm and watch.cancel_on_stop, sleep=sleep):
        job, resumed = launch_or_resume(service, request, watch, project, location, gcp_resources_path, sleep)
        scope.job_name = job.name
        write_gcp_resources(gcp_resources_path, job.name, location)
        final, durations, watched = watch_job(service, job, watch, clock=clock, sleep=sleep, rng=rng)
    if final.has_failed:
        raise failure_error(final, location, project)
    return build_outcome(
        final,
        settings,
        location=location,
        project=project,
        estimated_cost_usd=estimated_cost_usd,
        uses_local_server=uses_local_server,
        resumed=resumed,
        state_durations=durations,
        watched_seconds=watched,
        request=request,
    )


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def _duration(start: str, end: str) -> str:
    """``end - start`` of two ISO 8601 times as ``1h 02m 03s``, or ``n/a``."""
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return "n/a"
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _difference(actual: float | None, estimated: float) -> float | None:
    return None if actual is None or estimated <= 0 else actual - estimated


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def render_summary(outcome: TuningOutcome, settings: TuningSettings) -> str:
    """A Markdown summary of the job: settings, durations, tokens, estimated vs actual cost, links."""
    request = outcome.request
    lines = [
        "# Tuning job",
        "",
    ]
    if outcome.offline_standin:
        lines += ["> Made by the **offline stand-in** of the Vertex API, not by Gemini.", ""]
    lines += [
        f"- Job: [`{outcome.tuning_job}`]({outcome.console_url}) — {outcome.state}"
        + (" (resumed from an earlier attempt)" if outcome.resumed else ""),
        f"- Tuned model: `{outcome.tuned_model}` (version {outcome.model_version or 'n/a'})",
        f"- Endpoint: `{outcome.endpoint or 'n/a'}`",
        f"- Checkpoints: {len(outcome.checkpoints)}",
        "",
        "## Settings",
        "",
        "| setting | value |",
        "|---|---|",
        f"| base model | `{outcome.base_model}` |",
        f"| continuous tuning from | `{settings.continuous_from_model or '-'}` |",
        f"| epochs | {settings.epochs} |",
        f"| adapter size | {settings.adapter_size or 'Vertex default'} |",
        f"| learning-rate multiplier | {settings.learning_rate_multiplier:g} |",
        f"| display name | {request.tuned_model_display_name if request else settings.display_name()} |",
        f"| validation dataset | {'yes' if settings.validation_uri else 'no'} |",
        f"| CMEK key | `{settings.encryption_key or '-'}` |",
        f"| output URI | `{settings.output_uri or '-'}` |",
        f"| export last checkpoint only | {settings.export_last_checkpoint_only} |",
        f"| labels | {', '.join(f'`{k}={v}`' for k, v in sorted(settings.job_labels().items()))} |",
        "",
        "## Durations",
        "",
        "| state | seconds (observed by this step) |",
        "|---|---|",
    ]
    for state_name, seconds in outcome.state_durations.items():
        if state_name in TERMINAL_STATES:
            continue
        lines.append(f"| {state_name.removeprefix('JOB_STATE_')} | {seconds:.0f} |")
    lines += [
        "",
        f"Vertex times: created {outcome.create_time or 'n/a'}, started {outcome.start_time or 'n/a'}, "
        f"ended {outcome.end_time or 'n/a'}; queued {_duration(outcome.create_time, outcome.start_time)}, "
        f"trained {_duration(outcome.start_time, outcome.end_time)}.",
        "",
        "## Tokens and cost",
        "",
        "| | value |",
        "|---|---|",
        f"| epochs | {outcome.epochs} |",
        f"| billable training tokens (all epochs) | {_count(outcome.billable_tokens)} |",
        f"| totalBillableTokenCount reported by the job | {_count(outcome.reported_billable_tokens)} |",
        f"| price per 1M training tokens | ${outcome.price_per_million_tokens_usd:,.2f} |",
        f"| estimated cost (validate stage) | {_money(outcome.estimated_cost_usd)} |",
        f"| actual cost | {_money(outcome.actual_cost_usd)} |",
        f"| actual - estimated | {_money(_difference(outcome.actual_cost_usd, outcome.estimated_cost_usd))} |",
        "",
        "Actual cost = billable training tokens (dataset tokens x epochs) x list price per 1M tokens; "
        "list prices are not guaranteed and the invoice is authoritative.",
    ]
    return "\n".join(lines) + "\n"
