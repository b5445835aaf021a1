"""Where Vertex calls go and as whom: endpoint, project and region, and the SDK clients built from them."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from gemini_sft.contracts import setting
from gemini_sft.errors import ConfigError
from gemini_sft.retry import TRANSIENT_HTTP_CODES

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


def genai_client(settings: VertexSettings, timeout_ms: int | None = None, api_version: str = "v1") -> Any:
    """A google-genai client for Vertex AI, pointed at ``settings.api_endpoint`` when set.

    Args:
        settings: project, region and endpoint.
        timeout_ms: the per-request timeout.
        api_version: the Vertex API version (``v1``; ``v1beta1`` for what only it has, open-model tuning).
    """
    from google import genai
    from google.genai import types

    http_options = types.HttpOptions(api_version=api_version, timeout=timeout_ms)
    if settings.api_endpoint:
        http_options = types.HttpOptions(
            base_url=settings.api_endpoint + "/", api_version=api_version, timeout=timeout_ms
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


def quiet_http_logs() -> None:
    """Keep per-request INFO lines of the HTTP client and google-genai out of the logs (counts only)."""
    for name in ("httpx", "httpcore", "google_genai"):
        logging.getLogger(name).setLevel(logging.WARNING)

def _transient_genai_error(error: BaseException) -> bool:
    """Whether a google-genai call failed in a way worth retrying (408/429/5xx, timeout, dropped connection)."""
    import httpx
    from google.genai import errors as genai_errors

    if isinstance(error, genai_errors.APIError):
        return (int(error.code) if error.code else None) in TRANSIENT_HTTP_CODES
    return isinstance(error, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))
