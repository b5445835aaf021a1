"""The promotion gate: every rule, every edge, fail closed."""

from __future__ import annotations

import json
import math

import pytest

from gemini_sft.errors import GateError
from gemini_sft.gate import GatePolicy, decide_gate, decision_markdown, read_evaluation_metrics, write_decision


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


# --- what people read: the decision document and the Markdown page ----------------


def test_decision_document_keeps_every_finite_metric_and_check_value():
    policy = GatePolicy(min_score=0.5)
    values = metrics(champion_rougeL=0.55, champion_error_rate=0.01)
    decision = decide_gate(values, policy)
    document = json.loads(json.dumps(decision.to_document(policy, values), allow_nan=False))
    assert document["metrics"] == values  # every value as given, none turned into null
    assert document["passed"] is True and document["summary"] == decision.summary
    assert document["reasons"] == decision.reasons
    by_name = {c["name"]: c for c in document["checks"]}
    assert by_name["min_score"] == {
        "name": "min_score", "passed": True, "observed": 0.6, "threshold": 0.5, "message": check(decision, "min_score").message,
    }
    assert by_name["champion_regression"]["observed"] == pytest.approx(0.05)
    assert document["policy"] == {
        "primary_metric": "rougeL", "min_score": 0.5, "min_improvement": 0.0, "improvement_mode": "absolute",
        "require_significant": False, "max_champion_regression": 0.0, "max_error_rate": 0.05,
    }


def test_decision_document_writes_only_non_finite_numbers_as_null():
    values = metrics(delta_rougeL_ci_high=math.inf, base_rougeL=math.nan)
    document = decide_gate(values, GatePolicy()).to_document(GatePolicy(), values)
    assert document["metrics"]["delta_rougeL_ci_high"] is None and document["metrics"]["base_rougeL"] is None
    assert document["metrics"]["tuned_rougeL"] == 0.6 and document["metrics"]["n_examples"] == 100.0


def test_markdown_row_of_each_check_shows_its_own_result():
    policy = GatePolicy(min_score=0.7)
    decision = decide_gate(metrics(tuned_error_rate=0.2), policy)
    page = decision_markdown(decision, policy)
    assert page.startswith("# Promotion gate: FAILED")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in page.splitlines() if line.startswith("| ")}
    for c in decision.checks:
        assert (" | pass | " in rows[c.name]) == c.passed, rows[c.name]
        assert (" | **FAIL** | " in rows[c.name]) == (not c.passed), rows[c.name]
    assert not check(decision, "min_score").passed and not check(decision, "error_rate_tuned").passed
    assert "| min_score | **FAIL** | 0.6 | 0.7 |" in page
    assert "| champion_regression | pass | n/a | n/a |" in page
    assert "- `max_error_rate`: 0.05" in page


def test_markdown_of_a_passing_decision_says_passed_and_escapes_pipes():
    policy = GatePolicy()
    decision = decide_gate(metrics(), policy)
    page = decision_markdown(decision, policy)
    assert page.startswith("# Promotion gate: PASSED") and "**FAIL**" not in page
    assert "Primary metric: `rougeL`." in page
    failing = decide_gate(metrics(tuned_rougeL="a|b"), policy)
    assert "a\\|b" in decision_markdown(failing, policy)


def test_summary_lists_failing_reasons_only_when_failed_and_every_reason_when_passed():
    passed = decide_gate(metrics(), GatePolicy())
    assert passed.summary == "PASSED: " + "; ".join(c.message for c in passed.checks)
    failed = decide_gate(metrics(tuned_error_rate=0.5, delta_rougeL=-0.1), GatePolicy())
    failing = [c.message for c in failed.checks if not c.passed]
    assert len(failing) == 2
    assert failed.summary == "FAILED: " + "; ".join(failing)
    assert failed.reasons == [("pass " if c.passed else "FAIL ") + c.message for c in failed.checks]


def test_messages_state_the_comparison_both_ways():
    policy = GatePolicy(min_score=0.5, min_improvement=0.1, require_significant=True, max_error_rate=0.1)
    good = decide_gate(metrics(), policy)
    assert check(good, "min_score").message == "min_score: tuned rougeL 0.6 >= minimum 0.5"
    assert check(good, "min_improvement").message == "min_improvement: tuned - base rougeL = 0.2 >= required 0.1"
    assert check(good, "significance").message.endswith("is 0.15 > 0")
    assert check(good, "error_rate_tuned").message == "error_rate_tuned: tuned model failed 0.00% of calls <= maximum 10.00%"
    assert check(good, "examples").message == "examples: 100 holdout examples evaluated"
    bad = decide_gate(metrics(tuned_rougeL=0.4, delta_rougeL=0.0, delta_rougeL_ci_low=-0.01, tuned_error_rate=0.2,
                              n_examples=0.0), policy)
    assert check(bad, "min_score").message == "min_score: tuned rougeL 0.4 < minimum 0.5"
    assert check(bad, "min_improvement").message == "min_improvement: tuned - base rougeL = 0 < required 0.1"
    assert check(bad, "significance").message.endswith("is -0.01 <= 0 (improvement not significant)")
    assert check(bad, "error_rate_tuned").message == "error_rate_tuned: tuned model failed 20.00% of calls > maximum 10.00%"
    assert check(bad, "examples").message == "examples: 0 holdout examples evaluated (none)"
    relative = GatePolicy(min_improvement=0.6, improvement_mode="relative")
    assert check(decide_gate(metrics(), relative), "min_improvement").message == (
        "min_improvement: relative gain in rougeL +50.00% < required +60.00%"
    )
    champion = decide_gate(metrics(champion_rougeL=0.7, champion_error_rate=0.0), GatePolicy(max_champion_regression=0.05))
    assert check(champion, "champion_regression").message == (
        "champion_regression: tuned - champion rougeL = -0.1, beyond tolerance 0.05"
    )


# --- thresholds recorded in each check ---------------------------------------------


def test_each_check_records_the_threshold_it_compared_against():
    policy = GatePolicy(min_score=0.3, min_improvement=0.05, require_significant=True,
                        max_champion_regression=0.25, max_error_rate=0.2)
    decision = decide_gate(metrics(champion_rougeL=0.5, champion_error_rate=0.1), policy)
    thresholds = {c.name: c.threshold for c in decision.checks}
    assert thresholds == {
        "examples": 1.0, "min_score": 0.3, "min_improvement": 0.05, "significance": 0.0,
        "champion_regression": -0.25, "error_rate_base": 0.2, "error_rate_tuned": 0.2, "error_rate_champion": 0.2,
    }
    observed = {c.name: c.observed for c in decision.checks}
    assert observed == pytest.approx({
        "examples": 100.0, "min_score": 0.6, "min_improvement": 0.2, "significance": 0.15,
        "champion_regression": 0.1, "error_rate_base": 0.0, "error_rate_tuned": 0.0, "error_rate_champion": 0.1,
    })
    missing = decide_gate(metrics(champion_rougeL=math.nan, champion_error_rate=0.0, n_examples=None),
                          GatePolicy(max_champion_regression=0.25, require_significant=True))
    assert check(missing, "champion_regression").threshold == -0.25
    assert check(missing, "examples").threshold == 1.0


def test_fail_closed_checks_record_no_observed_value():
    decision = decide_gate({}, GatePolicy(require_significant=True))
    assert [c.observed for c in decision.checks if not c.passed] == [None] * 6
    assert all(c.message.endswith("is missing; failing closed") for c in decision.checks if not c.passed)


def test_one_example_is_enough():
    assert check(decide_gate(metrics(n_examples=1.0), GatePolicy()), "examples").passed
    assert not check(decide_gate(metrics(n_examples=0.5), GatePolicy()), "examples").passed


def test_relative_improvement_divides_by_the_size_of_a_negative_base():
    # base -0.4, tuned 0.0: a gain of 0.4, +100% of |base|
    decision = decide_gate(metrics(base_rougeL=-0.4, delta_rougeL=0.4), GatePolicy(improvement_mode="relative",
                                                                                  min_improvement=1.0))
    assert check(decision, "min_improvement").observed == pytest.approx(1.0)
    assert check(decision, "min_improvement").passed


def test_relative_improvement_needs_the_delta_too():
    decision = decide_gate(metrics(delta_rougeL=None), GatePolicy(improvement_mode="relative"))
    c = check(decision, "min_improvement")
    assert not c.passed and "delta_rougeL is missing" in c.message


def test_champion_check_needs_the_tuned_score():
    decision = decide_gate(metrics(tuned_rougeL=None, champion_rougeL=0.5, champion_error_rate=0.0), GatePolicy())
    c = check(decision, "champion_regression")
    assert not c.passed and "tuned_rougeL is missing or not finite" in c.message


def test_champion_present_by_score_alone_gates_its_error_rate():
    decision = decide_gate(metrics(champion_rougeL=0.5), GatePolicy())
    assert check(decision, "champion_regression").passed
    c = check(decision, "error_rate_champion")
    assert not c.passed and "champion_error_rate is missing" in c.message


def test_significance_with_a_negative_interval_fails():
    decision = decide_gate(metrics(delta_rougeL_ci_low=-0.2), GatePolicy(require_significant=True))
    assert not check(decision, "significance").passed and not decision.passed


# --- the policy: defaults and the edges of each tolerance ---------------------------


def test_default_policy_values():
    assert GatePolicy() == GatePolicy(
        primary_metric="rougeL", min_score=0.0, min_improvement=0.0, improvement_mode="absolute",
        require_significant=False, max_champion_regression=0.0, max_error_rate=0.05,
    )


def test_default_max_error_rate_is_five_percent():
    assert decide_gate(metrics(tuned_error_rate=0.05), GatePolicy()).passed
    assert not decide_gate(metrics(tuned_error_rate=0.051), GatePolicy()).passed
    assert not decide_gate(metrics(base_error_rate=0.051), GatePolicy()).passed


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_max_error_rate_edges_zero_and_one_are_valid(rate):
    policy = GatePolicy(max_error_rate=rate)
    assert policy.max_error_rate == rate
    assert decide_gate(metrics(tuned_error_rate=rate, base_error_rate=rate), policy).passed


def test_max_error_rate_zero_fails_any_error_and_one_allows_all():
    assert not decide_gate(metrics(tuned_error_rate=0.001), GatePolicy(max_error_rate=0.0)).passed
    assert decide_gate(metrics(tuned_error_rate=1.0), GatePolicy(max_error_rate=1.0)).passed


@pytest.mark.parametrize("value", [1.0000001, -0.0000001])
def test_max_error_rate_just_outside_its_edges_is_invalid(value):
    with pytest.raises(GateError, match="max_error_rate must be between 0 and 1"):
        GatePolicy(max_error_rate=value)


def test_tolerance_edges_are_valid():
    assert GatePolicy(max_champion_regression=0.0).max_champion_regression == 0.0
    assert GatePolicy(max_champion_regression=1.0).max_champion_regression == 1.0
    assert GatePolicy(min_score=0.0, min_improvement=-1.0).min_improvement == -1.0
    assert GatePolicy(min_score=1, min_improvement=0).min_score == 1  # integers are numbers too


@pytest.mark.parametrize("name", ["min_score", "min_improvement", "max_champion_regression", "max_error_rate"])
@pytest.mark.parametrize("bad", [True, "0.1", None, math.nan])
def test_non_numbers_are_refused_for_every_threshold(name, bad):
    with pytest.raises(GateError, match=name):
        GatePolicy(**{name: bad})


def test_policy_and_decision_are_immutable():
    policy = GatePolicy()
    decision = decide_gate(metrics(), policy)
    for record, field_name in ((policy, "max_error_rate"), (decision, "passed"), (decision.checks[0], "passed")):
        with pytest.raises(AttributeError):
            setattr(record, field_name, 1.0)


def test_decide_gate_refuses_a_policy_of_another_type():
    with pytest.raises(GateError, match="GatePolicy"):
        decide_gate(metrics(), {"min_score": 0.5})


def test_invalid_policy_messages_name_the_fix():
    with pytest.raises(GateError, match="use one of rouge1"):
        GatePolicy(primary_metric="meteor")
    with pytest.raises(GateError, match="use 'absolute' or 'relative'"):
        GatePolicy(improvement_mode="ratio")
    with pytest.raises(GateError, match="must be >= 0"):
        GatePolicy(max_champion_regression=-0.5)


# --- reading the evaluation, writing the decision -----------------------------------


def test_read_evaluation_metrics_returns_the_metrics_object(tmp_path):
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps({"metrics": metrics(), "n_examples": 100}))
    assert read_evaluation_metrics(path) == metrics()


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"metrics": [1]}', '{"models": {}}'])
def test_an_unreadable_evaluation_is_a_gate_error(tmp_path, content):
    path = tmp_path / "evaluation.json"
    path.write_text(content)
    with pytest.raises(GateError, match="evaluation artifact"):
        read_evaluation_metrics(path)
    with pytest.raises(GateError, match="cannot read"):
        read_evaluation_metrics(tmp_path / "missing.json")


def test_write_decision_writes_strict_json_and_the_markdown_page(tmp_path):
    policy = GatePolicy(min_score=0.7)
    values = metrics(delta_rougeL_ci_high=math.nan)
    decision = decide_gate(values, policy)
    folder = tmp_path / "outputs" / "gate"  # not there yet: made, parents too
    document, page = folder / "decision.json", folder / "gate.md"
    write_decision(decision, policy, values, document, page)
    text = document.read_text()
    assert json.loads(text) == json.loads(json.dumps(decision.to_document(policy, values)))
    assert '\n  "passed": false,\n' in text  # indented for people who open it
    assert page.read_text() == decision_markdown(decision, policy)
