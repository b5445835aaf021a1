"""The stand-in refuses what Vertex refuses, over real HTTP with the real google-genai and aiplatform SDKs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from google.api_core import exceptions as api_exceptions
from google.genai import errors, types

from gemini_sft.examples import make_example
from gemini_sft.standin import AIPLATFORM_V1, Route, VertexStandIn, api_path
from gemini_sft.standin.platform import platform_state, routes
from gemini_sft.vertex_client import VertexSettings, genai_client, init_aiplatform

pytestmark = pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")

PARENT = "projects/p/locations/us-central1"


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("strict") / "train.jsonl"
    examples = [make_example(f"Ticket number {i} about billing", f"Category: billing {i}") for i in range(4)]
    path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return path


@pytest.fixture()
def client(standin: VertexStandIn) -> Any:
    return genai_client(VertexSettings.create("p", "us-central1", standin.base_url))


def tune(client: Any, train: str, base_model: str = "gemini-2.5-flash", **config: Any) -> Any:
    return client.tunings.tune(
        base_model=base_model,
        training_dataset=types.TuningDataset(gcs_uri=train),
        config=types.CreateTuningJobConfig(epoch_count=1, **config),
    )


def run_to_end(client: Any, name: str) -> Any:
    for _ in range(10):
        job = client.tunings.get(name=name)
        if job.has_ended:
            return job
    raise AssertionError(f"{name} did not end")


def raw(client: Any, method: str, path: str, body: dict[str, Any]) -> Any:
    """A request as google-genai's own HTTP client sends it (path under /v1/projects/p/locations/L/)."""
    return client._api_client.request(method, path, body)


# -- the body must be the v1 message -------------------------------------------------------------


def test_an_unknown_field_is_refused_with_vertex_wording(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    with pytest.raises(errors.ClientError) as refused:
        tune(client, str(train_file), output_uri="gs://bucket/out")
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert refused.value.message == (
        "Invalid JSON payload received. Unknown name \"outputUri\" at 'tuning_job': Cannot find field."
    )
    assert standin.tuning_jobs.job_names() == []


def test_an_unknown_nested_field_names_its_path(client: Any) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi", "colour": "red"}]}]}
    with pytest.raises(errors.ClientError) as refused:
        raw(client, "post", "publishers/google/models/gemini-2.5-flash:generateContent", body)
    assert refused.value.code == 400
    assert "Unknown name \"colour\" at 'contents[0].parts[0]': Cannot find field." in refused.value.message


def test_a_value_of_the_wrong_type_is_refused(client: Any) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": "x"}}
    with pytest.raises(errors.ClientError) as refused:
        raw(client, "post", "publishers/google/models/gemini-2.5-flash:generateContent", body)
    assert refused.value.code == 400 and "maxOutputTokens" in refused.value.message


def test_an_unknown_query_parameter_is_refused(client: Any) -> None:
    with pytest.raises(errors.ClientError) as refused:
        raw(client, "get", "tuningJobs?colour=red", {})
    assert refused.value.code == 400
    assert 'Unknown name "colour": Cannot bind query parameter' in refused.value.message


def test_a_route_vertex_does_not_have_is_not_served(start_standin: Callable[..., VertexStandIn]) -> None:
    invented = Route("GET", api_path("inventedThings"), lambda request: (200, {}), name="invented")
    server = start_standin(extra_routes=[invented])
    api = genai_client(VertexSettings.create("p", "us-central1", server.base_url))
    with pytest.raises(errors.ClientError) as missing:
        raw(api, "get", "inventedThings", {})
    assert missing.value.code == 404 and "not a route of the aiplatform.v1 REST API" in missing.value.message


def test_a_route_of_another_api_is_served_unchecked(start_standin: Callable[..., VertexStandIn]) -> None:
    assert AIPLATFORM_V1 == "aiplatform.v1"
    bucket = Route("GET", r"/storage/v1/b/(?P<bucket>[^/]+)", lambda request: (200, {"anything": 1}),
                   name="storage.buckets.get", api="storage.v1")
    server = start_standin(extra_routes=[bucket])
    import urllib.request

    with urllib.request.urlopen(f"{server.base_url}/storage/v1/b/my-bucket?colour=red") as response:
        assert json.loads(response.read()) == {"anything": 1}
    assert server.requests[-1].rpc == ""


def test_a_resource_manager_route_is_checked_against_its_own_protos(
    start_standin: Callable[..., VertexStandIn],
) -> None:
    import urllib.error
    import urllib.request

    def get_project(request: Any) -> tuple[int, Any]:
        project = request.group("project")
        if project == "broken":
            return 200, {"name": f"projects/{project}", "billingEnabled": True}
        return 200, {"name": f"projects/{project}", "projectId": project, "state": "ACTIVE"}

    route = Route("GET", r"/v3/projects/(?P<project>[^/:]+)", get_project, name="projects.get",
                  api="cloudresourcemanager.v3")
    server = start_standin(extra_routes=[route])
    with urllib.request.urlopen(f"{server.base_url}/v3/projects/p") as response:
        assert json.loads(response.read())["state"] == "ACTIVE"
    assert server.requests[-1].rpc == "projects.GetProject"
    with pytest.raises(urllib.error.HTTPError) as unknown_parameter:
        urllib.request.urlopen(f"{server.base_url}/v3/projects/p?colour=red")
    assert unknown_parameter.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as broken:
        urllib.request.urlopen(f"{server.base_url}/v3/projects/broken")
    assert broken.value.code == 500 and "billingEnabled" in json.loads(broken.value.read())["error"]["message"]


def test_an_answer_that_is_not_the_response_message_becomes_a_500(
    start_standin: Callable[..., VertexStandIn],
) -> None:
    broken = Route("GET", api_path(r"datasets/(?P<dataset_id>[^/:]+)"),
                   lambda request: (200, {"name": "d", "rows": 3}), name="datasets.get")
    server = start_standin(extra_routes=[broken])
    api = genai_client(VertexSettings.create("p", "us-central1", server.base_url))
    with pytest.raises(errors.ServerError) as failed:
        raw(api, "get", "datasets/1", {})
    assert failed.value.code == 500
    assert "not a google.cloud.aiplatform.v1.Dataset" in failed.value.message and '"rows"' in failed.value.message


# -- the model catalogue ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gemini-9-ultra", "gemini-2.0-flash"])
def test_an_unknown_or_retired_model_is_not_found(client: Any, model: str) -> None:
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model=model, contents="Hello")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    assert f"Publisher Model `{PARENT}/publishers/google/models/{model}` was not found" in missing.value.message


def test_a_known_model_and_its_versions_are_served(client: Any) -> None:
    for model in ("gemini-2.5-flash-001", "gemini-3.5-flash-lite", "gemini-3.1-flash-lite"):
        assert client.models.generate_content(model=model, contents="Hello").text
        assert client.models.count_tokens(model=model, contents="Hello").total_tokens > 0


def test_tuning_an_unknown_model_is_not_found(client: Any, train_file: Path) -> None:
    with pytest.raises(errors.ClientError) as missing:
        tune(client, str(train_file), base_model="gemini-9-ultra")
    assert missing.value.code == 404 and "gemini-9-ultra" in missing.value.message


@pytest.mark.parametrize("uri", ["gs://bucket/clean-data_42/train", "gs://bucket/train.csv"])
def test_training_data_must_be_a_jsonl_object(client: Any, uri: str) -> None:
    with pytest.raises(errors.ClientError) as refused:
        tune(client, uri)
    assert refused.value.code == 400
    assert refused.value.message.startswith("training_dataset_uri should be a GCS object of type JSONL")


def test_training_data_must_be_in_cloud_storage_or_a_mapped_local_path(client: Any) -> None:
    with pytest.raises(errors.ClientError) as refused:
        tune(client, "bq://project.dataset.train.jsonl")
    assert refused.value.code == 400 and "gs://bucket/object.jsonl" in refused.value.message


def test_validation_data_must_be_a_jsonl_object(client: Any, train_file: Path) -> None:
    with pytest.raises(errors.ClientError) as refused:
        tune(client, str(train_file), validation_dataset=types.TuningValidationDataset(gcs_uri="gs://b/val"))
    assert refused.value.code == 400 and refused.value.message.startswith("validation_dataset_uri should be")


def test_adapter_sizes_are_per_model(client: Any, train_file: Path) -> None:
    assert tune(client, str(train_file), base_model="gemini-2.5-flash", adapter_size="ADAPTER_SIZE_SIXTEEN").name
    with pytest.raises(errors.ClientError) as refused:
        tune(client, str(train_file), base_model="gemini-2.5-pro", adapter_size="ADAPTER_SIZE_SIXTEEN")
    assert refused.value.code == 400
    assert "not supported for gemini-2.5-pro" in refused.value.message and "ADAPTER_SIZE_EIGHT" in refused.value.message


def thinking(client: Any, model: str, **config: Any) -> Any:
    return client.models.generate_content(
        model=model, contents="Hello",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**config)),
    )


def test_thinking_can_be_turned_off_only_where_the_model_allows_it(client: Any) -> None:
    assert thinking(client, "gemini-2.5-flash", thinking_budget=0).text
    assert thinking(client, "gemini-2.5-pro", thinking_budget=128).text
    with pytest.raises(errors.ClientError) as refused:
        thinking(client, "gemini-2.5-pro", thinking_budget=0)
    assert refused.value.code == 400 and "Budget 0 is invalid" in refused.value.message
    with pytest.raises(errors.ClientError) as too_big:
        thinking(client, "gemini-2.5-flash", thinking_budget=100_000)
    assert too_big.value.code == 400 and "24576" in too_big.value.message


def test_gemini_3_5_takes_a_thinking_level_not_a_budget(client: Any) -> None:
    assert thinking(client, "gemini-3.5-flash", thinking_level=types.ThinkingLevel.LOW).text
    with pytest.raises(errors.ClientError) as refused:
        thinking(client, "gemini-3.5-flash", thinking_budget=1024)
    assert refused.value.code == 400 and "thinking_level" in refused.value.message
    with pytest.raises(errors.ClientError) as no_level:
        thinking(client, "gemini-2.5-flash", thinking_level=types.ThinkingLevel.LOW)
    assert no_level.value.code == 400 and "thinking_budget" in no_level.value.message


def test_a_tuned_endpoint_follows_its_base_models_thinking_rules(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    job = run_to_end(client, tune(client, str(train_file), base_model="gemini-2.5-pro").name)
    with pytest.raises(errors.ClientError) as refused:
        thinking(client, job.tuned_model.endpoint, thinking_budget=0)
    assert refused.value.code == 400 and "gemini-2.5-pro" in refused.value.message


# -- continuous tuning and versions ----------------------------------------------------------------


def test_continuous_tuning_reports_its_base_inside_pre_tuned_model(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    first = run_to_end(client, tune(client, str(train_file), tuned_model_display_name="triage").name)
    job = tune(client, str(train_file), base_model=first.tuned_model.model, tuned_model_display_name="other")
    resource = standin.requests[-1].response
    assert "baseModel" not in resource and resource["preTunedModel"]["baseModel"] == "gemini-2.5-flash"
    done = run_to_end(client, job.name)
    assert done.tuned_model.model.endswith("@1") and done.tuned_model.model != first.tuned_model.model


def test_continuous_tuning_under_the_parents_display_name_adds_versions(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    first = run_to_end(client, tune(client, str(train_file), tuned_model_display_name="triage").name)
    model = first.tuned_model.model.rsplit("@", 1)[0]
    second = run_to_end(
        client, tune(client, str(train_file), base_model=f"{model}@1", tuned_model_display_name="triage").name
    )
    third = run_to_end(
        client, tune(client, str(train_file), base_model=f"{model}@2", tuned_model_display_name="triage").name
    )
    assert [second.tuned_model.model, third.tuned_model.model] == [f"{model}@2", f"{model}@3"]
    assert third.pre_tuned_model.base_model == "gemini-2.5-flash"
    assert len({first.tuned_model.endpoint, second.tuned_model.endpoint, third.tuned_model.endpoint}) == 3
    versions = platform_state(standin).list_versions(model)
    assert [(v["versionId"], v["displayName"], v["versionAliases"]) for v in versions] == [
        ("1", "triage", ["default"]), ("2", "triage", []), ("3", "triage", [])
    ]


def test_merging_version_aliases_needs_an_explicit_version(start_standin: Callable[..., VertexStandIn]) -> None:
    from google.cloud import aiplatform

    server = start_standin(extra_routes=routes())
    platform_state(server).register_model(f"{PARENT}/models/101", "1")
    init_aiplatform(VertexSettings.create("p", "us-central1", server.base_url))
    registry = aiplatform.models.ModelRegistry(f"{PARENT}/models/101", location="us-central1", project="p")
    with pytest.raises(api_exceptions.BadRequest) as refused:
        registry.client.merge_version_aliases(name=f"{PARENT}/models/101", version_aliases=["production"])
    assert "version ID explicitly" in refused.value.message
    registry.add_version_aliases(["production"], version="1")
    assert "production" in registry.get_version_info("1").version_aliases


SAMPLE_PATHS = {
    "tuningJobs.create": ("POST", f"/v1/{PARENT}/tuningJobs", "CreateTuningJob"),
    "tuningJobs.list": ("GET", f"/v1/{PARENT}/tuningJobs", "ListTuningJobs"),
    "tuningJobs.get": ("GET", f"/v1/{PARENT}/tuningJobs/1", "GetTuningJob"),
    "tuningJobs.cancel": ("POST", f"/v1/{PARENT}/tuningJobs/1:cancel", "CancelTuningJob"),
    "tuningJobs.create.v1beta1": ("POST", f"/v1beta1/{PARENT}/tuningJobs", "CreateTuningJob"),
    "tuningJobs.list.v1beta1": ("GET", f"/v1beta1/{PARENT}/tuningJobs", "ListTuningJobs"),
    "tuningJobs.get.v1beta1": ("GET", f"/v1beta1/{PARENT}/tuningJobs/1", "GetTuningJob"),
    "tuningJobs.cancel.v1beta1": ("POST", f"/v1beta1/{PARENT}/tuningJobs/1:cancel", "CancelTuningJob"),
    "generateContent.base": ("POST", f"/v1/{PARENT}/publishers/google/models/m:generateContent", "GenerateContent"),
    "generateContent.endpoint": ("POST", f"/v1/{PARENT}/endpoints/1:generateContent", "GenerateContent"),
    "countTokens.base": ("POST", f"/v1/{PARENT}/publishers/google/models/m:countTokens", "CountTokens"),
    "countTokens.endpoint": ("POST", f"/v1/{PARENT}/endpoints/1:countTokens", "CountTokens"),
    "pipelineJobs.create": ("POST", f"/v1/{PARENT}/pipelineJobs", "CreatePipelineJob"),
    "pipelineJobs.list": ("GET", f"/v1/{PARENT}/pipelineJobs", "ListPipelineJobs"),
    "pipelineJobs.get": ("GET", f"/v1/{PARENT}/pipelineJobs/r", "GetPipelineJob"),
    "schedules.create": ("POST", f"/v1/{PARENT}/schedules", "CreateSchedule"),
    "schedules.list": ("GET", f"/v1/{PARENT}/schedules", "ListSchedules"),
    "schedules.get": ("GET", f"/v1/{PARENT}/schedules/1", "GetSchedule"),
    "schedules.pause": ("POST", f"/v1/{PARENT}/schedules/1:pause", "PauseSchedule"),
    "schedules.resume": ("POST", f"/v1/{PARENT}/schedules/1:resume", "ResumeSchedule"),
    "schedules.delete": ("DELETE", f"/v1/{PARENT}/schedules/1", "DeleteSchedule"),
    "models.listVersions": ("GET", f"/v1/{PARENT}/models/1:listVersions", "ListModelVersions"),
    "models.mergeVersionAliases": ("POST", f"/v1/{PARENT}/models/1@1:mergeVersionAliases", "MergeVersionAliases"),
    "models.get": ("GET", f"/v1/{PARENT}/models/1@1", "GetModel"),
    "models.patch": ("PATCH", f"/v1/{PARENT}/models/1@1", "UpdateModel"),
    "contexts.get": ("GET", f"/v1/{PARENT}/metadataStores/default/contexts/e", "GetContext"),
    "contexts.list": ("GET", f"/v1/{PARENT}/metadataStores/default/contexts", "ListContexts"),
    "tensorboards.get": ("GET", f"/v1/{PARENT}/tensorboards/1", "GetTensorboard"),
    "tensorboards.batchRead": ("GET", f"/v1/{PARENT}/tensorboards/1:batchRead", "BatchReadTensorboardTimeSeriesData"),
    "tensorboardRuns.get": ("GET", f"/v1/{PARENT}/tensorboards/1/experiments/e/runs/r", "GetTensorboardRun"),
    "tensorboardTimeSeries.list": (
        "GET", f"/v1/{PARENT}/tensorboards/1/experiments/e/runs/r/timeSeries", "ListTensorboardTimeSeries"),
    "models.upload": ("POST", f"/v1/{PARENT}/models:upload", "UploadModel"),
    "endpoints.create": ("POST", f"/v1/{PARENT}/endpoints", "CreateEndpoint"),
    "endpoints.get": ("GET", f"/v1/{PARENT}/endpoints/1", "GetEndpoint"),
    "endpoints.patch": ("PATCH", f"/v1/{PARENT}/endpoints/1", "UpdateEndpoint"),
    "endpoints.deployModel": ("POST", f"/v1/{PARENT}/endpoints/1:deployModel", "DeployModel"),
    "endpoints.undeployModel": ("POST", f"/v1/{PARENT}/endpoints/1:undeployModel", "UndeployModel"),
    "endpoints.mutateDeployedModel": ("POST", f"/v1/{PARENT}/endpoints/1:mutateDeployedModel", "MutateDeployedModel"),
    "endpoints.rawPredict": ("POST", f"/v1/{PARENT}/endpoints/1:rawPredict", "RawPredict"),
}


def test_every_builtin_route_is_the_vertex_rpc_it_stands_in_for(standin: VertexStandIn) -> None:
    from gemini_sft.standin.rest_rules import AIPLATFORM_V1BETA1, find_rule

    assert {route.name for route in standin.routes} == set(SAMPLE_PATHS)
    for route in standin.routes:
        method, path, rpc = SAMPLE_PATHS[route.name]
        api = AIPLATFORM_V1BETA1 if path.startswith("/v1beta1/") else AIPLATFORM_V1
        assert route.api == api and route.matches(method, path), route.name
        rule = find_rule(method, path, api)
        assert rule is not None and rule.rpc == rpc, (route.name, rule)
        assert rule.request_type.DESCRIPTOR.full_name.startswith(f"google.cloud.aiplatform.{api.split('.')[1]}.")


def test_a_thinking_level_sent_as_an_enum_number_is_understood(client: Any) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"thinkingConfig": {"thinkingLevel": 4}}}
    assert raw(client, "post", "publishers/google/models/gemini-3.5-flash:generateContent", body).body
    with pytest.raises(errors.ClientError) as refused:
        raw(client, "post", "publishers/google/models/gemini-2.5-flash:generateContent", body)
    assert refused.value.code == 400 and "thinking_level is not supported" in refused.value.message
