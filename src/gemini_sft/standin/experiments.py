"""Experiments and TensorBoard curves of the offline stand-in's tuning jobs (Vertex AI v1 routes).

Every tuning job that has started names an Experiment
(``metadataStores/default/contexts/tuning-experiment-{job id}``, in the job's
``experiment`` field). The routes serve what google-cloud-aiplatform reads
when Google's tuning notebook follows that name to the curves:

* ``GET metadataStores/default/contexts/{id}``: the experiment (schema
  ``system.Experiment``, metadata ``backing_tensorboard_resource``) or its run
  (``{experiment}-run``, schema ``system.ExperimentRun``, parent the experiment);
* ``GET metadataStores/default/contexts?filter=...``: the experiment's run
  (a filter naming ``parent_contexts`` of another experiment lists nothing);
* ``GET tensorboards/{id}``, ``GET tensorboards/{id}/experiments/{e}/runs/{r}``,
  ``GET .../runs/{r}/timeSeries`` and ``GET tensorboards/{id}:batchRead``:
  the job's TensorBoard (id = job id), run and scalar series, with the curves
  of :func:`gemini_sft.standin.epochs.loss_curves`.

A job created while ``jobs_without_curves`` is on has an experiment without a
backing TensorBoard, as a job whose curves were never written.
"""

from __future__ import annotations

import re
from typing import Any

from gemini_sft.standin.routing import Route, StandInError, StandInRequest, api_path

EXPERIMENT_PREFIX = "tuning-experiment-"
RUN_ID = "run"
_SCHEMA_VERSION = "0.0.1"
_PARENT_FILTER = re.compile(r'parent_contexts:\s*"?(?P<parent>[^"\s]+)"?')


def _series_id(name: str) -> str:
    """A TensorBoard time-series id for a series name (``/train_total_loss`` -> ``train-total-loss``)."""
    return name.strip("/").replace("_", "-")


def routes() -> list[Route]:
    """The Experiment (metadata context) and TensorBoard routes, served from ``standin.tuning_jobs``."""

    def parent(request: StandInRequest) -> str:
        return f"projects/{request.group('project')}/locations/{request.group('location')}"

    def job_of(request: StandInRequest, experiment_id: str) -> tuple[str, dict[str, list[tuple[int, float]]]]:
        found = request.standin.tuning_jobs.experiment(experiment_id)
        if found is None:
            raise StandInError(404, f"Context {parent(request)}/metadataStores/default/contexts/{experiment_id} "
                                    "not found in this offline stand-in.")
        return found

    def tensorboard_name(request: StandInRequest, job_name: str) -> str:
        return f"{parent(request)}/tensorboards/{job_name.rsplit('/', 1)[-1]}"

    def experiment_context(request: StandInRequest, experiment_id: str) -> dict[str, Any]:
        job_name, series = job_of(request, experiment_id)
        metadata: dict[str, Any] = {"experiment_deleted": False}
        if series:
            metadata["backing_tensorboard_resource"] = tensorboard_name(request, job_name)
        return {
            "name": f"{parent(request)}/metadataStores/default/contexts/{experiment_id}",
            "displayName": experiment_id, "schemaTitle": "system.Experiment", "schemaVersion": _SCHEMA_VERSION,
            "metadata": metadata, "description": f"Curves of tuning job {job_name} (offline stand-in).",
        }

    def run_context(request: StandInRequest, experiment_id: str) -> dict[str, Any]:
        job_of(request, experiment_id)
        experiment = f"{parent(request)}/metadataStores/default/contexts/{experiment_id}"
        return {
            "name": f"{experiment}-{RUN_ID}", "displayName": RUN_ID, "schemaTitle": "system.ExperimentRun",
            "schemaVersion": _SCHEMA_VERSION, "parentContexts": [experiment],
            "metadata": {"state": "COMPLETE"},
        }

    def get_context(request: StandInRequest) -> tuple[int, Any]:
        context_id = request.group("context")
        if context_id.endswith("-" + RUN_ID):
            return 200, run_context(request, context_id[: -len(RUN_ID) - 1])
        return 200, experiment_context(request, context_id)

    def list_contexts(request: StandInRequest) -> tuple[int, Any]:
        match = _PARENT_FILTER.search(request.query.get("filter", ""))
        if match is None:
            raise StandInError(400, "The offline stand-in lists contexts only by parent_contexts:\"<experiment>\".")
        experiment_id = match.group("parent").rsplit("/", 1)[-1]
        if request.standin.tuning_jobs.experiment(experiment_id) is None:
            return 200, {}
        return 200, {"contexts": [run_context(request, experiment_id)]}

    def series_of(request: StandInRequest) -> tuple[str, dict[str, list[tuple[int, float]]]]:
        job_id = request.group("tensorboard")
        found = request.standin.tuning_jobs.experiment(EXPERIMENT_PREFIX + job_id)
        if found is None or not found[1]:
            raise StandInError(404, f"Tensorboard {parent(request)}/tensorboards/{job_id} not found.")
        return found

    def get_tensorboard(request: StandInRequest) -> tuple[int, Any]:
        job_name, _ = series_of(request)
        return 200, {"name": tensorboard_name(request, job_name), "displayName": f"curves of {job_name}",
                     "runCount": 1}

    def run_name(request: StandInRequest) -> str:
        return (f"{parent(request)}/tensorboards/{request.group('tensorboard')}/experiments/"
                f"{request.group('experiment')}/runs/{request.group('run')}")

    def check_run(request: StandInRequest) -> dict[str, list[tuple[int, float]]]:
        _, series = series_of(request)
        if request.group("experiment") != EXPERIMENT_PREFIX + request.group("tensorboard") or \
                request.group("run") != RUN_ID:
            raise StandInError(404, f"TensorboardRun {run_name(request)} not found.")
        return series

    def get_run(request: StandInRequest) -> tuple[int, Any]:
        check_run(request)
        return 200, {"name": run_name(request), "displayName": RUN_ID}

    def list_time_series(request: StandInRequest) -> tuple[int, Any]:
        series = check_run(request)
        return 200, {"tensorboardTimeSeries": [
            {"name": f"{run_name(request)}/timeSeries/{_series_id(name)}", "displayName": name,
             "valueType": "SCALAR", "pluginName": "scalars"}
            for name in sorted(series)
        ]}

    def batch_read(request: StandInRequest) -> tuple[int, Any]:
        _, series = series_of(request)
        by_id = {_series_id(name): points for name, points in series.items()}
        wanted = request.query_values("timeSeries")
        data = []
        for resource in wanted:
            series_id = resource.rsplit("/", 1)[-1]
            if series_id not in by_id:
                raise StandInError(404, f"TensorboardTimeSeries {resource} not found.")
            data.append({"tensorboardTimeSeriesId": series_id, "valueType": "SCALAR",
                         "values": [{"step": str(step), "scalar": {"value": value}} for step, value in by_id[series_id]]})
        return 200, {"timeSeriesData": data}

    board = r"tensorboards/(?P<tensorboard>[^/:]+)"
    run = board + r"/experiments/(?P<experiment>[^/:]+)/runs/(?P<run>[^/:]+)"
    contexts = r"metadataStores/default/contexts"
    return [
        Route("GET", api_path(contexts), list_contexts, name="contexts.list"),
        Route("GET", api_path(contexts + r"/(?P<context>[^/:]+)"), get_context, name="contexts.get"),
        Route("GET", api_path(board), get_tensorboard, name="tensorboards.get"),
        Route("GET", api_path(board + ":batchRead"), batch_read, name="tensorboards.batchRead"),
        Route("GET", api_path(run), get_run, name="tensorboardRuns.get"),
        Route("GET", api_path(run + "/timeSeries"), list_time_series, name="tensorboardTimeSeries.list"),
    ]
