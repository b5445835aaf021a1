"""The stage's one result record (ValidationOutcome) and its settings record, shared by the component and the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.contracts import add_cli_options, record_from_cli
from gemini_sft.errors import BudgetExceededError, ConfigError, DatasetInvalidError
from gemini_sft.examples import make_example
from gemini_sft.validate import ValidationOutcome, ValidationSettings, split_if_present, validate_splits

CLI_KEYS = ["valid", "examples", "errors", "warnings", "token_stats", "estimated_cost_usd"]


def write(path: Path, n: int, bad_last: bool = False) -> Path:
    lines = [json.dumps(make_example(f"question {i}", f"answer {i}", "Be brief.")) for i in range(n)]
    if bad_last:
        lines[-1] = json.dumps({"contents": [{"role": "user", "parts": [{"text": "q"}]}]})
    path.write_text("".join(item + "\n" for item in lines), encoding="utf-8")
    return path


def outcome(tmp_path: Path, budget_usd: float | None = None, bad_validation: bool = False,
            **settings: object) -> ValidationOutcome:
    train = write(tmp_path / "train.jsonl", 120)
    validation = write(tmp_path / "validation.jsonl", 10, bad_last=bad_validation)
    return validate_splits(train, validation, ValidationSettings(**settings), budget_usd)


def test_cli_json_keeps_the_documented_keys_and_adds_the_validation_report(tmp_path: Path) -> None:
    result = outcome(tmp_path, bad_validation=True)
    document = result.to_json()
    assert list(document) == CLI_KEYS + ["validation", "costs", "within_budget"]
    assert document["valid"] is False  # the validation split is invalid, the training split is not
    assert document["errors"] == [] and document["examples"] == 120
    assert document["validation"]["valid"] is False and document["validation"]["errors"][0]["line"] == 10
    assert document["estimated_cost_usd"] == round(result.train.estimated_cost_usd, 6)


def test_result_artifact_and_cli_json_come_from_the_same_reports(tmp_path: Path) -> None:
    result = outcome(tmp_path, budget_usd=50.0, epochs=2)
    artifact = result.to_result_json()
    assert artifact["train"] == result.train.to_json_dict()
    assert artifact["validation"] == result.to_json()["validation"]
    assert (artifact["valid"], artifact["within_budget"], artifact["max_budget_usd"]) == (True, True, 50.0)
    assert artifact["epochs"] == 2 and artifact["billable_tokens"] == result.train.billable_tokens


def test_metrics_count_both_splits(tmp_path: Path) -> None:
    result = outcome(tmp_path, bad_validation=True)
    metrics = result.metrics()
    assert (metrics["train_examples"], metrics["validation_examples"], metrics["errors"]) == (120, 10, 1)
    assert metrics["tokens_total"] == result.train.token_stats.total
    assert metrics["billable_tokens"] == result.train.billable_tokens


def test_budget_decision(tmp_path: Path) -> None:
    over = outcome(tmp_path, budget_usd=1e-9)
    assert over.valid and not over.within_budget
    assert "above the budget" in over.over_budget_message()
    assert "**over budget, tuning stopped.**" in over.to_markdown()
    with pytest.raises(BudgetExceededError):
        over.raise_if_failed()
    unbounded = outcome(tmp_path, budget_usd=None)
    assert unbounded.within_budget and unbounded.over_budget_message() == ""
    assert "(no budget set): within budget." in unbounded.to_markdown()
    unbounded.raise_if_failed()


def test_invalid_data_fails_before_the_budget_is_looked_at(tmp_path: Path) -> None:
    with pytest.raises(DatasetInvalidError, match="validation.jsonl"):
        outcome(tmp_path, budget_usd=1e-9, bad_validation=True).raise_if_failed()


def test_settings_budget_zero_or_less_disables_the_guard() -> None:
    assert ValidationSettings(max_budget_usd=0.0).budget_usd is None
    assert ValidationSettings(max_budget_usd=-1.0).budget_usd is None
    assert ValidationSettings(max_budget_usd=5.0).budget_usd == 5.0


def test_settings_reject_a_bad_model_or_epochs() -> None:
    with pytest.raises(ConfigError, match="epochs"):
        ValidationSettings(epochs=0)
    with pytest.raises(ConfigError):
        ValidationSettings(base_model="gemini-1.0-pro")


def test_no_project_or_api_turned_off_counts_offline() -> None:
    assert ValidationSettings().token_counter() is None
    assert ValidationSettings(project="p", count_tokens_with_api=False).token_counter() is None
    assert ValidationSettings(project="p", api_endpoint="http://127.0.0.1:9").token_counter() is not None


def test_an_empty_or_absent_split_is_no_split(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert split_if_present(tmp_path / "empty.jsonl") is None
    assert split_if_present(tmp_path / "absent.jsonl") is None
    assert split_if_present(write(tmp_path / "v.jsonl", 1)) == tmp_path / "v.jsonl"


def test_cli_options_come_from_the_settings_record() -> None:
    parser = argparse.ArgumentParser()
    add_cli_options(parser, ValidationSettings)
    args = parser.parse_args(["--base-model", "gemini-2.5-pro", "--epochs", "5", "--no-count-tokens-with-api"])
    settings = record_from_cli(ValidationSettings, args)
    assert (settings.base_model, settings.epochs, settings.count_tokens_with_api) == ("gemini-2.5-pro", 5, False)
    assert settings.max_budget_usd == 100.0  # not a CLI option: the CLI has its own --max-budget-usd


def test_cli_accepts_the_former_option_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = str(write(tmp_path / "train.jsonl", 120))
    assert main(["validate", train, "--json", "--model", "gemini-2.5-pro", "--region", "europe-west4",
                 "--price-per-million-usd", "2"]) == 0
    by_alias = json.loads(capsys.readouterr().out)
    assert main(["validate", train, "--json", "--base-model", "gemini-2.5-pro", "--location", "europe-west4",
                 "--price-per-million-tokens-usd", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == by_alias
    expected = (by_alias["token_stats"]["total"] + 8 * 120) * 3 * 2.0 / 1e6
    assert by_alias["estimated_cost_usd"] == pytest.approx(expected)


def splits(tmp_path: Path, validation_examples: int = 60, holdout_examples: int = 40) -> tuple[Path, Path, Path]:
    return (write(tmp_path / "train.jsonl", 120), write(tmp_path / "validation.jsonl", validation_examples),
            write(tmp_path / "holdout.jsonl", holdout_examples))


def serving_outcome(tmp_path: Path, budget_usd: float | None = None, validation_examples: int = 60,
                    holdout_examples: int = 40, **settings: object) -> ValidationOutcome:
    train, validation, holdout = splits(tmp_path, validation_examples, holdout_examples)
    return validate_splits(train, validation, ValidationSettings(**settings), budget_usd, holdout=holdout)


def test_the_estimate_prices_checkpoint_selection_and_holdout_evaluation_apart(tmp_path: Path) -> None:
    result = serving_outcome(tmp_path)
    selection, evaluation = result.serving.selection, result.serving.evaluation
    # 3 epochs = 3 checkpoints; the default sample (50) is cut to 1.5 x 80 evaluation calls / 3 = 40
    assert (result.serving.checkpoints, result.serving.sample_size) == (3, 40)
    assert selection.calls == 120 and evaluation.calls == 80
    assert selection.cost_usd > 0 and evaluation.cost_usd > 0
    assert result.estimated_total_usd == pytest.approx(result.estimated_cost_usd + selection.cost_usd
                                                       + evaluation.cost_usd)
    costs = result.to_result_json()["costs"]
    assert costs["checkpoint_selection"]["calls"] == 120 and costs["holdout_evaluation"]["calls"] == 80
    assert costs["selection_to_evaluation_calls"] == 1.5
    metrics = result.metrics()
    assert metrics["checkpoint_selection_calls"] == 120 and metrics["holdout_evaluation_calls"] == 80
    assert metrics["estimated_total_cost_usd"] == round(result.estimated_total_usd, 4)
    markdown = result.to_markdown()
    assert "| Checkpoint selection |" in markdown and "| Holdout evaluation |" in markdown
    assert "3 checkpoints x 40 of 60 validation examples" in markdown


def test_the_selection_estimate_grows_with_epochs_up_to_ten_checkpoints(tmp_path: Path) -> None:
    no_cap = {"checkpoint_selection_cost_ratio": 0.0}
    calls = {epochs: serving_outcome(tmp_path, epochs=epochs, **no_cap).serving.selection for epochs in (2, 4, 10, 12)}
    assert [calls[e].calls for e in (2, 4, 10, 12)] == [100, 200, 500, 500]  # 50 examples each, at most 10 checkpoints
    assert calls[2].cost_usd < calls[4].cost_usd < calls[10].cost_usd == calls[12].cost_usd


def test_the_selection_estimate_grows_with_the_sample_size_bounded_by_the_split(tmp_path: Path) -> None:
    no_cap = {"checkpoint_selection_cost_ratio": 0.0}
    lines = [serving_outcome(tmp_path, checkpoint_validation_examples=n, **no_cap).serving.selection
             for n in (10, 30, 500)]
    assert [line.calls for line in lines] == [30, 90, 180]  # 3 checkpoints x (10, 30, all 60)
    assert lines[0].cost_usd < lines[1].cost_usd < lines[2].cost_usd


def test_no_selection_calls_without_intermediate_checkpoints_or_with_a_rule_that_makes_none(tmp_path: Path) -> None:
    assert serving_outcome(tmp_path, export_last_checkpoint_only=True).serving.selection.calls == 0
    assert serving_outcome(tmp_path, checkpoint_selection_rule="lowest_eval_loss").serving.selection.calls == 0
    assert serving_outcome(tmp_path, epochs=1).serving.selection.calls == 0
    assert serving_outcome(tmp_path).serving.selection.calls > 0


def test_without_a_holdout_the_evaluation_is_not_estimated_and_says_so(tmp_path: Path) -> None:
    train, validation, _ = splits(tmp_path)
    result = validate_splits(train, validation, ValidationSettings(), None)
    assert result.serving.evaluation is None and result.serving.selection.calls == 150  # 3 x 50, no ratio bound
    assert "not estimated: no holdout split given" in result.to_text()


def test_the_budget_guard_refuses_a_run_the_selection_pushes_over_and_names_the_setting(tmp_path: Path) -> None:
    result = serving_outcome(tmp_path, checkpoint_selection_cost_ratio=0.0, checkpoint_validation_examples=0)
    selection = result.serving.selection.cost_usd
    budget = result.estimated_cost_usd + result.serving.evaluation.cost_usd + selection / 2
    over = serving_outcome(tmp_path, budget, checkpoint_selection_cost_ratio=0.0, checkpoint_validation_examples=0)
    assert result.estimated_cost_usd < budget and not over.within_budget
    with pytest.raises(BudgetExceededError, match="checkpoint selection") as refused:
        over.raise_if_failed()
    assert "checkpoint_validation_examples" in str(refused.value)
    assert "checkpoint_selection_rule=lowest_eval_loss" in str(refused.value)
    serving_outcome(tmp_path, budget, checkpoint_selection_rule="lowest_eval_loss").raise_if_failed()


def test_cli_prints_every_line_of_the_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, validation, holdout = splits(tmp_path)
    assert main(["validate", str(train), str(validation), "--holdout", str(holdout),
                 "--checkpoint-validation-examples", "20"]) == 0
    out = capsys.readouterr().out
    assert "Checkpoint selection" in out and "60 calls" in out and "3 checkpoints x 20 of 60" in out
    assert "Holdout evaluation" in out and "80 calls" in out
