"""What a person meets when the clean step is given the wrong thing: one clear line, nothing overwritten."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from artifact_helpers import output_artifacts
from clean_helpers import jsonl, pair, read_jsonl, run_clean
from gemini_sft.components.clean import clean_data
from kfp import dsl

from gemini_sft.cli import main
from gemini_sft.dataset.clean import clean_dataset, split_size_problems
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.errors import ConfigError, DatasetInvalidError, InputFormatError


def examples(count: int) -> str:
    return jsonl(*(pair(f"question number {i}", f"answer number {i}") for i in range(count)))


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


# --- never overwrite an input --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["train.jsonl", "rejected.jsonl", "report.md", "dataset_version.json"])
def test_cli_refuses_an_output_folder_that_would_overwrite_the_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    raw = tmp_path / name
    text = examples(20) + "not json\n"
    raw.write_text(text, encoding="utf-8")
    code, err = cli(["clean", str(raw), "--out", str(tmp_path)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "overwrite its own input" in err and "Traceback" not in err
    assert raw.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing else was written


def test_an_output_reached_through_a_symlink_or_hard_link_is_the_input(tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw.jsonl"
    raw.parent.mkdir()
    raw.write_text(examples(20), encoding="utf-8")
    (tmp_path / "linked").symlink_to(raw.parent)
    os.link(raw, tmp_path / "hard.jsonl")
    for outputs in (
        dataclasses.replace(SplitPaths.in_directory(tmp_path / "out"), train=tmp_path / "linked" / "raw.jsonl"),
        dataclasses.replace(SplitPaths.in_directory(tmp_path / "out"), rejected=tmp_path / "hard.jsonl"),
    ):
        with pytest.raises(ConfigError, match="overwrite its own input"):
            clean_dataset(raw, outputs, CleanConfig())
    assert read_jsonl(raw) == read_jsonl(tmp_path / "hard.jsonl") and len(read_jsonl(raw)) == 20


def test_the_step_refuses_outputs_onto_its_input(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(examples(20), encoding="utf-8")
    outputs = output_artifacts(clean_data, tmp_path)
    outputs["train"].uri = str(raw.with_suffix(""))  # the step adds .jsonl: the train split would be the input
    with pytest.raises(ConfigError, match="overwrite its own input"):
        clean_data(raw_data=dsl.Dataset(uri=str(raw)), **outputs)
    assert len(read_jsonl(raw)) == 20


# --- output paths that cannot be used ------------------------------------------------------------


def test_cli_output_path_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(examples(20), encoding="utf-8")
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me", encoding="utf-8")
    code, err = cli(["clean", str(raw), "--out", str(taken)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"the output folder {taken} is a file" in err
    assert taken.read_text(encoding="utf-8") == "keep me"


def test_cli_output_folder_that_cannot_be_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(examples(20), encoding="utf-8")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    code, err = cli(["clean", str(raw), "--out", str(tmp_path / "file" / "sub")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "cannot be created" in err and "Traceback" not in err


def test_an_output_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(examples(20), encoding="utf-8")
    (tmp_path / "out" / "train.jsonl").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is a folder"):
        clean_dataset(raw, SplitPaths.in_directory(tmp_path / "out"), CleanConfig())


# --- CSV without a header row --------------------------------------------------------------------


@pytest.mark.parametrize("first_row", [
    "Where is my parcel? It has been two weeks.,shipping",
    "42,billing",
    "My card was charged twice for one order,billing",
])
def test_a_csv_without_a_header_row_is_refused_naming_the_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first_row: str
) -> None:
    raw = tmp_path / "raw.csv"
    raw.write_text(f"{first_row}\nRefund please,billing\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match="looks like data, not a header row") as error:
        run_clean(tmp_path, raw.read_bytes(), name="raw.csv")
    for column in ("input", "output", "prompt", "completion"):
        assert column in str(error.value)
    code, err = cli(["clean", str(raw), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and err.count("\n") == 1 and "add a header row" in err


def test_a_csv_header_with_known_or_plain_names_is_a_header(tmp_path: Path) -> None:
    report, _ = run_clean(tmp_path / "a", "Input,Output\nWhere is my parcel? It has been two weeks.,shipping\n",
                          name="raw.csv", min_split_examples=0)
    assert report.kept_rows == 1
    report, _ = run_clean(tmp_path / "b", "question,answer\nWhere is my parcel?,shipping\n", name="raw.csv")
    assert report.rejected_by_reason["unknown_format"] == 1  # unknown columns: every row says why


# --- splits too small to tune or evaluate --------------------------------------------------------


def test_three_examples_fail_the_step_naming_the_split_its_size_and_the_fix(tmp_path: Path) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(examples(3), encoding="utf-8")
    outputs = output_artifacts(clean_data, tmp_path)
    with pytest.raises(DatasetInvalidError) as error:
        clean_data(raw_data=dsl.Dataset(uri=str(raw)), **outputs)
    message = str(error.value)
    version = json.loads(Path(outputs["dataset_version"].path).read_text())  # the record is still written
    holdout = version["counts"]["holdout"]
    assert holdout < 2
    assert f"the holdout split has {holdout} example" in message and "holdout_fraction=0.1" in message
    assert "min_split_examples=2" in message and "add examples or change the fractions" in message
    assert "\n" not in message


def test_the_cli_fails_on_a_split_too_small_after_writing_what_it_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text(examples(3), encoding="utf-8")
    code, err = cli(["clean", str(raw), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and err.count("\n") == 1 and "split has" in err
    assert (tmp_path / "o" / "report.md").is_file()
    assert main(["clean", str(raw), "--out", str(tmp_path / "o"), "--min-split-examples", "0"]) == 0


def test_only_splits_with_a_fraction_are_checked(tmp_path: Path) -> None:
    report, _ = run_clean(tmp_path, examples(10), train_fraction=0.8, validation_fraction=0.2, holdout_fraction=0.0)
    assert report.holdout_rows == 0
    assert split_size_problems(report, CleanConfig(0.8, 0.2, 0.0)) == []
    problems = split_size_problems(report, CleanConfig(0.8, 0.2, 0.0, min_split_examples=3))
    assert len(problems) == 1 and problems[0].startswith("the validation split has 2 examples")
    assert split_size_problems(report, CleanConfig(0.8, 0.2, 0.0, min_split_examples=0)) == []
    assert split_size_problems(report, CleanConfig(0.8, 0.2, 0.0, min_split_examples=9))[0].startswith(
        "the train split has 8 examples")


# --- the edges of the settings -------------------------------------------------------------------


@pytest.mark.parametrize("fractions", [(1.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (1, 0, 0)])
def test_the_edge_fractions_zero_and_one_are_valid(tmp_path: Path, fractions: tuple[float, float, float]) -> None:
    config = CleanConfig(*fractions)
    report, _ = run_clean(tmp_path, examples(20), train_fraction=config.train_fraction,
                          validation_fraction=config.validation_fraction, holdout_fraction=config.holdout_fraction)
    assert [report.train_rows, report.validation_rows, report.holdout_rows] == [round(20 * f) for f in fractions]


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_min_split_examples_must_be_a_count(value: object) -> None:
    with pytest.raises(ConfigError, match="min_split_examples must be an integer >= 0"):
        CleanConfig(min_split_examples=value)  # type: ignore[arg-type]


def test_by_default_a_one_example_holdout_fails_and_a_two_example_one_passes(tmp_path: Path) -> None:
    one, _ = run_clean(tmp_path / "ten", examples(10))
    assert (one.validation_rows, one.holdout_rows) == (1, 1)
    assert [p.split(" has")[0] for p in split_size_problems(one, CleanConfig())] == [
        "the validation split", "the holdout split"]
    two, _ = run_clean(tmp_path / "twenty", examples(20))
    assert (two.validation_rows, two.holdout_rows) == (2, 2)
    assert split_size_problems(two, CleanConfig()) == []


def test_seed_zero_is_a_seed(tmp_path: Path) -> None:
    report, _ = run_clean(tmp_path, examples(20), seed=0)
    assert report.version.config["seed"] == 0


@pytest.mark.parametrize("settings", [
    {"seed": 0}, {"max_validation_examples": 1}, {"min_split_examples": 0}, {"min_response_chars": 0},
    {"train_fraction": 1, "validation_fraction": 0, "holdout_fraction": 0},
])
def test_the_smallest_valid_settings_are_accepted(settings: dict) -> None:
    config = CleanConfig(**settings)
    assert {name: getattr(config, name) for name in settings} == settings
