"""run_summary.json's document: the gate, the numeric metrics, the costs and the tuning section."""

from __future__ import annotations

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
    assert summary["tuning"] == TUNING


def test_an_unknown_actual_cost_stays_unknown() -> None:
    summary = build_run_summary(DECISION, EVALUATION, {"estimated_cost_usd": 1.5, "actual_cost_usd": None}, {})
    assert summary["costs"]["actual_tuning_usd"] is None
    assert summary["costs"]["checkpoint_selection"]["calls"] == 0 and summary["tuning"] == {}
