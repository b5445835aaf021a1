"""Routes of the offline stand-in: what a handler receives and returns.

A :class:`Route` pairs an HTTP method and a path regular expression with a
handler. The server tries routes in order and calls the first whose method
matches and whose pattern matches the whole path (query string excluded). The
handler gets a :class:`StandInRequest` and returns ``(status, json_body)``; to
answer with a Google-style error it raises :class:`StandInError`.

Paths look like ``/v1/projects/P/locations/L/...``; :func:`api_path` builds a
pattern with named groups ``project`` and ``location`` for that prefix.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

if TYPE_CHECKING:
    from gemini_sft.standin.server import VertexStandIn

JsonBody = Any  # a value json.dumps can encode (usually a dict)
Handler = Callable[["StandInRequest"], tuple[int, JsonBody]]

# google.rpc.Code names for the HTTP statuses the stand-in answers with.
GRPC_STATUS_BY_HTTP: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# The API of the stand-in's own routes (Vertex AI v1).
AIPLATFORM_V1 = "aiplatform.v1"

API_PREFIX = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/"


def api_path(suffix: str) -> str:
    """A route pattern for ``/v1/projects/{project}/locations/{location}/`` followed by ``suffix`` (a regex)."""
    return API_PREFIX + suffix


def grpc_status(http_status: int) -> str:
    """The google.rpc status name Google APIs pair with an HTTP status (``UNKNOWN`` when there is none)."""
    return GRPC_STATUS_BY_HTTP.get(http_status, "UNKNOWN")


def error_body(http_status: int, message: str, status: str | None = None) -> dict[str, Any]:
    """A Google-style JSON error body: ``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": http_status, "message": message, "status": status or grpc_status(http_status)}}


class StandInError(Exception):
    """Raised by a handler to answer with an HTTP error and a Google-style JSON error body."""

    def __init__(self, http_status: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.status = status or grpc_status(http_status)

    def body(self) -> dict[str, Any]:
        return error_body(self.http_status, self.message, self.status)


Resource = TypeVar("Resource")


def find_resource(resources: Mapping[str, Resource], name: str, kind: str) -> Resource:
    """The resource called ``name``.

    Args:
        resources: the stand-in's resources of one kind, by resource name.
        name: the resource name asked for.
        kind: what the resource is, for the message (``"Tuning job"``, ``"Schedule"``).

    Raises:
        StandInError: 404 when there is no resource of that name.
    """
    resource = resources.get(name)
    if resource is None:
        raise StandInError(404, f"{kind} {name} not found in this offline stand-in.")
    return resource


@dataclass(frozen=True)
class StandInRequest:
    """One request as a handler sees it.

    ``path`` excludes the query string; ``query`` maps each parameter to its
    last value; ``body`` is the parsed JSON body (None when empty); ``match``
    is the route pattern's match (named groups such as ``project``);
    ``standin`` is the server, for handlers that need shared state
    (``standin.tuning_jobs``, ``standin.extension_state``).
    """

    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    headers: Mapping[str, str]
    match: re.Match[str]
    standin: "VertexStandIn"
    query_string: str = ""

    def query_values(self, name: str) -> list[str]:
        """Every value of a repeated query parameter, in order (``query`` keeps the last only)."""
        return [value for key, value in parse_qsl(self.query_string, keep_blank_values=True) if key == name]

    def group(self, name: str) -> str:
        """A named group of the route pattern (KeyError when the pattern has no such group)."""
        value = self.match.groupdict().get(name)
        if value is None:
            raise KeyError(name)
        return value

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; raises StandInError(400) when it is missing or not an object."""
        if not isinstance(self.body, dict):
            raise StandInError(400, "The request body must be a JSON object.")
        return self.body


@dataclass(frozen=True)
class Route:
    """A method + whole-path regex + handler.

    ``name`` identifies the route in the request counters (defaults to the
    pattern). ``faultable`` routes are the ones ``inject_faults`` applies to.
    ``api`` names the Google API the route belongs to. A route of an API in
    :data:`gemini_sft.standin.rest_rules.CHECKED_APIS` (``aiplatform.v1``, the
    default, and ``cloudresourcemanager.v3``) must be in that API's REST
    mapping, and its requests and responses are checked against its messages;
    a route of any other API (Cloud Storage JSON, IAM admin, Service Usage,
    ...) is served UNCHECKED, as no protos of those APIs ship with the
    project's dependencies.
    """

    method: str
    pattern: str
    handler: Handler
    name: str = ""
    faultable: bool = False
    api: str = AIPLATFORM_V1
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", self.method.upper())
        object.__setattr__(self, "compiled", re.compile(self.pattern))
        if not self.name:
            object.__setattr__(self, "name", self.pattern)

    def matches(self, method: str, path: str) -> re.Match[str] | None:
        """The match of ``path`` when the method and the whole path match, else None."""
        if method.upper() != self.method:
            return None
        return self.compiled.fullmatch(path)
