"""Tokens and list-price cost of an evaluation's calls, thinking tokens apart.

Thinking tokens (``usage_metadata.thoughts_token_count``) count against
``max_output_tokens`` and are billed at the output price, so the report shows
them beside the answer tokens. Prices come from the model catalogue; an
endpoint is priced as the model it was tuned from (the evaluation's base
model). Unknown prices give NaN costs (null in the evaluation document).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from gemini_sft.evaluation.generation import Answer
from gemini_sft.model_catalog import input_price_per_million, output_price_per_million

PER_MILLION = 1_000_000.0


def usage_metrics(answers: Mapping[str, Sequence[Answer]], models: Mapping[str, str], base_model: str) -> dict[str, float]:
    """Per role R: ``R_input_tokens``, ``R_output_tokens``, ``R_thinking_tokens`` (totals over answered
    calls), ``R_thinking_tokens_mean`` (per answer), ``R_cost_usd`` and ``R_thinking_cost_usd`` (list prices).

    Args:
        answers: each role's answers.
        models: each role's model name or endpoint.
        base_model: the catalogued model whose prices apply to an endpoint.
    """
    metrics: dict[str, float] = {}
    for role, role_answers in answers.items():
        answered = [a for a in role_answers if a.ok]
        input_tokens = sum(a.input_tokens for a in answered)
        output_tokens = sum(a.output_tokens for a in answered)
        thinking_tokens = sum(a.thinking_tokens for a in answered)
        metrics[f"{role}_input_tokens"] = float(input_tokens)
        metrics[f"{role}_output_tokens"] = float(output_tokens)
        metrics[f"{role}_thinking_tokens"] = float(thinking_tokens)
        metrics[f"{role}_thinking_tokens_mean"] = thinking_tokens / len(answered) if answered else math.nan
        model = models.get(role, "")
        input_price = input_price_per_million(model, rules_of=base_model)
        output_price = output_price_per_million(model, rules_of=base_model)
        if input_price is None or output_price is None:
            metrics[f"{role}_cost_usd"] = math.nan
            metrics[f"{role}_thinking_cost_usd"] = math.nan
            continue
        metrics[f"{role}_thinking_cost_usd"] = thinking_tokens * output_price / PER_MILLION
        metrics[f"{role}_cost_usd"] = (
            input_tokens * input_price + (output_tokens + thinking_tokens) * output_price
        ) / PER_MILLION
    return metrics
