"""An offline stand-in of the Vertex AI API, for tests and demos. It is not Gemini.

A small HTTP server on 127.0.0.1 that the unmodified google-genai client
reaches through its base URL::

    from gemini_sft.standin import VertexStandIn
    from gemini_sft.vertex_client import VertexSettings, genai_client

    with VertexStandIn() as standin:
        client = genai_client(VertexSettings.create("p", "us-central1", standin.base_url))
        client.models.generate_content(model="gemini-2.5-flash", contents="Hello")

It serves, under ``/v1/projects/{project}/locations/{location}/``:

* ``tuningJobs``: create, get (moves the job PENDING -> RUNNING -> SUCCEEDED
  over ``polls_per_state`` GETs per state), list (``filter`` on labels,
  ``pageSize``, ``pageToken``) and ``:cancel`` (see :mod:`.tuning`);
* ``publishers/google/models/{model}:generateContent`` and ``:countTokens``
  (a "base model" that knows nothing of the training data) and
  ``endpoints/{id}:generateContent`` and ``:countTokens`` (the "tuned
  model" of the job that deployed that endpoint, answering from its training
  file; see :mod:`.responder`). Each checkpoint (one per epoch) has its own
  endpoint whose answers improve, then overfit, with the epoch
  (:mod:`.epochs`);
* the job's Experiment and TensorBoard (``metadataStores/default/contexts``,
  ``tensorboards/...``: the loss curves google-cloud-aiplatform reads; see
  :mod:`.experiments`).

It is as strict as Vertex where that is knowable offline: every request
must be a route of Vertex AI's v1 REST mapping and parse into its v1 request
message with unknown fields refused (400 ``INVALID_ARGUMENT``, worded as
Vertex words it), and every answer must parse into the response message
(:mod:`.rest_rules`, read from google-cloud-aiplatform's REST transports).
Models come from the catalogue file (:mod:`gemini_sft.model_catalog`):
unknown or retired publisher models get 404, tuning needs a tunable model,
an adapter size it allows and ``.jsonl`` dataset URIs, and generation
follows each model's thinking rules (:mod:`.model_checks`).

Everything it makes is labelled: ``modelVersion`` is
``offline-stand-in/base/{model}`` or ``offline-stand-in/tuned/{endpoint-id}``,
every response has the header ``X-Gemini-Sft-Standin: offline``, and tuning
jobs' descriptions say they were made by the stand-in.

Knobs (thread-safe, settable while running): ``latency_seconds``,
``polls_per_state``, ``fail_jobs_with``, ``inject_faults(status_codes, rate,
seed)``, ``fail_next(n, status)``, and for jobs created afterwards
``sub_state_plan`` (``[("WAITING_FOR_QUOTA", 3), ("TUNING", 1)]``),
``truncated_examples`` (1-based indices) and ``jobs_without_curves``; the request log: ``requests``,
``requests_to(fragment)``, ``route_counts``, ``reset()``;
:func:`write_request_log` writes the log as ``standin_requests.jsonl`` lines
(``{"method", "path", "body", "status"}``), as ``gemini-sft run --local`` does.

Extension point: other modules add routes without touching this package's
code. A route is ``Route(method, pattern, handler, name=...)``: ``pattern`` is
a regular expression matched against the whole path (no query string;
:func:`api_path` prefixes ``/v1/projects/(?P<project>..)/locations/(?P<location>..)/``),
``handler(request: StandInRequest) -> (status, json_body)`` may raise
:class:`StandInError` for a Google-style error answer. Pass routes as
``VertexStandIn(extra_routes=routes)`` or ``standin.add_routes(routes)``; they
are tried after the built-in routes. A route is a Vertex AI v1 route unless it
says otherwise (``Route(..., api="storage.v1")``): those are checked as above;
routes of other APIs are served unchecked. ``request.standin`` gives handlers the
server (``standin.tuning_jobs`` for tuning jobs and their tuned models,
``standin.extension_state`` for their own state). By convention a module
offering routes exposes ``routes() -> list[Route]``. The platform routes
(pipeline jobs, schedules, Model Registry) of ``gemini_sft.standin.platform``
are served by every stand-in.
"""

from gemini_sft.standin.request_log import (
    LOCAL_RUN_FIRST_RESOURCE_ID,
    REQUEST_LOG_NAME,
    read_request_log,
    replay_request_log,
    write_request_log,
)
from gemini_sft.standin.routing import AIPLATFORM_V1, Route, StandInError, StandInRequest, api_path
from gemini_sft.standin.server import STANDIN_HEADER, RequestRecord, VertexStandIn

__all__ = [
    "AIPLATFORM_V1",
    "REQUEST_LOG_NAME",
    "STANDIN_HEADER",
    "RequestRecord",
    "Route",
    "StandInError",
    "StandInRequest",
    "VertexStandIn",
    "api_path",
    "read_request_log",
    "LOCAL_RUN_FIRST_RESOURCE_ID",
    "replay_request_log",
    "write_request_log",
]
