"""Vertex AI platform routes of the offline stand-in: pipeline runs, schedules and Model Registry.

What google-cloud-aiplatform's REST transport sends for ``PipelineJob``,
``PipelineJobSchedule`` and ``ModelRegistry``, under
``/v1/projects/{project}/locations/{location}/``:

* ``POST pipelineJobs?pipelineJobId=ID`` stores the run as sent (spec,
  runtime config, service account, network, labels) and answers it with
  ``name``, ``state`` ``PIPELINE_STATE_PENDING`` and times; 409 for an id in
  use. ``GET pipelineJobs/ID`` moves it PENDING -> RUNNING -> ``final_state``
  (``PIPELINE_STATE_SUCCEEDED`` unless set otherwise) over
  ``polls_per_state`` GETs per state. ``GET pipelineJobs`` lists, newest first
  (``filter`` on ``display_name="..."`` / ``labels.KEY="..."``).
* ``POST schedules`` (ACTIVE, with ``nextRunTime``), ``GET schedules/ID``,
  ``GET schedules`` (same filters), ``POST schedules/ID:pause`` (ACTIVE ->
  PAUSED), ``:resume`` (PAUSED -> ACTIVE; 400 FAILED_PRECONDITION otherwise),
  ``DELETE schedules/ID`` (a done long-running operation).
* ``GET models/ID[@VERSION|@ALIAS]``, ``GET models/ID:listVersions``,
  ``POST models/ID@V:mergeVersionAliases`` (the version ID must be explicit,
  400 otherwise, as Vertex requires; ``-alias`` removes; an alias held
  by another version of the model is refused with 400, ``default`` cannot
  be removed), ``PATCH models/ID@V?updateMask=labels,...``.
  The registry knows the models registered with :meth:`PlatformState.register_model`
  and the tuned models of the stand-in's succeeded tuning jobs (the first
  version of a model has the alias ``default``; continuous tuning under the
  parent's display name adds versions 2, 3, ... of the same model).

Nothing is executed: a "run" only changes state. Every resource says it was
made by the offline stand-in. State lives in ``standin.extension_state["platform"]``;
:func:`platform_state` returns it for tests and knobs.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from gemini_sft.standin.routing import Route, StandInError, StandInRequest, api_path, find_resource

STATE_KEY = "platform"
STANDIN_NOTE = "Made by the gemini-sft offline stand-in of the Vertex API: nothing was run."
PIPELINE_PENDING = "PIPELINE_STATE_PENDING"
PIPELINE_RUNNING = "PIPELINE_STATE_RUNNING"
PIPELINE_SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
PIPELINE_ENDED = frozenset({PIPELINE_SUCCEEDED, "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"})
SCHEDULE_ACTIVE = "ACTIVE"
SCHEDULE_PAUSED = "PAUSED"
DEFAULT_ALIAS = "default"
_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")
_FILTER_TERM = re.compile(r'\s*(?P<field>[A-Za-z_][\w.\-]*)\s*=\s*"(?P<value>[^"]*)"\s*')


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _matches_filter(resource: dict[str, Any], filter_text: str) -> bool:
    """``display_name="x" AND labels.k="v"`` style filters (snake or camel case field names)."""
    if not filter_text.strip():
        return True
    for term in re.split(r"\s+AND\s+", filter_text.strip()):
        match = _FILTER_TERM.fullmatch(term)
        if not match:
            raise StandInError(400, f"Unsupported filter term {term!r}: use field=\"value\" joined with AND.")
        name, value = match.group("field"), match.group("value")
        if name.startswith("labels."):
            actual = (resource.get("labels") or {}).get(name[len("labels."):])
        else:
            camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
            actual = resource.get(camel)
        if actual != value:
            return False
    return True


@dataclass
class _PipelineRun:
    resource: dict[str, Any]
    sequence: int
    polls_in_state: int = 0


@dataclass
class _ModelVersion:
    parent: str
    version_id: str
    resource: dict[str, Any]


@dataclass
class PlatformState:
    """Pipeline runs, schedules and model versions of one stand-in (thread-safe).

    Knobs: ``polls_per_state`` (GETs a run spends in PENDING and in RUNNING),
    ``final_state`` (how runs end). ``tuned_models`` returns the names of
    tuned models the stand-in's tuning jobs made (set by :func:`platform_state`).
    """

    polls_per_state: int = 1
    final_state: str = PIPELINE_SUCCEEDED
    tuned_models: Callable[[], dict[str, str]] = dict
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _runs: dict[str, _PipelineRun] = field(default_factory=dict, repr=False)
    _schedules: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _models: dict[str, dict[str, _ModelVersion]] = field(default_factory=dict, repr=False)
    _ids: Callable[[], int] = field(default_factory=lambda: itertools.count(time.time_ns() // 1000).__next__,
                                    repr=False)

    # -- pipeline runs ---------------------------------------------------------------------------

    def create_run(self, parent: str, run_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """Store a run as sent; 400 without a pipeline spec, 409 when the id is taken."""
        if not isinstance(body.get("pipelineSpec"), dict):
            raise StandInError(400, "A pipeline job needs a pipelineSpec.")
        with self._lock:
            run_id = run_id or f"run-{self._ids()}"
            name = f"{parent}/pipelineJobs/{run_id}"
            if name in self._runs:
                raise StandInError(409, f"Pipeline job {name} already exists.")
            resource = copy.deepcopy(body)
            now = _now()
            resource.update(name=name, state=PIPELINE_PENDING, createTime=now, updateTime=now)
            resource.setdefault("labels", {})
            self._runs[name] = _PipelineRun(resource=resource, sequence=len(self._runs))
            return copy.deepcopy(resource)

    def get_run(self, name: str) -> dict[str, Any]:
        """The run after one poll (PENDING -> RUNNING -> final state)."""
        with self._lock:
            run = find_resource(self._runs, name, "Pipeline job")
            state = run.resource["state"]
            if state not in PIPELINE_ENDED:
                if run.polls_in_state >= self.polls_per_state:
                    state = PIPELINE_RUNNING if state == PIPELINE_PENDING else self.final_state
                    run.resource["state"] = state
                    run.resource["updateTime"] = _now()
                    if state == PIPELINE_RUNNING:
                        run.resource["startTime"] = run.resource["updateTime"]
                    elif state in PIPELINE_ENDED:
                        run.resource["endTime"] = run.resource["updateTime"]
                    run.polls_in_state = 0
                if state not in PIPELINE_ENDED:
                    run.polls_in_state += 1
            return copy.deepcopy(run.resource)

    def list_runs(self, parent: str, filter_text: str = "") -> list[dict[str, Any]]:
        with self._lock:
            runs = sorted((r for r in self._runs.values() if r.resource["name"].startswith(parent + "/")),
                          key=lambda r: -r.sequence)
            return [copy.deepcopy(r.resource) for r in runs if _matches_filter(r.resource, filter_text)]

    def runs(self) -> list[dict[str, Any]]:
        """Every run as stored (for tests), oldest first."""
        with self._lock:
            return [copy.deepcopy(r.resource) for r in sorted(self._runs.values(), key=lambda r: r.sequence)]

    # -- schedules -------------------------------------------------------------------------------

    def create_schedule(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a schedule; 400 without cron, display name or pipeline job request."""
        for required in ("cron", "displayName", "createPipelineJobRequest"):
            if not body.get(required):
                raise StandInError(400, f"A schedule needs {required}.")
        with self._lock:
            name = f"{parent}/schedules/{self._ids()}"
            resource = copy.deepcopy(body)
            now = datetime.now(timezone.utc)
            start = body.get("startTime")
            resource.update(
                name=name,
                state=SCHEDULE_ACTIVE,
                createTime=_now(),
                updateTime=_now(),
                nextRunTime=start or (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                startedRunCount="0",
            )
            resource.setdefault("maxConcurrentRunCount", "1")
            self._schedules[name] = resource
            return copy.deepcopy(resource)

    def _schedule(self, name: str) -> dict[str, Any]:
        return find_resource(self._schedules, name, "Schedule")

    def get_schedule(self, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._schedule(name))

    def list_schedules(self, parent: str, filter_text: str = "") -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(s) for n, s in sorted(self._schedules.items())
                    if n.startswith(parent + "/") and _matches_filter(s, filter_text)]

    def set_schedule_state(self, name: str, expected: str, new_state: str) -> None:
        """Pause or resume; 400 FAILED_PRECONDITION when the schedule is not in ``expected``."""
        with self._lock:
            schedule = self._schedule(name)
            if schedule["state"] != expected:
                raise StandInError(
                    400, f"Schedule {name} is {schedule['state']}, not {expected}.", "FAILED_PRECONDITION"
                )
            schedule["state"] = new_state
            schedule["updateTime"] = _now()

    def delete_schedule(self, name: str) -> None:
        with self._lock:
            self._schedule(name)
            del self._schedules[name]

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule as stored (for tests)."""
        with self._lock:
            return [copy.deepcopy(s) for _, s in sorted(self._schedules.items())]

    # -- Model Registry --------------------------------------------------------------------------

    def register_model(self, parent: str, version_id: str = "1", display_name: str = "",
                       labels: dict[str, str] | None = None) -> dict[str, Any]:
        """Add a model version (``parent`` = ``projects/P/locations/L/models/ID``); the first gets ``default``."""
        with self._lock:
            versions = self._models.setdefault(parent, {})
            if version_id in versions:
                return copy.deepcopy(versions[version_id].resource)
            now = _now()
            resource = {
                "name": parent,
                "versionId": version_id,
                "displayName": display_name or parent.rsplit("/", 1)[-1],
                "description": STANDIN_NOTE,
                "versionAliases": [] if versions else [DEFAULT_ALIAS],
                "labels": dict(labels or {}),
                "createTime": now,
                "updateTime": now,
                "versionCreateTime": now,
                "versionUpdateTime": now,
            }
            versions[version_id] = _ModelVersion(parent, version_id, resource)
            return copy.deepcopy(resource)

    def _sync_tuned_models(self) -> None:
        for versioned_name, display_name in self.tuned_models().items():
            parent, _, version = versioned_name.partition("@")
            if version and version not in self._models.get(parent, {}):
                self.register_model(parent, version, display_name)

    def _version(self, name: str) -> _ModelVersion:
        """The version named ``parent``, ``parent@VERSION`` or ``parent@ALIAS``; 404 when unknown."""
        parent, _, ref = name.partition("@")
        with self._lock:
            self._sync_tuned_models()
            versions = self._models.get(parent)
            if not versions:
                raise StandInError(404, f"Model {parent} not found in this offline stand-in.")
            ref = ref or DEFAULT_ALIAS
            if ref in versions:
                return versions[ref]
            for version in versions.values():
                if ref in version.resource["versionAliases"]:
                    return version
            raise StandInError(404, f"Model {parent} has no version or alias {ref!r}.")

    def get_model(self, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._version(name).resource)

    def list_versions(self, parent: str) -> list[dict[str, Any]]:
        with self._lock:
            self._version(parent)
            return [copy.deepcopy(v.resource) for _, v in sorted(self._models[parent].items())]

    def merge_aliases(self, name: str, changes: list[str]) -> dict[str, Any]:
        """Apply ``["alias", "-alias", ...]`` to one version, as ``models.mergeVersionAliases`` does."""
        with self._lock:
            version = self._version(name)
            aliases = list(version.resource["versionAliases"])
            for change in changes:
                removing = change.startswith("-")
                alias = change[1:] if removing else change
                if not _ALIAS.match(alias):
                    raise StandInError(400, f"Invalid version alias {alias!r}.")
                if removing:
                    if alias == DEFAULT_ALIAS:
                        raise StandInError(400, "The default alias cannot be removed; set it on another version.")
                    if alias in aliases:
                        aliases.remove(alias)
                    continue
                for other in self._models[version.parent].values():
                    if other is not version and alias in other.resource["versionAliases"]:
                        if alias == DEFAULT_ALIAS:
                            other.resource["versionAliases"].remove(alias)
                        else:
                            raise StandInError(
                                400,
                                f"Alias {alias!r} is already assigned to version {other.version_id} of "
                                f"{version.parent}.",
                                "FAILED_PRECONDITION",
                            )
                if alias not in aliases:
                    aliases.append(alias)
            version.resource["versionAliases"] = aliases
            version.resource["versionUpdateTime"] = _now()
            return copy.deepcopy(version.resource)

    def update_model(self, name: str, body: dict[str, Any], update_mask: str) -> dict[str, Any]:
        """PATCH the fields named in ``update_mask`` (labels, displayName, description, versionDescription)."""
        allowed = {"labels": "labels", "display_name": "displayName", "displayName": "displayName",
                   "description": "description", "version_description": "versionDescription",
                   "versionDescription": "versionDescription"}
        paths = [path.strip() for path in update_mask.split(",") if path.strip()]
        if not paths:
            raise StandInError(400, "updateMask is required.")
        with self._lock:
            version = self._version(name)
            for path in paths:
                if path not in allowed:
                    raise StandInError(400, f"Field {path!r} cannot be updated in this offline stand-in.")
                key = allowed[path]
                version.resource[key] = copy.deepcopy(body.get(key, {} if key == "labels" else ""))
            version.resource["updateTime"] = version.resource["versionUpdateTime"] = _now()
            return copy.deepcopy(version.resource)


def platform_state(standin: Any) -> PlatformState:
    """The platform state of one stand-in, created on first use (linked to its tuning jobs)."""
    state = standin.extension_state.get(STATE_KEY)
    if state is None:
        state = PlatformState(tuned_models=lambda: _tuned_models(standin))
        state = standin.extension_state.setdefault(STATE_KEY, state)
    return state


def _tuned_models(standin: Any) -> dict[str, str]:
    """``versioned model name -> display name`` of the stand-in's succeeded tuning jobs."""
    models: dict[str, str] = {}
    for name in standin.tuning_jobs.job_names():
        job = standin.tuning_jobs.peek(name)
        model = (job.get("tunedModel") or {}).get("model")
        if model:
            models[model] = str(job.get("tunedModelDisplayName", ""))
    return models


def _parent(request: StandInRequest) -> str:
    return f"projects/{request.group('project')}/locations/{request.group('location')}"


def _list_body(key: str, items: list[dict[str, Any]], request: StandInRequest) -> dict[str, Any]:
    try:
        size = int(request.query.get("pageSize") or 0) or 100
        offset = int(request.query.get("pageToken") or 0)
    except ValueError:
        raise StandInError(400, "pageSize and pageToken must be integers.") from None
    page = items[offset: offset + size]
    body: dict[str, Any] = {key: page} if page else {}
    if offset + size < len(items):
        body["nextPageToken"] = str(offset + size)
    return body


def routes() -> list[Route]:
    """The platform routes (pipelineJobs, schedules, models), for ``VertexStandIn(extra_routes=routes())``."""

    def create_run(request: StandInRequest) -> tuple[int, Any]:
        state = platform_state(request.standin)
        return 200, state.create_run(_parent(request), request.query.get("pipelineJobId"), request.json_object())

    def get_run(request: StandInRequest) -> tuple[int, Any]:
        name = f"{_parent(request)}/pipelineJobs/{request.group('run_id')}"
        return 200, platform_state(request.standin).get_run(name)

    def list_runs(request: StandInRequest) -> tuple[int, Any]:
        items = platform_state(request.standin).list_runs(_parent(request), request.query.get("filter", ""))
        return 200, _list_body("pipelineJobs", items, request)

    def create_schedule(request: StandInRequest) -> tuple[int, Any]:
        return 200, platform_state(request.standin).create_schedule(_parent(request), request.json_object())

    def schedule_name(request: StandInRequest) -> str:
        return f"{_parent(request)}/schedules/{request.group('schedule_id')}"

    def get_schedule(request: StandInRequest) -> tuple[int, Any]:
        return 200, platform_state(request.standin).get_schedule(schedule_name(request))

    def list_schedules(request: StandInRequest) -> tuple[int, Any]:
        items = platform_state(request.standin).list_schedules(_parent(request), request.query.get("filter", ""))
        return 200, _list_body("schedules", items, request)

    def pause(request: StandInRequest) -> tuple[int, Any]:
        platform_state(request.standin).set_schedule_state(schedule_name(request), SCHEDULE_ACTIVE, SCHEDULE_PAUSED)
        return 200, {}

    def resume(request: StandInRequest) -> tuple[int, Any]:
        platform_state(request.standin).set_schedule_state(schedule_name(request), SCHEDULE_PAUSED, SCHEDULE_ACTIVE)
        return 200, {}

    def delete_schedule(request: StandInRequest) -> tuple[int, Any]:
        name = schedule_name(request)
        platform_state(request.standin).delete_schedule(name)
        return 200, {
            "name": f"{name}/operations/{time.time_ns()}",
            "done": True,
            "metadata": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata"},
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }

    def model_name(request: StandInRequest) -> str:
        return f"{_parent(request)}/models/{request.group('model')}"

    def get_model(request: StandInRequest) -> tuple[int, Any]:
        return 200, platform_state(request.standin).get_model(model_name(request))

    def list_versions(request: StandInRequest) -> tuple[int, Any]:
        items = platform_state(request.standin).list_versions(model_name(request))
        return 200, _list_body("models", items, request)

    def merge_aliases(request: StandInRequest) -> tuple[int, Any]:
        name = model_name(request)
        if not re.fullmatch(r"[^@]+@\d+", name):
            raise StandInError(
                400,
                f"The model name {name} must include a version ID explicitly "
                "(projects/P/locations/L/models/ID@VERSION) to merge version aliases.",
            )
        changes = request.json_object().get("versionAliases") or []
        if not isinstance(changes, list) or not changes:
            raise StandInError(400, "versionAliases must be a non-empty list.")
        return 200, platform_state(request.standin).merge_aliases(name, [str(c) for c in changes])

    def update_model(request: StandInRequest) -> tuple[int, Any]:
        return 200, platform_state(request.standin).update_model(
            model_name(request), request.json_object(), request.query.get("updateMask", "")
        )

    run = r"pipelineJobs/(?P<run_id>[^/:]+)"
    schedule = r"schedules/(?P<schedule_id>[^/:]+)"
    model = r"models/(?P<model>[^/:]+)"
    return [
        Route("POST", api_path("pipelineJobs"), create_run, name="pipelineJobs.create"),
        Route("GET", api_path("pipelineJobs"), list_runs, name="pipelineJobs.list"),
        Route("GET", api_path(run), get_run, name="pipelineJobs.get"),
        Route("POST", api_path("schedules"), create_schedule, name="schedules.create"),
        Route("GET", api_path("schedules"), list_schedules, name="schedules.list"),
        Route("GET", api_path(schedule), get_schedule, name="schedules.get"),
        Route("POST", api_path(schedule + ":pause"), pause, name="schedules.pause"),
        Route("POST", api_path(schedule + ":resume"), resume, name="schedules.resume"),
        Route("DELETE", api_path(schedule), delete_schedule, name="schedules.delete"),
        Route("GET", api_path(model + ":listVersions"), list_versions, name="models.listVersions"),
        Route("POST", api_path(model + ":mergeVersionAliases"), merge_aliases, name="models.mergeVersionAliases"),
        Route("GET", api_path(model), get_model, name="models.get"),
        Route("PATCH", api_path(model), update_model, name="models.patch"),
    ]
