"""The tune stage over real HTTP with the real google-genai SDK, against the offline stand-in.

Covers the exact REST request, each failure path the stand-in can produce,
polling through injected errors, resume after a killed step, and cancellation
by SIGTERM. EXPIRED jobs are covered by the unit tests (the stand-in does not
expire jobs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from gemini_sft import errors, tune, vertex_client
from gemini_sft.errors import TransientApiError, TuningJobFailedError, TuningSettingsError, TuningTimeoutError
from gemini_sft.standin import VertexStandIn
from gemini_sft.tune import TuningData, TuningSettings, WatchSettings
from tune_step import run_step, write_splits

PROJECT = "p"
LOCATION = "us-central1"
TESTS_DIR = Path(__file__).parent
FAST_WATCH = WatchSettings(max_poll_seconds=0.01, initial_poll_seconds=0.01, max_wait_seconds=30.0)


def step_params(standin: VertexStandIn, **overrides: object) -> dict[str, object]:
    params: dict[str, object] = {
        "project": PROJECT,
        "location": LOCATION,
        "api_endpoint": standin.base_url,
        "pipeline_run": "gemini-sft-pipeline-20261121",
        "dataset_hash": "0f" * 20,
        "poll_interval_seconds": 0.01,
        "max_wait_hours": 0.01,
    }
    params.update(overrides)
    return params


def create_bodies(standin: VertexStandIn) -> list[dict]:
    return [r.body for r in standin.requests if r.route == "tuningJobs.create"]


def run_core(
    standin: VertexStandIn,
    workdir: Path,
    sleep: Callable[[float], None] = time.sleep,
    service: vertex_client.GenAITuningService | None = None,
    **overrides: object,
) -> tune.TuningOutcome:
    train, validation = write_splits(workdir)
    values: dict[str, object] = {"pipeline_run": f"run-{workdir.name}"}
    values.update(overrides)
    settings = vertex_client.VertexSettings.create(PROJECT, LOCATION, standin.base_url)
    return tune.run_tuning(
        TuningSettings(**values),  # type: ignore[arg-type]
        TuningData(training_uri=str(train), validation_uri=str(validation)),
        service or vertex_client.GenAITuningService(settings),
        watch=FAST_WATCH,
        project=PROJECT,
        location=LOCATION,
        uses_local_server=True,
        sleep=sleep,
    )


# ---------------------------------------------------------------------------------------------- the request


def test_the_rest_request_carries_every_setting(standin: VertexStandIn, tmp_path: Path) -> None:
    key = f"projects/{PROJECT}/locations/{LOCATION}/keyRings/ring/cryptoKeys/key"
    run_step(
        tmp_path,
        **step_params(
            standin,
            base_model="gemini-2.5-flash-lite",
            epochs=5,
            adapter_size=8,
            learning_rate_multiplier=0.5,
            tuned_model_display_name="triage-{run}",
            description="Support triage model",
            labels={"Team": "Support Ops"},
            encryption_key=key,
            export_last_checkpoint_only=True,
        ),
    )
    (body,) = create_bodies(standin)
    fingerprint = body["labels"].pop("gemini-sft-request")
    assert len(fingerprint) == 16  # identifies this step's settings for resume (see test_tune.py)
    encryption = body.pop("encryptionSpec")
    # google-genai 2.34 sends the proto field name; Vertex's JSON parser accepts both spellings.
    assert encryption in ({"kmsKeyName": key}, {"kms_key_name": key})
    assert body == {
        "baseModel": "gemini-2.5-flash-lite",
        "supervisedTuningSpec": {
            "trainingDatasetUri": str(tmp_path / "train.jsonl"),
            "validationDatasetUri": str(tmp_path / "validation.jsonl"),
            "hyperParameters": {"epochCount": 5, "learningRateMultiplier": 0.5, "adapterSize": "ADAPTER_SIZE_EIGHT"},
            "exportLastCheckpointOnly": True,
        },
        "tunedModelDisplayName": "triage-gemini-sft-pipeline-20261121",
        "description": "Support triage model",
        "labels": {
            "team": "support-ops",
            "managed-by": "gemini-sft",
            "gemini-sft-run": "gemini-sft-pipeline-20261121",
            "gemini-sft-dataset": "0f" * 20,
        },
    }  # no outputUri: v1 takes it for open models only


def _tune_first_model(standin: VertexStandIn, workdir: Path) -> str:
    _, model, _, _ = run_step(workdir, **step_params(standin, pipeline_run="run-1"))
    return str(model.metadata["model_resource"]) + "@production"


def test_continuous_tuning_sends_the_production_model_as_pre_tuned_model(
    standin: VertexStandIn, tmp_path: Path
) -> None:
    production = _tune_first_model(standin, tmp_path / "first")
    run_step(
        tmp_path / "second",
        **step_params(standin, pipeline_run="run-2", continuous_tuning=True, champion_model=production),
    )
    second_body = create_bodies(standin)[1]
    # google-genai 2.34 sends the proto field name; Vertex's JSON parser accepts both spellings.
    assert second_body["preTunedModel"] in ({"tunedModelName": production}, {"tuned_model_name": production})
    assert "baseModel" not in second_body


def test_continuous_tuning_succeeds_end_to_end(standin: VertexStandIn, tmp_path: Path) -> None:
    production = _tune_first_model(standin, tmp_path / "first")
    outputs, model, _, _ = run_step(
        tmp_path / "second", **step_params(standin, pipeline_run="run-2", continuous_from_model=production)
    )
    assert model.metadata["continuous_from"] == production
    assert model.metadata["base_model"] == "gemini-2.5-flash"  # the family the production model was tuned from
    assert outputs.tuning_job == standin.tuning_jobs.job_names()[-1]


def test_continuous_tuning_without_a_champion_tunes_the_base_model(standin: VertexStandIn, tmp_path: Path) -> None:
    run_step(tmp_path, **step_params(standin, continuous_tuning=True, champion_model=""))
    (body,) = create_bodies(standin)
    assert body["baseModel"] == "gemini-2.5-flash" and "preTunedModel" not in body


def test_an_empty_validation_split_is_not_sent(standin: VertexStandIn, tmp_path: Path) -> None:
    write_splits(tmp_path, validation_rows=0)
    run_step(tmp_path, **step_params(standin))
    (body,) = create_bodies(standin)
    assert "validationDatasetUri" not in body["supervisedTuningSpec"]


# ---------------------------------------------------------------------------------------------- the outputs


def test_the_step_outputs_model_metadata_summary_and_gcp_resources(standin: VertexStandIn, tmp_path: Path) -> None:
    outputs, model, summary, gcp_resources = run_step(tmp_path, **step_params(standin, estimated_cost_usd=0.01))
    (job_name,) = standin.tuning_jobs.job_names()
    job = standin.tuning_jobs.peek(job_name)
    assert outputs.tuning_job == job_name
    assert outputs.endpoint == job["tunedModel"]["endpoint"]
    assert outputs.model_resource + "@1" == job["tunedModel"]["model"]
    metadata = model.metadata
    assert metadata["offline_standin"] is True
    assert metadata["model_version"] == "1"
    stats = job["tuningDataStats"]["supervisedTuningDataStats"]
    assert metadata["billable_tokens"] == int(stats["totalBillableTokenCount"])  # covers every epoch
    assert metadata["actual_cost_usd"] == pytest.approx(metadata["billable_tokens"] * 5.0 / 1e6)
    assert metadata["estimated_cost_usd"] == 0.01
    assert len(metadata["checkpoints"]) == 3  # one per epoch
    assert json.loads(Path(model.path).read_text())["tuning_job"] == job_name
    text = Path(summary.path).read_text()
    assert "offline stand-in" in text and "tuning/tuningJob/" in text
    resources = json.loads(gcp_resources.read_text())
    assert resources == {
        "resources": [
            {"resourceType": "TuningJob", "resourceUri": f"https://{LOCATION}-aiplatform.googleapis.com/v1/{job_name}"}
        ]
    }


def test_invalid_settings_reach_no_api(standin: VertexStandIn, tmp_path: Path) -> None:
    with pytest.raises(TuningSettingsError, match="adapter_size 16 is not allowed for gemini-2.5-pro"):
        run_step(tmp_path, **step_params(standin, base_model="gemini-2.5-pro", adapter_size=16))
    with pytest.raises(TuningSettingsError, match="epochs must be a whole number >= 1"):
        run_step(tmp_path, **step_params(standin, epochs=0))
    with pytest.raises(TuningSettingsError, match="does not offer Gemini tuning"):
        run_step(tmp_path, **step_params(standin, location="antarctica-south1"))
    with pytest.raises(TuningSettingsError, match="tuning_output_uri.*leave it empty for Gemini"):
        run_step(tmp_path, **step_params(standin, output_uri="gs://bucket/tuning-output"))
    assert standin.requests == []


# ---------------------------------------------------------------------------------------------- failures


def test_a_failed_job_fails_the_step_with_its_message_and_name(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.fail_jobs_with = "Training diverged at step 12 (loss is NaN)"
    with pytest.raises(TuningJobFailedError) as raised:
        run_step(tmp_path, **step_params(standin))
    (job_name,) = standin.tuning_jobs.job_names()
    assert "FAILED" in str(raised.value) and job_name in str(raised.value)
    assert "Training diverged at step 12 (loss is NaN)" in str(raised.value)


def test_an_expired_job_fails_the_step_with_its_message_and_name(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.expire_jobs = True
    with pytest.raises(TuningJobFailedError) as raised:
        run_step(tmp_path, **step_params(standin))
    (job_name,) = standin.tuning_jobs.job_names()
    assert standin.tuning_jobs.peek(job_name)["state"] == "JOB_STATE_EXPIRED"
    assert "EXPIRED" in str(raised.value) and job_name in str(raised.value)
    assert "did not finish within its maximum run time" in str(raised.value)


def test_a_job_vertex_rejects_for_its_data_fails_with_the_line(standin: VertexStandIn, tmp_path: Path) -> None:
    write_splits(tmp_path)
    with (tmp_path / "train.jsonl").open("a") as train:
        train.write('{"contents": "not a list"}\n')
    with pytest.raises(TuningJobFailedError, match="Line 4 of the training file"):
        run_step(tmp_path, **step_params(standin))


def test_a_job_cancelled_elsewhere_fails_the_step(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.polls_per_state = 1000

    def cancel_from_the_console(seconds: float) -> None:
        time.sleep(seconds)
        (name,) = standin.tuning_jobs.job_names()
        if standin.tuning_jobs.peek(name)["state"] == tune.STATE_PENDING and len(standin.requests_to(name)) >= 2:
            standin.tuning_jobs.cancel(name)

    with pytest.raises(TuningJobFailedError, match="CANCELLED.*cancelled by a cancel request"):
        run_core(standin, tmp_path, sleep=cancel_from_the_console)


def test_a_previous_failed_job_is_reported_not_relaunched(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.fail_jobs_with = "quota exceeded"
    params = step_params(standin)
    with pytest.raises(TuningJobFailedError):
        run_step(tmp_path, **params)
    standin.fail_jobs_with = None
    with pytest.raises(TuningJobFailedError, match="earlier attempt.*retry_failed_job"):
        run_step(tmp_path, **params)
    assert len(create_bodies(standin)) == 1
    outputs, *_ = run_step(tmp_path, **{**params, "retry_failed_job": True})
    assert len(create_bodies(standin)) == 2 and outputs.tuning_job == standin.tuning_jobs.job_names()[-1]


def test_the_maximum_wait_fails_the_step_and_leaves_the_job_running(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.polls_per_state = 1_000_000
    with pytest.raises(TuningTimeoutError, match="left running"):
        run_step(tmp_path, **step_params(standin, max_wait_hours=0.5 / 3600))
    (job_name,) = standin.tuning_jobs.job_names()
    assert standin.requests_to(":cancel") == []
    assert standin.tuning_jobs.peek(job_name)["state"] == tune.STATE_PENDING


# ---------------------------------------------------------------------------------------------- transient errors


def test_polling_survives_injected_429_and_503(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.polls_per_state = 2
    sleeps: list[float] = []

    def sleep_and_inject(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            standin.fail_next(2, 429)
        elif len(sleeps) == 5:
            standin.fail_next(2, 503)
        time.sleep(seconds)

    outcome = run_core(standin, tmp_path, sleep=sleep_and_inject)
    assert outcome.state == tune.STATE_SUCCEEDED
    statuses = [r.status for r in standin.requests if r.route == "tuningJobs.get"]
    assert statuses.count(429) == 2 and statuses.count(503) == 2 and statuses[-1] == 200
    assert len(create_bodies(standin)) == 1


def test_a_create_answered_with_503_is_retried_once_without_a_duplicate(standin: VertexStandIn, tmp_path: Path) -> None:
    class FailFirstCreate(vertex_client.GenAITuningService):
        armed = True

        def find_by_labels(self, labels):  # type: ignore[no-untyped-def]
            found = super().find_by_labels(labels)
            if self.armed:
                self.armed = False
                standin.fail_next(1, 503)  # the next request is the create
            return found

    service = FailFirstCreate(vertex_client.VertexSettings.create(PROJECT, LOCATION, standin.base_url))
    outcome = run_core(standin, tmp_path, service=service)
    creates = [r.status for r in standin.requests if r.route == "tuningJobs.create"]
    assert creates == [503, 200]
    assert standin.tuning_jobs.job_names() == [outcome.tuning_job]


def test_the_service_sorts_errors_into_transient_and_final(standin: VertexStandIn) -> None:
    service = vertex_client.GenAITuningService(vertex_client.VertexSettings.create(PROJECT, LOCATION, standin.base_url))
    missing = f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/404"
    with pytest.raises(errors.VertexRequestError) as final:
        service.get(missing)
    assert final.value.status_code == 404 and not isinstance(final.value, TransientApiError)
    standin.fail_next(1, 429)
    with pytest.raises(TransientApiError) as throttled:
        service.get(missing)
    assert throttled.value.status_code == 429
    closed = vertex_client.VertexSettings.create(PROJECT, LOCATION, "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(TransientApiError):
        vertex_client.GenAITuningService(closed).get(missing)


def test_a_refused_label_filter_falls_back_to_listing_everything(standin: VertexStandIn, tmp_path: Path) -> None:
    mine = run_core(standin, tmp_path / "mine")
    run_core(standin, tmp_path / "other")
    service = vertex_client.GenAITuningService(vertex_client.VertexSettings.create(PROJECT, LOCATION, standin.base_url))
    standin.fail_next(1, 400)
    found = service.find_by_labels({tune.RUN_LABEL_KEY: "run-mine"})
    assert [job.name for job in found] == [mine.tuning_job]
    lists = [r for r in standin.requests if r.route == "tuningJobs.list"][-2:]
    assert [r.status for r in lists] == [400, 200] and "filter" not in lists[1].query


# ---------------------------------------------------------------------------------------------- restart and stop


def start_step_process(workdir: Path, params: dict[str, object]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(TESTS_DIR / "tune_step.py"), str(workdir), json.dumps(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_polls(standin: VertexStandIn, polls: int, process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """Wait until the step has polled its job ``polls`` times; returns the job name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = standin.tuning_jobs.job_names()
        if names and len(standin.requests_to(names[0], "GET")) >= polls:
            return names[0]
        if process.poll() is not None:
            raise AssertionError(f"the step ended early: {process.communicate()[1][-2000:]}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the step did not poll its job in time")


def test_a_step_killed_mid_poll_resumes_its_job_on_restart(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.polls_per_state = 1_000_000  # the job stays PENDING while the first attempt runs
    params = step_params(standin, max_wait_hours=1.0)
    first_attempt = start_step_process(tmp_path, params)
    job_name = wait_for_polls(standin, 3, first_attempt)
    first_attempt.kill()  # no SIGTERM handler runs: like a lost node
    first_attempt.communicate(timeout=10)
    (tmp_path / "out" / "gcp_resources").unlink()  # a new attempt starts with fresh outputs

    standin.polls_per_state = 1
    outputs, model, _, _ = run_step(tmp_path, **params)
    assert standin.tuning_jobs.job_names() == [job_name]
    assert len(create_bodies(standin)) == 1
    assert outputs.tuning_job == job_name and model.metadata["resumed"] is True


def test_sigterm_cancels_the_tuning_job_and_fails_the_step(standin: VertexStandIn, tmp_path: Path) -> None:
    standin.polls_per_state = 1_000_000
    step = start_step_process(tmp_path, step_params(standin, max_wait_hours=1.0))
    job_name = wait_for_polls(standin, 2, step)
    os.kill(step.pid, signal.SIGTERM)
    _, stderr = step.communicate(timeout=20)
    assert step.returncode != 0
    cancels = standin.requests_to(job_name + ":cancel", "POST")
    assert len(cancels) == 1 and cancels[0].status == 200
    assert standin.tuning_jobs.peek(job_name)["state"] == tune.STATE_CANCELLED
    assert "TuningStoppedError" in stderr and "was cancelled" in stderr
