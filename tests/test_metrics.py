"""Scoring and comparison: values checked by hand or by an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gemini_sft.errors import ConfigError, EvaluationError
from gemini_sft.evaluation.metrics import (
    ExampleScores,
    ResponseScorer,
    compile_label_pattern,
    confusion_matrix,
    extract_label,
    normalize_text,
    summarize,
)


def scores(rougeL: float = 0.0, label: str | None = None, exact: float = 0.0, chars: int = 10) -> ExampleScores:
    return ExampleScores(
        rouge1=rougeL, rouge2=rougeL, rougeL=rougeL, exact_match=exact, normalized_exact_match=exact,
        label=label, response_chars=chars, response_words=chars // 5,
    )


# --- per-example scores -----------------------------------------------------------


def test_rouge_uses_stemming_and_f_measure():
    scorer = ResponseScorer()
    # tokens: reference [the, cat, are, run] (stemmed), answer [a, cat, run]; unigram overlap cat, run
    s = scorer.score("the cats are running", "a cat runs")
    precision, recall = 2 / 3, 2 / 4
    assert s.rouge1 == pytest.approx(2 * precision * recall / (precision + recall))
    assert s.rouge2 == 0.0  # no shared bigram
    # LCS of [the cat are run] and [a cat run] is [cat run]: same as unigram overlap here
    assert s.rougeL == pytest.approx(s.rouge1)


def test_rouge_l_follows_longest_common_subsequence_not_bag_of_words():
    scorer = ResponseScorer()
    s = scorer.score("alpha beta gamma delta", "delta gamma beta alpha")
    assert s.rouge1 == pytest.approx(1.0)  # same bag of words
    assert s.rougeL == pytest.approx(0.25)  # LCS length 1 of 4 both ways
    assert s.rouge2 == 0.0


def test_identical_answer_scores_one_everywhere():
    s = ResponseScorer().score("Category: billing", "Category: billing")
    assert (s.rouge1, s.rouge2, s.rougeL, s.exact_match, s.normalized_exact_match) == (1.0, 1.0, 1.0, 1.0, 1.0)


def test_exact_and_normalised_exact_match():
    scorer = ResponseScorer()
    s = scorer.score("Refund the order.", "  Refund the order.\n")
    assert s.exact_match == 1.0
    s = scorer.score("Refund the order.", "refund   THE order")
    assert s.exact_match == 0.0 and s.normalized_exact_match == 1.0
    s = scorer.score("Refund the order.", "Refund an order.")
    assert s.normalized_exact_match == 0.0


def test_normalize_text_ignores_case_punctuation_and_whitespace():
    assert normalize_text("  Hello,\tWORLD!! ") == "hello world"
    assert normalize_text("e-mail") == normalize_text("E mail")
    assert normalize_text("Straße") == normalize_text("STRASSE")


def test_empty_answer_is_scored_zero_not_skipped():
    s = ResponseScorer().score("some reference text", "")
    assert (s.rouge1, s.rougeL, s.exact_match, s.response_chars) == (0.0, 0.0, 0.0, 0)


def test_response_length_fields():
    s = ResponseScorer().score("x", "one two  three")
    assert s.response_chars == 14 and s.response_words == 3


# --- labels -----------------------------------------------------------------------


def test_extract_label_uses_first_group_or_whole_match():
    pattern = compile_label_pattern(r"Category: (\w+)")
    assert extract_label("Priority: high\nCategory: billing\n", pattern) == "billing"
    assert extract_label("no label here", pattern) is None
    assert extract_label("Category: x", None) is None
    assert extract_label("urgent: yes", compile_label_pattern(r"urgent|normal")) == "urgent"


def test_invalid_label_pattern_is_a_config_error():
    with pytest.raises(ConfigError, match="label pattern"):
        ResponseScorer("Category: (\\w+")


def test_confusion_matrix_rows_reference_columns_predicted_with_other_column():
    matrix = confusion_matrix(
        ["a", "a", "b", "b", None], ["a", "b", "b", None, "a"], ["a", "b"]
    )
    assert matrix.categories == ["a", "b", "(other)"]
    assert matrix.matrix == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]
    assert confusion_matrix(["a"], ["a"], ["a"]).categories == ["a"]


def _macro_f1_by_hand(refs: list[str], preds: list[str | None]) -> float:
    f1s = []
    for c in sorted(set(refs)):
        tp = sum(r == c and p == c for r, p in zip(refs, preds))
        fp = sum(r != c and p == c for r, p in zip(refs, preds))
        fn = sum(r == c and p != c for r, p in zip(refs, preds))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s)


def test_label_accuracy_and_macro_f1():
    refs = ["a", "a", "a", "b", "b", "c"]
    tuned = ["a", "a", "b", "b", None, "c"]
    base = ["a", "b", "b", "a", "a", "a"]
    result = summarize(
        ["r"] * 6,
        {"base": [scores(label=p) for p in base], "tuned": [scores(label=p) for p in tuned]},
        reference_labels=refs,
        bootstrap_samples=0,
    )
    m = result.metrics
    assert m["tuned_label_accuracy"] == pytest.approx(4 / 6)
    assert m["base_label_accuracy"] == pytest.approx(1 / 6)
    # by hand: tuned a: tp2 fp0 fn1 -> 0.8; b: tp1 fp1 fn1 -> 0.5; c: tp1 -> 1.0
    assert m["tuned_label_macro_f1"] == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert m["tuned_label_macro_f1"] == pytest.approx(_macro_f1_by_hand(refs, tuned))
    assert m["base_label_macro_f1"] == pytest.approx(_macro_f1_by_hand(refs, base))
    assert m["delta_label_accuracy"] == pytest.approx(3 / 6)
    assert result.label_classes == ["a", "b", "c"]
    assert result.confusion["tuned"].matrix == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]


def test_examples_without_reference_label_are_left_out_of_label_metrics():
    result = summarize(
        ["r"] * 3,
        {"base": [scores(label="a")] * 3, "tuned": [scores(label="a")] * 3},
        reference_labels=["a", None, "b"],
        bootstrap_samples=0,
    )
    assert result.metrics["tuned_label_accuracy"] == pytest.approx(0.5)
    assert result.metrics["n_label_examples"] == 2


# --- aggregation, errors ----------------------------------------------------------


def test_errors_are_excluded_from_means_and_counted_in_error_rate():
    result = summarize(
        ["r"] * 4,
        {"base": [scores(0.2), scores(0.4), scores(0.6), scores(0.8)],
         "tuned": [scores(1.0), None, scores(0.5), None]},
        bootstrap_samples=0,
    )
    m = result.metrics
    assert m["tuned_rougeL"] == pytest.approx(0.75)  # not (1.0 + 0 + 0.5 + 0) / 4
    assert m["tuned_error_rate"] == pytest.approx(0.5)
    assert m["tuned_errors"] == 2 and m["tuned_answered"] == 2
    assert m["base_rougeL"] == pytest.approx(0.5)
    assert m["delta_rougeL"] == pytest.approx(0.25)
    # wins/ties/losses only where both answered: example 0 win, example 2 loss
    assert (m["wins_rougeL"], m["ties_rougeL"], m["losses_rougeL"]) == (1, 0, 1)


def test_length_statistics():
    result = summarize(
        ["abcd", "ab"],
        {"base": [scores(chars=10), scores(chars=30)], "tuned": [scores(chars=5), None]},
        bootstrap_samples=0,
    )
    m = result.metrics
    assert m["base_response_chars_mean"] == 20 and m["base_response_chars_median"] == 20
    assert m["base_response_chars_p95"] == pytest.approx(29.0)
    assert m["tuned_response_chars_mean"] == 5
    assert m["reference_chars_mean"] == 3


def test_model_with_every_call_failed_has_nan_scores():
    result = summarize(["r"], {"base": [scores(0.5)], "tuned": [None]}, bootstrap_samples=10)
    assert math.isnan(result.metrics["tuned_rougeL"])
    assert math.isnan(result.metrics["delta_rougeL"])
    assert math.isnan(result.metrics["delta_rougeL_ci_low"])
    assert result.metrics["tuned_error_rate"] == 1.0


def test_champion_comparison_names():
    result = summarize(
        ["r"] * 2,
        {"base": [scores(0.1)] * 2, "tuned": [scores(0.5)] * 2, "champion": [scores(0.6)] * 2},
        bootstrap_samples=20,
    )
    m = result.metrics
    assert m["champion_rougeL"] == pytest.approx(0.6)
    assert m["delta_vs_champion_rougeL"] == pytest.approx(-0.1)
    assert m["delta_vs_champion_rougeL_ci_low"] == pytest.approx(-0.1)
    assert "champion_error_rate" in m


def test_stable_flat_metric_names():
    result = summarize(["r"] * 3, {"base": [scores(0.1)] * 3, "tuned": [scores(0.2)] * 3}, bootstrap_samples=5)
    for metric in ("rouge1", "rouge2", "rougeL", "exact_match", "normalized_exact_match"):
        for key in (f"base_{metric}", f"tuned_{metric}", f"delta_{metric}", f"delta_{metric}_ci_low",
                    f"delta_{metric}_ci_high"):
            assert key in result.metrics
    assert {"n_examples", "base_error_rate", "tuned_error_rate"} <= set(result.metrics)
    assert not any(k.startswith("champion_") or "label" in k for k in result.metrics)


def test_summarize_rejects_misaligned_or_empty_input():
    with pytest.raises(EvaluationError):
        summarize([], {"base": [], "tuned": []})
    with pytest.raises(EvaluationError):
        summarize(["r", "r"], {"base": [scores()], "tuned": [scores(), scores()]})
    with pytest.raises(EvaluationError):
        summarize(["r"], {"tuned": [scores()]})


# --- bootstrap --------------------------------------------------------------------


def _synthetic(n: int, true_delta: float, seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    # bounded so that no clipping is needed: the expected difference is exactly true_delta
    base = rng.uniform(0.2, 0.7, n)
    tuned = base + true_delta + rng.uniform(-0.15, 0.15, n)
    return [scores(float(v)) for v in base], [scores(float(v)) for v in tuned]


def test_bootstrap_interval_covers_the_true_difference_and_matches_normal_theory():
    base, tuned = _synthetic(400, 0.05, seed=7)
    result = summarize(["r"] * 400, {"base": base, "tuned": tuned}, bootstrap_samples=2000, seed=3)
    m = result.metrics
    assert m["delta_rougeL_ci_low"] < 0.05 < m["delta_rougeL_ci_high"]
    assert m["delta_rougeL_ci_low"] < m["delta_rougeL"] < m["delta_rougeL_ci_high"]
    # independent check: with no errors the paired bootstrap approximates mean diff +- 1.96 * sd / sqrt(n)
    diffs = np.array([t.rougeL - b.rougeL for t, b in zip(tuned, base)])
    half_width = 1.96 * diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert m["delta_rougeL_ci_high"] - m["delta_rougeL_ci_low"] == pytest.approx(2 * half_width, rel=0.15)
    assert m["delta_rougeL"] == pytest.approx(diffs.mean())


def test_bootstrap_coverage_over_many_synthetic_holdouts():
    covered = 0
    trials = 40
    for trial in range(trials):
        base, tuned = _synthetic(120, 0.03, seed=100 + trial)
        m = summarize(["r"] * 120, {"base": base, "tuned": tuned}, bootstrap_samples=400, seed=trial).metrics
        covered += m["delta_rougeL_ci_low"] <= 0.03 <= m["delta_rougeL_ci_high"]
    assert covered >= 33  # nominal 95%: 38/40 expected; allow sampling noise


def test_bootstrap_is_seeded_and_deterministic():
    base, tuned = _synthetic(100, 0.02, seed=1)
    refs = ["r"] * 100
    first = summarize(refs, {"base": base, "tuned": tuned}, bootstrap_samples=300, seed=11).metrics
    again = summarize(refs, {"base": base, "tuned": tuned}, bootstrap_samples=300, seed=11).metrics
    other = summarize(refs, {"base": base, "tuned": tuned}, bootstrap_samples=300, seed=12).metrics
    assert first == again
    assert first["delta_rougeL_ci_low"] != other["delta_rougeL_ci_low"]


def test_no_bootstrap_means_no_interval_keys():
    m = summarize(["r"], {"base": [scores(0.1)], "tuned": [scores(0.2)]}, bootstrap_samples=0).metrics
    assert "delta_rougeL_ci_low" not in m


def test_invalid_bootstrap_settings():
    with pytest.raises(ConfigError):
        summarize(["r"], {"base": [scores()], "tuned": [scores()]}, bootstrap_samples=-1)
    with pytest.raises(ConfigError):
        summarize(["r"], {"base": [scores()], "tuned": [scores()]}, confidence=1.0)
