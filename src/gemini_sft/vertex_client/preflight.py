"""Read-only project facts for ``gemini-sft preflight``: Service Usage, Storage, IAM, Resource Manager, Artifact Registry."""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from gemini_sft.errors import ConfigError
from gemini_sft.vertex_client.settings import (
    is_loopback_endpoint,
    resolve_api_endpoint,
)

log = logging.getLogger(__name__)


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
