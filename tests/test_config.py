"""Environment configs: the shipped examples load, mistakes get clear messages, environment variables override."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gemini_sft.config import cron_with_time_zone, load_config, parse_config, split_cron
from gemini_sft.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
MINIMAL = {"project": "my-project-dev", "pipeline_root": "gs://bucket/root"}


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(REPO / "configs" / f"{name}.yaml", environ={})
    assert config.pipeline_root.startswith("gs://")
    assert config.registry_uri.startswith("gs://")
    assert config.service_account.endswith(".iam.gserviceaccount.com")
    assert config.schedule.vertex_cron == "TZ=Europe/Amsterdam 0 3 * * 1"
    assert config.schedule.max_concurrent_run_count == 1


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(MINIMAL, environ={})
    assert config.region == "us-central1"
    assert config.enable_caching is None
    assert config.template_path == "compiled/gemini_sft_pipeline.yaml"
    assert config.schedule.vertex_cron == "TZ=UTC 0 3 * * 1"


def test_every_problem_is_reported_with_its_field() -> None:
    data = {
        "project": "My Project",
        "region": "central",
        "pipeline_root": "/tmp/root",
        "service_account": "someone@gmail.com",
        "network": "my-vpc",
        "labels": {"Team": "x"},
        "notification_emails": ["not-an-email"],
        "enable_cachng": True,
        "schedule": {"cron": "every monday", "time_zone": "Mars/Olympus"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="configs/bad.yaml", environ={})
    message = str(caught.value)
    assert message.startswith("configs/bad.yaml is not a valid environment config:")
    for expected in (
        "project: 'My Project' is not a project id",
        "region: 'central' is not a region",
        "pipeline_root: '/tmp/root' must be a Cloud Storage URI",
        "service_account: 'someone@gmail.com' is not a service account email",
        "network: 'my-vpc' is not a VPC network name",
        "labels: key 'Team' must start with a lowercase letter",
        "notification_emails: 'not-an-email' is not an e-mail address (name@example.com)",
        "enable_cachng: is not a known setting",
        "schedule.cron: 'every monday' is not a cron expression",
        "schedule.time_zone: 'Mars/Olympus' is not an IANA time zone",
    ):
        assert expected in message


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"region": "europe-west4"}, environ={})
    assert "project: is required" in str(caught.value)
    assert "pipeline_root: is required" in str(caught.value)


def test_schedule_window_must_be_ordered_and_zoned() -> None:
    with pytest.raises(ConfigError, match="end_time .* must be after start_time"):
        parse_config({**MINIMAL, "schedule": {"start_time": "2027-01-02T00:00:00Z", "end_time": "2027-01-01T00:00:00Z"}},
                     environ={})
    with pytest.raises(ConfigError, match="has no time zone"):
        parse_config({**MINIMAL, "schedule": {"start_time": "2027-01-02T00:00:00"}}, environ={})


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "labels": {"team": "ml"}, "enable_caching": True}))
    environ = {
        "GEMINI_SFT_PROJECT": "other-project",
        "GEMINI_SFT_REGION": "europe-west4",
        "GEMINI_SFT_ENABLE_CACHING": "false",
        "GEMINI_SFT_LABELS": "env=ci,owner=bot",
        "GEMINI_SFT_NOTIFICATION_EMAILS": "a@example.com, b@example.com",
        "GEMINI_SFT_SERVICE_ACCOUNT": "",
    }
    config = load_config(path, environ=environ)
    assert config.project == "other-project"
    assert config.region == "europe-west4"
    assert config.enable_caching is False
    assert config.labels == {"team": "ml", "env": "ci", "owner": "bot"}
    assert config.notification_emails == ["a@example.com", "b@example.com"]
    assert config.service_account == ""


def test_invalid_override_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="GEMINI_SFT_ENABLE_CACHING='maybe'"):
        parse_config(MINIMAL, environ={"GEMINI_SFT_ENABLE_CACHING": "maybe"})
    with pytest.raises(ConfigError, match="project: 'X' is not a project id"):
        parse_config(MINIMAL, environ={"GEMINI_SFT_PROJECT": "X"})


@pytest.mark.parametrize(
    ("content", "error"),
    [(None, "does not exist"), ("project: [unclosed", "not valid YAML"), ("- a\n- b\n", "YAML mapping")],
    ids=["missing", "broken", "list"],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, content: str | None, error: str) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=error):
        load_config(path, environ={})


def test_cron_and_time_zone() -> None:
    assert split_cron("TZ=Europe/Amsterdam  0 3 * * 1") == ("Europe/Amsterdam", "0 3 * * 1")
    assert split_cron("CRON_TZ=UTC */15 * * * *") == ("UTC", "*/15 * * * *")
    assert cron_with_time_zone("0 3 * * 1", "Europe/Amsterdam") == "TZ=Europe/Amsterdam 0 3 * * 1"
    assert cron_with_time_zone("TZ=Asia/Tokyo 0 3 * * 1", "Europe/Amsterdam") == "TZ=Asia/Tokyo 0 3 * * 1"
    with pytest.raises(ValueError, match="five fields"):
        split_cron("0 3 * *")
    with pytest.raises(ValueError, match="IANA"):
        split_cron("TZ=Nowhere/Town 0 3 * * 1")


def test_config_check_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import gemini_sft.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("config",))
    monkeypatch.delenv("GEMINI_SFT_PROJECT", raising=False)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**MINIMAL, "template_path": str(tmp_path / "not-compiled.yaml")}))
    assert cli.main(["config", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: valid" in out and "(the project default: set one for production)" in out

    monkeypatch.setenv("GEMINI_SFT_PROJECT", "Not Valid")
    assert cli.main(["config", "check", str(good)]) == 2
    assert "project: 'Not Valid' is not a project id" in capsys.readouterr().err

    monkeypatch.setenv("GEMINI_SFT_PROJECT", "ci-project")
    assert cli.main(["config", "check", str(good), "--json"]) == 0
    assert '"project": "ci-project"' in capsys.readouterr().out


def test_config_check_compares_parameters_with_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gemini_sft.cli as cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("config",))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "pipelineInfo": {"name": "p"},
        "root": {"dag": {"tasks": {}}, "inputDefinitions": {"parameters": {
            "epochs": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3},
        }}},
    }))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**MINIMAL, "parameters": {"epochs": "three"},
                                      "schedule": {"parameters": {"epoch": 2}}}))
    assert cli.main(["config", "check", str(config), "--spec", str(spec)]) == 2
    assert "'epochs' must be an integer (NUMBER_INTEGER); got str 'three'" in capsys.readouterr().err
    config.write_text(yaml.safe_dump({**MINIMAL, "parameters": {"epochs": 4}, "schedule": {"parameters": {"epoch": 2}}}))
    assert cli.main(["config", "check", str(config), "--spec", str(spec)]) == 2
    error = capsys.readouterr().err
    assert "schedule.parameters" in error and "'epoch' is not a parameter of pipeline 'p'. Did you mean 'epochs'?" in error
