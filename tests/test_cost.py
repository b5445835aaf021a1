"""Token statistics, the cost formula and the budget guard."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_sft.cost import (
    PADDING_TOKENS_PER_EXAMPLE,
    billable_tokens,
    check_budget,
    estimate_cost_usd,
    estimate_tuning_cost,
    format_usd,
    price_per_million_tokens,
    token_stats,
)
from gemini_sft.errors import BudgetExceededError, ConfigError


def test_token_stats_of_known_counts() -> None:
    stats = token_stats([10, 20, 30, 40, 1000])
    assert (stats.examples, stats.min, stats.max, stats.total) == (5, 10, 1000, 1100)
    assert stats.mean == 220.0
    assert stats.p50 == 30.0
    assert stats.p95 == pytest.approx(40 + 0.8 * 960)


def test_token_stats_of_nothing_are_zero() -> None:
    stats = token_stats([])
    assert stats.examples == 0 and stats.total == 0 and stats.max == 0 and stats.p95 == 0.0


@given(st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=300))
def test_percentiles_match_numpy(counts: list[int]) -> None:
    stats = token_stats(counts)
    assert stats.p50 == pytest.approx(float(np.percentile(counts, 50)))
    assert stats.p95 == pytest.approx(float(np.percentile(counts, 95)))
    assert stats.mean == pytest.approx(sum(counts) / len(counts))
    assert stats.min == min(counts) and stats.max == max(counts) and stats.total == sum(counts)


def test_billable_tokens_add_padding_per_example() -> None:
    assert PADDING_TOKENS_PER_EXAMPLE == 8
    assert billable_tokens(total_tokens=1_000, examples=10) == 1_080
    assert billable_tokens(total_tokens=1_000, examples=10, padding_per_example=0) == 1_000


def test_cost_is_tokens_times_epochs_times_price_per_million() -> None:
    assert estimate_cost_usd(2_000_000, epochs=3, price_per_million_usd=5.0) == pytest.approx(30.0)


def test_estimate_uses_the_catalogue_price_unless_overridden() -> None:
    stats = token_stats([992] * 1_000)  # 992 + 8 padding = 1,000 billable tokens per example
    flash = estimate_tuning_cost(stats, epochs=2, model="gemini-2.5-flash")
    assert flash.billable_tokens_per_epoch == 1_000_000
    assert flash.billable_tokens == 2_000_000
    assert flash.price_per_million_tokens_usd == 5.0
    assert flash.estimated_cost_usd == pytest.approx(10.0)
    assert estimate_tuning_cost(stats, 2, "gemini-2.5-pro").estimated_cost_usd == pytest.approx(50.0)
    assert estimate_tuning_cost(stats, 2, "gemini-2.5-flash-lite-001").estimated_cost_usd == pytest.approx(3.0)
    overridden = estimate_tuning_cost(stats, 2, "gemini-2.5-flash", price_per_million_tokens_usd=1.25)
    assert overridden.estimated_cost_usd == pytest.approx(2.5)


def test_zero_price_override_means_catalogue_price() -> None:
    assert price_per_million_tokens("gemini-2.5-flash", 0.0) == 5.0


@pytest.mark.parametrize("price", [-1.0, math.nan, math.inf])
def test_invalid_price_is_a_config_error(price: float) -> None:
    with pytest.raises(ConfigError):
        price_per_million_tokens("gemini-2.5-flash", price)


def test_invalid_epochs_and_model_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        estimate_tuning_cost(token_stats([1]), epochs=0, model="gemini-2.5-flash")
    with pytest.raises(ConfigError):
        estimate_tuning_cost(token_stats([1]), epochs=1, model="gemini-1.0-pro")


def test_budget_guard_raises_with_both_figures() -> None:
    with pytest.raises(BudgetExceededError) as raised:
        check_budget(estimated_cost_usd=123.456, max_budget_usd=100.0)
    assert "$123.46" in str(raised.value) and "$100.00" in str(raised.value)


def test_budget_guard_passes_at_or_below_the_budget_and_without_one() -> None:
    check_budget(100.0, 100.0)
    check_budget(0.0, 0.0)
    check_budget(1e9, None)


def test_a_zero_budget_refuses_any_cost() -> None:
    with pytest.raises(BudgetExceededError):
        check_budget(0.0001, 0.0)


@pytest.mark.parametrize("budget", [-1.0, math.nan])
def test_invalid_budget_is_a_config_error(budget: float) -> None:
    with pytest.raises(ConfigError):
        check_budget(1.0, budget)


def test_small_amounts_are_not_shown_as_zero() -> None:
    assert format_usd(12.345) == "$12.35"
    assert format_usd(0.0042) == "$0.0042"
    assert format_usd(0.0) == "$0.00"


def test_serving_calls_are_priced_at_the_catalogues_input_and_output_prices() -> None:
    from gemini_sft.cost import serving_cost
    from gemini_sft.model_catalog import input_price_per_million, output_price_per_million

    line = serving_cost("gemini-2.5-flash", 10, 2_000_000, 500_000)
    input_price, output_price = input_price_per_million("gemini-2.5-flash"), output_price_per_million("gemini-2.5-flash")
    assert input_price and output_price and input_price != output_price
    assert line.cost_usd == pytest.approx(2 * input_price + 0.5 * output_price)
    assert line.tokens == 2_500_000 and line.to_dict()["calls"] == 10
    unknown = serving_cost("some-uncatalogued-endpoint", 10, 1000, 1000)
    assert unknown.cost_usd is None and unknown.to_dict()["cost_usd"] is None


def test_the_budget_message_shows_the_breakdown_and_the_given_advice() -> None:
    with pytest.raises(BudgetExceededError, match=r"\(tuning job \$1\.00 \+ selection \$2\.00\).*lower knob_x"):
        check_budget(3.0, 2.5, breakdown="tuning job $1.00 + selection $2.00", advice="Or lower knob_x.")
