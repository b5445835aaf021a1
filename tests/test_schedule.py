"""Scheduled retraining: PipelineJobSchedule requests over real HTTP, the CLI life cycle, and newest-data URIs."""

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from kfp import dsl

import gemini_sft.cli as cli
from gemini_sft.config import parse_config
from gemini_sft.errors import ConfigError, InputFormatError
from gemini_sft.schedule import (
    ScheduleNotFoundError,
    build_schedule_request,
    create_schedule,
    list_schedules,
    pause_schedule,
    resolve_data_uri,
)
from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.platform import platform_state, routes
from gemini_sft.submit import ParameterValueError, PipelineSpec

MY_COMMANDS = ("submit", "schedule", "status", "rollback", "dag", "config")
PARENT = "/v1/projects/my-project-prod/locations/europe-west4/schedules"


@dsl.component(base_image="example.com/gemini-sft:test", install_kfp_package=False)
def _train(data: str, epochs: int) -> str:
    return data


@dsl.pipeline(name="tiny-retrain")
def _tiny_pipeline(project: str, raw_data_uri: str, location: str = "us-central1", epochs: int = 3) -> None:
    _train(data=raw_data_uri, epochs=epochs).set_display_name("Train")


@pytest.fixture(scope="module")
def spec_path(compile_pipeline: Callable[[Any], Path]) -> Path:
    return compile_pipeline(_tiny_pipeline)


@pytest.fixture()
def standin(monkeypatch: pytest.MonkeyPatch, start_standin) -> Iterator[VertexStandIn]:
    monkeypatch.setattr(cli, "COMMAND_MODULES", MY_COMMANDS)
    yield start_standin(extra_routes=routes())


def config_data(standin: VertexStandIn, spec_path: Path) -> dict:
    return {
        "project": "my-project-prod",
        "region": "europe-west4",
        "pipeline_root": "gs://prod-bucket/pipeline-root",
        "service_account": "gemini-sft-pipelines@my-project-prod.iam.gserviceaccount.com",
        "network": "projects/123456789/global/networks/ml-vpc",
        "labels": {"env": "prod"},
        "api_endpoint": standin.base_url,
        "template_path": str(spec_path),
        "parameters": {"raw_data_uri": "gs://prod-bucket/raw/tickets.jsonl"},
        "schedule": {
            "display_name": "weekly-retrain",
            "cron": "0 3 * * 1",
            "time_zone": "Europe/Amsterdam",
            "start_time": "2026-12-01T00:00:00Z",
            "end_time": "2099-06-30T00:00:00Z",
            "parameters": {"raw_data_uri": "gs://prod-bucket/raw/{latest}/tickets.jsonl", "epochs": 4},
        },
    }


def test_create_sends_cron_window_values_and_run_settings(spec_path: Path, standin: VertexStandIn) -> None:
    config = parse_config(config_data(standin, spec_path), environ={})
    spec = PipelineSpec.load(spec_path)
    request = build_schedule_request(config, spec, ["epochs=5"])

    summary = create_schedule(config, spec, request)

    creates = standin.requests_to("/schedules", "POST")
    assert len(creates) == 1 and creates[0].path == PARENT
    body = creates[0].body
    assert body["displayName"] == "weekly-retrain"
    assert body["cron"] == "TZ=Europe/Amsterdam 0 3 * * 1"
    assert int(body["maxConcurrentRunCount"]) == 1
    assert "maxRunCount" not in body
    assert body["startTime"].startswith("2026-12-01T00:00:00") and body["endTime"].startswith("2099-06-30")
    job = body["createPipelineJobRequest"]["pipelineJob"]
    assert body["createPipelineJobRequest"]["parent"] == "projects/my-project-prod/locations/europe-west4"
    assert job["runtimeConfig"]["parameterValues"] == {
        "project": "my-project-prod", "location": "europe-west4",
        "raw_data_uri": "gs://prod-bucket/raw/{latest}/tickets.jsonl", "epochs": 5,
    }
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://prod-bucket/pipeline-root"
    assert job["serviceAccount"] == "gemini-sft-pipelines@my-project-prod.iam.gserviceaccount.com"
    assert job["network"] == "projects/123456789/global/networks/ml-vpc"
    assert job["labels"]["env"] == "prod" and job["labels"]["gemini-sft-trigger"] == "schedule"
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "tiny-retrain"
    assert summary.state == "ACTIVE" and summary.cron == body["cron"]
    assert summary.parameter_values["epochs"] == 5


def test_schedule_parameters_are_checked_before_sending(spec_path: Path, standin: VertexStandIn) -> None:
    config = parse_config(config_data(standin, spec_path), environ={})
    with pytest.raises(ParameterValueError, match="'epoch' is not a parameter"):
        build_schedule_request(config, PipelineSpec.load(spec_path), ["epoch=5"])
    with pytest.raises(ConfigError, match="is in the past"):
        build_schedule_request(config, PipelineSpec.load(spec_path), start_time="2019-06-01T00:00:00Z",
                               end_time="2020-01-01T00:00:00Z")
    with pytest.raises(ConfigError, match="IANA time zone"):
        build_schedule_request(config, PipelineSpec.load(spec_path), time_zone="Moon/Base")
    assert standin.requests == []


def test_cli_life_cycle_create_list_pause_resume_delete(
    spec_path: Path, standin: VertexStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "prod.yaml"
    config_file.write_text(yaml.safe_dump(config_data(standin, spec_path)))
    base = ["--config", str(config_file)]

    assert cli.main(["schedule", "create", *base, "--cron", "30 2 * * *", "--time-zone", "UTC",
                     "--max-runs", "10", "--display-name", "nightly"]) == 0
    assert "cron:     TZ=UTC 30 2 * * *" in capsys.readouterr().out
    body = standin.requests_to("/schedules", "POST")[0].body
    assert body["cron"] == "TZ=UTC 30 2 * * *" and int(body["maxRunCount"]) == 10
    schedule_id = platform_state(standin).schedules()[0]["name"].rsplit("/", 1)[-1]

    assert cli.main(["schedule", "list", *base]) == 0
    listing = capsys.readouterr().out
    assert schedule_id in listing and "ACTIVE" in listing and "nightly" in listing

    assert cli.main(["schedule", "pause", *base, "nightly"]) == 0
    assert "is PAUSED" in capsys.readouterr().out
    assert standin.requests_to(f"{schedule_id}:pause", "POST")

    assert cli.main(["schedule", "resume", *base, schedule_id, "--catch-up"]) == 0
    assert "is ACTIVE" in capsys.readouterr().out
    assert standin.requests_to(f"{schedule_id}:resume", "POST")[0].body == {"catchUp": True}

    assert cli.main(["schedule", "delete", *base, schedule_id]) == 0
    assert platform_state(standin).schedules() == []
    assert standin.requests_to(f"schedules/{schedule_id}", "DELETE")

    assert cli.main(["schedule", "pause", *base, "nightly"]) == 1
    assert "No schedule named 'nightly'" in capsys.readouterr().err


def test_pausing_a_paused_schedule_is_an_api_error(spec_path: Path, standin: VertexStandIn) -> None:
    config = parse_config(config_data(standin, spec_path), environ={})
    spec = PipelineSpec.load(spec_path)
    summary = create_schedule(config, spec, build_schedule_request(config, spec))
    assert pause_schedule(config, summary.schedule_id).state == "PAUSED"
    with pytest.raises(Exception, match="is PAUSED, not ACTIVE"):
        pause_schedule(config, summary.name)
    assert [s.display_name for s in list_schedules(config, "weekly-retrain")] == ["weekly-retrain"]
    with pytest.raises(ScheduleNotFoundError):
        pause_schedule(config, "no-such-schedule")


def test_date_placeholders_use_the_run_date() -> None:
    moment = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    assert resolve_data_uri("gs://b/raw/{date}/t.jsonl", moment) == "gs://b/raw/2026-11-23/t.jsonl"
    assert resolve_data_uri("gs://b/raw/{yyyy}/{mm}/{dd}.jsonl", moment) == "gs://b/raw/2026/11/23.jsonl"
    assert resolve_data_uri("gs://b/raw/t.jsonl", moment) == "gs://b/raw/t.jsonl"


def test_latest_picks_the_newest_dated_folder(tmp_path: Path) -> None:
    for day in ("2026-11-02", "2026-11-16", "2026-11-09"):
        (tmp_path / "raw" / day).mkdir(parents=True)
    (tmp_path / "raw" / ".staging").mkdir()
    (tmp_path / "raw" / "README.md").write_text("x")
    assert resolve_data_uri(f"{tmp_path}/raw/{{latest}}/tickets.jsonl") == f"{tmp_path}/raw/2026-11-16/tickets.jsonl"
    seen: list[str] = []
    resolved = resolve_data_uri("gs://b/raw/{latest}/t.jsonl",
                                list_names=lambda uri: seen.append(uri) or ["2026-01-01", "2026-02-01"])
    assert resolved == "gs://b/raw/2026-02-01/t.jsonl" and seen == ["gs://b/raw"]


def test_latest_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="does not exist"):
        resolve_data_uri(f"{tmp_path}/missing/{{latest}}/t.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFormatError, match="has no sub-folders"):
        resolve_data_uri(f"{tmp_path}/empty/{{latest}}/t.jsonl")
    with pytest.raises(ConfigError, match="more than one"):
        resolve_data_uri("gs://b/{latest}/{latest}/t.jsonl")
    with pytest.raises(ConfigError, match="whole path segment"):
        resolve_data_uri("gs://b/raw-{latest}/t.jsonl", list_names=lambda _: ["x"])
