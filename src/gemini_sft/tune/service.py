"""What the tune core exchanges with Vertex: the create request, job snapshots, and the service protocol.

The real service is ``gemini_sft.vertex_client.GenAITuningService``; tests pass
a scripted fake or point the real one at the offline stand-in. Every call the
core makes through a service goes through :func:`call_api`, which retries
transient errors with the shared policy of :mod:`gemini_sft.retry`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Protocol, TypeVar

from gemini_sft.errors import TransientApiError, VertexApiError
from gemini_sft.retry import RetryPolicy, call_with_retries
from gemini_sft.tune.curves import LossCurves
from gemini_sft.tune.data_stats import TuningDataStats

STATE_PENDING = "JOB_STATE_PENDING"
STATE_RUNNING = "JOB_STATE_RUNNING"
STATE_SUCCEEDED = "JOB_STATE_SUCCEEDED"
STATE_FAILED = "JOB_STATE_FAILED"
STATE_CANCELLED = "JOB_STATE_CANCELLED"
STATE_EXPIRED = "JOB_STATE_EXPIRED"
FAILED_STATES = frozenset({STATE_FAILED, STATE_CANCELLED, STATE_EXPIRED})
TERMINAL_STATES = FAILED_STATES | {STATE_SUCCEEDED}

Clock = Callable[[], float]
Sleep = Callable[[float], None]
T = TypeVar("T")


# Request fields added after the first release: when not sent they stay out of the fingerprint.
_LATER_FIELDS = frozenset({"pre_tuned_model_checkpoint_id", "tuning_mode", "learning_rate", "batch_size"})


@dataclass(frozen=True)
class TuningRequest:
    """Everything sent to Vertex to create one supervised tuning job (SDK-independent).

    ``base_model`` is a publisher model id, or a tuned model resource
    (``projects/P/locations/L/models/ID@alias``) for continuous tuning.
    Optional fields are None when not sent. An open model Vertex tunes itself
    takes ``tuning_mode`` (``TUNING_MODE_FULL`` / ``TUNING_MODE_PEFT_ADAPTER``),
    ``learning_rate`` and ``batch_size`` and no adapter size or learning-rate multiplier.
    """

    base_model: str
    training_dataset_uri: str
    validation_dataset_uri: str | None
    epoch_count: int
    adapter_size: str | None
    learning_rate_multiplier: float | None
    tuned_model_display_name: str
    description: str
    labels: dict[str, str]
    kms_key_name: str | None
    output_uri: str | None
    export_last_checkpoint_only: bool
    pre_tuned_model_checkpoint_id: str | None = None
    tuning_mode: str | None = None
    learning_rate: float | None = None
    batch_size: int | None = None

    def fingerprint(self) -> str:
        """16 hex characters identifying everything but the labels: equal for a retry of the same step."""
        # A field that is not sent stays out, so requests without it keep the fingerprint they always had.
        fields = {k: v for k, v in asdict(self).items() if k != "labels" and not (k in _LATER_FIELDS and v is None)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:16]


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
    ``tuning_job_state`` is the detail state while RUNNING (``TUNING_JOB_STATE_...``, "" when none);
    ``experiment`` names the job's Vertex AI Experiment (its loss curves); ``data_stats`` is what
    Vertex says of the training data (truncated examples, token distributions); ``output_uri`` the Cloud
    Storage folder an open-model job writes its files to ("" for Gemini).
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
    tuning_job_state: str = ""
    experiment: str = ""
    data_stats: TuningDataStats | None = None
    output_uri: str = ""

    @property
    def has_ended(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def has_failed(self) -> bool:
        return self.state in FAILED_STATES


class TuningService(Protocol):
    """The four tuning calls the core needs.

    Implementations raise :class:`~gemini_sft.errors.TransientApiError` for
    failures worth retrying (429, 5xx, timeouts, dropped connections) and
    :class:`~gemini_sft.errors.VertexApiError` for the rest.
    """

    def create(self, request: TuningRequest) -> JobSnapshot: ...

    def get(self, name: str) -> JobSnapshot: ...

    def find_by_labels(self, labels: Mapping[str, str]) -> list[JobSnapshot]: ...

    def cancel(self, name: str) -> None: ...


class CurveReader(Protocol):
    """Reads a finished job's loss curves from its Experiment (the real one: ``AiplatformCurveReader``).

    Raises :class:`~gemini_sft.errors.VertexApiError` (or its TransientApiError) when the read fails;
    an experiment without curves is an empty :class:`LossCurves` with a note, not an error.
    """

    def read_curves(self, experiment: str) -> LossCurves: ...


# Bounded, short backoff for the step's own calls (get, list, cancel); the watch loop has its own pace.
API_RETRY = RetryPolicy(max_attempts=5, initial_backoff=2.0, max_backoff=30.0, multiplier=2.0, jitter=0.5)


def call_api(call: Callable[[], T], what: str, policy: RetryPolicy = API_RETRY, sleep: Sleep = time.sleep) -> T:
    """``call()`` with transient errors retried through the shared policy.

    Args:
        call: one service call.
        what: the call's name for logs and errors (``get``, ``list``, ``cancel``).
        policy: attempts and backoff.
        sleep: how to wait between attempts.

    Raises:
        VertexApiError when transient errors outlast the attempts; a permanent error at once.
    """
    try:
        return call_with_retries(
            call, retryable=lambda e: isinstance(e, TransientApiError), policy=policy, what=f"Vertex {what} call",
            sleep=sleep,
        )
    except TransientApiError as error:
        raise VertexApiError(f"Vertex {what} call failed {policy.max_attempts} times: {error}") from error


def jobs_labelled(service: TuningService, labels: Mapping[str, str], sleep: Sleep = time.sleep) -> list[JobSnapshot]:
    """Jobs carrying every one of ``labels`` (none for no labels); transient errors retried."""
    if not labels:
        return []
    found = call_api(lambda: service.find_by_labels(labels), "list", sleep=sleep)
    # A label filter the server ignored must not make another run's job ours.
    return [j for j in found if all(j.labels.get(k) == v for k, v in labels.items())]
