"""The one module that talks to Google Cloud.

Stage cores never import a cloud SDK: they receive the small objects built
here. Every client is built from :class:`VertexSettings`, whose
``api_endpoint`` decides where requests go: Vertex itself by default, or any
Vertex-compatible server (such as the offline stand-in) when
``--api-endpoint`` / ``VERTEX_API_ENDPOINT`` is set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlparse

from gemini_sft.contracts import setting
from gemini_sft.retry import TRANSIENT_HTTP_CODES, RetryPolicy, call_with_retries
from gemini_sft.errors import TransientApiError, VertexRequestError, ConfigError, VertexApiError
from gemini_sft.tune.data_stats import TokenDistribution, TuningDataStats
from gemini_sft.tune.service import Checkpoint, JobSnapshot, TuningRequest

log = logging.getLogger(__name__)

API_ENDPOINT_ENV = "VERTEX_API_ENDPOINT"
STANDIN_TOKEN = "offline-stand-in"


def resolve_api_endpoint(explicit: str | None = None) -> str | None:
    """The Vertex API endpoint to use: the explicit value, else ``$VERTEX_API_ENDPOINT``, else None (Vertex)."""
    value = (explicit or os.environ.get(API_ENDPOINT_ENV) or "").strip()
    if not value:
        return None
    if "://" not in value:
        value = "https://" + value
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"API endpoint {value!r} is not an http(s) URL, e.g. http://127.0.0.1:8123")
    return value.rstrip("/")


def is_loopback_endpoint(endpoint: str | None) -> bool:
    """True when the endpoint is on this machine (the offline stand-in or another local server)."""
    if not endpoint:
        return False
    host = urlparse(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class VertexSettings:
    """Where and as whom to call Vertex: project, region and API endpoint."""

    project: str
    location: str
    api_endpoint: str | None = None

    @classmethod
    def create(cls, project: str, location: str, api_endpoint: str | None = None) -> "VertexSettings":
        """Settings with the endpoint resolved from the argument or the environment."""
        if not project:
            raise ConfigError("A Google Cloud project id is required (--project or the pipeline's `project`).")
        if not location:
            raise ConfigError("A region is required (--region or the pipeline's `location`), e.g. us-central1.")
        return cls(project=project, location=location, api_endpoint=resolve_api_endpoint(api_endpoint))

    @property
    def uses_local_server(self) -> bool:
        return is_loopback_endpoint(self.api_endpoint)

    def _credentials(self) -> Any:
        """Static credentials for a local server (no token refresh offline); None means Application Default Credentials."""
        if self.uses_local_server:
            from google.oauth2.credentials import Credentials

            return Credentials(token=STANDIN_TOKEN)
        return None


@dataclass(frozen=True)
class VertexTarget:
    """Where a stage's Vertex calls go, as the pipeline passes it: project, region and API endpoint."""

    project: str = setting(dataclasses.MISSING, "Google Cloud project that runs the job and hosts the models.")
    location: str = setting("us-central1", "Vertex AI region; it must offer Gemini tuning.")
    api_endpoint: str = setting("", "Vertex API endpoint; empty means Vertex itself (or $VERTEX_API_ENDPOINT).")

    def settings(self) -> VertexSettings:
        """The client settings, with the endpoint resolved from this record or the environment."""
        return VertexSettings.create(self.project, self.location, self.api_endpoint or None)


def genai_client(settings: VertexSettings, timeout_ms: int | None = None) -> Any:
    """A google-genai client for Vertex AI, pointed at ``settings.api_endpoint`` when set."""
    from google import genai
    from google.genai import types

    http_options = types.HttpOptions(api_version="v1", timeout=timeout_ms)
    if settings.api_endpoint:
        http_options = types.HttpOptions(
            base_url=settings.api_endpoint + "/", api_version="v1", timeout=timeout_ms
        )
    return genai.Client(
        vertexai=True,
        project=settings.project,
        location=settings.location,
        credentials=settings._credentials(),
        http_options=http_options,
    )


def init_aiplatform(settings: VertexSettings, staging_bucket: str | None = None) -> None:
    """Initialise google-cloud-aiplatform for these settings (REST transport for a custom endpoint)."""
    from google.cloud import aiplatform

    kwargs: dict[str, Any] = {"project": settings.project, "location": settings.location}
    if staging_bucket:
        kwargs["staging_bucket"] = staging_bucket
    if settings.api_endpoint:
        kwargs["api_endpoint"] = settings.api_endpoint
        kwargs["api_transport"] = "rest"
        if settings.uses_local_server:
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()
    aiplatform.init(**kwargs)


class VertexModelRegistry:
    """Model Registry version aliases and labels through google-cloud-aiplatform.

    Implements ``gemini_sft.promotion.ModelRegistry``. Every failed call raises
    ``PromotionError`` naming the model version and the API's message.
    """

    def __init__(self, settings: VertexSettings) -> None:
        init_aiplatform(settings)
        self.settings = settings

    def _registry(self, version: Any) -> Any:
        from google.cloud import aiplatform

        return aiplatform.models.ModelRegistry(
            version.model, location=self.settings.location, project=self.settings.project
        )

    def version_aliases(self, version: Any) -> list[str]:
        """The aliases ``version`` (a ``promotion.ModelVersion``) carries now."""
        with _registry_errors("read", version):
            return list(self._registry(version).get_version_info(version.version).version_aliases)

    def add_alias(self, version: Any, alias: str) -> None:
        """Give ``version`` the alias (``models/ID@V:mergeVersionAliases`` with ``[alias]``)."""
        with _registry_errors(f"add alias {alias!r} to", version):
            self._registry(version).add_version_aliases([alias], version=version.version)
        log.info("Alias %r added to %s", alias, version.versioned_name)

    def remove_alias(self, version: Any, alias: str) -> None:
        """Take the alias off ``version`` when it carries it (``mergeVersionAliases`` with ``[-alias]``)."""
        if alias not in self.version_aliases(version):
            log.info("%s does not carry alias %r; nothing to remove", version.versioned_name, alias)
            return
        with _registry_errors(f"remove alias {alias!r} from", version):
            self._registry(version).remove_version_aliases([alias], version=version.version)
        log.info("Alias %r removed from %s", alias, version.versioned_name)

    def labels(self, version: Any) -> dict[str, str]:
        """The labels of one model version."""
        with _registry_errors("read the labels of", version):
            model = self._registry(version).client.get_model(name=version.versioned_name)
        return dict(model.labels)

    def merge_labels(self, version: Any, labels: dict[str, str]) -> None:
        """Set ``labels`` on one model version, keeping its other labels.

        Updates ``models/ID@V`` itself (a name without ``@V`` would update the
        model's default version instead).
        """
        from google.cloud.aiplatform.compat.types import model as gca_model
        from google.protobuf import field_mask_pb2

        merged = {**self.labels(version), **labels}
        with _registry_errors("update the labels of", version):
            self._registry(version).client.update_model(
                model=gca_model.Model(name=version.versioned_name, labels=merged),
                update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
            )
        log.info("Labels %s set on %s", sorted(labels), version.versioned_name)


@contextlib.contextmanager
def _registry_errors(operation: str, version: Any) -> Iterator[None]:
    """Turn an API error into PromotionError naming the operation and the model version."""
    from google.api_core import exceptions as api_exceptions

    from gemini_sft.errors import PromotionError

    try:
        yield
    except api_exceptions.GoogleAPIError as exc:
        raise PromotionError(
            f"Model Registry could not {operation} {version.versioned_name}: {exc}. "
            "Check that the model version exists and the caller has roles/aiplatform.user."
        ) from exc


# ---------------------------------------------------------------------------------------------
# Tuning jobs (google-genai `client.tunings`), used by the tune stage (gemini_sft.tune)
# ---------------------------------------------------------------------------------------------


class GenAITuningService:
    """The tune stage's :class:`gemini_sft.tune.TuningService` over google-genai ``client.tunings``.

    Errors: 408/429/5xx answers, timeouts and dropped connections raise
    :class:`~gemini_sft.errors.TransientApiError` (the caller retries); any other API
    error raises :class:`VertexRequestError` with Vertex's status and message.
    The client does not retry by itself: retry policy belongs to the tune stage.
    """

    def __init__(self, settings: VertexSettings, timeout_ms: int = 60_000) -> None:
        self.settings = settings
        self._timeout_ms = timeout_ms
        self._client = genai_client(settings, timeout_ms=timeout_ms)

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
            # None leaves outputUri out of the request: v1 accepts it for open models only, and the
            # tune settings refuse it for Gemini before any call.
            output_uri=request.output_uri,
            pre_tuned_model_checkpoint_id=request.pre_tuned_model_checkpoint_id,
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
        client = genai_client(self.settings, timeout_ms=self._timeout_ms)
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


class GenAIGenerator:
    """Answers evaluation cases with ``client.models.generate_content`` (temperature 0).

    ``model`` is passed as given: a publisher model id (``gemini-2.5-flash``) or a
    tuned model's endpoint (``projects/P/locations/L/endpoints/ID``). Failures are
    raised as :class:`gemini_sft.errors.GenerationCallError`, retryable for HTTP
    408/429/500/502/503/504, timeouts and connection errors; retries themselves are
    the caller's job (the SDK's own retries stay off). ``thinking_budget`` (None = the
    model's default) lets base and tuned be compared with the same thinking setting.
    """

    def __init__(
        self,
        settings: VertexSettings,
        model: str,
        max_output_tokens: int = 1024,
        *,
        thinking_budget: int | None = None,
        client: Any = None,
    ) -> None:
        if not model:
            raise ConfigError("a model name or endpoint resource name is required to generate answers")
        if max_output_tokens < 1:
            raise ConfigError(f"max_output_tokens must be at least 1, got {max_output_tokens}")
        self.settings = settings
        self.model = model
        self.max_output_tokens = max_output_tokens
        self.thinking_budget = thinking_budget
        self._client = client if client is not None else genai_client(settings, timeout_ms=120_000)

    def __call__(self, case: Any) -> Any:
        """Generate an answer for an EvaluationCase; returns a GenerationResult."""
        import httpx
        from google.genai import errors as genai_errors
        from google.genai import types

        from gemini_sft.errors import GenerationCallError
        from gemini_sft.evaluation.generation import GenerationResult

        config = types.GenerateContentConfig(
            temperature=0.0,
            max_output_tokens=self.max_output_tokens,
            system_instruction=case.system_instruction or None,
            thinking_config=(
                types.ThinkingConfig(thinking_budget=self.thinking_budget)
                if self.thinking_budget is not None
                else None
            ),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        try:
            response = self._client.models.generate_content(model=self.model, contents=case.contents, config=config)
        except genai_errors.APIError as exc:
            code = int(exc.code) if exc.code else None
            raise GenerationCallError(
                f"{self.model}: {exc.status or 'error'} {exc.message or ''}".strip(),
                status_code=code,
                retryable=code in TRANSIENT_HTTP_CODES,
            ) from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise GenerationCallError(f"{self.model}: {type(exc).__name__}", retryable=True) from exc
        candidates = response.candidates or []
        finish = candidates[0].finish_reason if candidates else None
        return GenerationResult(
            text=_response_text(response),
            model_version=response.model_version or "",
            finish_reason=str(getattr(finish, "value", finish) or ""),
        )


def quiet_http_logs() -> None:
    """Keep per-request INFO lines of the HTTP client and google-genai out of the logs (counts only)."""
    for name in ("httpx", "httpcore", "google_genai"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _response_text(response: Any) -> str:
    """The text parts of the first candidate joined ('' when the answer has no text, e.g. blocked)."""
    candidates = response.candidates or []
    if not candidates or candidates[0].content is None:
        return ""
    parts = candidates[0].content.parts or []
    return "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))


def _transient_genai_error(error: BaseException) -> bool:
    """Whether a google-genai call failed in a way worth retrying (408/429/5xx, timeout, dropped connection)."""
    import httpx
    from google.genai import errors as genai_errors

    if isinstance(error, genai_errors.APIError):
        return (int(error.code) if error.code else None) in TRANSIENT_HTTP_CODES
    return isinstance(error, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


class ApiTokenCounter:
    """Counts the tokens of whole tuning examples with ``client.models.count_tokens``.

    One request per distinct example (contents, system instruction and tools), up
    to ``max_concurrency`` at a time; counts are cached by a digest of the example
    (duplicates cost one request; the cache holds at most ``cache_size`` digests,
    never example content). HTTP 408/429/5xx, timeouts and connection errors are
    retried ``attempts`` times with backoff; anything else, or retries running
    out, raises VertexApiError (the validator then falls back to its offline
    estimate). Implements :class:`gemini_sft.validate.TokenCounter`.

    Args:
        settings: project, region and endpoint of the requests.
        model: the model whose tokenizer counts (a tuned model's resource name counts like its family).
        max_concurrency: requests in flight at once.
        cache_size: digests of counted examples remembered (the cache is cleared when full).
        attempts: tries per request for transient failures.
        backoff_seconds: the first wait between tries (it grows with each retry).
        client: a google-genai client to use instead of building one (tests).
    """

    def __init__(
        self,
        settings: VertexSettings,
        model: str,
        *,
        max_concurrency: int = 8,
        cache_size: int = 100_000,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        client: Any = None,
    ) -> None:
        from gemini_sft.model_catalog import base_model_id, limits_for

        if max_concurrency < 1 or attempts < 1:
            raise ConfigError("max_concurrency and attempts must be at least 1")
        self.settings = settings
        # A tuned model (continuous tuning) counts like its family; publisher ids are used as given.
        self.model = base_model_id(model) if not model.startswith("projects/") else limits_for(model).name
        self.max_concurrency = max_concurrency
        self.cache_size = cache_size
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._client = client
        self._cache: dict[bytes, int] = {}
        self.requests = 0

    def _get_client(self) -> Any:
        if self._client is None:
            from google.auth.exceptions import GoogleAuthError

            try:
                self._client = genai_client(self.settings, timeout_ms=60_000)
            except (GoogleAuthError, ValueError) as exc:  # no credentials / incomplete settings
                raise VertexApiError(f"cannot build a countTokens client: {type(exc).__name__}: {exc}") from exc
        return self._client

    @staticmethod
    def _digest(example: Mapping[str, Any]) -> bytes:
        import hashlib
        import json

        canonical = json.dumps(
            [example.get("contents"), example.get("systemInstruction"), example.get("tools")],
            sort_keys=True,
            ensure_ascii=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("ascii")).digest()

    def _count_one(self, example: Mapping[str, Any]) -> int:
        import httpx
        from google.genai import errors as genai_errors
        from google.genai import types

        client = self._get_client()
        config = types.CountTokensConfig(
            system_instruction=example.get("systemInstruction"),
            tools=example.get("tools"),
        )
        policy = RetryPolicy(max_attempts=self.attempts, initial_backoff=self.backoff_seconds, jitter=0.5)

        def count() -> int:
            self.requests += 1
            return client.models.count_tokens(model=self.model, contents=example["contents"], config=config)

        try:
            response = call_with_retries(
                count, retryable=_transient_genai_error, policy=policy, what=f"countTokens for {self.model}"
            )
        except (genai_errors.APIError, httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            problem = (
                f"HTTP {exc.code} {exc.status or ''}".strip() if isinstance(exc, genai_errors.APIError)
                else type(exc).__name__
            )
            if _transient_genai_error(exc):
                problem = f"after {self.attempts} attempts: {problem}"
            raise VertexApiError(f"countTokens for {self.model} failed {problem}") from exc
        if response.total_tokens is None:
            raise VertexApiError(f"countTokens for {self.model} returned no totalTokens")
        return int(response.total_tokens)

    def count_example_tokens(self, examples: Any) -> list[int]:
        """Token count of each example (input + output, system instruction included), in order."""
        from concurrent.futures import ThreadPoolExecutor

        digests = [self._digest(example) for example in examples]
        missing: dict[bytes, Mapping[str, Any]] = {}
        for digest, example in zip(digests, examples):
            if digest not in self._cache and digest not in missing:
                missing[digest] = example
        if missing:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(missing))) as pool:
                counts = list(pool.map(self._count_one, missing.values()))
            fresh = dict(zip(missing, counts))
            if len(self._cache) + len(fresh) > self.cache_size:
                self._cache.clear()
            self._cache.update(fresh)
        else:
            fresh = {}
        return [fresh[d] if d in fresh else self._cache[d] for d in digests]


class CloudStorageFiles:
    """Text files under ``gs://BUCKET/PREFIX`` through the Cloud Storage API.

    Implements ``gemini_sft.promotion.RecordFiles`` for machines without the
    ``/gcs`` mount (a laptop running ``gemini-sft status``). Uses Application
    Default Credentials, or ``$STORAGE_EMULATOR_HOST`` when set. Failures are
    OSError subclasses: FileNotFoundError, FileExistsError, PermissionError.
    """

    def __init__(self, uri: str) -> None:
        from google.cloud import storage

        if not uri.startswith("gs://") or len(uri) <= len("gs://"):
            raise ConfigError(f"{uri!r} is not a Cloud Storage URI (gs://BUCKET/PREFIX).")
        bucket, _, prefix = uri[len("gs://"):].partition("/")
        self.location = uri.rstrip("/")
        self.prefix = prefix.strip("/")
        # project=None: bucket-level calls need no project, and none may be configured on the machine.
        self._bucket = storage.Client(project=None).bucket(bucket)

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def names(self, folder: str) -> list[str]:
        """Object names directly under ``folder`` (no deeper levels)."""
        folder_key = self._key(folder).rstrip("/") + "/"
        with _storage_errors(self.location, folder):
            blobs = self._bucket.client.list_blobs(self._bucket, prefix=folder_key, delimiter="/")
            names = [blob.name[len(folder_key):] for blob in blobs]
        return sorted(name for name in names if name and not name.startswith("."))

    def folders(self, folder: str = "") -> list[str]:
        """Names of the sub-folders directly under ``folder`` (object name prefixes up to the next ``/``)."""
        folder_key = self._key(folder).strip("/")
        folder_key = f"{folder_key}/" if folder_key else ""
        with _storage_errors(self.location, folder):
            iterator = self._bucket.client.list_blobs(self._bucket, prefix=folder_key, delimiter="/")
            for _ in iterator:  # prefixes are known once every page is read
                pass
            names = [prefix[len(folder_key):].rstrip("/") for prefix in iterator.prefixes]
        return sorted(name for name in names if name and not name.startswith("."))

    def read_text(self, path: str) -> str:
        with _storage_errors(self.location, path):
            return self._bucket.blob(self._key(path)).download_as_text(encoding="utf-8")

    def write_text(self, path: str, text: str, *, create_only: bool = False) -> None:
        """One upload request, so readers see the old or the new object, never half of it."""
        with _storage_errors(self.location, path):
            self._bucket.blob(self._key(path)).upload_from_string(
                text, content_type="application/json", if_generation_match=0 if create_only else None
            )

    def delete(self, path: str) -> None:
        from google.api_core import exceptions as api_exceptions

        with _storage_errors(self.location, path):
            try:
                self._bucket.blob(self._key(path)).delete()
            except api_exceptions.NotFound:
                log.debug("%s/%s was already absent", self.location, path)


@contextlib.contextmanager
def _storage_errors(location: str, path: str) -> Iterator[None]:
    """Turn a Cloud Storage API error into the OSError subclass that says what went wrong."""
    from google.api_core import exceptions as api_exceptions

    where = f"{location}/{path}"
    try:
        yield
    except api_exceptions.NotFound as exc:
        raise FileNotFoundError(2, f"not found ({exc.message})", where) from exc
    except api_exceptions.PreconditionFailed as exc:
        raise FileExistsError(17, "already exists", where) from exc
    except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
        raise PermissionError(13, f"permission denied ({exc.message})", where) from exc
    except api_exceptions.GoogleAPIError as exc:
        raise OSError(5, f"Cloud Storage error: {exc}", where) from exc


# ---------------------------------------------------------------------------------------------
# Experiment and TensorBoard curves (google-cloud-aiplatform), read by the tune stage after the job ends
# ---------------------------------------------------------------------------------------------


class AiplatformCurveReader:
    """Reads a tuning job's loss curves from its Vertex AI Experiment, as Google's tuning notebook does.

    ``aiplatform.Experiment(experiment_name=job.experiment)`` -> its backing
    TensorBoard -> the experiment's run (a ``system.ExperimentRun`` context
    whose parent is the experiment) -> ``TensorboardRun.read_time_series_data()``.
    On the wire: GET ``metadataStores/default/contexts/{experiment}``, GET
    ``tensorboards/{id}``, GET ``metadataStores/default/contexts?filter=...``,
    GET ``tensorboards/{id}/experiments/{e}/runs/{r}``, GET ``.../runs/{r}/timeSeries``
    and GET ``tensorboards/{id}:batchRead``.
    """

    def __init__(self, settings: VertexSettings) -> None:
        self.settings = settings

    def read_curves(self, experiment: str) -> Any:
        """The experiment's curves as :class:`gemini_sft.tune.curves.LossCurves` (empty with a note when none).

        Args:
            experiment: the job's ``experiment`` (a context resource name or id).

        Raises:
            TransientApiError for a 429/5xx or a dropped connection, VertexRequestError for other refusals.
        """
        from gemini_sft.tune.curves import LossCurves

        with _aiplatform_errors("reading the loss curves of experiment " + experiment):
            series = self._read_series(experiment)
        if series is None:
            return LossCurves.missing(f"Experiment {experiment} has no TensorBoard run with loss curves.")
        curves = LossCurves.from_series(series)
        if curves.empty:
            return LossCurves.missing(f"Experiment {experiment} holds no /train_total_loss or /eval_total_loss.")
        return curves

    def _read_series(self, experiment: str) -> dict[str, list[tuple[int, float]]] | None:
        from google.cloud import aiplatform
        from google.cloud.aiplatform.metadata import constants as metadata_constants
        from google.cloud.aiplatform.metadata import context as metadata_context
        from google.cloud.aiplatform.metadata import utils as metadata_utils

        init_aiplatform(self.settings)
        found = aiplatform.Experiment(experiment_name=experiment)
        tensorboard = found.get_backing_tensorboard_resource()
        if tensorboard is None:
            return None
        runs = metadata_context.Context.list(
            metadata_utils._make_filter_string(
                schema_title=metadata_constants.SYSTEM_EXPERIMENT_RUN, parent_contexts=[found.resource_name]
            )
        )
        if not runs:
            return None
        # An experiment run's context id is "<experiment>-<run>"; its TensorBoard run id is "<run>".
        run_id = runs[0].name[len(found.name) + 1 :] if runs[0].name.startswith(found.name + "-") else runs[0].name
        run = aiplatform.TensorboardRun(f"{tensorboard.resource_name}/experiments/{found.name}/runs/{run_id}")
        return {
            name: [(int(point.step), float(point.scalar.value)) for point in data.values]
            for name, data in run.read_time_series_data().items()
        }


@contextlib.contextmanager
def _aiplatform_errors(what: str) -> Iterator[None]:
    """google-api-core errors as TransientApiError (429, 5xx, transport) or VertexRequestError (the rest)."""
    from google.api_core import exceptions as core_exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        yield
    except core_exceptions.GoogleAPICallError as error:
        code = int(error.code) if error.code is not None else None
        if code in TRANSIENT_HTTP_CODES:
            raise TransientApiError(f"{what}: {code}", code) from error
        raise VertexRequestError(f"Vertex refused {what}: {code} {error.message}", code) from error
    except (auth_exceptions.TransportError, ConnectionError, TimeoutError) as error:
        raise TransientApiError(f"{what}: {type(error).__name__}") from error


# ---------------------------------------------------------------------------------------------
# Preflight facts (gemini_sft.preflight): Service Usage, Cloud Storage, IAM, Resource Manager, Artifact Registry
# ---------------------------------------------------------------------------------------------

_PREFLIGHT_HOSTS = {
    "serviceusage": "https://serviceusage.googleapis.com",
    "resourcemanager": "https://cloudresourcemanager.googleapis.com",
    "iam": "https://iam.googleapis.com",
}


def _bindings(policy: Mapping[str, Any]) -> dict[str, list[str]]:
    """An IAM policy's bindings as role -> members (conditional bindings included as granted)."""
    roles: dict[str, list[str]] = {}
    for binding in policy.get("bindings", []) or []:
        roles.setdefault(binding.get("role", ""), []).extend(binding.get("members", []) or [])
    return roles


class GoogleCloudFacts:
    """:class:`gemini_sft.preflight.CloudFacts` read from Google Cloud with the caller's credentials.

    ``api_endpoint`` sends every call to one Google-compatible server (the offline stand-in) instead of
    Google's hosts. Reads only; any call that cannot be made raises ``preflight.CannotCheck`` saying why.
    Raises ConfigError at construction when there are no credentials, naming the command that makes them.
    """

    def __init__(self, project: str, api_endpoint: str | None = None) -> None:
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import storage

        self.endpoint = resolve_api_endpoint(api_endpoint)
        self.project = project
        credentials = _cloud_credentials(self.endpoint)
        self._session = AuthorizedSession(credentials)
        options = {"api_endpoint": self.endpoint} if self.endpoint else None
        self._storage = storage.Client(project=project, credentials=credentials, client_options=options)

    def _url(self, service: str, path: str) -> str:
        return f"{self.endpoint or _PREFLIGHT_HOSTS[service]}{path}"

    def service_enabled(self, project: str, service: str) -> bool:
        answer = _json_call(self._session, "GET", self._url("serviceusage", f"/v1/projects/{project}/services/{service}"),
                            f"the state of {service}")
        if answer is None:
            return False
        return answer.get("state") == "ENABLED"

    def bucket(self, name: str) -> Any:
        from gemini_sft.preflight import BucketFacts

        bucket = _storage_call(lambda: self._storage.lookup_bucket(name), f"gs://{name}")
        if bucket is None:
            return None
        return BucketFacts(name=name, location=bucket.location or "", versioning=bool(bucket.versioning_enabled))

    def bucket_policy(self, name: str) -> dict[str, list[str]]:
        bucket = self._storage.bucket(name)
        policy = _storage_call(lambda: bucket.get_iam_policy(requested_policy_version=3), f"the IAM policy of gs://{name}")
        return {binding["role"]: sorted(binding["members"]) for binding in policy.bindings}

    def project_policy(self, project: str) -> dict[str, list[str]]:
        answer = _json_call(self._session, "POST", self._url("resourcemanager", f"/v3/projects/{project}:getIamPolicy"),
                            f"the IAM policy of project {project}", body={})
        return _bindings(answer or {})

    def service_account_policy(self, email: str) -> dict[str, list[str]]:
        answer = _json_call(self._session, "POST",
                            self._url("iam", f"/v1/projects/-/serviceAccounts/{email}:getIamPolicy"),
                            f"the IAM policy of {email}", body={})
        return _bindings(answer or {})

    def caller_bucket_permissions(self, name: str, permissions: Any) -> set[str]:
        bucket = self._storage.bucket(name)
        return set(_storage_call(lambda: bucket.test_iam_permissions(list(permissions)), f"your permissions on gs://{name}"))

    def caller_service_account_permissions(self, email: str, permissions: Any) -> set[str]:
        answer = _json_call(self._session, "POST",
                            self._url("iam", f"/v1/projects/-/serviceAccounts/{email}:testIamPermissions"),
                            f"your permissions on {email}", body={"permissions": list(permissions)})
        return set((answer or {}).get("permissions", []))

    def image_exists(self, host: str, path: str, reference: str) -> bool:
        base = self.endpoint or f"https://{host}"
        answer = _json_call(
            self._session, "GET", f"{base}/v2/{path}/manifests/{reference}", f"image {host}/{path}:{reference}",
            headers={"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json"},
        )
        return answer is not None


def _cloud_credentials(endpoint: str | None) -> Any:
    """Anonymous credentials for a loopback server, else Application Default Credentials (ConfigError when none)."""
    if is_loopback_endpoint(endpoint):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as exc:
        raise ConfigError(
            "No Google Cloud credentials on this machine: run `gcloud auth application-default login` "
            "(or set GOOGLE_APPLICATION_CREDENTIALS to a key file)."
        ) from exc
    return credentials


def _json_call(session: Any, method: str, url: str, what: str, body: Any = None,
               headers: Mapping[str, str] | None = None) -> Any:
    """The JSON answer of one REST call; None for 404; ``preflight.CannotCheck`` for any other failure."""
    import requests

    from gemini_sft.preflight import CannotCheck

    try:
        response = session.request(method, url, json=body, headers=dict(headers or {}), timeout=30)
    except (requests.RequestException, OSError) as exc:
        raise CannotCheck(f"could not read {what}: {type(exc).__name__}") from exc
    if response.status_code == 404:
        return None
    if response.status_code in (401, 403):
        raise CannotCheck(f"no permission to read {what} (HTTP {response.status_code})")
    if response.status_code != 200:
        raise CannotCheck(f"could not read {what}: HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        return {}


def _storage_call(call: Callable[[], Any], what: str) -> Any:
    """A Cloud Storage client call; ``preflight.CannotCheck`` when it fails."""
    import requests
    from google.api_core import exceptions as api_exceptions

    from gemini_sft.preflight import CannotCheck

    try:
        return call()
    except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
        raise CannotCheck(f"no permission to read {what} ({exc.code})") from exc
    except (api_exceptions.GoogleAPIError, requests.RequestException, OSError) as exc:
        raise CannotCheck(f"could not read {what}: {type(exc).__name__}") from exc


class GenAIReplyGenerator:
    """Answers production questions (``gemini_sft.serving``) with ``client.models.generate_content``.

    Like :class:`GenAIGenerator`, but for one prompt at a time and with what the
    serving fallback rules need: the average token log-probability (when
    ``response_logprobs`` is asked and the endpoint gives it) and a ``BLOCKED``
    finish reason when the prompt itself was blocked. Sends no response schema.
    Failures raise :class:`GenerationCallError`, retryable for 408/429/5xx,
    timeouts and connection errors (the caller retries; the SDK's own retries stay off).

    Args:
        settings: project, region and API endpoint.
        model: a publisher model id or a tuned model's endpoint resource name.
        client: a google-genai client to reuse (one is built when None).
        timeout_ms: per-call timeout when a client is built here.
    """

    def __init__(self, settings: VertexSettings, model: str, *, client: Any = None, timeout_ms: int = 60_000) -> None:
        if not model:
            raise ConfigError("a model name or endpoint resource name is required to answer")
        self.settings = settings
        self.model = model
        self._client = client if client is not None else genai_client(settings, timeout_ms=timeout_ms)

    def __call__(self, request: Any) -> Any:
        """Answer a ``gemini_sft.serving.reply.ReplyRequest``; returns a ``ModelReply``."""
        import httpx
        from google.genai import errors as genai_errors
        from google.genai import types

        from gemini_sft.errors import GenerationCallError
        from gemini_sft.serving.reply import ModelReply

        config = types.GenerateContentConfig(
            temperature=request.temperature,
            max_output_tokens=request.max_output_tokens,
            system_instruction=request.system_instruction or None,
            response_logprobs=True if request.response_logprobs else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        contents = [types.Content(role="user", parts=[types.Part(text=request.prompt)])]
        try:
            response = self._client.models.generate_content(model=self.model, contents=contents, config=config)
        except genai_errors.APIError as exc:
            code = int(exc.code) if exc.code else None
            raise GenerationCallError(
                f"{self.model}: {exc.status or 'error'} {exc.message or ''}".strip(),
                status_code=code,
                retryable=code in TRANSIENT_HTTP_CODES,
            ) from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise GenerationCallError(f"{self.model}: {type(exc).__name__}", retryable=True) from exc
        candidates = response.candidates or []
        feedback = response.prompt_feedback
        if not candidates and feedback is not None and feedback.block_reason:
            return ModelReply(text="", finish_reason="BLOCKED", model_version=response.model_version or "")
        finish = candidates[0].finish_reason if candidates else None
        avg_logprob = candidates[0].avg_logprobs if candidates else None
        return ModelReply(
            text=_response_text(response),
            finish_reason=str(getattr(finish, "value", finish) or ""),
            avg_logprob=float(avg_logprob) if avg_logprob is not None else None,
            model_version=response.model_version or "",
        )
