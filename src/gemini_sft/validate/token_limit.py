"""The longest example a tuning job accepts, and the ``too_many_tokens`` message for an example above it.

A Gemini model has one limit per example (the catalogue's ``max_tokens_per_example``). An open model
Vertex tunes itself has one per tuning mode (its ``managed_open_model.max_sequence_length``): the mode
given (``tuning_mode``) decides. With no mode given Vertex chooses one, and which one is not in the
catalogue (nor confirmed by Vertex's documentation), so the stricter limit is assumed and every message
says so, naming the mode that would allow more.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemini_sft import model_catalog
from gemini_sft.errors import ConfigError

# How an example's tokens were counted, as a too_many_tokens message says it.
OFFLINE_ESTIMATE = "offline estimate"
COUNT_TOKENS_API = "countTokens API"


@dataclass(frozen=True)
class TokenLimit:
    """The per-example token limit that applies, and what a message about it adds.

    ``note`` follows the limit in a message (which model and mode it belongs to, "" for a Gemini model);
    ``fix`` follows the usual advice (the mode that would allow the example, "" when there is none);
    ``assumed_mode`` names the mode whose limit was assumed because none was given ("" otherwise).
    """

    max_tokens: int
    note: str = ""
    fix: str = ""
    assumed_mode: str = ""


def example_token_limit(model: str, tuning_mode: str = "") -> TokenLimit:
    """The per-example limit of tuning ``model`` in ``tuning_mode`` ("" when Vertex chooses the mode).

    Args:
        model: the base model, as the catalogue names it.
        tuning_mode: PEFT_ADAPTER, FULL or "" (open models only).

    Raises:
        ConfigError: for a mode given with a Gemini model, or one the open model does not offer.
    """
    limits = model_catalog.limits_for(model)
    entry = model_catalog.managed_open_model(model)
    if entry is None or entry.open_model is None:
        if tuning_mode:
            raise ConfigError(f"tuning_mode {tuning_mode!r} is for open models Vertex tunes; {model} is tuned "
                              "with an adapter_size: leave tuning_mode empty")
        return TokenLimit(limits.max_tokens_per_example)
    rules = entry.open_model
    if tuning_mode and tuning_mode not in rules.tuning_modes:
        raise ConfigError(f"tuning_mode {tuning_mode!r} is not offered for {entry.name}; use "
                          + " or ".join(rules.tuning_modes) + " (or leave it empty to let Vertex choose)")
    lengths = {mode: rules.max_sequence_length.get(mode, limits.max_tokens_per_example)
               for mode in rules.tuning_modes}
    mode = tuning_mode or min(lengths, key=lambda name: lengths[name])
    larger = {other: length for other, length in lengths.items() if length > lengths[mode]}
    fix = "".join(f", or set tuning_mode={other} (its limit is {length:,})" for other, length in larger.items())
    if tuning_mode:
        return TokenLimit(lengths[mode], f" for {entry.name} in tuning_mode {mode}", fix)
    if not larger:
        return TokenLimit(lengths[mode], f" for {entry.name}")
    return TokenLimit(lengths[mode], f" for {entry.name}: no tuning_mode given and the mode Vertex chooses is "
                                     f"not known, so the stricter {mode} limit is assumed", fix, assumed_mode=mode)


def too_many_tokens_message(tokens: int, counted_by: str, limit: int, note: str = "", fix: str = "") -> str:
    """The message of a ``too_many_tokens`` error.

    Args:
        tokens: the example's tokens.
        counted_by: how they were counted: OFFLINE_ESTIMATE (the figure then reads "about N") or
            COUNT_TOKENS_API.
        limit: the limit that applies.
        note: what the limit belongs to (:attr:`TokenLimit.note`).
        fix: the further fix (:attr:`TokenLimit.fix`).
    """
    about = "about " if counted_by == OFFLINE_ESTIMATE else ""
    return (f"The example has {about}{tokens:,} tokens ({counted_by}), above the limit of {limit:,} per example"
            f"{note}. Shorten it or split the conversation into several examples{fix}.")
