"""On the shipped sample with default settings: every checkpoint answers validation, the best (not the last) is
chosen, only it faces the holdout, and run_summary.json says so."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gemini_sft.local_run import LocalRunResult, run_local
from gemini_sft.standin import VertexStandIn

pytestmark = pytest.mark.e2e


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, module_standin: VertexStandIn) -> LocalRunResult:
    return run_local(output_dir=tmp_path_factory.mktemp("choice"), standin=module_standin)


@pytest.fixture(scope="module")
def summary(run: LocalRunResult) -> dict[str, Any]:
    return _read_json(run.output_dir / "run_summary.json")


def test_every_checkpoint_is_scored_and_the_chosen_one_is_not_the_last(summary: dict[str, Any]) -> None:
    tuning = summary["tuning"]
    checkpoints = tuning["checkpoints"]
    assert len(checkpoints) >= 3
    assert all(isinstance(c["validation_score"], float) for c in checkpoints)
    assert all(c["train_loss"] is not None and c["eval_loss"] is not None for c in checkpoints)
    chosen = tuning["chosen_checkpoint"]
    assert chosen["rule"] == "best_validation_metric"
    assert chosen["epoch"] < max(c["epoch"] for c in checkpoints)
    best = max(checkpoints, key=lambda c: c["validation_score"])
    assert chosen["checkpoint_id"] == best["checkpoint_id"]
    assert tuning["loss_curves"]["train"] and tuning["loss_curves"]["eval"]


def test_only_the_chosen_checkpoint_faces_the_holdout(run: LocalRunResult, summary: dict[str, Any]) -> None:
    chosen = summary["tuning"]["chosen_checkpoint"]["endpoint"]
    evaluation = _read_json(run.run_dir / "evaluate-models" / "evaluation")
    assert evaluation["models"]["tuned"]["model"] == chosen
    choice = _read_json(run.output_dir / "checkpoint_choice.json")
    requests = [json.loads(line) for line in (run.output_dir / "standin_requests.jsonl").read_text().splitlines()]
    calls = Counter(r["path"].split(":generateContent")[0].lstrip("/").removeprefix("v1/")
                    for r in requests if ":generateContent" in r["path"])
    sample = choice["validation_examples"]
    holdout = evaluation["n_examples"]
    for checkpoint in summary["tuning"]["checkpoints"]:
        expected = sample + holdout if checkpoint["endpoint"] == chosen else sample
        assert calls[checkpoint["endpoint"]] == expected


def test_the_summary_holds_the_gate_decision_metrics_and_costs(run: LocalRunResult, summary: dict[str, Any]) -> None:
    assert summary["gate"]["passed"] is run.gate_passed
    assert summary["gate"]["reasons"] == run.gate_reasons
    assert summary["metrics"]["tuned_rougeL"] == pytest.approx(run.metrics["tuned_rougeL"])
    costs = summary["costs"]
    assert costs["estimated_tuning_usd"] is not None and costs["actual_tuning_usd"] is not None
    selection = costs["checkpoint_selection"]
    assert selection["calls"] == selection["planned_calls"] == selection["validation_examples"] * len(
        summary["tuning"]["checkpoints"])


def test_rule_last_turns_the_choice_off(tmp_path: Path, module_standin: VertexStandIn) -> None:
    result = run_local(output_dir=tmp_path / "last", standin=module_standin,
                       parameters={"checkpoint_selection_rule": "last"})
    tuning = _read_json(result.output_dir / "run_summary.json")["tuning"]
    last = max(tuning["checkpoints"], key=lambda c: c["epoch"])
    assert tuning["chosen_checkpoint"]["checkpoint_id"] == last["checkpoint_id"]
    assert _read_json(result.output_dir / "run_summary.json")["costs"]["checkpoint_selection"]["calls"] == 0


def test_the_html_report_shows_why_that_checkpoint_was_chosen(run: LocalRunResult, summary: dict[str, Any]) -> None:
    page = (run.output_dir / "evaluation_report.html").read_text(encoding="utf-8")
    assert "Which checkpoint" in page and summary["tuning"]["chosen_checkpoint"]["reason"] in page
    assert page.count("<polyline") >= 2  # train and eval loss


def test_the_run_folder_summary_names_the_chosen_checkpoint(run: LocalRunResult, summary: dict[str, Any]) -> None:
    from gemini_sft.local_run import format_result

    reason = summary["tuning"]["chosen_checkpoint"]["reason"]
    assert reason in (run.output_dir / "SUMMARY.md").read_text(encoding="utf-8")
    assert reason in format_result(run)


def test_selection_costs_at_most_one_and_a_half_holdout_evaluations_by_default(
        run: LocalRunResult, summary: dict[str, Any]) -> None:
    from gemini_sft.local_run import format_result

    selection = summary["costs"]["checkpoint_selection"]
    relative = selection["relative_to_holdout_evaluation"]
    assert 0 < relative["calls"] <= 1.5 and relative["usd"] is not None and relative["usd"] <= 1.5
    assert selection["estimate"]["calls"] == selection["actual"]["calls"] == selection["calls"]
    evaluation = summary["costs"]["holdout_evaluation"]
    assert evaluation["estimate"]["calls"] == evaluation["actual"]["calls"] == summary["costs"]["evaluation_calls"]
    assert selection["actual"]["cost_usd"] > 0 and evaluation["actual"]["cost_usd"] > 0
    assert f"{relative['calls']:.2f}x the holdout evaluation's calls" in format_result(run)


def test_the_markdown_report_has_the_checkpoint_section(run: LocalRunResult, summary: dict[str, Any]) -> None:
    text = (run.output_dir / "evaluation_report.md").read_text(encoding="utf-8")
    chosen = summary["tuning"]["chosen_checkpoint"]
    assert "## Which checkpoint" in text and "**chosen**" in text
    chosen_row = next(line for line in text.splitlines() if line.endswith("| **chosen** |"))
    assert chosen_row.startswith(f"| {chosen['checkpoint_id']} | {chosen['epoch']} |")
    assert "validation examples" in text
