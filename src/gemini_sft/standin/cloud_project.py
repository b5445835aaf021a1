"""Stand-in routes for the project facts `gemini-sft preflight` reads.

Service Usage (``/v1/projects/P/services/S``), Cloud Storage buckets with their
IAM policy and the caller's permissions (``/storage/v1/b/B...``), the project's
and a service account's IAM policy and the caller's permissions on it
(``:getIamPolicy`` / ``:testIamPermissions``), and Artifact Registry image
manifests (``/v2/PROJECT/REPO/IMAGE/manifests/REF``). These are not Vertex AI
Usage, Storage JSON, IAM and Docker Registry v2 APIs.

The state is a :class:`CloudProject` in ``standin.extension_state["cloud_project"]``;
tests set it up to describe a healthy or a broken project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gemini_sft.standin.routing import Route, StandInError, StandInRequest

if TYPE_CHECKING:
    from gemini_sft.standin.server import VertexStandIn

STATE_KEY = "cloud_project"
MARKER = "offline-stand-in"


@dataclass
class StandInBucket:
    """A bucket as the stand-in describes it."""

    location: str = "US-CENTRAL1"
    versioning: bool = True
    bindings: dict[str, list[str]] = field(default_factory=dict)  # role -> members


@dataclass
class CloudProject:
    """The project facts the stand-in answers with (all editable by tests)."""

    enabled_services: set[str] = field(default_factory=set)
    buckets: dict[str, StandInBucket] = field(default_factory=dict)
    project_bindings: dict[str, list[str]] = field(default_factory=dict)
    service_account_bindings: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # email -> role -> members
    caller_permissions: set[str] = field(default_factory=set)
    images: set[str] = field(default_factory=set)  # "PROJECT/REPO/IMAGE:REF"
    denied_routes: set[str] = field(default_factory=set)  # route names answering 403 (the caller may not read)


def cloud_project(standin: "VertexStandIn") -> CloudProject:
    """The stand-in's project facts (created empty on first use)."""
    return standin.extension_state.setdefault(STATE_KEY, CloudProject())


def _policy(bindings: dict[str, list[str]]) -> dict[str, Any]:
    return {"version": 1, "etag": "BwY=", "bindings": [{"role": r, "members": m} for r, m in sorted(bindings.items())]}


def _state(request: StandInRequest) -> CloudProject:
    return cloud_project(request.standin)


def _get_service(request: StandInRequest) -> tuple[int, Any]:
    project, service = request.group("project"), request.group("service")
    enabled = service in _state(request).enabled_services
    return 200, {"name": f"projects/{project}/services/{service}", "state": "ENABLED" if enabled else "DISABLED",
                 "parent": f"projects/{project}"}


def _bucket(request: StandInRequest) -> StandInBucket:
    name = request.group("bucket")
    bucket = _state(request).buckets.get(name)
    if bucket is None:
        raise StandInError(404, "The specified bucket does not exist.")
    return bucket


def _get_bucket(request: StandInRequest) -> tuple[int, Any]:
    bucket = _bucket(request)
    name = request.group("bucket")
    return 200, {"kind": "storage#bucket", "id": name, "name": name, "location": bucket.location,
                 "versioning": {"enabled": bucket.versioning}, "labels": {"made-by": MARKER}}


def _get_bucket_policy(request: StandInRequest) -> tuple[int, Any]:
    return 200, {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{request.group('bucket')}",
                 **_policy(_bucket(request).bindings)}


def _test_bucket_permissions(request: StandInRequest) -> tuple[int, Any]:
    _bucket(request)
    # The stand-in's query holds one value per name, so it answers with the caller's storage permissions.
    granted = sorted(p for p in _state(request).caller_permissions if p.startswith("storage."))
    return 200, {"kind": "storage#testIamPermissionsResponse", "permissions": granted}


def _project_policy(request: StandInRequest) -> tuple[int, Any]:
    return 200, _policy(_state(request).project_bindings)


def _service_account_policy(request: StandInRequest) -> tuple[int, Any]:
    email = request.group("email")
    bindings = _state(request).service_account_bindings.get(email)
    if bindings is None:
        raise StandInError(404, f"Unknown service account {email}")
    return 200, _policy(bindings)


def _test_service_account_permissions(request: StandInRequest) -> tuple[int, Any]:
    email = request.group("email")
    if email not in _state(request).service_account_bindings:
        raise StandInError(404, f"Unknown service account {email}")
    asked = request.json_object().get("permissions", [])
    return 200, {"permissions": [p for p in asked if p in _state(request).caller_permissions]}


def _manifest(request: StandInRequest) -> tuple[int, Any]:
    key = f"{request.group('path')}:{request.group('reference')}"
    if key not in _state(request).images:
        raise StandInError(404, "manifest unknown")
    return 200, {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}


def _unless_denied(name: str, handler: Any) -> Any:
    def answer(request: StandInRequest) -> tuple[int, Any]:
        if name in _state(request).denied_routes:
            raise StandInError(403, f"The caller does not have permission ({name}).")
        return handler(request)

    return answer


def routes() -> list[Route]:
    """The preflight routes, to pass as ``VertexStandIn(extra_routes=...)``."""
    return [Route(r.method, r.pattern, _unless_denied(r.name, r.handler), name=r.name, api=r.api) for r in _routes()]


def _routes() -> list[Route]:
    bucket = r"/storage/v1/b/(?P<bucket>[^/]+)"
    account = r"/v1/projects/-/serviceAccounts/(?P<email>[^/:]+)"
    return [
        Route("GET", r"/v1/projects/(?P<project>[^/]+)/services/(?P<service>[^/]+)", _get_service,
              name="serviceusage.services.get", api="serviceusage.v1"),
        Route("GET", bucket, _get_bucket, name="storage.buckets.get", api="storage.v1"),
        Route("GET", bucket + "/iam", _get_bucket_policy, name="storage.buckets.getIamPolicy", api="storage.v1"),
        Route("GET", bucket + "/iam/testPermissions", _test_bucket_permissions,
              name="storage.buckets.testIamPermissions", api="storage.v1"),
        Route("POST", r"/v3/projects/(?P<project>[^/:]+):getIamPolicy", _project_policy,
              name="cloudresourcemanager.projects.getIamPolicy", api="cloudresourcemanager.v3"),
        Route("POST", account + ":getIamPolicy", _service_account_policy, name="iam.serviceAccounts.getIamPolicy",
              api="iam.v1"),
        Route("POST", account + ":testIamPermissions", _test_service_account_permissions,
              name="iam.serviceAccounts.testIamPermissions", api="iam.v1"),
        Route("GET", r"/v2/(?P<path>.+)/manifests/(?P<reference>[^/]+)", _manifest,
              name="artifactregistry.manifests.get", api="artifactregistry.docker.v2"),
    ]
