"""HTTP plumbing of the offline stand-in: server, dispatch, knobs, fault injection, request log.

:class:`VertexStandIn` listens on 127.0.0.1 (a free port by default) in a
daemon thread, speaks HTTP/1.1 with JSON bodies, and dispatches each request
to the first :class:`~gemini_sft.standin.routing.Route` that matches: first
the built-in tuning and generation routes, then extra routes (see the
package docstring). Every response carries the header
``X-Gemini-Sft-Standin: offline``.

Per request, in this order: the ``latency_seconds`` sleep; a pending
``fail_next`` failure (any route, even an unknown path); 404 for an unknown
path; on faultable routes (generateContent) a seeded random injected fault;
for routes of a checked API (Vertex AI v1 and the others of
:data:`.rest_rules.CHECKED_APIS`), the checks Google's front end applies
before any handler runs (:mod:`.rest_rules`: the route must be in the API's
REST mapping, query and body must parse into the request message, unknown
fields refused: 400 INVALID_ARGUMENT naming the field); then the handler. A
handler's answer is checked against the response message too; one that does
not parse is replaced by a 500 naming the problem (a stand-in bug, never
sent as valid). Errors are Google-style JSON bodies
``{"error": {"code", "message", "status"}}``, which google-genai raises as
``google.genai.errors.APIError`` with that code. Every request is recorded
(method, path, query, parsed JSON body, status, route name); logs name routes
and statuses, never bodies.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from gemini_sft.errors import ConfigError
from gemini_sft.standin.deployments import routes as deployment_routes
from gemini_sft.standin.experiments import routes as experiment_routes
from gemini_sft.standin.platform import routes as platform_routes
from gemini_sft.standin.responder import generation_routes
from gemini_sft.standin.rest_rules import (
    CHECKED_APIS,
    RestRule,
    check_request,
    find_rule,
    response_problem,
    rest_rules,
)
from gemini_sft.standin.routing import AIPLATFORM_V1, Route, StandInError, StandInRequest, error_body, grpc_status
from gemini_sft.standin.tuning import TuningJobStore, tuning_routes
from gemini_sft.vertex_client import is_loopback_endpoint

log = logging.getLogger(__name__)

STANDIN_HEADER = "X-Gemini-Sft-Standin"
STANDIN_HEADER_VALUE = "offline"
UNMATCHED_ROUTE = "unmatched"
_IDLE_CONNECTION_TIMEOUT_SECONDS = 30.0


class _TuningJobsKnob:
    """A knob of the tuning-job store shown on the server: read as is, set through ``convert``.

    Args:
        doc: what the knob does (its docstring).
        convert: turns a value given to the server into the store's value (checks or normalizes it).
    """

    def __init__(self, doc: str, convert: Callable[[Any], Any] = lambda value: value) -> None:
        self.__doc__ = doc
        self._convert = convert
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, server: VertexStandIn | None, owner: type | None = None) -> Any:
        if server is None:
            return self
        return getattr(server.tuning_jobs, self._name)

    def __set__(self, server: VertexStandIn, value: Any) -> None:
        setattr(server.tuning_jobs, self._name, self._convert(value))


@dataclass(frozen=True)
class RequestRecord:
    """One request the stand-in received and the status it answered with.

    ``body`` is the JSON body as parsed from the wire (None when empty or not
    JSON); ``query`` maps each query parameter to its last value; ``route`` is
    the matched route's name (``"unmatched"`` for unknown paths).
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    route: str
    received_at: float
    rpc: str = ""
    """The v1 RPC the request matched (``gen_ai_tuning_service.CreateTuningJob``), "" when none."""
    response: Any = None
    """The JSON body the stand-in answered with."""
    query_string: str | None = None
    """The query string as sent (None: rebuild it from ``query``)."""

    def as_log_line(self) -> dict[str, Any]:
        """The request as one line of ``standin_requests.jsonl``: method, path with query, body, status."""
        query = self.query_string if self.query_string is not None else urlencode(self.query)
        target = self.path + ("?" + query if query else "")
        return {"method": self.method, "path": target, "body": self.body, "status": self.status}


@dataclass(frozen=True)
class _FaultPlan:
    status_codes: tuple[int, ...]
    rate: float
    rng: random.Random


def _check_status(status: int) -> int:
    if not 400 <= int(status) <= 599:
        raise ValueError(f"an injected failure needs an HTTP error status (400-599), got {status}")
    return int(status)


class VertexStandIn:
    """A local, offline stand-in of the Vertex AI API for tests and demos (not Gemini).

    Inputs: ``host`` (must be a loopback address), ``port`` (0 picks a free
    one), initial knob values, ``extra_routes`` served after the built-in
    ones, ``first_resource_id`` for reproducible resource ids.
    Use as ``with VertexStandIn() as standin: ...`` or ``start()``/``stop()``.
    Knobs (``latency_seconds``, ``polls_per_state``, ``fail_jobs_with``,
    :meth:`inject_faults`, :meth:`fail_next`) are thread-safe and may be
    changed while it runs. Raises ConfigError for a non-loopback host or a
    port that cannot be bound.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_seconds: float = 0.0,
        polls_per_state: int = 1,
        fail_jobs_with: str | None = None,
        extra_routes: Iterable[Route] = (),
        first_resource_id: int | None = None,
    ) -> None:
        if not is_loopback_endpoint(f"http://{host}"):
            raise ConfigError(f"The offline stand-in only listens on a loopback address, not {host!r}.")
        self._host = host
        self._requested_port = port
        self._initial_knobs = (float(latency_seconds), int(polls_per_state), fail_jobs_with)
        self._lock = threading.Lock()
        self._latency_seconds = 0.0
        self.latency_seconds = latency_seconds
        self.tuning_jobs = TuningJobStore(
            polls_per_state=polls_per_state, fail_jobs_with=fail_jobs_with, first_id=first_resource_id
        )
        self._builtin_routes: tuple[Route, ...] = tuple(
            tuning_routes(self.tuning_jobs)
            + generation_routes(self.tuning_jobs.responder_for_endpoint)
            + platform_routes()
            + experiment_routes()
            + deployment_routes()
        )
        self._extra_routes: tuple[Route, ...] = tuple(extra_routes)
        self._records: list[RequestRecord] = []
        self._route_counts: Counter[str] = Counter()
        self._faults: _FaultPlan | None = None
        self._fail_next_count = 0
        self._fail_next_status = 503
        self._server: _StandInHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.extension_state: dict[str, Any] = {}
        """Free-form state for extra routes (keyed by extension name; extensions guard their own values)."""

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "VertexStandIn":
        """Bind and serve in a daemon thread; no-op when already running. Returns self."""
        if self._server is not None:
            return self
        for api in {AIPLATFORM_V1, *(route.api for route in self.routes)} & set(CHECKED_APIS):
            rest_rules(api)  # read the REST mappings now, not during the first request
        try:
            server = _StandInHTTPServer((self._host, self._requested_port), _RequestHandler, self)
        except OSError as exc:
            raise ConfigError(
                f"The offline stand-in cannot listen on {self._host}:{self._requested_port} ({exc}); "
                "choose another port or 0 for a free one."
            ) from exc
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="vertex-standin", daemon=True
        )
        self._thread.start()
        log.info("offline Vertex stand-in listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving and close open connections; no-op when not running."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        log.info("offline Vertex stand-in stopped")

    def __enter__(self) -> "VertexStandIn":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port; RuntimeError when not running."""
        if self._server is None:
            raise RuntimeError("the offline stand-in is not running: call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash); RuntimeError when not running."""
        return f"http://{self._host}:{self.port}"

    # -- knobs -----------------------------------------------------------------------------------

    @property
    def latency_seconds(self) -> float:
        """Seconds every request waits before it is answered."""
        with self._lock:
            return self._latency_seconds

    @latency_seconds.setter
    def latency_seconds(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"latency_seconds must be >= 0, got {value}")
        with self._lock:
            self._latency_seconds = float(value)

    @property
    def polls_per_state(self) -> int:
        """GETs that see each of PENDING and RUNNING before a job moves on."""
        return self.tuning_jobs.polls_per_state

    @polls_per_state.setter
    def polls_per_state(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"polls_per_state must be >= 0, got {value}")
        self.tuning_jobs.polls_per_state = int(value)

    fail_jobs_with = _TuningJobsKnob("When set, tuning jobs created from now on end FAILED with this error message.")

    @property
    def sub_state_plan(self) -> tuple[tuple[str, int], ...]:
        """Sub-states of RUNNING for jobs created from now on: ``(name, GETs)`` pairs; () = TUNING throughout.

        Names as google-genai's ``TuningJobState`` without the ``TUNING_JOB_STATE_`` prefix
        (``WAITING_FOR_QUOTA``, ``PROCESSING_DATASET``, ``WAITING_FOR_CAPACITY``, ``TUNING``,
        ``POST_PROCESSING``); the job stays RUNNING for the plan's GETs, then ends.
        """
        return self.tuning_jobs.sub_state_plan

    @sub_state_plan.setter
    def sub_state_plan(self, plan: Sequence[tuple[str, int]]) -> None:
        from gemini_sft.standin.tuning import SUB_STATES

        checked = tuple((str(name).removeprefix("TUNING_JOB_STATE_"), int(polls)) for name, polls in plan)
        for name, polls in checked:
            if name not in SUB_STATES or polls < 1:
                raise ValueError(f"a sub-state plan entry needs one of {', '.join(SUB_STATES)} and >= 1 GET, "
                                 f"got ({name!r}, {polls})")
        self.tuning_jobs.sub_state_plan = checked

    truncated_examples = _TuningJobsKnob(
        "1-based indices of training examples that jobs created from now on report truncated.",
        lambda indices: tuple(sorted({int(i) for i in indices})),
    )
    jobs_without_curves = _TuningJobsKnob(
        "When true, jobs created from now on have an experiment without TensorBoard curves.", bool
    )
    expire_jobs = _TuningJobsKnob(
        "When true, tuning jobs created from now on end EXPIRED after RUNNING (unless told to fail).", bool
    )

    def inject_faults(
        self, status_codes: Sequence[int] = (429, 503), rate: float = 0.1, seed: int = 0
    ) -> None:
        """Fail a seeded random ``rate`` of generateContent calls with one of ``status_codes``.

        Replaces any previous plan; ``rate=0`` turns injection off. The
        sequence of decisions is reproducible for a given seed and call order.
        ValueError for a rate outside [0, 1] or a non-error status.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        codes = tuple(_check_status(code) for code in status_codes)
        if not codes:
            raise ValueError("status_codes must name at least one HTTP error status")
        with self._lock:
            self._faults = _FaultPlan(codes, float(rate), random.Random(seed)) if rate > 0 else None

    def clear_faults(self) -> None:
        """Stop injecting faults and cancel pending ``fail_next`` failures."""
        with self._lock:
            self._faults = None
            self._fail_next_count = 0

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Make the next ``n`` requests (any route) fail with ``status``; replaces a pending count."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        status = _check_status(status)
        with self._lock:
            self._fail_next_count = int(n)
            self._fail_next_status = status

    def reset(self, *, jobs: bool = False) -> None:
        """Clear the request log and counters, stop faults, restore the constructor's knob values.

        With ``jobs=True`` also forget every tuning job and clear ``extension_state``
        (extra routes' resources).
        """
        latency, polls, fail_with = self._initial_knobs
        with self._lock:
            self._records.clear()
            self._route_counts.clear()
            self._faults = None
            self._fail_next_count = 0
            self._latency_seconds = latency
        self.tuning_jobs.polls_per_state = polls
        self.tuning_jobs.fail_jobs_with = fail_with
        self.tuning_jobs.expire_jobs = False
        self.tuning_jobs.sub_state_plan = ()
        self.tuning_jobs.truncated_examples = ()
        self.tuning_jobs.jobs_without_curves = False
        if jobs:
            self.tuning_jobs.clear()
            self.extension_state.clear()

    # -- routes and request log ------------------------------------------------------------------

    def add_routes(self, routes: Iterable[Route]) -> None:
        """Serve more routes (tried after the built-in and earlier extra routes)."""
        new_routes = tuple(routes)
        with self._lock:
            self._extra_routes = self._extra_routes + new_routes

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route in the order they are tried."""
        with self._lock:
            return self._builtin_routes + self._extra_routes

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._records)

    def requests_to(self, path_fragment: str, method: str | None = None) -> list[RequestRecord]:
        """Logged requests whose path contains ``path_fragment`` (and whose method is ``method``, if given)."""
        return [
            r
            for r in self.requests
            if path_fragment in r.path and (method is None or r.method == method.upper())
        ]

    @property
    def route_counts(self) -> dict[str, int]:
        """Requests received per route name (``"unmatched"`` for unknown paths)."""
        with self._lock:
            return dict(self._route_counts)

    # -- dispatch --------------------------------------------------------------------------------

    def _planned_failure(self, route: Route | None) -> int | None:
        """The status of a fail_next or injected failure for this request, if any."""
        with self._lock:
            if self._fail_next_count > 0:
                self._fail_next_count -= 1
                return self._fail_next_status
            if route is not None and route.faultable and self._faults is not None:
                plan = self._faults
                if plan.rng.random() < plan.rate:
                    return plan.rng.choice(plan.status_codes)
        return None

    def handle(self, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> tuple[int, Any]:
        """Answer one request: ``(status, json_body)``. Records it in the log."""
        latency = self.latency_seconds
        if latency:
            time.sleep(latency)
        split = urlsplit(target)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body: Any = None
        body_error: str | None = None
        if raw_body.strip():
            try:
                body = json.loads(raw_body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                body_error = f"The request body is not valid JSON: {exc}"
        route, match = self._match(method, path)
        route_name = route.name if route else UNMATCHED_ROUTE
        api = AIPLATFORM_V1 if route is None else route.api
        checked = api in CHECKED_APIS
        rule = find_rule(method, path, api) if checked else None
        status: int
        response: Any
        injected = self._planned_failure(route)
        if injected is not None:
            status, response = injected, error_body(
                injected,
                f"Injected failure from the offline stand-in: HTTP {injected} {grpc_status(injected)}. "
                "Retry the request.",
            )
        elif route is None or match is None:
            served = "" if rule is None else " (a Vertex AI v1 route this stand-in does not implement)"
            status, response = 404, error_body(404, f"The offline stand-in does not serve {method} {path}{served}.")
        elif checked and rule is None:
            status, response = 404, error_body(404, f"{method} {path} is not a route of the {api} REST API.")
        elif body_error is not None:
            status, response = 400, error_body(400, body_error)
        else:
            # The handler gets its own parse of the body, so nothing it does can alter the logged body.
            handler_body = json.loads(raw_body) if body is not None else None
            request = StandInRequest(method, path, query, handler_body, headers, match, self, split.query)
            status, response = self._answer(route, rule, request)
        with self._lock:
            self._records.append(
                RequestRecord(
                    method, path, query, body, status, route_name, time.time(), rule.full_name if rule else "",
                    response, split.query,
                )
            )
            self._route_counts[route_name] += 1
        log.debug("offline stand-in: %s %s (%s) -> %d", method, path, route_name, status)
        return status, response

    def _match(self, method: str, path: str) -> tuple[Route | None, re.Match[str] | None]:
        for route in self.routes:
            match = route.matches(method, path)
            if match is not None:
                return route, match
        return None, None

    def _answer(self, route: Route, rule: RestRule | None, request: StandInRequest) -> tuple[int, Any]:
        """Check the request (Vertex routes), call the handler, check its answer against the response message."""
        if rule is not None:
            try:
                check_request(rule, request.query, request.body)
            except StandInError as exc:
                return exc.http_status, exc.body()
        status, response = self._call(route, request)
        problem = response_problem(rule, status, response) if rule is not None else None
        if problem is not None:
            log.error("offline stand-in: route %s answered a body Vertex never sends: %s", route.name, problem)
            message = f"Internal error in the offline stand-in: its {rule.rpc} answer is {problem.rstrip('.')}."
            return 500, error_body(500, message)
        return status, response

    @staticmethod
    def _call(route: Route, request: StandInRequest) -> tuple[int, Any]:
        try:
            return route.handler(request)
        except StandInError as exc:
            return exc.http_status, exc.body()
        except Exception as exc:  # a handler bug must still produce an HTTP answer
            log.exception("offline stand-in: route %s failed", route.name)
            return 500, error_body(500, f"Internal error in the offline stand-in ({type(exc).__name__}: {exc}).")


class _StandInHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], standin: VertexStandIn):
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down kept-alive client connections so their handler threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("offline stand-in: connection already closed")


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gemini-sft-offline-standin"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    timeout = _IDLE_CONNECTION_TIMEOUT_SECONDS
    server: _StandInHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length > 0 else b""
        status, response = self.server.standin.handle(self.command, self.path, dict(self.headers), raw_body)
        payload = json.dumps({} if response is None else response).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header(STANDIN_HEADER, STANDIN_HEADER_VALUE)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("offline stand-in http: " + format, *args)
