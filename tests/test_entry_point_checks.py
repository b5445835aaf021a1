"""Every entry point refuses bad settings with exit 2, one line per problem, before anything starts or is sent.

``run --local``, ``submit`` (and ``--dry-run``), ``schedule create`` and
``config check`` check the values they would send (the spec's defaults, the
config's parameters, the schedule's, ``--param``) with one rule set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kfp import compiler

import gemini_sft.cli as cli
from gemini_sft.pipelines.gemini_sft_pipeline import build_pipeline
from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.platform import routes

ENTRY_COMMANDS = ("run", "submit", "schedule", "config")


@pytest.fixture(autouse=True)
def only_entry_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ENTRY_COMMANDS)
    for name in ("GEMINI_SFT_PROJECT", "GEMINI_SFT_REGION", "GEMINI_SFT_NOTIFICATION_EMAILS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def standin(monkeypatch: pytest.MonkeyPatch, start_standin) -> Iterator[VertexStandIn]:
    # The SDK checks/creates the pipeline-root bucket on Cloud Storage before submitting; offline it cannot.
    from google.cloud.aiplatform import pipeline_jobs

    monkeypatch.setattr(
        pipeline_jobs.gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
        lambda **_: None,
    )
    yield start_standin(extra_routes=routes())


def write_config(tmp_path: Path, spec: Path, api_endpoint: str = "", **extra: object) -> Path:
    data = {
        "project": "my-project-dev",
        "region": "europe-west4",
        "pipeline_root": "gs://my-bucket/pipeline-root",
        "registry_uri": "gs://my-bucket/registry",
        "template_path": str(spec),
        "api_endpoint": api_endpoint,
        "parameters": {"raw_data_uri": "gs://my-bucket/raw/tickets.jsonl"},
        **extra,
    }
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def refusal(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    """The error's first line and its problem lines; checks that nothing else was printed and no traceback."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "Dry run" not in captured.out and "Submitted" not in captured.out and "Created" not in captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if line.startswith("gemini-sft: configuration error: "))
    return lines[header], [line.removeprefix("  - ") for line in lines[header + 1:]]


def refused_problems(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[str]:
    """Runs the CLI with ``argv``, checks it refused with the usage exit code and returns its problem lines."""
    assert cli.main(argv) == cli.EXIT_USAGE
    return refusal(capsys)[1]


def test_run_local_refuses_a_bad_adapter_size_before_the_run_folder_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "run"
    code = cli.main(["run", "--local", "--output", str(output), "--param", "adapter_size=3"])
    header, problems = refusal(capsys)
    assert code == cli.EXIT_USAGE
    assert "the local run was not started" in header
    assert problems == [
        "adapter_size 3 is not allowed for gemini-2.5-flash; allowed: 1, 2, 4, 8, 16 (or 0 to let Vertex choose)"
    ]
    assert not output.exists()


def test_run_local_refuses_a_region_without_tuning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "run"
    code = cli.main(["run", "--local", "--output", str(output), "--param", "location=mars-north1",
                     "--param", "train_fraction=0.9"])
    _, problems = refusal(capsys)
    assert code == cli.EXIT_USAGE
    assert len(problems) == 2
    assert any(problem.startswith("location 'mars-north1' is not a region") for problem in problems)
    assert any("train_fraction + validation_fraction + holdout_fraction must be 1" in p for p in problems)
    assert not output.exists()


def test_submit_dry_run_refuses_zero_epochs(
    tmp_path: Path, compiled_spec_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, compiled_spec_path)
    code = cli.main(["submit", "--config", str(config), "--dry-run", "--param", "epochs=0"])
    header, problems = refusal(capsys)
    assert code == cli.EXIT_USAGE
    assert "nothing was sent to Vertex" in header
    assert problems == ["epochs must be a whole number >= 1, got 0"]


def test_submit_refuses_before_any_request(
    tmp_path: Path, compiled_spec_path: Path, standin: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, compiled_spec_path, api_endpoint=standin.base_url,
                          parameters={"raw_data_uri": "gs://b/raw.jsonl", "adapter_size": 3})
    code = cli.main(["submit", "--config", str(config)])
    _, problems = refusal(capsys)
    assert code == cli.EXIT_USAGE
    assert problems[0].startswith("adapter_size 3 is not allowed for gemini-2.5-flash")
    assert standin.requests == []


def test_submit_refuses_a_region_from_the_config(
    tmp_path: Path, compiled_spec_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, compiled_spec_path, region="mars-north1")
    problems = refused_problems(capsys, ["submit", "--config", str(config), "--dry-run"])
    assert problems == [
        "location 'mars-north1' is not a region where Vertex offers Gemini tuning; use e.g. us-central1 or europe-west4"
    ]


def test_notification_emails_compiled_into_the_spec_follow_the_same_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "notify.yaml"
    recipients = ["a@example.com", "b@example.com", "c@example.com", "ops-at-example.com"]
    compiler.Compiler().compile(build_pipeline(notification_emails=recipients), str(spec))
    config = write_config(tmp_path, spec)
    problems = refused_problems(capsys, ["submit", "--config", str(config), "--dry-run"])
    assert problems == [
        "notification_emails has 4 addresses; Vertex e-mails at most 3 (use a group address)",
        "notification_emails: 'ops-at-example.com' is not an e-mail address (name@example.com)",
    ]


def test_schedule_create_refuses_a_cron_minute_out_of_range(
    tmp_path: Path, compiled_spec_path: Path, standin: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, compiled_spec_path, api_endpoint=standin.base_url)
    code = cli.main(["schedule", "create", "--config", str(config), "--cron", "61 * * * *"])
    header, _ = refusal(capsys)
    assert code == cli.EXIT_USAGE
    assert "'61 * * * *' is not a cron expression: minute '61' is out of range: use 0-59" in header
    assert standin.requests == []


def test_schedule_create_refuses_the_schedules_own_bad_parameters(
    tmp_path: Path, compiled_spec_path: Path, standin: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, compiled_spec_path, api_endpoint=standin.base_url,
                          schedule={"parameters": {"validation_fraction": 0.5}})
    code = cli.main(["schedule", "create", "--config", str(config)])
    header, problems = refusal(capsys)
    assert code == cli.EXIT_USAGE
    assert "the schedule was not created" in header
    assert len(problems) == 1 and "validation_fraction" in problems[0]
    assert standin.requests == []


def test_config_check_refuses_fractions_that_do_not_add_up(
    tmp_path: Path, compiled_spec_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, compiled_spec_path, parameters={
        "raw_data_uri": "gs://b/raw.jsonl", "train_fraction": 0.9, "validation_fraction": 0.2,
    })
    problems = refused_problems(capsys, ["config", "check", str(config)])
    assert problems == [
        "invalid cleaning configuration: train_fraction + validation_fraction + holdout_fraction must be 1, "
        "got 1.2 (0.9 + 0.2 + 0.1)"
    ]


def test_config_check_without_a_compiled_spec_checks_against_this_versions_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, tmp_path / "not-compiled.yaml", parameters={"adapter_size": 3})
    problems = refused_problems(capsys, ["config", "check", str(config)])
    assert problems[0].startswith("adapter_size 3 is not allowed")

    config = write_config(tmp_path, tmp_path / "not-compiled.yaml", parameters={"adapter_size": 8})
    assert cli.main(["config", "check", str(config)]) == cli.EXIT_OK
    assert "parameter values: accepted by this version's pipeline" in capsys.readouterr().out
