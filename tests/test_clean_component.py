"""The clean stage's KFP shell and the ``gemini-sft clean`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from artifact_helpers import output_artifacts
from clean_helpers import jsonl, pair, read_jsonl
from gemini_sft.components.base import build_component
from gemini_sft.components.clean import clean_data
from kfp import dsl

from gemini_sft.cli.clean import register
from gemini_sft.errors import ConfigError, DatasetInvalidError
from gemini_sft.sample_data import shipped_sample_path


def artifacts(tmp_path: Path) -> dict[str, dsl.Artifact]:
    return output_artifacts(clean_data, tmp_path)


def test_shell_cleans_the_sample_and_writes_every_artifact(tmp_path: Path) -> None:
    outputs = artifacts(tmp_path)
    result = clean_data(
        raw_data=dsl.Dataset(uri=str(shipped_sample_path())), **outputs, stratify_by=r"regex:Category: (\w+)"
    )
    version = json.loads(Path(outputs["dataset_version"].path).read_text())
    assert result.dataset_hash == version["dataset_hash"]
    assert result.kept_rows == version["counts"]["kept"] > 300
    assert result.train_rows == len(read_jsonl(Path(outputs["train"].path)))
    split_rows = [len(read_jsonl(Path(outputs[s].path))) for s in ("train", "validation", "holdout")]
    rejected_rows = len(read_jsonl(Path(outputs["rejected"].path)))
    assert sum(split_rows) == result.kept_rows
    assert result.kept_rows + rejected_rows == version["counts"]["rows_read"]
    metrics = outputs["metrics"].metadata
    assert metrics["kept_rows"] == result.kept_rows and metrics["rows_read"] == version["counts"]["rows_read"]
    assert metrics["rejected_duplicate"] > 0 and metrics["blank_lines"] > 0
    assert outputs["train"].metadata["rows"] == result.train_rows
    assert outputs["train"].metadata["sha256"] == version["splits"]["train"]["sha256"]
    assert version["source_uri"] == str(shipped_sample_path())
    assert "# Data cleaning report" in Path(outputs["report"].path).read_text()


def test_shell_is_the_component_function_with_the_contract_signature() -> None:
    component = build_component(clean_data)
    assert component.python_func is clean_data
    inputs = component.component_spec.inputs
    assert {"raw_data", "train_fraction", "validation_fraction", "holdout_fraction", "seed", "system_instruction",
            "min_response_chars", "conflict_policy", "mask_pii", "stratify_by", "max_validation_examples",
            "validation_overflow", "min_split_examples"} <= set(inputs)
    assert set(component.component_spec.outputs) >= {"train", "validation", "holdout", "rejected",
                                                         "dataset_version", "report", "metrics", "dataset_hash",
                                                         "kept_rows", "train_rows"}


def test_shell_fails_the_run_when_no_training_example_survives(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(jsonl("garbage", pair("", "x")), encoding="utf-8")
    outputs = artifacts(tmp_path)
    with pytest.raises(DatasetInvalidError, match="no training example"):
        clean_data(raw_data=dsl.Dataset(uri=str(raw)), **outputs)
    assert len(read_jsonl(Path(outputs["rejected"].path))) == 2  # the reasons are still written


def test_shell_refuses_invalid_settings(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(jsonl(pair("a", "b")), encoding="utf-8")
    with pytest.raises(ConfigError, match="must be 1"):
        clean_data(raw_data=dsl.Dataset(uri=str(raw)), **artifacts(tmp_path), train_fraction=0.9)


def run_cli(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="gemini-sft")
    register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_writes_splits_version_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cleaned"
    code = run_cli(["clean", str(shipped_sample_path()), "--out", str(out), "--seed", "3", "--mask-pii",
                    "--stratify-by", r"regex:Category: (\w+)"])
    assert code == 0
    for name in ("train.jsonl", "validation.jsonl", "holdout.jsonl", "rejected.jsonl", "dataset_version.json", "report.md"):
        assert (out / name).is_file()
    printed = capsys.readouterr().out
    version = json.loads((out / "dataset_version.json").read_text())
    assert f"Kept {version['counts']['kept']}" in printed and version["dataset_hash"] in printed
    assert version["config"]["seed"] == 3 and version["config"]["mask_pii"] is True


def test_cli_is_registered_in_the_main_command() -> None:
    from gemini_sft.cli import COMMAND_MODULES

    assert "clean" in COMMAND_MODULES


def test_cli_json_output_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text("input,output\nWhere is my parcel?,shipping\nRefund please,billing\n", encoding="utf-8")
    assert run_cli(["clean", str(raw), "--out", str(tmp_path / "o"), "--json", "--min-split-examples", "0"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["counts"]["kept"] == 2 and printed["source_container"] == "csv"
    with pytest.raises(ConfigError):
        run_cli(["clean", str(raw), "--out", str(tmp_path / "o"), "--train-fraction", "2"])


def test_resolving_the_raw_data_emits_the_dataset_and_clean_keeps_its_lineage(tmp_path: Path) -> None:
    from gemini_sft.components.resolve_data import resolve_raw_data

    for day in ("2026-11-02", "2026-11-16"):
        (tmp_path / "raw" / day).mkdir(parents=True)
        (tmp_path / "raw" / day / "tickets.jsonl").write_text(
            jsonl(*(pair(f"{day} question {i}", f"answer {i}") for i in range(30))), encoding="utf-8"
        )
    pattern = f"{tmp_path}/raw/{{latest}}/tickets.jsonl"
    raw_data = dsl.Dataset(uri=str(tmp_path / "resolve" / "raw_data"))
    assert resolve_raw_data(raw_data_uri=pattern, raw_data=raw_data) is None
    newest = f"{tmp_path}/raw/2026-11-16/tickets.jsonl"
    assert raw_data.uri == newest and raw_data.path == newest
    assert raw_data.metadata == {"source_uri": pattern, "resolved_uri": newest}

    outputs = artifacts(tmp_path / "clean")
    clean_data(raw_data=raw_data, **outputs)
    version = json.loads(Path(outputs["dataset_version"].path).read_text())
    assert (version["source_uri"], version["source_uri_pattern"]) == (newest, pattern)
    assert version["counts"]["rows_read"] == 30
    assert f"Source pattern: `{pattern}`" in Path(outputs["report"].path).read_text()


def test_the_pipeline_takes_the_raw_data_from_the_resolving_step_without_an_importer() -> None:
    from gemini_sft.pipelines.gemini_sft_pipeline import gemini_sft_pipeline

    spec = gemini_sft_pipeline.pipeline_spec
    assert not any("importer" in executor for executor in spec.deployment_spec["executors"].values())
    raw = spec.root.dag.tasks["clean-data"].inputs.artifacts["raw_data"].task_output_artifact
    assert (raw.producer_task, raw.output_artifact_key) == ("resolve-raw-data", "raw_data")
