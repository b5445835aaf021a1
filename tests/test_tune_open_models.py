"""Open models Vertex tunes itself, through the tune stage and the real google-genai SDK, against the stand-in.

The stand-in checks the v1beta1 bodies against google-cloud-aiplatform's v1beta1 protos and applies the
open-model rules of the catalogue. Nothing here was run against Vertex itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from gemini_sft import model_catalog, vertex_client
from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings, choose_on_validation
from gemini_sft.errors import ConfigError, TuningSettingsError
from gemini_sft.standin import VertexStandIn
from gemini_sft.tune import TuningData, TuningSettings
from tune_step import run_step, write_splits

PROJECT = "p"
LOCATION = "us-central1"
LLAMA = "meta/llama3_1@llama-3.1-8b-instruct"
SCOUT = "meta/llama4@llama-4-scout-17b-16e-instruct"
OUTPUT = "gs://bucket/tuned-llama"

pytestmark = pytest.mark.filterwarnings("ignore:.*tuning implementation is experimental")


def step_params(standin: VertexStandIn, **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "project": PROJECT, "location": LOCATION, "api_endpoint": standin.base_url,
        "pipeline_run": "gemini-sft-pipeline-20261201", "poll_interval_seconds": 0.01, "max_wait_hours": 0.01,
        "base_model": LLAMA, "output_uri": OUTPUT,
    }
    params.update(overrides)
    return params


def tuning_requests(standin: VertexStandIn) -> list[Any]:
    return [r for r in standin.requests if r.route.startswith("tuningJobs.")]


def sdk_client(standin: VertexStandIn, api_version: str) -> Any:
    """A google-genai client of the stand-in; ``v1beta1-REGION`` for one in another region."""
    version, _, region = api_version.partition("-")
    settings = vertex_client.VertexSettings.create(PROJECT, region or LOCATION, standin.base_url)
    return vertex_client.genai_client(settings, api_version=version)


def sdk_tune(client: Any, tmp_path: Path, base_model: str, **config: Any) -> Any:
    train, _ = write_splits(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return client.tunings.tune(base_model=base_model, training_dataset=types.TuningDataset(gcs_uri=str(train)),
                                   config=types.CreateTuningJobConfig(**config))


# ------------------------------------------------------------------------------------- an open model, each mode


@pytest.mark.parametrize("mode", model_catalog.TUNING_MODES)
def test_an_open_model_is_tuned_through_v1beta1_in_each_mode(standin: VertexStandIn, tmp_path: Path,
                                                             mode: str) -> None:
    outputs, model, summary, _ = run_step(
        tmp_path, **step_params(standin, tuning_mode=mode, learning_rate=2e-5, batch_size=8, epochs=2)
    )
    requests = tuning_requests(standin)
    assert requests and all(r.path.startswith("/v1beta1/") and r.status == 200 for r in requests)
    (body,) = [r.body for r in requests if r.route == "tuningJobs.create.v1beta1"]
    assert body["baseModel"] == LLAMA and body["outputUri"] == OUTPUT
    assert body["supervisedTuningSpec"]["tuningMode"] == f"TUNING_MODE_{mode}"
    # Gemini's hyper-parameters are not sent for an open model; the open model's are.
    assert body["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": 2, "learningRate": 2e-5, "batchSize": 8}
    # Vertex names a Model Registry model and writes the files under outputUri; no endpoint is reported.
    assert model.metadata["tuned_model"].endswith("@1") and model.metadata["output_uri"] == OUTPUT
    assert outputs.endpoint == "" and model.metadata["endpoint"] == "" and model.metadata["checkpoints"] == []
    assert "no endpoint" in model.metadata["no_endpoint_reason"] and OUTPUT in model.metadata["no_endpoint_reason"]
    text = Path(summary.path).read_text()
    assert f"| tuning mode | {mode} |" in text and "| batch size | 8 |" in text and "adapter size" not in text


def test_an_open_model_without_a_mode_lets_vertex_choose(standin: VertexStandIn, tmp_path: Path) -> None:
    run_step(tmp_path, **step_params(standin))
    (body,) = [r.body for r in tuning_requests(standin) if r.route == "tuningJobs.create.v1beta1"]
    assert "tuningMode" not in body["supervisedTuningSpec"]
    assert body["supervisedTuningSpec"]["hyperParameters"] == {"epochCount": 3}


def test_the_checkpoint_step_after_an_open_model_stops_the_run_with_the_reason(standin: VertexStandIn,
                                                                               tmp_path: Path) -> None:
    _, model, _, _ = run_step(tmp_path, **step_params(standin))
    with pytest.raises(ConfigError, match="reports no endpoint .* nothing is promoted"):
        choose_on_validation(dict(model.metadata), [], lambda endpoint: None, CheckpointSelectionSettings())


def test_a_retried_checkpoint_step_does_not_repeat_the_no_endpoint_failure(standin: VertexStandIn,
                                                                           tmp_path: Path) -> None:
    from gemini_sft.components.choose_checkpoint import choose_checkpoint
    from gemini_sft.permanent_failure import MARKER_NAME, RETRY_NOTE
    from kfp import dsl

    _, model, _, _ = run_step(tmp_path, **step_params(standin))
    arguments = dict(
        tuned_model=model, loss_curves=dsl.Artifact(uri=str(tmp_path / "out" / "loss_curves.json")),
        validation=dsl.Dataset(uri=str(tmp_path / "validation.jsonl")),
        checkpoint_choice=dsl.Artifact(uri=str(tmp_path / "choice" / "checkpoint_choice")),
        project=PROJECT, location=LOCATION, api_endpoint=standin.base_url,
    )
    with pytest.raises(ConfigError, match="reports no endpoint") as first:
        choose_checkpoint(**arguments)
    assert RETRY_NOTE not in str(first.value)
    assert (tmp_path / "choice" / MARKER_NAME).is_file()
    requests_before_retry = len(standin.requests)
    with pytest.raises(ConfigError) as retried:  # the retry KFP makes fails at once, with the same message
        choose_checkpoint(**arguments)
    assert RETRY_NOTE in str(retried.value) and "reports no endpoint" in str(retried.value)
    assert len(standin.requests) == requests_before_retry


# ------------------------------------------------------------------------------------------ refused mixes


@pytest.mark.parametrize("base_model, overrides, named", [
    ("gemini-2.5-flash", {"tuning_mode": "FULL", "output_uri": ""}, "tuning_mode"),
    ("gemini-2.5-flash", {"learning_rate": 1e-5, "output_uri": ""}, "learning_rate"),
    ("gemini-2.5-flash", {"batch_size": 8, "output_uri": ""}, "batch_size"),
    ("gemini-2.5-flash", {}, "output_uri"),
    (LLAMA, {"adapter_size": 8}, "adapter_size"),
    (LLAMA, {"learning_rate_multiplier": 0.5}, "learning_rate_multiplier"),
    (LLAMA, {"output_uri": ""}, "output_uri"),
    (LLAMA, {"learning_rate": -1.0}, "learning_rate"),
    (LLAMA, {"continuous_tuning": True}, "continuous tuning"),
    (SCOUT, {"tuning_mode": "FULL"}, "tuning_mode 'FULL' is not offered"),
    (LLAMA, {"location": "us-east1"}, "region 'us-east1'"),
])
def test_a_setting_of_the_other_kind_of_model_is_refused_before_any_call(
    standin: VertexStandIn, tmp_path: Path, base_model: str, overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(TuningSettingsError) as refused:
        run_step(tmp_path, **step_params(standin, base_model=base_model, **overrides))
    problems = str(refused.value).splitlines()[1:]
    assert len(problems) == 1 and named in problems[0], problems
    assert tuning_requests(standin) == []


def test_the_settings_check_of_every_entry_point_refuses_the_same_mix() -> None:
    from gemini_sft.settings_check import setting_problems

    problems = setting_problems({"base_model": LLAMA, "adapter_size": 8, "tuning_output_uri": ""}, [TuningSettings])
    assert any(p.startswith("adapter_size 8 is a Gemini setting") for p in problems)
    assert any(p.startswith("output_uri (pipeline parameter tuning_output_uri) is required") for p in problems)
    assert setting_problems({"base_model": LLAMA, "tuning_output_uri": OUTPUT, "tuning_mode": "FULL"},
                            [TuningSettings]) == []
    (region,) = setting_problems({"base_model": LLAMA, "tuning_output_uri": OUTPUT, "location": "us-east1"},
                                 [TuningSettings])
    assert region.startswith("location 'us-east1' does not offer tuning of meta/llama3_1")


# --------------------------------------------------------------------------- what the stand-in refuses itself


@pytest.mark.parametrize("api_version, base_model, config, message", [
    ("v1", LLAMA, {"output_uri": OUTPUT}, 'Unknown name "outputUri"'),
    ("v1", LLAMA, {"tuning_mode": "TUNING_MODE_FULL"}, 'Unknown name "tuningMode"'),
    ("v1beta1", LLAMA, {}, "outputUri is required"),
    ("v1beta1", LLAMA, {"output_uri": "/tmp/out"}, "must be a Cloud Storage folder"),
    ("v1beta1", SCOUT, {"output_uri": OUTPUT, "tuning_mode": "TUNING_MODE_FULL"}, "is not supported for meta/llama4"),
    ("v1beta1", LLAMA, {"output_uri": OUTPUT, "learning_rate_multiplier": 2.0}, "available for Gemini models only"),
    ("v1beta1", LLAMA, {"output_uri": OUTPUT, "adapter_size": "ADAPTER_SIZE_FOUR"}, "available for Gemini models"),
    ("v1beta1", LLAMA, {"output_uri": OUTPUT, "learning_rate": -0.1}, "learningRate must be > 0"),
    ("v1beta1", LLAMA, {"output_uri": OUTPUT, "batch_size": 0}, "batchSize must be a positive integer"),
    ("v1beta1", LLAMA, {"output_uri": OUTPUT, "epoch_count": 0}, "epochCount must be at least 1"),
    ("v1beta1", "gemini-2.5-flash", {"tuning_mode": "TUNING_MODE_FULL"}, "only available for open source models"),
    ("v1beta1", "meta/llama9@llama-9", {"output_uri": OUTPUT}, "publishers/meta/models/llama9@llama-9` was not"),
    ("v1beta1-us-east1", LLAMA, {"output_uri": OUTPUT}, "is not supported in us-east1"),
])
def test_the_stand_in_refuses_what_vertex_would(standin: VertexStandIn, tmp_path: Path, api_version: str,
                                                base_model: str, config: dict[str, Any], message: str) -> None:
    client = sdk_client(standin, api_version)
    with pytest.raises(genai_errors.ClientError) as refused:
        sdk_tune(client, tmp_path, base_model, **config)
    assert refused.value.code in (400, 404) and message in refused.value.message
    assert standin.tuning_jobs.job_names() == []


def test_a_v1_read_of_an_open_model_job_has_only_v1_fields(standin: VertexStandIn, tmp_path: Path) -> None:
    beta, v1 = sdk_client(standin, "v1beta1"), sdk_client(standin, "v1")
    job = sdk_tune(beta, tmp_path, LLAMA, output_uri=OUTPUT, tuning_mode="TUNING_MODE_PEFT_ADAPTER")
    assert job.output_uri == OUTPUT
    assert job.supervised_tuning_spec.tuning_mode == types.TuningMode.TUNING_MODE_PEFT_ADAPTER
    read_v1 = v1.tunings.get(name=job.name)
    assert read_v1.name == job.name and read_v1.output_uri is None
    assert read_v1.supervised_tuning_spec.tuning_mode is None


def test_a_gemini_job_through_v1beta1_still_gets_an_endpoint(standin: VertexStandIn, tmp_path: Path) -> None:
    client = sdk_client(standin, "v1beta1")
    job = sdk_tune(client, tmp_path, "gemini-2.5-flash", epoch_count=1)
    for _ in range(5):
        job = client.tunings.get(name=job.name)
    assert job.has_succeeded and job.tuned_model.endpoint


def test_the_core_passes_an_open_model_request_unchanged(standin: VertexStandIn, tmp_path: Path) -> None:
    train, validation = write_splits(tmp_path)
    settings = TuningSettings(base_model=LLAMA, output_uri=OUTPUT, tuning_mode="PEFT_ADAPTER", learning_rate=1e-4)
    request = settings.build_request(TuningData(str(train), str(validation)))
    assert (request.adapter_size, request.learning_rate_multiplier) == (None, None)
    assert (request.tuning_mode, request.learning_rate, request.batch_size) == ("TUNING_MODE_PEFT_ADAPTER", 1e-4, None)
    gemini = TuningSettings().build_request(TuningData(str(train), str(validation)))
    assert (gemini.tuning_mode, gemini.learning_rate, gemini.batch_size, gemini.output_uri) == (None, None, None, None)
