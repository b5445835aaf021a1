"""Token statistics, tuning cost estimate and the budget guard.

Vertex bills supervised tuning by training tokens: the tokens of every
training example (plus a small per-example padding) times the number of
epochs. Token counts come either from the countTokens API or from the offline
estimator in :mod:`gemini_sft.tokens`; whoever shows a figure must say which.

Per-example counts are kept as a histogram (count -> number of examples), so
statistics over millions of examples take memory proportional to the number of
distinct counts, not to the number of examples.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from gemini_sft.errors import BudgetExceededError, ConfigError
from gemini_sft.model_catalog import input_price_per_million, limits_for, output_price_per_million

# Google's token-and-cost notebook adds about 8 tokens of padding per training record.
PADDING_TOKENS_PER_EXAMPLE = 8


@dataclass(frozen=True)
class TokenStats:
    """Distribution of tokens per example (input + output, system instruction included).

    ``min``/``max``/``total`` are exact integers over the counted examples;
    ``mean``/``p50``/``p95`` are floats (percentiles interpolate linearly between
    order statistics, as numpy's default does). All zero when nothing was counted.
    """

    examples: int
    min: int
    mean: float
    p50: float
    p95: float
    max: int
    total: int

    def to_dict(self) -> dict[str, float | int]:
        """The statistics as a JSON-ready dict (the ``token_stats`` of a validation report)."""
        return asdict(self)


EMPTY_TOKEN_STATS = TokenStats(examples=0, min=0, mean=0.0, p50=0.0, p95=0.0, max=0, total=0)


def _value_at_rank(sorted_counts: list[tuple[int, int]], rank: int) -> int:
    """The ``rank``-th smallest value (0-based) of a histogram given as sorted (value, frequency) pairs."""
    seen = 0
    for value, frequency in sorted_counts:
        seen += frequency
        if rank < seen:
            return value
    return sorted_counts[-1][0]


def _percentile(sorted_counts: list[tuple[int, int]], examples: int, quantile: float) -> float:
    position = quantile * (examples - 1)
    lower_rank = math.floor(position)
    upper_rank = math.ceil(position)
    lower = _value_at_rank(sorted_counts, lower_rank)
    if upper_rank == lower_rank:
        return float(lower)
    upper = _value_at_rank(sorted_counts, upper_rank)
    return lower + (upper - lower) * (position - lower_rank)


def token_stats_from_histogram(histogram: Mapping[int, int]) -> TokenStats:
    """Statistics of a histogram mapping a token count to how many examples have it."""
    sorted_counts = sorted((value, frequency) for value, frequency in histogram.items() if frequency > 0)
    examples = sum(frequency for _, frequency in sorted_counts)
    if examples == 0:
        return EMPTY_TOKEN_STATS
    total = sum(value * frequency for value, frequency in sorted_counts)
    return TokenStats(
        examples=examples,
        min=sorted_counts[0][0],
        mean=total / examples,
        p50=_percentile(sorted_counts, examples, 0.50),
        p95=_percentile(sorted_counts, examples, 0.95),
        max=sorted_counts[-1][0],
        total=total,
    )


def token_stats(counts: Iterable[int]) -> TokenStats:
    """Statistics of per-example token counts."""
    return token_stats_from_histogram(Counter(counts))


def billable_tokens(total_tokens: int, examples: int, padding_per_example: int = PADDING_TOKENS_PER_EXAMPLE) -> int:
    """Tokens Vertex bills for one epoch: the dataset's tokens plus padding per example."""
    return total_tokens + padding_per_example * examples


def price_per_million_tokens(model: str, override_usd: float | None = None) -> float:
    """Price per million training tokens: the override when given and positive, else the catalogue price.

    Raises ConfigError for a negative override or a model the catalogue does not know.
    """
    if override_usd is not None:
        if not math.isfinite(override_usd) or override_usd < 0:
            raise ConfigError(f"The price per million tokens must be a positive number of USD, got {override_usd!r}.")
        if override_usd > 0:
            return override_usd
    return limits_for(model).price_per_million_training_tokens_usd


@dataclass(frozen=True)
class CostEstimate:
    """What a tuning job on a dataset is expected to cost, and how the figure was made."""

    model: str
    epochs: int
    billable_tokens_per_epoch: int
    price_per_million_tokens_usd: float
    estimated_cost_usd: float

    @property
    def billable_tokens(self) -> int:
        """Training tokens over all epochs."""
        return self.billable_tokens_per_epoch * self.epochs


def estimate_cost_usd(billable_tokens_per_epoch: int, epochs: int, price_per_million_usd: float) -> float:
    """Cost in USD = billable tokens x epochs x price per million tokens / 1e6."""
    return billable_tokens_per_epoch * epochs * price_per_million_usd / 1_000_000


def estimate_tuning_cost(
    stats: TokenStats,
    epochs: int,
    model: str,
    price_per_million_tokens_usd: float | None = None,
    padding_per_example: int = PADDING_TOKENS_PER_EXAMPLE,
) -> CostEstimate:
    """Cost estimate of tuning ``model`` for ``epochs`` epochs on a dataset with these statistics.

    Raises ConfigError when epochs is below 1 or the price/model is invalid.
    """
    if epochs < 1:
        raise ConfigError(f"Epochs must be at least 1, got {epochs}.")
    price = price_per_million_tokens(model, price_per_million_tokens_usd)
    per_epoch = billable_tokens(stats.total, stats.examples, padding_per_example)
    return CostEstimate(
        model=model,
        epochs=epochs,
        billable_tokens_per_epoch=per_epoch,
        price_per_million_tokens_usd=price,
        estimated_cost_usd=estimate_cost_usd(per_epoch, epochs, price),
    )


def format_usd(amount: float) -> str:
    """A dollar amount for people: cents for normal amounts, more digits for tiny ones ($0.0004)."""
    if 0 < abs(amount) < 0.01:
        return f"${amount:.2g}" if abs(amount) >= 1e-6 else f"${amount:.1e}"
    return f"${amount:,.2f}"


TUNING_ADVICE = "Reduce the training data or the epochs, or raise max_budget_usd if the cost is intended."


def check_budget(
    estimated_cost_usd: float,
    max_budget_usd: float | None,
    breakdown: str = "",
    advice: str = TUNING_ADVICE,
) -> None:
    """Raise BudgetExceededError when the estimate is above the budget; ``None`` means no budget.

    Args:
        estimated_cost_usd: the estimate held to the budget.
        max_budget_usd: the budget in USD, or None for no budget.
        breakdown: what the estimate is made of, shown after it (e.g. "tuning job $1 + ...").
        advice: which settings to change, named in the message.

    Raises ConfigError for a negative or non-numeric budget.
    """
    if max_budget_usd is None:
        return
    if not math.isfinite(max_budget_usd) or max_budget_usd < 0:
        raise ConfigError(f"The budget must be a number of USD >= 0, got {max_budget_usd!r}.")
    if estimated_cost_usd > max_budget_usd:
        made_of = f" ({breakdown})" if breakdown else ""
        raise BudgetExceededError(
            f"The estimated tuning cost {format_usd(estimated_cost_usd)}{made_of} is above the budget "
            f"{format_usd(max_budget_usd)}. {advice}"
        )


@dataclass(frozen=True)
class ServingCost:
    """Generation calls to a served model (checkpoint selection, holdout evaluation) and their list-price cost.

    ``output_tokens`` includes thinking tokens (billed as output). A price is None when the model catalogue
    has none for the model; ``cost_usd`` is then None too.
    """

    calls: int
    input_tokens: int
    output_tokens: int
    input_price_per_million_usd: float | None
    output_price_per_million_usd: float | None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_usd(self) -> float | None:
        """Input tokens x input price + output tokens x output price, per million; None without prices."""
        if self.input_price_per_million_usd is None or self.output_price_per_million_usd is None:
            return None
        return (self.input_tokens * self.input_price_per_million_usd
                + self.output_tokens * self.output_price_per_million_usd) / 1_000_000

    def to_dict(self) -> dict[str, float | int | None]:
        """``{"calls", "input_tokens", "output_tokens", "cost_usd", "input_price_per_million_usd",
        "output_price_per_million_usd"}``."""
        cost = self.cost_usd
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": None if cost is None else round(cost, 6),
            "input_price_per_million_usd": self.input_price_per_million_usd,
            "output_price_per_million_usd": self.output_price_per_million_usd,
        }


def serving_cost(model: str, calls: int, input_tokens: float, output_tokens: float) -> ServingCost:
    """Price ``calls`` generation calls to ``model`` (or an endpoint tuned from it) at the catalogue's serving prices.

    Args:
        model: the catalogued model whose input and output prices apply.
        calls: how many calls.
        input_tokens: their input tokens in all (rounded to a whole number).
        output_tokens: their output tokens in all, thinking included (rounded).
    """
    return ServingCost(
        calls=int(calls),
        input_tokens=int(round(input_tokens)),
        output_tokens=int(round(output_tokens)),
        input_price_per_million_usd=input_price_per_million(model),
        output_price_per_million_usd=output_price_per_million(model),
    )
