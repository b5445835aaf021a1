"""Unit tests of the tune stage core (gemini_sft.tune) against a scripted in-memory service."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from google.protobuf import json_format
from google_cloud_pipeline_components.proto.gcp_resources_pb2 import GcpResources

from gemini_sft import names, tune
from gemini_sft.errors import (
    TransientApiError,
    TuningJobFailedError,
    TuningSettingsError,
    TuningStoppedError,
    TuningTimeoutError,
    VertexApiError,
)
from gemini_sft.tune import TuningData, TuningSettings, WatchSettings
from tune_fakes import LOCATION, PROJECT, FakeClock, FakeTuningService

RUN = "gemini-sft-pipeline-20261121193000"


DATA = TuningData(training_uri="gs://bucket/run/train.jsonl", validation_uri="gs://bucket/run/validation.jsonl")


def make_settings(**overrides: object) -> TuningSettings:
    values: dict[str, object] = {"pipeline_run": RUN, "dataset_hash": "ab" * 20}
    values.update(overrides)
    return TuningSettings(**values)  # type: ignore[arg-type]


# The labels an earlier attempt of the same step put on its job.
SAME_STEP = tune.identity_labels(make_settings().build_request(DATA))

FAST = WatchSettings(max_poll_seconds=8.0, initial_poll_seconds=1.0, max_wait_seconds=3600.0)


def run(
    service: FakeTuningService,
    settings: TuningSettings | None = None,
    watch: WatchSettings = FAST,
    clock: FakeClock | None = None,
    data: TuningData = DATA,
    **kwargs: object,
) -> tune.TuningOutcome:
    clock = clock or FakeClock()
    return tune.run_tuning(
        settings or make_settings(),
        data,
        service,
        watch=watch,
        project=PROJECT,
        location=LOCATION,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
        **kwargs,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("overrides", "location", "expected"),
    [
        ({"adapter_size": 16, "base_model": "gemini-2.5-pro"}, LOCATION, "adapter_size 16 is not allowed"),
        ({"adapter_size": 3}, LOCATION, "adapter_size 3 is not allowed"),
        ({"epochs": 0}, LOCATION, "epochs must be a whole number >= 1"),
        ({"learning_rate_multiplier": 0.0}, LOCATION, "learning_rate_multiplier must be > 0"),
        ({"learning_rate_multiplier": float("nan")}, LOCATION, "learning_rate_multiplier must be > 0"),
        ({}, "mars-north1", "region 'mars-north1' does not offer Gemini tuning"),
        ({"training_uri": ""}, LOCATION, "training dataset URI is empty"),
        ({"training_uri": "/tmp/train.jsonl"}, LOCATION, "must be a gs:// URI"),
        ({"base_model": "gemini-1.0-pro"}, LOCATION, "cannot be tuned here"),
        ({"continuous_from_model": "gemini-2.5-flash"}, LOCATION, "is not a tuned model resource"),
        (
            {"continuous_from_model": "projects/p/locations/europe-west4/models/123@production"},
            LOCATION,
            "continuous tuning must run in the model's region",
        ),
        ({"encryption_key": "my-key"}, LOCATION, "is not a Cloud KMS key name"),
        (
            {"encryption_key": "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k"},
            LOCATION,
            "the key must be in the job's region",
        ),
        ({"poll_interval_seconds": 0.0}, LOCATION, "poll_interval_seconds must be > 0"),
        ({"max_wait_hours": -1.0}, LOCATION, "max_wait_hours must be > 0"),
        ({"labels": {"gemini-sft-run": "x"}}, LOCATION, "is set by the tune step itself"),
        ({"labels": {"9lives": "x"}}, LOCATION, "must start with a letter"),
        ({"tuned_model_display_name": "model-{user}"}, LOCATION, "unknown field(s) ['user']"),
    ],
)
def test_invalid_settings_fail_before_any_call(overrides: dict, location: str, expected: str) -> None:
    service = FakeTuningService()
    data = replace(DATA, **{k: overrides.pop(k) for k in ("training_uri", "validation_uri") if k in overrides})
    with pytest.raises(TuningSettingsError) as raised:
        tune.run_tuning(make_settings(**overrides), data, service, watch=FAST, project=PROJECT, location=location)
    assert expected in str(raised.value)
    assert service.calls == []


def test_every_settings_problem_is_reported_at_once() -> None:
    with pytest.raises(TuningSettingsError) as raised:
        make_settings(epochs=0, learning_rate_multiplier=-1.0, adapter_size=5).check(LOCATION, DATA)
    message = str(raised.value)
    assert "epochs" in message and "learning_rate_multiplier" in message and "adapter_size 5" in message


def test_the_record_refuses_its_own_bad_values_when_it_is_made() -> None:
    # What every entry point relies on to fail in seconds: no region, no data, no client needed.
    with pytest.raises(TuningSettingsError, match="adapter_size 3 is not allowed for gemini-2.5-flash"):
        TuningSettings(adapter_size=3)
    with pytest.raises(TuningSettingsError, match="tuning_output_uri"):
        TuningSettings(output_uri="gs://bucket/out")
    assert TuningSettings().adapter_size == 4  # the defaults are valid


def test_local_server_accepts_local_paths() -> None:
    make_settings().check(LOCATION, TuningData("/tmp/train.jsonl", "/tmp/v.jsonl"), remote=False)


def test_continuous_tuning_from_production_model_is_accepted_and_sent_as_base_model() -> None:
    production = f"projects/{PROJECT}/locations/{LOCATION}/models/4242@production"
    settings = make_settings(continuous_from_model=production)
    settings.check(LOCATION, DATA)
    assert settings.build_request(DATA).base_model == production


def test_continuous_tuning_starts_from_the_champion() -> None:
    champion = f"projects/{PROJECT}/locations/{LOCATION}/models/77@production"
    settings = make_settings(continuous_tuning=True, champion_model=champion)
    assert settings.build_request(DATA).base_model == champion
    outcome = run(FakeTuningService(), settings)
    assert outcome.continuous_from == champion


def test_continuous_tuning_without_a_champion_tunes_the_base_model(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gemini_sft.tune")
    outcome = run(FakeTuningService(), make_settings(continuous_tuning=True, champion_model=""))
    assert outcome.continuous_from == ""
    assert outcome.request is not None and outcome.request.base_model == "gemini-2.5-flash"
    assert any("no model is in production yet" in r.getMessage() for r in caplog.records)


def test_the_champion_is_used_only_for_continuous_tuning_and_an_explicit_model_wins() -> None:
    champion = f"projects/{PROJECT}/locations/{LOCATION}/models/77@production"
    chosen = f"projects/{PROJECT}/locations/{LOCATION}/models/88@candidate"
    assert make_settings(champion_model=champion).build_request(DATA).base_model == "gemini-2.5-flash"
    explicit = make_settings(continuous_tuning=True, champion_model=champion, continuous_from_model=chosen)
    assert explicit.build_request(DATA).base_model == chosen


def test_a_champion_in_another_region_is_refused_before_any_call() -> None:
    service = FakeTuningService()
    elsewhere = "projects/p/locations/europe-west4/models/9@production"
    with pytest.raises(TuningSettingsError, match="continuous tuning must run in the model's region"):
        run(service, make_settings(continuous_tuning=True, champion_model=elsewhere))
    assert service.calls == []


@pytest.mark.parametrize("output_uri", ["gs://bucket/out", "/local/out"])
def test_an_output_uri_for_gemini_is_refused_before_any_call(output_uri: str) -> None:
    service = FakeTuningService()
    with pytest.raises(TuningSettingsError) as raised:
        run(service, make_settings(output_uri=output_uri))
    message = str(raised.value)
    assert "tuning_output_uri" in message and "leave it empty for Gemini" in message
    assert message.count("\n- ") == 1  # one problem, not a gs:// complaint besides
    assert service.calls == []


@pytest.mark.parametrize(
    ("content", "sent"), [(b"", False), (b"\n  \n", False), (b'{"contents": []}\n', True)]
)
def test_an_empty_validation_split_is_not_sent(tmp_path: Path, content: bytes, sent: bool) -> None:
    split = tmp_path / "validation.jsonl"
    split.write_bytes(content)
    data = TuningData.from_splits("gs://b/train.jsonl", "gs://b/validation.jsonl", split)
    assert data.training_uri == "gs://b/train.jsonl"
    assert data.validation_uri == ("gs://b/validation.jsonl" if sent else "")
    unreadable = TuningData.from_splits("gs://b/train.jsonl", "gs://b/v.jsonl", tmp_path / "absent")
    assert unreadable.validation_uri == "gs://b/v.jsonl"  # Vertex judges what cannot be read here


# ---------------------------------------------------------------------------------------------- labels, names


def test_label_values_follow_gcp_rules() -> None:
    assert names.sanitize_label_value("My Run/2026.11.21") == "my-run-2026-11-21"
    long_a = "Pipeline-" + "x" * 80 + "-a"
    long_b = "Pipeline-" + "x" * 80 + "-b"
    for value in (long_a, long_b):
        clean = names.sanitize_label_value(value)
        assert len(clean) == 63 and re.fullmatch(r"[a-z0-9_-]+", clean)
    assert names.sanitize_label_value(long_a) != names.sanitize_label_value(long_b)


@given(st.text(max_size=200))
def test_any_text_becomes_a_valid_label_value(value: str) -> None:
    clean = names.sanitize_label_value(value)
    assert re.fullmatch(r"[a-z0-9_-]{0,63}", clean)
    assert names.sanitize_label_value(clean) == clean  # already-valid values are kept as they are


def test_job_labels_carry_run_dataset_and_user_labels() -> None:
    labels = make_settings(labels={"Team": "Support Triage", "cost_center": "42"}).job_labels()
    assert labels == {
        "team": "support-triage",
        "cost_center": "42",
        "managed-by": "gemini-sft",
        "gemini-sft-run": RUN,
        "gemini-sft-dataset": "ab" * 20,
    }


def test_display_name_template_is_filled() -> None:
    settings = make_settings(tuned_model_display_name="sft-{base_model}-{run}-{dataset_hash}")
    assert settings.display_name() == f"sft-gemini-2.5-flash-{RUN}-{'ab' * 6}"
    assert len(make_settings(pipeline_run="r" * 300).display_name()) == 128


def test_request_holds_every_setting() -> None:
    settings = make_settings(
        epochs=5,
        adapter_size=8,
        learning_rate_multiplier=0.5,
        description="triage model",
        labels={"team": "support"},
        encryption_key=f"projects/{PROJECT}/locations/{LOCATION}/keyRings/r/cryptoKeys/k",
        export_last_checkpoint_only=True,
    )
    request = settings.build_request(DATA)
    assert request.epoch_count == 5
    assert request.adapter_size == "ADAPTER_SIZE_EIGHT"
    assert request.learning_rate_multiplier == 0.5
    assert request.tuned_model_display_name == f"gemini-sft-{RUN}"
    assert request.validation_dataset_uri == "gs://bucket/run/validation.jsonl"
    assert request.kms_key_name.endswith("/cryptoKeys/k")  # type: ignore[union-attr]
    assert request.output_uri is None
    assert request.export_last_checkpoint_only is True
    assert request.labels["team"] == "support"
    assert make_settings(adapter_size=0).build_request(DATA).adapter_size is None
    assert make_settings().build_request(replace(DATA, validation_uri="")).validation_dataset_uri is None


def test_gcp_resources_is_what_gcpc_writes_and_reads() -> None:
    name = f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/123"
    text = tune.gcp_resources_json(name, LOCATION)
    parsed = json_format.Parse(text, GcpResources())
    assert len(parsed.resources) == 1
    assert parsed.resources[0].resource_type == "TuningJob"
    prefix = f"https://{LOCATION}-aiplatform.googleapis.com/v1/"
    # GCPC's JobRemoteRunner.check_if_job_exists recovers the name this way.
    assert re.findall(f"{prefix}(.*)", parsed.resources[0].resource_uri) == [name]
    assert tune.job_name_from_gcp_resources(text) == name


def test_console_url_names_region_job_and_project() -> None:
    name = f"projects/{PROJECT}/locations/europe-west4/tuningJobs/987"
    assert names.console_url(name, "ignored", PROJECT) == (
        "https://console.cloud.google.com/vertex-ai/generative/language/locations/europe-west4"
        "/tuning/tuningJob/987?project=proj"
    )


# ---------------------------------------------------------------------------------------------- watch


def test_successful_job_gives_model_endpoint_tokens_and_cost(tmp_path: Path) -> None:
    service = FakeTuningService(billable_tokens=200_000)
    gcp = tmp_path / "gcp_resources"
    outcome = run(service, make_settings(epochs=3, estimated_cost_usd=2.5), gcp_resources_path=gcp)
    assert service.count("create") == 1
    assert outcome.model_resource == f"projects/{PROJECT}/locations/{LOCATION}/models/m1"
    assert outcome.model_version == "1"
    assert outcome.endpoint == f"projects/{PROJECT}/locations/{LOCATION}/endpoints/e1"
    assert outcome.billable_tokens == 200_000
    # the job's billable count covers all epochs: 200k tokens x $5 per 1M (gemini-2.5-flash list price)
    assert outcome.actual_cost_usd == pytest.approx(1.0)
    assert outcome.estimated_cost_usd == 2.5
    assert not outcome.resumed and not outcome.offline_standin
    assert tune.job_name_from_gcp_resources(gcp.read_text()) == outcome.tuning_job
    metadata = outcome.artifact_metadata()
    for key in (
        "model_resource", "model_version", "endpoint", "tuning_job", "checkpoints", "billable_tokens",
        "actual_cost_usd", "estimated_cost_usd", "base_model", "offline_standin",
    ):
        assert key in metadata
    assert metadata["checkpoints"] == [{"checkpoint_id": "1", "epoch": 1, "step": 10, "endpoint": None,
                                        "validation_score": None, "train_loss": None, "eval_loss": None}]
    json.dumps(metadata)  # artifact metadata must be JSON


def test_a_single_pass_billable_count_is_multiplied_by_the_epochs() -> None:
    service = FakeTuningService(billable_tokens=100_000)
    service.add_job(
        tune.STATE_SUCCEEDED,
        SAME_STEP,
        tuning_characters=400_000,
        billable_characters=400_000,
        epoch_count=4,
    )
    outcome = run(service)
    assert outcome.reported_billable_tokens == 100_000
    assert outcome.billable_tokens == 400_000 and outcome.epochs == 4
    assert outcome.actual_cost_usd == pytest.approx(2.0)


def test_billable_count_covering_epochs_per_character_counts() -> None:
    job = tune.JobSnapshot(name="n", state=tune.STATE_SUCCEEDED, billable_tokens=10)
    assert tune.billable_count_covers_epochs(job, 3)  # no evidence: the documented assumption
    assert tune.billable_count_covers_epochs(replace(job, tuning_characters=100, billable_characters=300), 3)
    assert not tune.billable_count_covers_epochs(replace(job, tuning_characters=100, billable_characters=100), 3)
    assert tune.billable_count_covers_epochs(replace(job, tuning_characters=100, billable_characters=100), 1)


def test_price_override_and_missing_token_count() -> None:
    settings = make_settings(price_per_million_tokens_usd=2.0, epochs=1)
    outcome = run(FakeTuningService(billable_tokens=1_000_000), settings)
    assert outcome.actual_cost_usd == pytest.approx(2.0)
    no_stats = run(FakeTuningService(billable_tokens=None))
    assert no_stats.actual_cost_usd is None
    assert no_stats.artifact_metadata()["actual_cost_usd"] is None
    assert no_stats.artifact_metadata()["billable_tokens"] is None


def test_state_changes_are_logged_with_elapsed_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gemini_sft.tune")
    outcome = run(FakeTuningService(states=("JOB_STATE_PENDING", "JOB_STATE_PENDING", "JOB_STATE_RUNNING",
                                            "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED")))
    changes = [r.getMessage() for r in caplog.records if "->" in r.getMessage()]
    assert len(changes) == 2
    assert "JOB_STATE_PENDING -> JOB_STATE_RUNNING" in changes[0] and "elapsed" in changes[0]
    assert set(outcome.state_durations) == {"JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"}
    assert outcome.state_durations["JOB_STATE_PENDING"] > 0


def test_polls_back_off_with_jitter_up_to_the_poll_interval() -> None:
    states = ("JOB_STATE_PENDING",) + ("JOB_STATE_RUNNING",) * 12 + ("JOB_STATE_SUCCEEDED",)
    clock = FakeClock()
    run(FakeTuningService(states=states), clock=clock)
    sleeps = clock.sleeps
    assert len(sleeps) == 13
    assert 0.8 <= sleeps[0] <= 1.2  # initial 1 s +-20 %
    assert all(s <= 8.0 * 1.2 for s in sleeps)  # never above the ceiling (+ jitter)
    assert max(sleeps[-4:]) > 6.0  # grew towards the ceiling
    assert len({round(s, 6) for s in sleeps[-4:]}) == 4  # jittered, not lock-step


def test_transient_errors_while_polling_are_retried(caplog: pytest.LogCaptureFixture) -> None:
    service = FakeTuningService()
    service.errors["get"] = [TransientApiError("429", 429), TransientApiError("503", 503), TransientApiError("conn")]
    outcome = run(service)
    assert outcome.state == tune.STATE_SUCCEEDED
    assert service.count("get") == 2 + 3
    assert service.count("create") == 1


def test_a_non_transient_polling_error_is_fatal() -> None:
    service = FakeTuningService()
    service.errors["get"] = [VertexApiError("403 PERMISSION_DENIED")]
    with pytest.raises(VertexApiError, match="PERMISSION_DENIED"):
        run(service)


def test_too_many_transient_errors_in_a_row_stop_the_watch_but_leave_the_job() -> None:
    service = FakeTuningService()
    service.errors["get"] = [TransientApiError("503", 503) for _ in range(10)]
    with pytest.raises(VertexApiError, match="3 times in a row"):
        run(service, watch=replace(FAST, max_consecutive_errors=3))
    assert service.count("cancel") == 0


def test_timeout_leaves_the_job_running_by_default() -> None:
    service = FakeTuningService(states=("JOB_STATE_PENDING",) + ("JOB_STATE_RUNNING",) * 1000)
    clock = FakeClock()
    with pytest.raises(TuningTimeoutError, match="left running"):
        run(service, watch=replace(FAST, max_wait_seconds=60.0), clock=clock)
    assert service.count("cancel") == 0
    assert clock.now == pytest.approx(60.0)  # the last wait is cut to the deadline


def test_timeout_cancels_when_asked() -> None:
    service = FakeTuningService(states=("JOB_STATE_PENDING",) + ("JOB_STATE_RUNNING",) * 1000)
    with pytest.raises(TuningTimeoutError, match="cancelled"):
        run(service, make_settings(cancel_on_timeout=True), watch=replace(FAST, max_wait_seconds=60.0))
    assert service.count("cancel") == 1


def test_a_cancel_that_fails_transiently_is_tried_again() -> None:
    service = FakeTuningService(states=("JOB_STATE_PENDING",) + ("JOB_STATE_RUNNING",) * 1000)
    service.errors["cancel"] = [TransientApiError("503", 503)]
    with pytest.raises(TuningTimeoutError, match="it was cancelled"):
        run(service, make_settings(cancel_on_timeout=True), watch=replace(FAST, max_wait_seconds=60.0))
    assert service.count("cancel") == 2


def test_a_cancel_that_keeps_failing_tells_the_user_to_cancel_in_the_console() -> None:
    service = FakeTuningService(states=("JOB_STATE_PENDING",) + ("JOB_STATE_RUNNING",) * 50)
    service.errors["cancel"] = [TransientApiError("503", 503) for _ in range(5)]
    service.on_get = lambda count: os.kill(os.getpid(), signal.SIGTERM) if count == 3 else None
    with pytest.raises(TuningStoppedError, match="FAILED: cancel it in the console"):
        run(service)
    assert service.count("cancel") == tune.watch.CANCEL_RETRY.max_attempts
    permanent = FakeTuningService(states=("JOB_STATE_PENDING",) + ("JOB_STATE_RUNNING",) * 50)
    permanent.errors["cancel"] = [VertexApiError("403 PERMISSION_DENIED")]
    permanent.on_get = service.on_get
    with pytest.raises(TuningStoppedError, match="FAILED: cancel it in the console"):
        run(permanent)
    assert permanent.count("cancel") == 1  # a permanent error is not retried


@pytest.mark.parametrize("end_state", [tune.STATE_FAILED, tune.STATE_CANCELLED, tune.STATE_EXPIRED])
def test_a_job_that_ends_badly_fails_with_its_message_and_name(end_state: str) -> None:
    service = FakeTuningService(
        states=("JOB_STATE_PENDING", "JOB_STATE_RUNNING", end_state),
        error_message="Dataset row 17 has 200000 tokens",
    )
    with pytest.raises(TuningJobFailedError) as raised:
        run(service)
    message = str(raised.value)
    assert end_state.removeprefix("JOB_STATE_") in message
    assert "Dataset row 17 has 200000 tokens" in message
    assert f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/1" in message


# ---------------------------------------------------------------------------------------------- idempotency


def test_a_running_job_of_the_same_run_is_resumed_not_launched_again() -> None:
    service = FakeTuningService()
    first = service.add_job(tune.STATE_RUNNING, SAME_STEP)
    service.jobs[first.name].states = [tune.STATE_RUNNING, tune.STATE_SUCCEEDED]
    outcome = run(service)
    assert service.count("create") == 0
    assert outcome.tuning_job == first.name and outcome.resumed


def test_a_succeeded_job_of_the_same_run_is_reused() -> None:
    service = FakeTuningService()
    done = service.add_job(tune.STATE_SUCCEEDED, SAME_STEP)
    outcome = run(service)
    assert service.count("create") == 0 and service.count("get") == 0
    assert outcome.tuning_job == done.name


def test_a_job_of_another_tune_step_in_the_same_run_is_not_taken() -> None:
    service = FakeTuningService()
    sibling = tune.identity_labels(make_settings(adapter_size=8).build_request(DATA))
    assert sibling[tune.RUN_LABEL_KEY] == SAME_STEP[tune.RUN_LABEL_KEY]
    service.add_job(tune.STATE_RUNNING, sibling)
    outcome = run(service)
    assert service.count("create") == 1 and not outcome.resumed


def test_the_request_fingerprint_is_stable_and_sensitive_to_settings() -> None:
    request = make_settings().build_request(DATA)
    key = tune.REQUEST_LABEL_KEY
    assert request.labels[key] == make_settings().build_request(DATA).labels[key]
    assert re.fullmatch(r"[0-9a-f]{16}", request.labels[key])
    for change in ({"epochs": 4}, {"learning_rate_multiplier": 2.0}):
        other = make_settings(**change).build_request(DATA)
        assert other.labels[key] != request.labels[key]
    other_data = make_settings().build_request(replace(DATA, training_uri="gs://bucket/other/train.jsonl"))
    assert other_data.labels[key] != request.labels[key]
    # user labels do not change which job is "the same step"
    relabelled = make_settings(labels={"team": "x"}).build_request(DATA)
    assert relabelled.labels[key] == request.labels[key]
    assert tune.identity_labels(make_settings(pipeline_run="").build_request(DATA)) == {}


def test_jobs_of_other_runs_are_ignored() -> None:
    service = FakeTuningService()
    service.add_job(tune.STATE_RUNNING, {tune.RUN_LABEL_KEY: "another-run"})
    outcome = run(service)
    assert service.count("create") == 1 and not outcome.resumed


def test_a_previous_failed_job_is_not_relaunched_without_being_asked() -> None:
    service = FakeTuningService(error_message="quota exceeded")
    failed = service.add_job(tune.STATE_FAILED, SAME_STEP, error_message="quota exceeded")
    with pytest.raises(TuningJobFailedError) as raised:
        run(service)
    assert failed.name in str(raised.value) and "retry_failed_job" in str(raised.value)
    assert service.count("create") == 0


def test_retry_failed_job_launches_a_new_one() -> None:
    service = FakeTuningService()
    service.add_job(tune.STATE_FAILED, SAME_STEP, error_message="quota exceeded")
    outcome = run(service, make_settings(retry_failed_job=True))
    assert service.count("create") == 1 and outcome.state == tune.STATE_SUCCEEDED


def test_the_job_recorded_in_gcp_resources_is_resumed(tmp_path: Path) -> None:
    service = FakeTuningService()
    unlabelled = service.add_job(tune.STATE_RUNNING, {})
    service.jobs[unlabelled.name].states = [tune.STATE_SUCCEEDED]
    gcp = tmp_path / "gcp_resources"
    gcp.write_text(tune.gcp_resources_json(unlabelled.name, LOCATION))
    outcome = run(service, gcp_resources_path=gcp)
    assert service.count("create") == 0 and outcome.tuning_job == unlabelled.name


def test_a_job_found_both_in_gcp_resources_and_by_label_counts_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = FakeTuningService()
    job = service.add_job(tune.STATE_SUCCEEDED, SAME_STEP)
    gcp = tmp_path / "gcp_resources"
    gcp.write_text(tune.gcp_resources_json(job.name, LOCATION))
    outcome = run(service, gcp_resources_path=gcp)
    assert outcome.tuning_job == job.name
    assert not [r for r in caplog.records if "carry this step's labels" in r.getMessage()]


def test_a_create_that_reached_vertex_despite_an_error_is_not_repeated() -> None:
    service = FakeTuningService()
    service.create_lands_despite_error = True
    service.errors["create"] = [TransientApiError("503", 503)]
    outcome = run(service)
    assert service.count("create") == 1
    assert len(service.jobs) == 1 and outcome.tuning_job in service.jobs


def test_a_create_that_did_not_land_is_tried_again() -> None:
    service = FakeTuningService()
    service.errors["create"] = [TransientApiError("429", 429)]
    run(service)
    assert service.count("create") == 2 and len(service.jobs) == 1


def test_transient_errors_on_the_resume_lookup_are_retried() -> None:
    service = FakeTuningService()
    service.errors["list"] = [TransientApiError("500", 500)]
    run(service)
    assert service.count("list") == 2 and service.count("create") == 1


# ---------------------------------------------------------------------------------------------- stop


def test_sigterm_cancels_the_job_and_fails_the_step() -> None:
    service = FakeTuningService(states=("JOB_STATE_PENDING",) + ("JOB_STATE_RUNNING",) * 50)
    service.on_get = lambda count: os.kill(os.getpid(), signal.SIGTERM) if count == 3 else None
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TuningStoppedError, match="was cancelled"):
        run(service)
    assert service.count("cancel") == 1
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_while_the_create_call_is_in_flight_cancels_the_job_it_made() -> None:
    service = FakeTuningService()
    service.on_create = lambda: os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(TuningStoppedError, match="was cancelled"):
        run(service)
    (job,) = service.jobs.values()
    assert job.snapshot.state == tune.STATE_CANCELLED
    assert service.calls[-1] == ("cancel", job.snapshot.name)


def test_sigterm_before_any_job_exists_cancels_nothing() -> None:
    service = FakeTuningService()
    service.errors["list"] = [TransientApiError("503", 503)]
    clock = FakeClock()

    def stop_during_backoff(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TuningStoppedError, match="no tuning job had been launched"):
        tune.run_tuning(make_settings(), DATA, service, watch=FAST, project=PROJECT, location=LOCATION,
                        clock=clock, sleep=stop_during_backoff)
    assert service.count("create") == 0 and service.count("cancel") == 0


def test_sigterm_handling_can_be_turned_off_for_preemptible_nodes() -> None:
    service = FakeTuningService()
    seen: list[object] = []
    service.on_get = lambda count: seen.append(signal.getsignal(signal.SIGTERM))
    run(service, make_settings(cancel_on_stop=False))
    assert seen and all(handler is signal.getsignal(signal.SIGTERM) for handler in seen)


# ---------------------------------------------------------------------------------------------- outputs


def test_offline_standin_jobs_are_marked() -> None:
    service = FakeTuningService()
    assert run(service, uses_local_server=True).offline_standin
    marked = service.add_job(
        tune.STATE_SUCCEEDED, {tune.RUN_LABEL_KEY: "other"}, description="made by offline-stand-in"
    )
    assert tune.is_offline_standin(marked, uses_local_server=False)


def test_summary_shows_settings_durations_tokens_costs_and_link() -> None:
    settings = make_settings(epochs=2, estimated_cost_usd=4.0)
    outcome = run(FakeTuningService(billable_tokens=500_000), settings)
    text = tune.render_summary(outcome, settings)
    assert outcome.console_url in text
    assert "| epochs | 2 |" in text
    assert "| estimated cost (validate stage) | $4.00 |" in text
    assert "| actual cost | $2.50 |" in text
    assert "| actual - estimated | $-1.50 |" in text
    assert "| billable training tokens (all epochs) | 500,000 |" in text
    assert "RUNNING" in text


def test_summary_gives_vertex_queue_and_training_times() -> None:
    service = FakeTuningService()
    service.add_job(
        tune.STATE_SUCCEEDED,
        SAME_STEP,
        create_time="2026-11-21T10:00:00+00:00",
        start_time="2026-11-21T10:02:30+00:00",
        end_time="2026-11-21T11:15:00+00:00",
    )
    settings = make_settings()
    text = tune.render_summary(run(service, settings), settings)
    assert "queued 2m 30s, trained 1h 12m 30s" in text
