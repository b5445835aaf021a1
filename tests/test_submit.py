"""Submitting a compiled spec: parameter checks before sending, and the PipelineJob request over real HTTP."""

import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from kfp import dsl

import gemini_sft.cli as cli
from gemini_sft.config import parse_config
from gemini_sft.errors import ConfigError
from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.platform import platform_state, routes
from gemini_sft.submit import (
    ParameterValueError,
    PipelineRunFailedError,
    PipelineSpec,
    check_parameter_values,
    follow_run,
    resolve_parameter_values,
    run_id_for,
    submit_pipeline,
)

MY_COMMANDS = ("submit", "schedule", "status", "rollback", "dag", "config")


@dsl.component(base_image="example.com/gemini-sft:test", install_kfp_package=False)
def _echo(text: str, times: int, rate: float, flag: bool, labels: dict, items: list) -> str:
    return text * times


@dsl.pipeline(name="tiny-sft")
def _tiny_pipeline(
    project: str,
    raw_data_uri: str,
    location: str = "us-central1",
    registry_uri: str = "",
    epochs: int = 3,
    learning_rate_multiplier: float = 1.0,
    mask_pii: bool = False,
    tuning_labels: dict = {},
    notification_emails: list = [],
) -> None:
    _echo(text=raw_data_uri, times=epochs, rate=learning_rate_multiplier, flag=mask_pii,
          labels=tuning_labels, items=notification_emails).set_display_name("Echo data")


@pytest.fixture(scope="module")
def spec_path(compile_pipeline: Callable[[Any], Path]) -> Path:
    return compile_pipeline(_tiny_pipeline)


@pytest.fixture()
def standin(monkeypatch: pytest.MonkeyPatch, start_standin) -> Iterator[VertexStandIn]:
    # The SDK checks/creates the pipeline-root bucket on Cloud Storage before submitting; offline it cannot.
    from google.cloud.aiplatform import pipeline_jobs

    monkeypatch.setattr(
        pipeline_jobs.gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
        lambda **_: None,
    )
    monkeypatch.setattr(cli, "COMMAND_MODULES", MY_COMMANDS)
    yield start_standin(extra_routes=routes())


def config_data(standin: VertexStandIn, **extra: object) -> dict:
    return {
        "project": "my-project-dev",
        "region": "europe-west4",
        "pipeline_root": "gs://my-bucket/pipeline-root",
        "service_account": "gemini-sft-pipelines@my-project-dev.iam.gserviceaccount.com",
        "network": "projects/123456789/global/networks/ml-vpc",
        "labels": {"team": "ml", "env": "dev"},
        "enable_caching": False,
        "registry_uri": "gs://my-bucket/registry",
        "api_endpoint": standin.base_url,
        "display_name": "Gemini SFT dev",
        "parameters": {"raw_data_uri": "gs://my-bucket/raw/tickets.jsonl", "epochs": 4},
        **extra,
    }


def write_config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_spec_input_definitions_are_read(spec_path: Path) -> None:
    parameters = PipelineSpec.load(spec_path).parameters
    assert parameters["epochs"].parameter_type == "NUMBER_INTEGER" and parameters["epochs"].default == 3
    assert parameters["learning_rate_multiplier"].parameter_type == "NUMBER_DOUBLE"
    assert parameters["mask_pii"].parameter_type == "BOOLEAN"
    assert parameters["tuning_labels"].parameter_type == "STRUCT"
    assert parameters["notification_emails"].parameter_type == "LIST"
    assert parameters["project"].required and not parameters["location"].required


def test_parameter_check_reports_every_problem(spec_path: Path) -> None:
    spec = PipelineSpec.load(spec_path)
    with pytest.raises(ParameterValueError) as caught:
        check_parameter_values(spec, {
            "epoch": 5,
            "epochs": 2.5,
            "learning_rate_multiplier": "fast",
            "mask_pii": 1,
            "tuning_labels": ["a"],
            "notification_emails": "ops@example.com",
            "raw_data_uri": "gs://b/x.jsonl",
        })
    problems = caught.value.problems
    assert "'epoch' is not a parameter of pipeline 'tiny-sft'. Did you mean 'epochs'?" in problems
    assert "'epochs' must be an integer (NUMBER_INTEGER); got float 2.5." in problems
    assert "'learning_rate_multiplier' must be a number (NUMBER_DOUBLE); got str 'fast'." in problems
    assert "'mask_pii' must be true or false (BOOLEAN); got int 1." in problems
    assert any(p.startswith("'tuning_labels' must be a mapping") for p in problems)
    assert any(p.startswith("'notification_emails' must be a list") for p in problems)
    assert any(p.startswith("'project' (STRING) is required and has no default") for p in problems)
    assert len(problems) == 7


def test_integers_are_accepted_for_doubles_but_bools_are_not_numbers(spec_path: Path) -> None:
    spec = PipelineSpec.load(spec_path)
    base = {"project": "p", "raw_data_uri": "gs://b/x"}
    assert check_parameter_values(spec, {**base, "learning_rate_multiplier": 2})["learning_rate_multiplier"] == 2
    with pytest.raises(ParameterValueError, match="'epochs' must be an integer"):
        check_parameter_values(spec, {**base, "epochs": True})


def test_values_are_layered_config_then_command_line(spec_path: Path) -> None:
    spec = PipelineSpec.load(spec_path)
    config = parse_config({
        "project": "my-project-dev", "region": "europe-west4", "pipeline_root": "gs://b/root",
        "registry_uri": "gs://b/registry", "notification_emails": ["ops@example.com"],
        "parameters": {"raw_data_uri": "gs://b/raw.jsonl", "epochs": 4},
    }, environ={})
    values = resolve_parameter_values(
        spec, config, ["epochs=6", "mask_pii=true", 'tuning_labels={"team": "ml"}', "learning_rate_multiplier=0.5"],
    )
    assert values == {
        "project": "my-project-dev", "location": "europe-west4", "registry_uri": "gs://b/registry",
        "notification_emails": ["ops@example.com"], "raw_data_uri": "gs://b/raw.jsonl", "epochs": 6,
        "mask_pii": True, "tuning_labels": {"team": "ml"}, "learning_rate_multiplier": 0.5,
    }
    with pytest.raises(ConfigError, match="'epochs' must be an integer"):
        resolve_parameter_values(spec, config, ["epochs=many"])


def test_run_ids_are_readable_and_valid() -> None:
    from datetime import datetime, timezone

    moment = datetime(2026, 11, 21, 19, 5, 7, tzinfo=timezone.utc)
    assert run_id_for("Gemini SFT dev", moment) == "gemini-sft-dev-20261121-190507"
    assert run_id_for("2026 run", moment) == "run-2026-run-20261121-190507"
    assert len(run_id_for("x" * 300, moment)) <= 128


def test_submit_sends_spec_values_and_run_settings(spec_path: Path, standin: VertexStandIn) -> None:
    config = parse_config(config_data(standin), environ={})
    spec = PipelineSpec.load(spec_path)
    values = resolve_parameter_values(spec, config, ["mask_pii=true"])

    run = submit_pipeline(config, spec, values)

    creates = standin.requests_to("/pipelineJobs", "POST")
    assert len(creates) == 1
    request = creates[0]
    assert request.path == "/v1/projects/my-project-dev/locations/europe-west4/pipelineJobs"
    assert request.query["pipelineJobId"] == run.run_id
    assert re.fullmatch(r"gemini-sft-dev-\d{8}-\d{6}", run.run_id)
    body = request.body
    assert body["displayName"] == "Gemini SFT dev"
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "tiny-sft"
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://my-bucket/pipeline-root"
    assert body["runtimeConfig"]["parameterValues"] == {
        "project": "my-project-dev", "location": "europe-west4", "registry_uri": "gs://my-bucket/registry",
        "raw_data_uri": "gs://my-bucket/raw/tickets.jsonl", "epochs": 4, "mask_pii": True,
    }
    assert body["serviceAccount"] == "gemini-sft-pipelines@my-project-dev.iam.gserviceaccount.com"
    assert body["network"] == "projects/123456789/global/networks/ml-vpc"
    assert body["labels"]["team"] == "ml" and body["labels"]["env"] == "dev"
    assert body["labels"]["gemini-sft-trigger"] == "manual"
    caching = [task["cachingOptions"] for task in body["pipelineSpec"]["root"]["dag"]["tasks"].values()]
    assert caching and all(option.get("enableCache") is False for option in caching)
    assert run.resource_name == f"projects/my-project-dev/locations/europe-west4/pipelineJobs/{run.run_id}"
    assert run.console_url == (
        f"https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/{run.run_id}"
        "?project=my-project-dev"
    )


def test_bad_parameters_stop_the_cli_before_anything_is_sent(
    spec_path: Path, standin: VertexStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = write_config(tmp_path, config_data(standin, parameters={}))
    code = cli.main(["submit", "--config", str(config_file), "--spec", str(spec_path),
                     "--param", "epoch=5", "--param", "mask_pii=false"])
    assert code == 2
    error = capsys.readouterr().err
    assert "'epoch' is not a parameter of pipeline 'tiny-sft'. Did you mean 'epochs'?" in error
    assert "'raw_data_uri' (STRING) is required and has no default" in error
    assert standin.requests == []

    code = cli.main(["submit", "--config", str(config_file), "--spec", str(spec_path), "--param", "epochs=three"])
    assert code == 2
    assert "Parameter 'epochs' must be an integer, e.g. 3; got 'three'." in capsys.readouterr().err
    assert standin.requests == []


def test_cli_submit_waits_for_the_run_to_end(
    spec_path: Path, standin: VertexStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = write_config(tmp_path, config_data(standin))
    code = cli.main(["submit", "--config", str(config_file), "--spec", str(spec_path),
                     "--param", "epochs=2", "--wait", "--poll-seconds", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "console:  https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/" in out
    states = re.findall(r"\d\d:\d\d:\d\d (\w+)", out)
    assert states[-1] == "SUCCEEDED" and "RUNNING" in states
    sent = standin.requests_to("/pipelineJobs", "POST")[0].body["runtimeConfig"]["parameterValues"]
    assert sent["epochs"] == 2
    from google.cloud import aiplatform

    listed = aiplatform.PipelineJob.list(filter='labels.gemini-sft-trigger="manual"')
    assert [job.display_name for job in listed] == ["Gemini SFT dev"]


def test_cli_submit_exits_1_when_the_run_fails(
    spec_path: Path, standin: VertexStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform_state(standin).final_state = "PIPELINE_STATE_FAILED"
    config_file = write_config(tmp_path, config_data(standin))
    code = cli.main(["submit", "--config", str(config_file), "--spec", str(spec_path), "--wait", "--poll-seconds", "0"])
    assert code == 1
    assert "ended FAILED" in capsys.readouterr().err


def test_ctrl_c_while_following_says_the_run_goes_on(
    spec_path: Path, standin: VertexStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gemini_sft.submit as submit

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(submit, "follow_run", interrupted)
    config_file = write_config(tmp_path, config_data(standin))
    code = cli.main(["submit", "--config", str(config_file), "--spec", str(spec_path), "--wait"])
    err = capsys.readouterr().err
    assert code == 130
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "stopped following gemini-sft-dev-" in err and "the run goes on (https://console.cloud.google.com/" in err


def test_dry_run_sends_nothing(
    spec_path: Path, standin: VertexStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = write_config(tmp_path, config_data(standin, image="example.com/gemini-sft:other"))
    assert cli.main(["submit", "--config", str(config_file), "--spec", str(spec_path), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert '"epochs": 4' in captured.out
    assert "recompile with `gemini-sft compile --image example.com/gemini-sft:other`" in captured.err
    assert standin.requests == []


def test_follow_run_times_out_with_a_clear_error() -> None:
    ticks = iter(range(100))
    with pytest.raises(PipelineRunFailedError, match="still PIPELINE_STATE_RUNNING after 2 s"):
        follow_run("projects/p/locations/l/pipelineJobs/r", poll_seconds=0, timeout_seconds=2,
                   read_state=lambda _: "PIPELINE_STATE_RUNNING", sleep=lambda _: None, clock=lambda: next(ticks))


def test_missing_or_foreign_spec_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gemini-sft compile"):
        PipelineSpec.load(tmp_path / "none.yaml")
    other = tmp_path / "other.yaml"
    other.write_text("a: 1\n")
    with pytest.raises(ConfigError, match="not a compiled KFP v2 pipeline spec"):
        PipelineSpec.load(other)
