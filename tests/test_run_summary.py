"""run_summary.json's document: the gate, the numeric metrics, the costs and the tuning section."""

from __future__ import annotations

import pytest

from gemini_sft.run_summary import build_run_summary

DECISION = {"passed": False, "summary": "FAILED: min_improvement", "reasons": ["fail min_improvement: 0.01 < 0.05"]}
EVALUATION = {"metrics": {"tuned_rougeL": 0.61, "base_rougeL": 0.6, "note": "text"}, "generation": {"calls": 66}}
TUNING = {"backend": "vertex", "job": "jobs/1", "checkpoints": [], "chosen_checkpoint": None, "loss_curves": {}}


def test_the_summary_keeps_the_decision_numeric_metrics_costs_and_tuning() -> None:
    summary = build_run_summary(
        DECISION, EVALUATION, {"estimated_cost_usd": 1.5, "actual_cost_usd": 1.25, "billable_tokens": 1000},
        {"planned_calls": 150, "calls": 150, "attempts": 152, "validation_examples": 50, "tuning": TUNING},
    )
    assert summary["gate"] == {"passed": False, "summary": DECISION["summary"], "reasons": DECISION["reasons"]}
    assert summary["metrics"] == {"tuned_rougeL": 0.61, "base_rougeL": 0.6}
    assert summary["costs"]["estimated_tuning_usd"] == 1.5 and summary["costs"]["actual_tuning_usd"] == 1.25
    assert summary["costs"]["checkpoint_selection"]["attempts"] == 152
    assert summary["costs"]["evaluation_calls"] == 66
    assert summary["tuning"] == {**TUNING, "truncated_examples": []}


def test_an_unknown_actual_cost_stays_unknown() -> None:
    summary = build_run_summary(DECISION, EVALUATION, {"estimated_cost_usd": 1.5, "actual_cost_usd": None}, {})
    assert summary["costs"]["actual_tuning_usd"] is None
    assert summary["costs"]["checkpoint_selection"]["calls"] == 0 and summary["tuning"] == {"truncated_examples": []}


def test_selection_and_evaluation_show_estimate_and_actual_priced_alike() -> None:
    evaluation = {
        "metrics": {"base_input_tokens": 1000.0, "base_output_tokens": 200.0, "base_thinking_tokens": 0.0,
                    "tuned_input_tokens": 1000.0, "tuned_output_tokens": 150.0, "tuned_thinking_tokens": 50.0},
        "models": {"base": "gemini-2.5-flash", "tuned": "endpoints/1"},
        "generation": {"calls": 66, "elapsed_seconds": 2.0},
    }
    choice = {"calls": 99, "input_tokens": 3000, "output_tokens": 500, "thinking_tokens": 100,
              "elapsed_seconds": 3.0, "base_model": "gemini-2.5-flash"}
    estimate = {"checkpoint_selection": {"calls": 99, "cost_usd": 0.01}, "holdout_evaluation": {"calls": 66},
                "total_usd": 0.6}
    costs = build_run_summary(DECISION, evaluation, {}, choice, {"costs": estimate})["costs"]
    selection, holdout = costs["checkpoint_selection"], costs["holdout_evaluation"]
    assert selection["estimate"] == estimate["checkpoint_selection"] and holdout["estimate"]["calls"] == 66
    assert selection["actual"]["output_tokens"] == 600  # thinking billed as output
    assert holdout["actual"]["input_tokens"] == 2000 and holdout["actual"]["output_tokens"] == 400
    price_in = selection["actual"]["input_price_per_million_usd"]
    price_out = selection["actual"]["output_price_per_million_usd"]
    assert selection["actual"]["cost_usd"] == pytest.approx((3000 * price_in + 600 * price_out) / 1e6)
    relative = selection["relative_to_holdout_evaluation"]
    assert relative["calls"] == 1.5 and relative["seconds"] == 1.5 and relative["tokens"] == round(3600 / 2400, 4)
    assert relative["usd"] == round(selection["actual"]["cost_usd"] / holdout["actual"]["cost_usd"], 4)
    assert costs["estimated_total_usd"] == 0.6


def test_without_the_estimate_the_actuals_still_show() -> None:
    costs = build_run_summary(DECISION, EVALUATION, {}, {"calls": 10})["costs"]
    assert costs["checkpoint_selection"]["estimate"] is None and costs["estimated_total_usd"] is None
    assert costs["checkpoint_selection"]["actual"]["calls"] == 10


def test_truncated_examples_name_their_file_line_reason_and_fix() -> None:
    named = {"index": 4, "reason": "too long", "training_line": 4, "source_line": 9, "source": "gs://b/raw.jsonl",
             "line": 9, "in_raw_file": True, "fix": "Shorten the example"}
    summary = build_run_summary(DECISION, EVALUATION, {"truncated_examples": [named]}, {"tuning": TUNING})
    assert summary["tuning"]["truncated_examples"] == [{"split_index": 4, "source": "gs://b/raw.jsonl", "line": 9,
                                                        "in_raw_file": True, "reason": "too long",
                                                        "fix": "Shorten the example"}]
