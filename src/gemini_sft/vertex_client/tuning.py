"""Tuning jobs through google-genai ``client.tunings``, as the tune stage's TuningService."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Mapping

from gemini_sft.errors import TransientApiError, VertexRequestError
from gemini_sft.retry import TRANSIENT_HTTP_CODES
from gemini_sft.tune.data_stats import TokenDistribution, TuningDataStats
from gemini_sft.tune.service import Checkpoint, JobSnapshot, TuningRequest
from gemini_sft.vertex_client.settings import (
    VertexSettings,
    genai_client,
)

log = logging.getLogger(__name__)


# Gemini tuning goes through Vertex's v1 API. Open-model tuning needs v1beta1: its TuningJob has outputUri,
# SupervisedTuningSpec.tuningMode and hyperParameters.learningRate / batchSize, which v1 lacks (the protos of
# google-cloud-aiplatform); v1beta1 is also what google-genai uses for Vertex when no version is given.
GEMINI_TUNING_API_VERSION = "v1"
OPEN_MODEL_TUNING_API_VERSION = "v1beta1"


class GenAITuningService:
    """The tune stage's :class:`gemini_sft.tune.TuningService` over google-genai ``client.tunings``.

    Errors: 408/429/5xx answers, timeouts and dropped connections raise
    :class:`~gemini_sft.errors.TransientApiError` (the caller retries); any other API
    error raises :class:`VertexRequestError` with Vertex's status and message.
    The client does not retry by itself: retry policy belongs to the tune stage.

    Args:
        settings: project, region and endpoint.
        timeout_ms: the per-request timeout.
        open_models: True to tune open models Vertex tunes itself: every call then uses the v1beta1 API.
    """

    def __init__(self, settings: VertexSettings, timeout_ms: int = 60_000, *, open_models: bool = False) -> None:
        self.settings = settings
        self._timeout_ms = timeout_ms
        self.api_version = OPEN_MODEL_TUNING_API_VERSION if open_models else GEMINI_TUNING_API_VERSION
        self._client = genai_client(settings, timeout_ms=timeout_ms, api_version=self.api_version)

    def create(self, request: TuningRequest) -> JobSnapshot:
        """Launch a supervised tuning job for a ``gemini_sft.tune.TuningRequest``; returns its JobSnapshot."""
        from google.genai import types

        config = types.CreateTuningJobConfig(
            tuned_model_display_name=request.tuned_model_display_name,
            description=request.description,
            epoch_count=request.epoch_count,
            learning_rate_multiplier=request.learning_rate_multiplier,
            adapter_size=request.adapter_size,
            labels=dict(request.labels),
            export_last_checkpoint_only=request.export_last_checkpoint_only,
            validation_dataset=(
                types.TuningValidationDataset(gcs_uri=request.validation_dataset_uri)
                if request.validation_dataset_uri
                else None
            ),
            encryption_spec=(
                types.EncryptionSpec(kms_key_name=request.kms_key_name) if request.kms_key_name else None
            ),
            # None leaves a field out of the request: outputUri, tuningMode, learningRate and batchSize are for
            # open models only (v1beta1), and the tune settings refuse them for Gemini before any call.
            output_uri=request.output_uri,
            pre_tuned_model_checkpoint_id=request.pre_tuned_model_checkpoint_id,
            tuning_mode=request.tuning_mode,
            learning_rate=request.learning_rate,
            batch_size=request.batch_size,
        )
        with warnings.catch_warnings():
            # `tunings.tune` warns on every call that the SDK's tuning surface is experimental.
            warnings.filterwarnings("ignore", message=".*tuning implementation is experimental")
            job = self._call(
                "create",
                lambda: self._client.tunings.tune(
                    base_model=request.base_model,
                    training_dataset=types.TuningDataset(gcs_uri=request.training_dataset_uri),
                    config=config,
                ),
            )
        return job_snapshot(job)

    def get(self, name: str) -> JobSnapshot:
        """The current JobSnapshot of tuning job ``name``."""
        return job_snapshot(self._call("get", lambda: self._client.tunings.get(name=name)))

    def find_by_labels(self, labels: Mapping[str, str]) -> list[JobSnapshot]:
        """Tuning jobs of this project and region carrying every label given.

        Filters on the server (``labels.KEY="value" AND ...``); should the
        server refuse the filter (400), lists every job and filters here, so
        the resume lookup never blocks a run.
        """
        from google.genai import types

        filter_text = " AND ".join(f'labels.{key}="{value}"' for key, value in sorted(labels.items()))
        try:
            jobs = self._call(
                "list",
                lambda: list(self._client.tunings.list(config=types.ListTuningJobsConfig(filter=filter_text))),
            )
        except VertexRequestError as error:
            if error.status_code != 400:
                raise
            log.warning("the tuning job list refused the label filter; listing every job and filtering locally")
            jobs = self._call("list", lambda: list(self._client.tunings.list()))
        snapshots = [job_snapshot(job) for job in jobs]
        return [s for s in snapshots if all(s.labels.get(k) == v for k, v in labels.items())]

    def cancel(self, name: str) -> None:
        """Ask Vertex to cancel tuning job ``name`` (on a fresh client: it may run after an interrupted call)."""
        client = genai_client(self.settings, timeout_ms=self._timeout_ms, api_version=self.api_version)
        self._call("cancel", lambda: client.tunings.cancel(name=name))

    @staticmethod
    def _call(what: str, call: Callable[[], Any]) -> Any:
        import httpx
        from google.auth import exceptions as auth_exceptions
        from google.genai import errors as genai_errors

        try:
            return call()
        except genai_errors.APIError as error:
            if error.code in TRANSIENT_HTTP_CODES:
                raise TransientApiError(f"tuning {what}: {error.code} {error.status}", error.code) from error
            raise VertexRequestError(
                f"Vertex tuning {what} call failed: {error.code} {error.status}: {error.message}", error.code
            ) from error
        except (httpx.TransportError, auth_exceptions.TransportError, ConnectionError, TimeoutError) as error:
            raise TransientApiError(f"tuning {what}: {type(error).__name__}") from error


def job_snapshot(job: Any) -> JobSnapshot:
    """A google-genai ``TuningJob`` as an SDK-independent :class:`gemini_sft.tune.JobSnapshot`."""

    def _state(value: Any) -> str:
        if value is None:
            return "JOB_STATE_UNSPECIFIED"
        return str(getattr(value, "value", value))

    def _time(value: Any) -> str:
        return value.isoformat() if value is not None else ""

    tuned = job.tuned_model
    stats = job.tuning_data_stats.supervised_tuning_data_stats if job.tuning_data_stats else None
    hyper = job.supervised_tuning_spec.hyper_parameters if job.supervised_tuning_spec else None
    base_model = job.base_model or (job.pre_tuned_model.base_model if job.pre_tuned_model else None) or ""
    return JobSnapshot(
        name=job.name or "",
        state=_state(job.state),
        error_message=(job.error.message or "") if job.error else "",
        error_code=job.error.code if job.error else None,
        tuned_model=(tuned.model or "") if tuned else "",
        endpoint=(tuned.endpoint or "") if tuned else "",
        checkpoints=tuple(
            Checkpoint(checkpoint_id=c.checkpoint_id or "", epoch=c.epoch, step=c.step, endpoint=c.endpoint)
            for c in ((tuned.checkpoints or []) if tuned else [])
        ),
        billable_tokens=stats.total_billable_token_count if stats else None,
        tuning_characters=stats.total_tuning_character_count if stats else None,
        billable_characters=stats.total_billable_character_count if stats else None,
        epoch_count=hyper.epoch_count if hyper else None,
        tuning_step_count=stats.tuning_step_count if stats else None,
        training_examples=stats.tuning_dataset_example_count if stats else None,
        base_model=base_model,
        description=job.description or "",
        labels=dict(job.labels or {}),
        create_time=_time(job.create_time),
        start_time=_time(job.start_time),
        end_time=_time(job.end_time),
        tuning_job_state=str(getattr(job.tuning_job_state, "value", job.tuning_job_state or "")),
        experiment=job.experiment or "",
        data_stats=_data_stats(stats) if stats else None,
        output_uri=getattr(job, "output_uri", None) or "",
    )


def _data_stats(stats: Any) -> TuningDataStats:
    """google-genai's ``SupervisedTuningDataStats`` as a :class:`gemini_sft.tune.data_stats.TuningDataStats`."""

    def distribution(value: Any) -> TokenDistribution | None:
        if value is None:
            return None
        return TokenDistribution(min=value.min, max=value.max, mean=value.mean, median=value.median, p5=value.p5,
                                 p95=value.p95, sum=value.sum, billable_sum=value.billable_sum)

    return TuningDataStats(
        example_count=stats.tuning_dataset_example_count,
        tuning_step_count=stats.tuning_step_count,
        total_truncated_example_count=stats.total_truncated_example_count,
        truncated_example_indices=tuple(int(i) for i in stats.truncated_example_indices or ()),
        dropped_example_reasons=tuple(stats.dropped_example_reasons or ()),
        user_input_tokens=distribution(stats.user_input_token_distribution),
        user_output_tokens=distribution(stats.user_output_token_distribution),
        messages_per_example=distribution(stats.user_message_per_example_distribution),
    )
