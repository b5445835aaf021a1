"""Errors a person meets at the command line: one clear line and an exit code, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from google.auth import exceptions as auth_exceptions

import gemini_sft.cli as cli
import gemini_sft.storage as storage
from gemini_sft.local_run import RUN_STATUS_FILE, raw_data_file
from gemini_sft.promotion import ModelVersion, PromotionStore, promote

REPO = Path(__file__).resolve().parents[1]
GEMINI_SFT = str(Path(sys.executable).with_name("gemini-sft"))
PARENT = "projects/p/locations/us-central1/models"


def one_line_error(stderr: str) -> str:
    """The command's own message: the last stderr line (log lines may come before it), checked for tracebacks."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("gemini-sft: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump({
        "project": "my-project", "region": "us-central1", "pipeline_root": "gs://b/root", "registry_uri": "gs://b/registry",
    }))
    return path


def registry_with_two_champions(tmp_path: Path) -> Path:
    registry = tmp_path / "registry"
    store = PromotionStore(str(registry))
    for model_id in ("1", "2"):
        promote(store, ModelVersion(model=f"{PARENT}/{model_id}", version="1"))
    return registry


def test_cloud_commands_without_credentials_say_how_to_log_in(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    registry = registry_with_two_champions(tmp_path)
    spec = REPO / "compiled" / "gemini_sft_pipeline.yaml"
    commands = {
        "submit": ["submit", "--config", config, "--spec", spec, "--param", "raw_data_uri=gs://b/raw.jsonl"],
        "schedule create": ["schedule", "create", "--config", config, "--spec", spec,
                            "--param", "raw_data_uri=gs://b/raw.jsonl"],
        "schedule list": ["schedule", "list", "--config", config],
        "status --check-registry": ["status", "--config", config, "--registry-uri", registry, "--check-registry"],
        "rollback": ["rollback", "--config", config, "--registry-uri", registry],
    }
    # A fresh process (the SDKs keep credentials in module state) with no credentials to find; the commands
    # run one after the other in it, each with its own stderr.
    script = """
import contextlib, io, json, sys
import gemini_sft.cli as cli
results = {}
for name, arguments in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(arguments)
    results[name] = [code, err.getvalue()]
print(json.dumps(results))
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GOOGLE_", "VERTEX_", "CLOUDSDK"))}
    env.update(GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "no-such-key.json"), HOME=str(tmp_path))
    arguments = json.dumps({name: [str(a) for a in command] for name, command in commands.items()})
    finished = subprocess.run([sys.executable, "-c", script, arguments], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300, check=True)
    results = json.loads(finished.stdout.splitlines()[-1])
    assert set(results) == set(commands)
    for name, (code, err) in results.items():
        assert code == cli.EXIT_USAGE, (name, err)
        line = one_line_error(err)
        assert "no usable Google Cloud credentials" in line and "gcloud auth application-default login" in line, name


def test_run_local_refuses_a_gs_uri_it_cannot_read_and_says_how(tmp_path: Path, capsys) -> None:
    output = tmp_path / "run"
    code = cli.main(["run", "--local", "--data", "gs://bucket/raw/tickets.jsonl", "--output", str(output)])
    assert code == cli.EXIT_FAILURE
    line = one_line_error(capsys.readouterr().err)
    assert "gs://bucket/raw/tickets.jsonl" in line  # the URI as given, not gs:/bucket/...
    assert "gcloud storage cp gs://bucket/raw/tickets.jsonl" in line
    assert not output.exists()


def test_a_gs_uri_is_read_through_the_cloud_storage_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "GCS_MOUNT", f"{tmp_path}/")
    (tmp_path / "bucket" / "raw").mkdir(parents=True)
    (tmp_path / "bucket" / "raw" / "tickets.jsonl").write_text("{}\n")
    assert raw_data_file("gs://bucket/raw/tickets.jsonl") == tmp_path / "bucket" / "raw" / "tickets.jsonl"


def test_run_local_on_a_folder_says_it_is_a_folder(tmp_path: Path, capsys) -> None:
    code = cli.main(["run", "--local", "--data", str(tmp_path), "--output", str(tmp_path / "run")])
    assert code == cli.EXIT_FAILURE
    line = one_line_error(capsys.readouterr().err)
    assert "is a folder" in line and "one file" in line


@pytest.mark.parametrize("output, words", [("a-file", "is a file"), ("a-file/run", "cannot create the run folder")])
def test_run_local_with_an_output_that_cannot_be_a_folder_says_so(tmp_path: Path, capsys, output: str, words: str) -> None:
    (tmp_path / "a-file").write_text("kept\n")
    assert cli.main(["run", "--local", "--output", str(tmp_path / output)]) == cli.EXIT_USAGE
    assert words in one_line_error(capsys.readouterr().err)
    assert (tmp_path / "a-file").read_text() == "kept\n"


@pytest.mark.parametrize("command", ["config check {bad}", "config check {good} --spec {bad}", "dag --spec {bad}",
                                     "submit --config {good} --spec {bad} --dry-run", "submit --config {bad}"])
def test_a_binary_config_or_spec_is_named_in_one_line(tmp_path: Path, capsys, command: str) -> None:
    bad = tmp_path / "binary.yaml"
    bad.write_bytes(b"project: p\n\xff\xfe\x00\x81 garbage")
    arguments = command.format(bad=bad, good=write_config(tmp_path)).split()
    assert cli.main(arguments) == cli.EXIT_USAGE
    line = one_line_error(capsys.readouterr().err)
    assert f"{bad} is not a text file" in line


def test_run_local_prints_the_failing_steps_own_error_without_colour(tmp_path: Path, capsys) -> None:
    output = tmp_path / "run"
    code = cli.main(["run", "--local", "--output", str(output), "--param", "max_budget_usd=0.0001"])
    captured = capsys.readouterr()
    assert code == cli.EXIT_FAILURE
    line = one_line_error(captured.err)
    assert "Step 'validate-data' failed: BudgetExceededError: The estimated tuning cost" in line
    assert "max_budget_usd" in line and str(output / "pipeline.log") in line
    assert "\x1b[" not in captured.out + captured.err
    assert "\x1b[" not in (output / "pipeline.log").read_text()
    status = json.loads((output / RUN_STATUS_FILE).read_text())
    assert status["state"] == "failed" and "BudgetExceededError" in status["error"]


def test_ctrl_c_in_a_local_run_exits_130_in_one_line_and_marks_the_run_folder(tmp_path: Path) -> None:
    output = tmp_path / "run"
    process = subprocess.Popen([GEMINI_SFT, "run", "--local", "--output", str(output)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        seen = ""
        while "running  clean-data" not in seen:
            line = process.stdout.readline()
            assert line, f"the run ended before its clean step: {seen}"
            seen += line
        assert json.loads((output / RUN_STATUS_FILE).read_text())["state"] == "running"
        time.sleep(0.3)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    line = one_line_error(err)
    assert "interrupted" in line and RUN_STATUS_FILE in line
    status = json.loads((output / RUN_STATUS_FILE).read_text())
    # The step running when the signal came: clean-data, or one after it (kfp.local's order varies).
    later_steps = ("clean-data", "find-champion", "validate-data", "tune-model", "evaluate-models")
    assert status["state"] == "interrupted" and status["step"] in later_steps


@pytest.mark.parametrize("error, code, words", [
    (lambda: auth_exceptions.RefreshError("invalid_grant: Token has been expired or revoked."),
     cli.EXIT_USAGE, "gcloud auth application-default login"),
    (KeyboardInterrupt, 130, "interrupted"),
])
def test_expired_credentials_and_ctrl_c_in_any_command_are_one_line(monkeypatch, capsys, error, code, words) -> None:
    import gemini_sft.dag as dag

    def fail(*_args, **_kwargs):
        raise error()

    monkeypatch.setattr(dag, "render", fail)
    assert cli.main(["dag"]) == code
    assert words in one_line_error(capsys.readouterr().err)


def test_a_command_declared_with_add_command_gets_its_handler_help_and_common_options() -> None:
    import argparse

    from gemini_sft.cli.common import add_command

    def handler(_args: argparse.Namespace) -> int:
        return 0

    parser = argparse.ArgumentParser(prog="gemini-sft")
    commands = parser.add_subparsers(dest="command", required=True)
    doc = """``gemini-sft probe``: a title for code readers.

    What ``gemini-sft probe --help`` shows.
    """
    probe = add_command(commands, "probe", handler, "one line for gemini-sft --help", doc, config="required",
                        api_endpoint=True)
    assert probe.description == "What ``gemini-sft probe --help`` shows."
    args = parser.parse_args(["probe", "--config", "dev.yaml", "--api-endpoint", "http://127.0.0.1:1"])
    assert (args.handler, args.config, args.api_endpoint) == (handler, Path("dev.yaml"), "http://127.0.0.1:1")
    with pytest.raises(SystemExit):
        parser.parse_args(["probe"])  # --config is required
    optional = add_command(commands, "peek", handler, "no doc: the help line is the description", config="optional")
    assert optional.description == "no doc: the help line is the description"
    assert parser.parse_args(["peek"]).config is None
