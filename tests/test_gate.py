"""The promotion gate: every rule, every edge, fail closed."""

from __future__ import annotations

import json
import math

import pytest

from gemini_sft.errors import GateError
from gemini_sft.gate import GatePolicy, decide_gate, decision_markdown


def metrics(**overrides: float | None) -> dict[str, float | None]:
    """A healthy evaluation: tuned clearly above base, no errors, no champion."""
    values: dict[str, float | None] = {
        "n_examples": 100.0,
        "base_rougeL": 0.40,
        "tuned_rougeL": 0.60,
        "delta_rougeL": 0.20,
        "delta_rougeL_ci_low": 0.15,
        "delta_rougeL_ci_high": 0.25,
        "base_error_rate": 0.0,
        "tuned_error_rate": 0.0,
    }
    for key, value in overrides.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return values


def check(decision, name):
    matches = [c for c in decision.checks if c.name == name]
    assert len(matches) == 1, f"expected one {name} check, got {decision.checks}"
    return matches[0]


def test_healthy_model_passes_with_every_reason_listed():
    decision = decide_gate(metrics(), GatePolicy(min_score=0.5, min_improvement=0.1, require_significant=True))
    assert decision.passed
    names = [c.name for c in decision.checks]
    assert names == [
        "examples", "min_score", "min_improvement", "significance", "champion_regression",
        "error_rate_base", "error_rate_tuned",
    ]
    assert len(decision.reasons) == len(decision.checks)
    assert all(r.startswith("pass ") for r in decision.reasons)
    assert decision.summary.startswith("PASSED")


# --- min_score ------------------------------------------------------------------


def test_min_score_fails_below_and_passes_at_exact_threshold():
    assert not check(decide_gate(metrics(tuned_rougeL=0.49), GatePolicy(min_score=0.5)), "min_score").passed
    exact = decide_gate(metrics(tuned_rougeL=0.5), GatePolicy(min_score=0.5))
    assert check(exact, "min_score").passed
    assert exact.passed


def test_failed_check_makes_the_decision_fail_and_is_named_in_summary():
    decision = decide_gate(metrics(tuned_rougeL=0.3), GatePolicy(min_score=0.5))
    assert not decision.passed
    assert "min_score" in decision.summary and decision.summary.startswith("FAILED")
    assert any(r.startswith("FAIL min_score") for r in decision.reasons)


# --- improvement ----------------------------------------------------------------


def test_absolute_improvement_threshold_and_equality():
    policy = GatePolicy(min_improvement=0.2)
    assert check(decide_gate(metrics(delta_rougeL=0.2), policy), "min_improvement").passed
    assert not check(decide_gate(metrics(delta_rougeL=0.19), policy), "min_improvement").passed


def test_default_policy_rejects_a_regression_against_base():
    decision = decide_gate(metrics(tuned_rougeL=0.35, delta_rougeL=-0.05), GatePolicy())
    assert not check(decision, "min_improvement").passed
    assert not decision.passed


def test_relative_improvement_uses_base_score():
    policy = GatePolicy(min_improvement=0.5, improvement_mode="relative")
    passing = decide_gate(metrics(base_rougeL=0.4, delta_rougeL=0.2), policy)  # +50% exactly
    assert check(passing, "min_improvement").passed
    assert check(passing, "min_improvement").observed == pytest.approx(0.5)
    failing = decide_gate(metrics(base_rougeL=0.4, delta_rougeL=0.19), policy)
    assert not check(failing, "min_improvement").passed


def test_relative_improvement_with_zero_base_fails_closed():
    decision = decide_gate(
        metrics(base_rougeL=0.0, delta_rougeL=0.6, tuned_rougeL=0.6),
        GatePolicy(improvement_mode="relative"),
    )
    c = check(decision, "min_improvement")
    assert not c.passed and "undefined" in c.message and "absolute" in c.message
    assert not decision.passed


def test_relative_improvement_needs_the_base_metric():
    decision = decide_gate(metrics(base_rougeL=None), GatePolicy(improvement_mode="relative"))
    assert not check(decision, "min_improvement").passed
    assert "base_rougeL is missing" in check(decision, "min_improvement").message


# --- significance ---------------------------------------------------------------


def test_significance_requires_ci_low_strictly_above_zero():
    policy = GatePolicy(require_significant=True)
    assert check(decide_gate(metrics(delta_rougeL_ci_low=0.001), policy), "significance").passed
    at_zero = decide_gate(metrics(delta_rougeL_ci_low=0.0), policy)
    assert not check(at_zero, "significance").passed
    assert not at_zero.passed


def test_significance_not_checked_unless_required():
    decision = decide_gate(metrics(delta_rougeL_ci_low=-0.1), GatePolicy())
    assert "significance" not in [c.name for c in decision.checks]
    assert decision.passed


def test_significance_with_missing_interval_fails_closed():
    decision = decide_gate(metrics(delta_rougeL_ci_low=None), GatePolicy(require_significant=True))
    assert not check(decision, "significance").passed


# --- champion -------------------------------------------------------------------


def test_missing_champion_skips_the_regression_check_and_says_so():
    decision = decide_gate(metrics(), GatePolicy(max_champion_regression=0.0))
    c = check(decision, "champion_regression")
    assert c.passed and "no champion" in c.message
    assert "error_rate_champion" not in [x.name for x in decision.checks]


def test_champion_regression_edges():
    policy = GatePolicy(max_champion_regression=0.25)
    within = decide_gate(metrics(champion_rougeL=0.75, champion_error_rate=0.0), policy)  # 0.60 - 0.75 = -0.15
    assert check(within, "champion_regression").passed
    at_edge = decide_gate(metrics(tuned_rougeL=0.5, champion_rougeL=0.75, champion_error_rate=0.0), policy)
    assert check(at_edge, "champion_regression").observed == pytest.approx(-0.25)
    assert check(at_edge, "champion_regression").passed
    beyond = decide_gate(metrics(tuned_rougeL=0.5, champion_rougeL=0.76, champion_error_rate=0.0), policy)
    assert not check(beyond, "champion_regression").passed
    assert not beyond.passed


def test_zero_tolerance_means_tuned_must_match_or_beat_champion():
    policy = GatePolicy()
    assert check(decide_gate(metrics(champion_rougeL=0.60, champion_error_rate=0.0), policy), "champion_regression").passed
    assert not check(decide_gate(metrics(champion_rougeL=0.61, champion_error_rate=0.0), policy), "champion_regression").passed


def test_champion_metric_nan_fails_closed_and_champion_error_rate_is_gated():
    decision = decide_gate(metrics(champion_rougeL=math.nan, champion_error_rate=0.0), GatePolicy())
    assert not check(decision, "champion_regression").passed
    high_errors = decide_gate(metrics(champion_rougeL=0.5, champion_error_rate=0.5), GatePolicy(max_error_rate=0.1))
    assert not check(high_errors, "error_rate_champion").passed


def test_champion_with_missing_score_but_present_error_rate_fails_closed():
    decision = decide_gate(metrics(champion_error_rate=0.0), GatePolicy())
    c = check(decision, "champion_regression")
    assert not c.passed and "champion_rougeL is missing" in c.message


# --- error rates ----------------------------------------------------------------


def test_error_rate_exactly_at_max_passes_and_above_fails():
    policy = GatePolicy(max_error_rate=0.05)
    assert decide_gate(metrics(tuned_error_rate=0.05), policy).passed
    above = decide_gate(metrics(tuned_error_rate=0.0501), policy)
    assert not check(above, "error_rate_tuned").passed and not above.passed


def test_base_error_rate_is_gated_too():
    decision = decide_gate(metrics(base_error_rate=0.2), GatePolicy(max_error_rate=0.1))
    assert not check(decision, "error_rate_base").passed


# --- fail closed ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, None, "0.5"])
@pytest.mark.parametrize("key", ["tuned_rougeL", "delta_rougeL", "tuned_error_rate", "base_error_rate", "n_examples"])
def test_missing_nan_or_infinite_metrics_fail_with_a_reason(key, bad):
    values = metrics()
    if bad is None:
        values.pop(key)
    else:
        values[key] = bad
    decision = decide_gate(values, GatePolicy())
    assert not decision.passed
    failing = [c for c in decision.checks if not c.passed]
    assert failing and all("failing closed" in c.message for c in failing)
    assert any(key in c.message for c in failing)


def test_zero_examples_fail():
    decision = decide_gate(metrics(n_examples=0.0), GatePolicy())
    assert not check(decision, "examples").passed


def test_empty_metrics_fail():
    decision = decide_gate({}, GatePolicy())
    assert not decision.passed
    assert len([c for c in decision.checks if not c.passed]) >= 4


def test_primary_metric_selects_the_metric_checked():
    values = metrics(tuned_label_accuracy=0.9, base_label_accuracy=0.5, delta_label_accuracy=0.4)
    decision = decide_gate(values, GatePolicy(primary_metric="label_accuracy", min_score=0.85))
    assert decision.passed
    assert check(decision, "min_score").observed == pytest.approx(0.9)
    missing = decide_gate(metrics(), GatePolicy(primary_metric="label_macro_f1"))
    assert not missing.passed


# --- policy validation ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"primary_metric": "rougel"},
        {"primary_metric": ""},
        {"improvement_mode": "percent"},
        {"min_score": math.nan},
        {"min_improvement": math.inf},
        {"max_champion_regression": -0.1},
        {"max_error_rate": 1.5},
        {"max_error_rate": -0.01},
        {"require_significant": "yes"},
    ],
)
def test_invalid_policy_raises_gate_error(kwargs):
    with pytest.raises(GateError):
        GatePolicy(**kwargs)


def test_decision_document_is_strict_json_and_markdown_lists_checks():
    policy = GatePolicy(require_significant=True)
    values = metrics(delta_rougeL_ci_low=math.nan)
    decision = decide_gate(values, policy)
    document = decision.to_document(policy, values)
    text = json.dumps(document, allow_nan=False)
    parsed = json.loads(text)
    assert parsed["passed"] is False
    assert parsed["metrics"]["delta_rougeL_ci_low"] is None
    assert parsed["policy"]["require_significant"] is True
    assert len(parsed["checks"]) == len(decision.checks)
    page = decision_markdown(decision, policy)
    assert "FAILED" in page
    for c in decision.checks:
        assert f"| {c.name} |" in page
