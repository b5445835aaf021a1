"""The offline Vertex stand-in, exercised through the real google-genai SDK over real HTTP."""

from __future__ import annotations

import argparse
import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.genai import errors, types

from gemini_sft.cli import standin as standin_cli
from gemini_sft.errors import ConfigError
from gemini_sft.examples import make_example
from gemini_sft.standin import STANDIN_HEADER, Route, StandInError, VertexStandIn, api_path
from gemini_sft.standin.tuning import proto_field
from gemini_sft.tokens import estimate_example_tokens
from gemini_sft.vertex_client import VertexSettings, genai_client

pytestmark = pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")

KMS_KEY = "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k"
SYSTEM = "Triage the support ticket: give its category, priority and action."
TICKETS: list[tuple[str, str]] = [
    ("I was charged twice for my March invoice, please refund one payment.",
     "Category: billing\nPriority: high\nAction: refund duplicate charge"),
    ("The mobile app crashes every time I open the camera screen.",
     "Category: bug\nPriority: high\nAction: escalate to mobile team"),
    ("How do I change the email address on my account?",
     "Category: account\nPriority: low\nAction: send settings guide"),
    ("My parcel tracking number shows no movement for ten days.",
     "Category: shipping\nPriority: medium\nAction: open carrier investigation"),
    ("Please add dark mode to the web dashboard.",
     "Category: feature request\nPriority: low\nAction: log in product backlog"),
    ("I cannot log in, the password reset link has expired.",
     "Category: account\nPriority: medium\nAction: resend reset link"),
]


def write_jsonl(path: Path, examples: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("standin")
    return write_jsonl(directory / "train.jsonl", [make_example(p, r, SYSTEM) for p, r in TICKETS])


@pytest.fixture(scope="module")
def server() -> Iterator[VertexStandIn]:
    with VertexStandIn(first_resource_id=5000) as running:
        yield running


@pytest.fixture()
def standin(server: VertexStandIn) -> Iterator[VertexStandIn]:
    server.reset(jobs=True)
    yield server
    server.reset(jobs=True)


@pytest.fixture(scope="module")
def client(server: VertexStandIn) -> Any:
    return genai_client(VertexSettings.create("p", "us-central1", server.base_url))


def start_job(client: Any, train: Path | str, **config: Any) -> Any:
    settings: dict[str, Any] = {"epoch_count": 2, "labels": {"run": "r1"}}
    settings.update(config)
    return client.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=str(train)),
        config=types.CreateTuningJobConfig(**settings),
    )


def run_to_end(client: Any, name: str, max_polls: int = 10) -> tuple[list[str], Any]:
    states: list[str] = []
    for _ in range(max_polls):
        job = client.tunings.get(name=name)
        states.append(job.state.value)
        if job.has_ended:
            return states, job
    raise AssertionError(f"job did not end after {max_polls} polls: {states}")


def tuned_endpoint(client: Any, train: Path) -> str:
    job = start_job(client, train)
    _, job = run_to_end(client, job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    return str(job.tuned_model.endpoint)


def ask(client: Any, model: str, prompt: str, **config: Any) -> Any:
    config.setdefault("system_instruction", SYSTEM)
    return client.models.generate_content(
        model=model, contents=prompt, config=types.GenerateContentConfig(**config)
    )


# -- tuning jobs ---------------------------------------------------------------------------------


def test_create_sends_and_stores_every_setting(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    job = start_job(
        client,
        train_file,
        validation_dataset=types.TuningValidationDataset(gcs_uri=str(train_file)),
        tuned_model_display_name="triage-v1",
        description="weekly retrain",
        epoch_count=3,
        learning_rate_multiplier=0.5,
        adapter_size="ADAPTER_SIZE_EIGHT",
        labels={"run": "r1", "dataset_hash": "abc123"},
        export_last_checkpoint_only=True,
        encryption_spec=types.EncryptionSpec(kms_key_name=KMS_KEY),
    )

    (create,) = standin.requests_to("/tuningJobs", method="POST")
    assert create.path == "/v1/projects/p/locations/us-central1/tuningJobs"
    assert create.status == 200
    sent = dict(create.body)
    # google-genai 2.34 writes this nested message with snake_case keys; Vertex accepts both spellings.
    assert proto_field(sent.pop("encryptionSpec"), "kmsKeyName") == KMS_KEY
    assert sent == {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": str(train_file),
            "validationDatasetUri": str(train_file),
            "hyperParameters": {"epochCount": 3, "learningRateMultiplier": 0.5, "adapterSize": "ADAPTER_SIZE_EIGHT"},
            "exportLastCheckpointOnly": True,
        },
        "tunedModelDisplayName": "triage-v1",
        "description": "weekly retrain",
        "labels": {"run": "r1", "dataset_hash": "abc123"},
    }
    assert re.fullmatch(r"projects/p/locations/us-central1/tuningJobs/\d+", job.name)
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.tuned_model_display_name == "triage-v1"
    assert job.labels == {"run": "r1", "dataset_hash": "abc123"}
    assert job.supervised_tuning_spec.hyper_parameters.epoch_count == 3
    assert job.encryption_spec.kms_key_name == KMS_KEY
    assert job.description.startswith("weekly retrain") and "offline stand-in" in job.description
    assert job.sdk_http_response.headers[STANDIN_HEADER.lower()] == "offline"


def test_job_moves_through_states_and_reports_model_and_billing(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    standin.polls_per_state = 2
    job = start_job(client, train_file, epoch_count=3)

    states, job = run_to_end(client, job.name)

    assert states == ["JOB_STATE_PENDING"] * 2 + ["JOB_STATE_RUNNING"] * 2 + ["JOB_STATE_SUCCEEDED"]
    assert job.has_succeeded and job.error is None
    assert re.fullmatch(r"projects/p/locations/us-central1/models/\d+@1", job.tuned_model.model)
    assert re.fullmatch(r"projects/p/locations/us-central1/endpoints/\d+", job.tuned_model.endpoint)
    assert [c.epoch for c in job.tuned_model.checkpoints] == [1, 2, 3]
    assert job.tuned_model.checkpoints[-1].endpoint == job.tuned_model.endpoint
    stats = job.tuning_data_stats.supervised_tuning_data_stats
    assert stats.tuning_dataset_example_count == len(TICKETS)
    dataset_tokens = sum(estimate_example_tokens(make_example(p, r, SYSTEM)) for p, r in TICKETS)
    assert stats.total_billable_token_count == dataset_tokens * 3
    assert job.create_time <= job.start_time <= job.end_time
    assert standin.route_counts["tuningJobs.get"] == 5


def test_continuous_tuning_from_a_tuned_model(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    first = start_job(client, train_file)
    _, first = run_to_end(client, first.name)
    source = first.tuned_model.model.replace("@1", "@production")

    job = client.tunings.tune(
        base_model=source, training_dataset=types.TuningDataset(gcs_uri=str(train_file)),
        config=types.CreateTuningJobConfig(epoch_count=1),
    )

    sent = standin.requests_to("/tuningJobs", method="POST")[-1].body
    assert "baseModel" not in sent and proto_field(sent["preTunedModel"], "tunedModelName") == source
    assert job.pre_tuned_model.tuned_model_name == source
    # As Vertex answers: the base sits inside preTunedModel, never beside it (source_model is a oneof).
    assert job.pre_tuned_model.base_model == "gemini-2.5-flash" and job.base_model is None
    _, job = run_to_end(client, job.name)
    assert job.has_succeeded and job.tuned_model.endpoint != first.tuned_model.endpoint


def test_export_last_checkpoint_only_keeps_one_checkpoint(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    job = start_job(client, train_file, epoch_count=4, export_last_checkpoint_only=True)
    _, job = run_to_end(client, job.name)
    assert [(c.checkpoint_id, c.epoch) for c in job.tuned_model.checkpoints] == [("4", 4)]


def test_list_filters_on_labels_and_pages(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    first = start_job(client, train_file, labels={"run": "a", "dataset": "d1"})
    second = start_job(client, train_file, labels={"run": "b", "dataset": "d1"})
    third = start_job(client, train_file, labels={"run": "c"})

    def names(filter_text: str, **config: Any) -> list[str]:
        return [j.name for j in client.tunings.list(config={"filter": filter_text, **config})]

    assert names('labels.run="b"') == [second.name]
    assert names('labels.dataset="d1"') == [second.name, first.name]
    assert names('labels.dataset="d1" AND labels.run="a"') == [first.name]
    assert names('labels.dataset:*') == [second.name, first.name]
    assert names('labels.run!="a"') == [third.name, second.name]
    assert names('labels.run="nobody"') == []
    assert names("", page_size=1) == [third.name, second.name, first.name]
    assert [r.query.get("pageToken") for r in standin.requests_to("/tuningJobs", method="GET")][-3:] == [
        None, "1", "2"
    ]
    with pytest.raises(errors.APIError) as refused:
        names('labels.run="a" OR labels.run="b"')
    assert refused.value.code == 400


def test_cancel_ends_the_job_cancelled(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    job = start_job(client, train_file)
    client.tunings.cancel(name=job.name)

    job = client.tunings.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    assert job.has_ended and not job.has_succeeded
    assert job.error.message and job.tuned_model is None
    assert standin.requests_to(":cancel")[0].path == f"/v1/{job.name}:cancel"
    with pytest.raises(errors.APIError) as again:
        client.tunings.cancel(name=job.name)
    assert again.value.code == 400


def test_fail_jobs_with_ends_jobs_failed_with_that_message(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    standin.fail_jobs_with = "Tuning ran out of quota."
    job = start_job(client, train_file)
    states, job = run_to_end(client, job.name)
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_FAILED"]
    assert job.error.message == "Tuning ran out of quota."
    assert job.tuned_model is None


@pytest.mark.parametrize(
    ("training_uri", "expected"),
    [
        ("{tmp}/missing.jsonl", "missing.jsonl"),
        ("gs://no-such-bucket/train.jsonl", "/gcs/no-such-bucket/train.jsonl"),
        ("{tmp}/bad.jsonl", "Line 2"),
    ],
)
def test_unreadable_training_file_fails_the_job_clearly(
    client: Any, standin: VertexStandIn, tmp_path: Path, training_uri: str, expected: str
) -> None:
    (tmp_path / "bad.jsonl").write_text(json.dumps(make_example("q", "a")) + "\n{not json\n", encoding="utf-8")
    job = start_job(client, training_uri.format(tmp=tmp_path))
    states, job = run_to_end(client, job.name)
    assert states == ["JOB_STATE_PENDING", "JOB_STATE_FAILED"]
    assert expected in job.error.message


def test_invalid_settings_are_refused_with_400(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    with pytest.raises(errors.APIError) as refused:
        start_job(client, train_file, epoch_count=0)
    assert refused.value.code == 400 and "epochCount" in refused.value.message
    assert standin.tuning_jobs.job_names() == []


def test_unknown_job_is_404(client: Any, standin: VertexStandIn) -> None:
    with pytest.raises(errors.APIError) as missing:
        client.tunings.get(name="projects/p/locations/us-central1/tuningJobs/42")
    assert missing.value.code == 404


# -- models --------------------------------------------------------------------------------------


def test_tuned_model_answers_from_training_data_and_base_model_does_not(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    endpoint = tuned_endpoint(client, train_file)
    responses = {r for _, r in TICKETS}
    for prompt, response in TICKETS:
        tuned = ask(client, endpoint, prompt, temperature=0)
        base = ask(client, "gemini-2.5-flash", prompt, temperature=0)
        assert tuned.text == response
        assert base.text and base.text not in responses
        assert tuned.model_version == f"offline-stand-in/tuned/{endpoint.rsplit('/', 1)[-1]}"
        assert base.model_version == "offline-stand-in/base/gemini-2.5-flash"
        assert "offline" not in tuned.text.lower() and "offline" not in base.text.lower()
        assert ask(client, "gemini-2.5-flash", prompt).text == base.text  # deterministic
    assert standin.requests_to(endpoint + ":generateContent")[0].path == f"/v1/{endpoint}:generateContent"


def test_tuned_model_answers_unseen_prompt_with_nearest_example(
    client: Any, standin: VertexStandIn, train_file: Path
) -> None:
    endpoint = tuned_endpoint(client, train_file)
    answer = ask(client, endpoint, "my parcel has shown no tracking movement for two weeks").text
    assert answer == "Category: shipping\nPriority: medium\nAction: open carrier investigation"


def test_system_instruction_is_part_of_the_tuned_prompt(
    client: Any, standin: VertexStandIn, tmp_path: Path
) -> None:
    train = write_jsonl(
        tmp_path / "train.jsonl",
        [make_example("Where is my order?", "Answer in English.", "Reply in English"),
         make_example("Where is my order?", "Antwort auf Deutsch.", "Antworte auf Deutsch")],
    )
    endpoint = tuned_endpoint(client, train)
    english = ask(client, endpoint, "Where is my order?", system_instruction="Reply in English")
    assert english.text == "Answer in English."
    assert ask(client, endpoint, "Where is my order?", system_instruction="Antworte auf Deutsch").text == (
        "Antwort auf Deutsch."
    )


def test_max_output_tokens_truncates_the_answer(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    endpoint = tuned_endpoint(client, train_file)
    prompt, response = TICKETS[0]
    short = ask(client, endpoint, prompt, max_output_tokens=2)
    assert short.text == response[:8]
    assert short.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    full = ask(client, endpoint, prompt, max_output_tokens=1000)
    assert full.text == response and full.candidates[0].finish_reason == types.FinishReason.STOP
    assert standin.requests_to(":generateContent")[0].body["generationConfig"] == {"maxOutputTokens": 2}


def test_endpoint_of_an_unfinished_job_is_404(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    job = start_job(client, train_file)
    endpoint_id = int(job.name.rsplit("/", 1)[-1]) + 2  # ids are handed out job, model, endpoint
    with pytest.raises(errors.APIError) as missing:
        ask(client, f"projects/p/locations/us-central1/endpoints/{endpoint_id}", "hello")
    assert missing.value.code == 404


def test_count_tokens_for_base_and_tuned(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    endpoint = tuned_endpoint(client, train_file)
    prompt = TICKETS[1][0]
    expected = estimate_example_tokens({"contents": [{"role": "user", "parts": [{"text": prompt}]}]})
    assert client.models.count_tokens(model="gemini-2.5-flash", contents=prompt).total_tokens == expected
    assert client.models.count_tokens(model=endpoint, contents=prompt).total_tokens == expected
    assert standin.route_counts["countTokens.base"] == 1 and standin.route_counts["countTokens.endpoint"] == 1


# -- knobs and request log -----------------------------------------------------------------------


def test_injected_faults_reach_the_sdk_as_api_errors(client: Any, standin: VertexStandIn) -> None:
    def outcomes() -> list[int]:
        codes = []
        for i in range(20):
            try:
                ask(client, "gemini-2.5-flash", f"question {i}")
                codes.append(200)
            except errors.APIError as exc:
                assert exc.status in ("RESOURCE_EXHAUSTED", "UNAVAILABLE")
                codes.append(exc.code)
        return codes

    standin.inject_faults(status_codes=(429, 503), rate=0.3, seed=7)
    first = outcomes()
    assert {429, 503} <= set(first) and 200 in first
    assert [r.status for r in standin.requests] == first
    standin.inject_faults(status_codes=(429, 503), rate=0.3, seed=7)
    assert outcomes() == first  # same seed, same sequence
    standin.clear_faults()
    assert set(outcomes()) == {200}


def test_faults_are_not_injected_into_tuning_calls(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    standin.inject_faults(status_codes=(503,), rate=1.0)
    job = start_job(client, train_file)
    assert client.tunings.get(name=job.name).name == job.name


def test_fail_next_fails_the_next_requests_of_any_route(client: Any, standin: VertexStandIn, train_file: Path) -> None:
    job = start_job(client, train_file)
    standin.fail_next(2, status=500)
    for _ in range(2):
        with pytest.raises(errors.APIError) as failed:
            client.tunings.get(name=job.name)
        assert failed.value.code == 500
    assert client.tunings.get(name=job.name).state == types.JobState.JOB_STATE_PENDING
    assert [r.status for r in standin.requests_to("/tuningJobs/", method="GET")] == [500, 500, 200]


def test_latency_is_applied_to_each_request(client: Any, standin: VertexStandIn) -> None:
    standin.latency_seconds = 0.3
    started = time.perf_counter()
    ask(client, "gemini-2.5-flash", "hello")
    assert time.perf_counter() - started >= 0.3
    standin.latency_seconds = 0.0
    started = time.perf_counter()
    ask(client, "gemini-2.5-flash", "hello")
    assert time.perf_counter() - started < 0.3


def test_request_log_is_complete_under_concurrency_and_reset_clears_it(
    client: Any, standin: VertexStandIn
) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(lambda i: ask(client, "gemini-2.5-flash", f"ticket {i}").text, range(40)))
    assert len(texts) == 40
    assert len(standin.requests_to(":generateContent", method="POST")) == 40
    assert {r.body["contents"][0]["parts"][0]["text"] for r in standin.requests} == {f"ticket {i}" for i in range(40)}
    assert standin.route_counts == {"generateContent.base": 40}
    standin.reset()
    assert standin.requests == [] and standin.route_counts == {}


def test_unknown_path_is_404_and_logged(client: Any, standin: VertexStandIn) -> None:
    with pytest.raises(errors.APIError) as missing:
        client.batches.get(name="projects/p/locations/us-central1/batchPredictionJobs/1")
    assert missing.value.code == 404
    assert standin.route_counts == {"unmatched": 1}


def test_extra_routes_extend_the_standin(train_file: Path) -> None:
    def describe(request: Any) -> tuple[int, Any]:
        if request.group("dataset_id") == "0":
            raise StandInError(404, "no dataset 0")
        return 200, {"name": request.path, "displayName": f"{len(request.standin.tuning_jobs.job_names())} jobs"}

    route = Route("GET", api_path(r"datasets/(?P<dataset_id>[^/:]+)"), describe, name="datasets.get")
    with VertexStandIn(extra_routes=[route]) as extended:
        settings = VertexSettings.create("p", "us-central1", extended.base_url)
        extended_client = genai_client(settings)
        api = extended_client._api_client
        response = api.request("get", "datasets/7", {})
        assert json.loads(response.body) == {
            "name": "/v1/projects/p/locations/us-central1/datasets/7", "displayName": "0 jobs"
        }
        with pytest.raises(errors.APIError) as missing:
            api.request("get", "datasets/0", {})
        assert missing.value.code == 404 and missing.value.message == "no dataset 0"
        assert extended.route_counts == {"datasets.get": 2}


def test_standin_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ConfigError):
        VertexStandIn(host="0.0.0.0")


def test_cli_serves_until_stopped() -> None:
    parser = argparse.ArgumentParser()
    standin_cli.register(parser.add_subparsers())
    args = parser.parse_args(["standin", "--latency", "0", "--polls-per-state", "0"])
    stop, out = threading.Event(), io.StringIO()
    thread = threading.Thread(target=standin_cli.serve, args=(args, stop, out))
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while "http://" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        url = re.search(r"http://127\.0\.0\.1:\d+", out.getvalue())
        assert url is not None and "offline" in out.getvalue().lower()
        client = genai_client(VertexSettings.create("p", "us-central1", url.group(0)))
        assert client.models.count_tokens(model="gemini-2.5-flash", contents="abcdefgh").total_tokens > 0
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
