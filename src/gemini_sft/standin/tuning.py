"""Supervised tuning jobs of the offline stand-in.

Routes (under ``/v1/projects/{project}/locations/{location}/``, and the same under ``/v1beta1/``, where a job
answers with the v1beta1 fields too, ``outputUri`` of an open-model job for one):

* ``POST tuningJobs`` creates a job from the body the SDK sends (stored in
  full and echoed back), reads its training file and builds the tuned
  model's answer index right away. 400 for a body Vertex would refuse (no
  training file, a dataset URI that is not a ``.jsonl`` object in Cloud
  Storage or a local path, no base model, a base model Vertex does not tune,
  epochs < 1, multiplier <= 0, an adapter size the model does not allow);
  404 for a base model the catalogue does not know or marks retired.
  Continuous tuning (``preTunedModel``) is answered as Vertex answers it,
  with the base under ``preTunedModel.baseModel``; under the display name of
  the model it starts from, the job makes the next version of that model
  (``.../models/ID@2``), else a new model.
* ``GET tuningJobs/{id}`` returns the job and moves it on: each of
  ``JOB_STATE_PENDING`` and ``JOB_STATE_RUNNING`` is returned by exactly
  ``polls_per_state`` GETs (0: the first GET already sees the end), then the
  job ends ``JOB_STATE_SUCCEEDED`` with ``tunedModel`` (model ``.../models/ID@1``,
  endpoint ``.../endpoints/ID``, one checkpoint per epoch, or only the last
  with ``exportLastCheckpointOnly``) or ``JOB_STATE_FAILED`` with ``error``. A job tuning an open model
  (the catalogue's ``managed_open_model``: ``outputUri`` required, ``tuningMode`` one the model allows)
  ends with ``tunedModel.model`` only: no endpoint and no checkpoints.
* ``GET tuningJobs`` lists jobs newest first, with ``filter``
  (``labels.KEY="v"``, ``labels.KEY!="v"``, ``labels.KEY:*``, ``state="..."``,
  ``baseModel="..."``, ``tunedModelDisplayName="..."`` joined with ``AND``),
  ``pageSize`` and ``pageToken``. Listing does not move jobs on.
* ``POST tuningJobs/{id}:cancel`` ends a job that has not ended as
  ``JOB_STATE_CANCELLED``; 400 ``FAILED_PRECONDITION`` for an ended job.

How a job ends is decided when it is created: a training (or validation)
file that cannot be read or is not Gemini JSONL fails it right after
PENDING with error code 3 and a message naming the file and line; otherwise,
if ``fail_jobs_with`` is set, it fails after RUNNING with that message (code
13); otherwise it succeeds. ``tuningDataStats.supervisedTuningDataStats``
holds the example count and ``totalBillableTokenCount`` = estimated dataset
tokens (:func:`gemini_sft.tokens.estimate_example_tokens`) x epochs; int64
fields are JSON strings, as Vertex sends them. The job's ``description``
says it was made by the offline stand-in.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from gemini_sft.errors import TrainingFileError
from gemini_sft.standin.epochs import checkpoint_responder, loss_curves
from gemini_sft.standin.responder import NearestExampleIndex, TunedResponder
from gemini_sft.standin.rest_rules import AIPLATFORM_V1BETA1, as_message_fields
from gemini_sft.standin.routing import AIPLATFORM_V1, Route, StandInError, StandInRequest, api_path, find_resource
from gemini_sft.standin.training_data import (  # noqa: F401 - read_examples is part of this module's API
    read_examples,
    supervised_tuning_data_stats,
)
from gemini_sft.standin.tuning_request import (  # noqa: F401 - proto_field is part of this module's API
    TuningRequest,
    camel_case_keys,
    parse_tuning_request,
    proto_field,
)

log = logging.getLogger(__name__)

PENDING = "JOB_STATE_PENDING"
RUNNING = "JOB_STATE_RUNNING"
SUCCEEDED = "JOB_STATE_SUCCEEDED"
FAILED = "JOB_STATE_FAILED"
CANCELLED = "JOB_STATE_CANCELLED"
EXPIRED = "JOB_STATE_EXPIRED"
ENDED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
SUB_STATE_PREFIX = "TUNING_JOB_STATE_"
SUB_STATE_TUNING = SUB_STATE_PREFIX + "TUNING"
# The sub-states google-genai 2.34 knows (types.TuningJobState), without the prefix.
SUB_STATES = ("WAITING_FOR_QUOTA", "PROCESSING_DATASET", "WAITING_FOR_CAPACITY", "TUNING", "POST_PROCESSING")

STANDIN_DESCRIPTION = "Made by the gemini-sft offline stand-in of the Vertex API: no Gemini model was tuned."
DEFAULT_PAGE_SIZE = 100

# google.rpc codes used in job errors.
RPC_CANCELLED = 1
RPC_INVALID_ARGUMENT = 3
RPC_DEADLINE_EXCEEDED = 4
RPC_INTERNAL = 13


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class _Job:
    """Mutable job state; only touched under the store's lock."""

    sequence: int
    name: str
    parent: str
    request: TuningRequest
    body: dict[str, Any]
    create_time: str
    model_id: str
    endpoint_id: str
    planned_error: dict[str, Any] | None  # None: the job will succeed
    fails_before_running: bool
    responder: TunedResponder | None
    data_stats: dict[str, Any] | None
    planned_end_state: str = FAILED  # the state a job with a planned error ends in
    state: str = PENDING
    polls_in_state: int = 0
    start_time: str | None = None
    end_time: str | None = None
    update_time: str = ""
    error: dict[str, Any] | None = None
    base_model: str | None = None
    model_version: int = 1
    sub_state_plan: tuple[tuple[str, int], ...] = ()  # (sub-state, GETs) while RUNNING; () = TUNING throughout
    checkpoint_endpoint_ids: dict[int, str] = field(default_factory=dict)  # epoch -> endpoint id
    checkpoint_responders: dict[str, TunedResponder] = field(default_factory=dict)  # endpoint name -> model
    with_curves: bool = True
    has_validation: bool = False

    @property
    def model_name(self) -> str:
        return f"{self.parent}/models/{self.model_id}@{self.model_version}"

    @property
    def endpoint_name(self) -> str:
        return f"{self.parent}/endpoints/{self.endpoint_id}"

    def _end(self, state: str, error: dict[str, Any] | None) -> None:
        self.state = state
        self.error = error
        self.end_time = self.update_time = _now()

    @property
    def experiment_id(self) -> str:
        return f"tuning-experiment-{self.name.rsplit('/', 1)[-1]}"

    @property
    def experiment_name(self) -> str:
        return f"{self.parent}/metadataStores/default/contexts/{self.experiment_id}"

    def polls_in(self, state: str, polls_per_state: int) -> int:
        """GETs that see ``state`` before the job moves on: the sub-state plan's total while RUNNING."""
        if state == RUNNING and self.sub_state_plan:
            return sum(polls for _, polls in self.sub_state_plan)
        return polls_per_state

    def sub_state(self) -> str | None:
        """The detail state (``TUNING_JOB_STATE_...``) while RUNNING, from the plan; None otherwise."""
        if self.state != RUNNING:
            return None
        seen = 0
        for name, polls in self.sub_state_plan:
            seen += polls
            if self.polls_in_state <= seen:
                return SUB_STATE_PREFIX + name
        return SUB_STATE_TUNING if not self.sub_state_plan else SUB_STATE_PREFIX + self.sub_state_plan[-1][0]

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        """The job's TensorBoard series (see :mod:`.epochs`); empty for a job without curves."""
        if not self.with_curves or not self.data_stats:
            return {}
        steps = int(self.data_stats["tuningStepCount"]) // self.request.epochs
        return loss_curves(self.request.epochs, steps, with_eval=self.has_validation)

    def advance(self) -> None:
        """Move to the next state (PENDING -> RUNNING -> SUCCEEDED/FAILED)."""
        if self.state == PENDING:
            if self.fails_before_running:
                self._end(FAILED, self.planned_error)
            else:
                self.state = RUNNING
                self.start_time = self.update_time = _now()
        elif self.state == RUNNING:
            self._end(self.planned_end_state if self.planned_error else SUCCEEDED, self.planned_error)
        self.polls_in_state = 0
        log.info("offline stand-in: tuning job %s is now %s", self.name, self.state)

    def cancel(self) -> None:
        self._end(CANCELLED, {"code": RPC_CANCELLED, "message": "The tuning job was cancelled by a cancel request."})
        log.info("offline stand-in: tuning job %s cancelled", self.name)

    def checkpoints(self) -> list[dict[str, Any]]:
        steps_per_epoch = int(self.data_stats["tuningStepCount"]) // self.request.epochs if self.data_stats else 0
        first_epoch = self.request.epochs if self.request.export_last_checkpoint_only else 1
        checkpoints = []
        for epoch in range(first_epoch, self.request.epochs + 1):
            checkpoint: dict[str, Any] = {
                "checkpointId": str(epoch),
                "epoch": str(epoch),
                "step": str(epoch * steps_per_epoch),
            }
            if epoch == self.request.epochs:
                checkpoint["endpoint"] = self.endpoint_name
            elif epoch in self.checkpoint_endpoint_ids:
                checkpoint["endpoint"] = f"{self.parent}/endpoints/{self.checkpoint_endpoint_ids[epoch]}"
            checkpoints.append(checkpoint)
        return checkpoints

    def resource(self) -> dict[str, Any]:
        """The job as Vertex returns it: the create body (lowerCamelCase keys) + state, times, stats, model, error."""
        resource = camel_case_keys(self.body)
        description = resource.get("description")
        resource.update(
            name=self.name,
            state=self.state,
            createTime=self.create_time,
            updateTime=self.update_time,
            description=f"{description}\n\n{STANDIN_DESCRIPTION}" if description else STANDIN_DESCRIPTION,
        )
        if self.request.pre_tuned_model:
            # Continuous tuning: Vertex reports the base inside preTunedModel (source_model is a oneof).
            pre_tuned = dict(resource.get("preTunedModel") or {})
            if self.base_model:
                pre_tuned["baseModel"] = self.base_model
            resource["preTunedModel"] = pre_tuned
            resource.pop("baseModel", None)
        elif self.base_model and "baseModel" not in resource:
            resource["baseModel"] = self.base_model
        if self.start_time:
            resource["startTime"] = self.start_time
        if self.end_time:
            resource["endTime"] = self.end_time
        if self.error:
            resource["error"] = dict(self.error)
        if self.data_stats and self.start_time:
            resource["tuningDataStats"] = {"supervisedTuningDataStats": copy.deepcopy(self.data_stats)}
        sub_state = self.sub_state()
        if sub_state:
            resource["tuningJobState"] = sub_state
        if self.start_time:
            resource["experiment"] = self.experiment_name
        if self.state == SUCCEEDED and self.request.open_model:
            # What the SDK shows of an open-model job: a Model Registry model (aiplatform.Model(tuned_model_name));
            # its files are under outputUri. No endpoint is reported: nothing is known to deploy it.
            resource["tunedModel"] = {"model": self.model_name}
        elif self.state == SUCCEEDED:
            resource["tunedModel"] = {
                "model": self.model_name,
                "endpoint": self.endpoint_name,
                "checkpoints": self.checkpoints(),
            }
        return resource


_FILTER_TERM = re.compile(
    r'\s*(?P<field>[A-Za-z_][\w.\-]*)\s*(?P<op>!=|=|:)\s*(?P<value>"(?:[^"\\]|\\.)*"|\*|[^\s"()]+)\s*'
)
_FILTER_AND = re.compile(r"AND\s+")
_FILTER_FIELDS = ("state", "baseModel", "tunedModelDisplayName", "name")
FILTER_SYNTAX = (
    'terms such as labels.KEY="value", labels.KEY!="value", labels.KEY:*, state="JOB_STATE_SUCCEEDED", '
    'baseModel="...", tunedModelDisplayName="..." joined with AND'
)


@dataclass(frozen=True)
class FilterTerm:
    """One ``field op value`` term of a list filter."""

    key: str
    op: str
    value: str

    def accepts(self, job_resource: dict[str, Any]) -> bool:
        """Whether a job resource satisfies this term (a missing label satisfies only ``!=``)."""
        if self.key.startswith("labels."):
            labels = job_resource.get("labels") or {}
            actual = labels.get(self.key[len("labels."):])
        else:
            actual = job_resource.get(self.key)
        if self.op == ":":
            return actual is not None
        if self.op == "=":
            return actual == self.value
        return actual != self.value


def parse_filter(text: str) -> list[FilterTerm]:
    """The AND-ed terms of a list filter; StandInError(400) for syntax the stand-in does not support."""
    terms: list[FilterTerm] = []
    position = 0
    text = text.strip()
    while position < len(text):
        if terms:
            joiner = _FILTER_AND.match(text, position)
            if joiner is None:
                raise StandInError(400, f"Unsupported filter {text!r}: the offline stand-in supports {FILTER_SYNTAX}.")
            position = joiner.end()
        match = _FILTER_TERM.match(text, position)
        if match is None:
            raise StandInError(400, f"Unsupported filter {text!r}: the offline stand-in supports {FILTER_SYNTAX}.")
        field_name, op, raw_value = match.group("field", "op", "value")
        if not (field_name.startswith("labels.") or field_name in _FILTER_FIELDS):
            raise StandInError(
                400, f"Unsupported filter field {field_name!r}: the offline stand-in supports {FILTER_SYNTAX}."
            )
        if op == ":" and raw_value != "*":
            raise StandInError(400, f"Unsupported filter term {match.group(0).strip()!r}: use ':*' to test presence.")
        value = json.loads(raw_value) if raw_value.startswith('"') else raw_value
        terms.append(FilterTerm(field_name, op, value))
        position = match.end()
    return terms


@dataclass
class TuningJobStore:
    """Every tuning job of one stand-in, thread-safe.

    ``polls_per_state`` and ``fail_jobs_with`` may be changed at any time;
    ``fail_jobs_with`` applies to jobs created afterwards. Resource ids are
    numeric, increasing from ``first_id`` (by default derived from the clock,
    so ids differ between stand-in runs).
    """

    polls_per_state: int = 1
    fail_jobs_with: str | None = None
    expire_jobs: bool = False
    first_id: int | None = None
    sub_state_plan: tuple[tuple[str, int], ...] = ()
    truncated_examples: tuple[int, ...] = ()
    jobs_without_curves: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _jobs: dict[str, _Job] = field(default_factory=dict, init=False, repr=False)
    _ids: Callable[[], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.polls_per_state < 0:
            raise ValueError("polls_per_state must be >= 0")
        start = self.first_id if self.first_id is not None else time.time_ns() // 1000
        self._ids = itertools.count(start).__next__

    def create(self, project: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a job from a create body; returns its resource. StandInError(400) for a refused body."""
        parent = f"projects/{project}/locations/{location}"
        pre_tuned = body.get("preTunedModel")
        pre_tuned_name = proto_field(pre_tuned, "tunedModelName") if isinstance(pre_tuned, dict) else None
        with self._lock:
            base_of_tuned = self._base_model_of(pre_tuned_name if isinstance(pre_tuned_name, str) else None)
        request = parse_tuning_request(body, parent, base_of_tuned)
        planned_error: dict[str, Any] | None = None
        fails_before_running = False
        responder: TunedResponder | None = None
        data_stats: dict[str, Any] | None = None
        with self._lock:
            if request.pre_tuned_checkpoint_id:
                self._check_source_checkpoint(request)
            job_id, model_id, endpoint_id = (str(self._ids()) for _ in range(3))
            # Intermediate checkpoints get endpoints of their own; the last one is the job's endpoint.
            checkpoint_endpoint_ids = {epoch: str(self._ids()) for epoch in range(1, request.epochs)}
            model_id, model_version = self._tuned_model_slot(request, model_id)
            fail_message = self.fail_jobs_with
            expire = self.expire_jobs
            sub_state_plan, truncated = self.sub_state_plan, self.truncated_examples
            with_curves = not self.jobs_without_curves
        try:
            examples = read_examples(request.training_uri, "training")
            if request.validation_uri:
                read_examples(request.validation_uri, "validation")
            responder = TunedResponder(
                endpoint_id, NearestExampleIndex.from_examples(examples), request.base_model or base_of_tuned
            )
            data_stats = supervised_tuning_data_stats(examples, request.epochs, truncated)
            log.info("offline stand-in: indexed %d training pairs for job %s", responder.index.size, job_id)
        except TrainingFileError as exc:
            planned_error = {"code": RPC_INVALID_ARGUMENT, "message": str(exc)}
            fails_before_running = True
        planned_end_state = FAILED
        if planned_error is None and fail_message is not None:
            planned_error = {"code": RPC_INTERNAL, "message": fail_message}
        elif planned_error is None and expire:
            planned_error = {
                "code": RPC_DEADLINE_EXCEEDED,
                "message": "The tuning job expired: it did not finish within its maximum run time.",
            }
            planned_end_state = EXPIRED
        now = _now()
        with self._lock:
            job = _Job(
                sequence=len(self._jobs),
                name=f"{parent}/tuningJobs/{job_id}",
                parent=parent,
                request=request,
                body=copy.deepcopy(body),
                create_time=now,
                update_time=now,
                model_id=model_id,
                endpoint_id=endpoint_id,
                planned_error=planned_error,
                fails_before_running=fails_before_running,
                responder=responder,
                data_stats=data_stats,
                planned_end_state=planned_end_state,
                base_model=request.base_model or base_of_tuned,
                model_version=model_version,
                sub_state_plan=sub_state_plan,
                checkpoint_endpoint_ids=(
                    {} if request.export_last_checkpoint_only or request.open_model else checkpoint_endpoint_ids
                ),
                with_curves=with_curves,
                has_validation=bool(request.validation_uri),
            )
            if responder is not None and not request.open_model:
                job.checkpoint_responders = self._checkpoint_responders(job, responder)
            self._jobs[job.name] = job
            log.info("offline stand-in: created tuning job %s", job.name)
            return job.resource()

    def _tuned_model_slot(self, request: TuningRequest, new_model_id: str) -> tuple[str, int]:
        """(model id, version) of the model a job will make; called under the lock.

        Continuous tuning under the display name of the model it starts from
        adds the next version of that model, as Vertex does; otherwise the job
        makes a new model (version 1).
        """
        if not request.pre_tuned_model:
            return new_model_id, 1
        parent_id = request.pre_tuned_model.rsplit("/", 1)[-1].split("@", 1)[0]
        versions = [job for job in self._jobs.values() if job.model_id == parent_id]
        if versions and request.display_name and request.display_name == versions[0].request.display_name:
            return parent_id, 1 + max(job.model_version for job in versions)
        return new_model_id, 1

    @staticmethod
    def _checkpoint_responders(job: _Job, responder: TunedResponder) -> dict[str, TunedResponder]:
        """Endpoint name -> the model of that checkpoint (answers change with the epoch, see :mod:`.epochs`)."""
        models: dict[str, TunedResponder] = {}
        for checkpoint in job.checkpoints():
            epoch = int(checkpoint["epoch"])
            endpoint_name = checkpoint["endpoint"]
            endpoint_id = endpoint_name.rsplit("/", 1)[-1]
            models[endpoint_name] = checkpoint_responder(
                endpoint_id, responder.index, responder.base_model, epoch, job.request.epochs
            )
        return models

    def _check_source_checkpoint(self, request: TuningRequest) -> None:
        """A continuous-tuning source checkpoint must be one of the source model's; called under the lock."""
        model_id = (request.pre_tuned_model or "").rsplit("/", 1)[-1].split("@", 1)[0]
        sources = [job for job in self._jobs.values() if job.model_id == model_id and job.state == SUCCEEDED]
        if not sources:
            return  # a model this stand-in did not make: nothing to check against
        known = {c["checkpointId"] for job in sources for c in job.checkpoints()}
        if request.pre_tuned_checkpoint_id not in known:
            raise StandInError(
                400, f"preTunedModel.checkpointId {request.pre_tuned_checkpoint_id!r} is not a checkpoint of "
                f"{request.pre_tuned_model}; its checkpoints: {', '.join(sorted(known))}."
            )

    def _base_model_of(self, tuned_model_name: str | None) -> str | None:
        """Base model of a stand-in tuned model (``.../models/ID@version``), for continuous tuning."""
        if not tuned_model_name:
            return None
        model_id = tuned_model_name.rsplit("/", 1)[-1].split("@", 1)[0]
        for job in self._jobs.values():
            if job.model_id == model_id:
                return job.base_model
        return None

    def _job(self, name: str) -> _Job:
        return find_resource(self._jobs, name, "Tuning job")

    def poll(self, name: str) -> dict[str, Any]:
        """GET: the job's resource after moving it on by one poll; StandInError(404) when unknown."""
        with self._lock:
            job = self._job(name)
            while job.state not in ENDED_STATES and job.polls_in_state >= job.polls_in(job.state, self.polls_per_state):
                job.advance()
            if job.state not in ENDED_STATES:
                job.polls_in_state += 1
            return job.resource()

    def peek(self, name: str) -> dict[str, Any]:
        """The job's resource without moving it on; StandInError(404) when unknown."""
        with self._lock:
            return self._job(name).resource()

    def cancel(self, name: str) -> None:
        """Cancel a job that has not ended; StandInError(404) unknown, (400 FAILED_PRECONDITION) ended."""
        with self._lock:
            job = self._job(name)
            if job.state in ENDED_STATES:
                raise StandInError(400, f"Tuning job {name} has already ended ({job.state}).", "FAILED_PRECONDITION")
            job.cancel()

    def list(self, parent: str, filter_text: str = "", page_size: int = 0, page_token: str = "") -> dict[str, Any]:
        """One page of the parent's jobs, newest first, as a ListTuningJobsResponse body."""
        terms = parse_filter(filter_text) if filter_text else []
        try:
            offset = int(page_token) if page_token else 0
        except ValueError:
            raise StandInError(400, f"Invalid pageToken {page_token!r}.") from None
        size = page_size if page_size > 0 else DEFAULT_PAGE_SIZE
        with self._lock:
            jobs = sorted((j for j in self._jobs.values() if j.parent == parent), key=lambda j: -j.sequence)
            resources = [r for r in (j.resource() for j in jobs) if all(t.accepts(r) for t in terms)]
        page = resources[offset : offset + size]
        response: dict[str, Any] = {"tuningJobs": page} if page else {}
        if offset + size < len(resources):
            response["nextPageToken"] = str(offset + size)
        return response

    def responder_for_endpoint(self, endpoint_name: str) -> TunedResponder | None:
        """The tuned model served at an endpoint, or None when no succeeded job deployed it."""
        with self._lock:
            for job in self._jobs.values():
                if job.state == SUCCEEDED and endpoint_name in job.checkpoint_responders:
                    return job.checkpoint_responders[endpoint_name]
                if job.state == SUCCEEDED and job.endpoint_name == endpoint_name and not job.request.open_model:
                    return job.responder
        return None

    def experiment(self, experiment_id: str) -> tuple[str, dict[str, list[tuple[int, float]]]] | None:
        """(job name, TensorBoard series) of the job whose experiment has this id, once the job started."""
        with self._lock:
            for job in self._jobs.values():
                if job.experiment_id == experiment_id and job.start_time:
                    return job.name, job.curves()
        return None

    def job_names(self) -> list[str]:
        """Names of every job, oldest first."""
        with self._lock:
            return [j.name for j in sorted(self._jobs.values(), key=lambda j: j.sequence)]

    def clear(self) -> None:
        """Forget every job."""
        with self._lock:
            self._jobs.clear()


# The same routes under v1beta1, the version google-genai uses for Vertex by default and the only one with
# open-model tuning (outputUri, tuningMode, learningRate, batchSize).
V1BETA1_PREFIX = r"/v1beta1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/"


def _as_version(resource: dict[str, Any], api: str) -> dict[str, Any]:
    """A job as one API version answers it: the fields its TuningJob lacks are left out."""
    from google.cloud.aiplatform_v1.types import TuningJob as V1TuningJob
    from google.cloud.aiplatform_v1beta1.types import TuningJob as V1Beta1TuningJob

    message = V1TuningJob if api == AIPLATFORM_V1 else V1Beta1TuningJob
    return as_message_fields(resource, message.pb().DESCRIPTOR)


def tuning_routes(store: TuningJobStore) -> list[Route]:
    """The tuningJobs routes of v1 and v1beta1, served from ``store``."""

    def parent(request: StandInRequest) -> str:
        return f"projects/{request.group('project')}/locations/{request.group('location')}"

    def routes(api: str, path: Callable[[str], str], suffix: str) -> list[Route]:
        def create(request: StandInRequest) -> tuple[int, Any]:
            job = store.create(request.group("project"), request.group("location"), request.json_object())
            return 200, _as_version(job, api)

        def get(request: StandInRequest) -> tuple[int, Any]:
            return 200, _as_version(store.poll(f"{parent(request)}/tuningJobs/{request.group('job_id')}"), api)

        def list_jobs(request: StandInRequest) -> tuple[int, Any]:
            page_size_text = request.query.get("pageSize", "0") or "0"
            try:
                page_size = int(page_size_text)
            except ValueError:
                raise StandInError(400, f"pageSize must be an integer, got {page_size_text!r}.") from None
            page = store.list(
                parent(request), request.query.get("filter", ""), page_size, request.query.get("pageToken", "")
            )
            if "tuningJobs" in page:
                page["tuningJobs"] = [_as_version(job, api) for job in page["tuningJobs"]]
            return 200, page

        def cancel(request: StandInRequest) -> tuple[int, Any]:
            store.cancel(f"{parent(request)}/tuningJobs/{request.group('job_id')}")
            return 200, {}

        job = r"tuningJobs/(?P<job_id>[^/:]+)"
        return [
            Route("POST", path("tuningJobs"), create, name="tuningJobs.create" + suffix, api=api),
            Route("GET", path("tuningJobs"), list_jobs, name="tuningJobs.list" + suffix, api=api),
            Route("GET", path(job), get, name="tuningJobs.get" + suffix, api=api),
            Route("POST", path(job + ":cancel"), cancel, name="tuningJobs.cancel" + suffix, api=api),
        ]

    return routes(AIPLATFORM_V1, api_path, "") + routes(
        AIPLATFORM_V1BETA1, lambda suffix: V1BETA1_PREFIX + suffix, ".v1beta1"
    )
