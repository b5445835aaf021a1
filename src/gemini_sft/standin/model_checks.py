"""What the stand-in refuses because of the model asked for, from the model catalogue file.

Vertex serves only the publisher models it knows (404 for any other, and
for retired ones), tunes only some of them, and applies each model's
thinking rules to ``generationConfig.thinkingConfig``. The rules come from
``gemini_sft/data/models.json`` (:mod:`gemini_sft.model_catalog`), so the
stand-in and the pipeline's own checks read the same facts.
"""

from __future__ import annotations

import re
from typing import Any

from gemini_sft.model_catalog import THINKING_BUDGET, THINKING_LEVEL, CatalogModel, base_model_id, catalog
from gemini_sft.standin.routing import StandInError, StandInRequest

GOOGLE_PUBLISHER = "google"


def _field(message: Any, camel_name: str) -> Any:
    """A JSON message field under its lowerCamel or snake_case name (Vertex parses both)."""
    if not isinstance(message, dict):
        return None
    if camel_name in message:
        return message[camel_name]
    return message.get(re.sub(r"(?<!^)(?=[A-Z])", "_", camel_name).lower())


def publisher_model_not_found(parent: str, model: str, publisher: str = GOOGLE_PUBLISHER) -> StandInError:
    """The 404 Vertex answers for a publisher model it does not serve (unknown or retired)."""
    return StandInError(
        404,
        f"Publisher Model `{parent}/publishers/{publisher}/models/{model}` was not found or your project does not "
        "have access to it. Please ensure you are using a valid model version.",
    )


def served_publisher_model(request: StandInRequest) -> CatalogModel:
    """The catalogue entry of the publisher model a generation request names; 404 when Vertex serves none."""
    parent = f"projects/{request.group('project')}/locations/{request.group('location')}"
    publisher, model = request.group("publisher"), request.group("model")
    entry = catalog().find(model) if publisher == GOOGLE_PUBLISHER else None
    if entry is None or not entry.available:
        raise publisher_model_not_found(parent, model, publisher)
    return entry


def tunable_base_model(parent: str, base_model: str) -> CatalogModel:
    """The catalogue entry of a tuning job's base model; 404 unknown or retired, 400 when Vertex does not tune it.

    An open model is named in full (``meta/llama3_1@llama-3.1-8b-instruct``); a Gemini model by its id.
    """
    entry = catalog().find(base_model)
    model_id = entry.name if entry is not None and entry.open_model is not None else base_model_id(base_model)
    if entry is None or not entry.available:
        publisher, _, model = base_model.removeprefix("publishers/").replace("/models/", "/", 1).rpartition("/")
        raise publisher_model_not_found(parent, model or model_id, publisher or GOOGLE_PUBLISHER)
    if not entry.tunable:
        raise StandInError(400, f"Base model {model_id} does not support supervised tuning.")
    return entry


def check_generation_config(model: CatalogModel, body: dict[str, Any]) -> None:
    """Apply the model's thinking rules to a generateContent body; StandInError(400) naming the rule broken.

    Args:
        model: the catalogue entry of the model (for a tuned endpoint: its base model).
        body: the generateContent request body.
    """
    thinking = _field(_field(body, "generationConfig"), "thinkingConfig")
    if not isinstance(thinking, dict):
        return
    budget = _field(thinking, "thinkingBudget")
    level = _level_name(_field(thinking, "thinkingLevel"))
    rules = model.thinking
    if rules is None or rules.control not in (THINKING_BUDGET, THINKING_LEVEL):
        if (budget not in (None, 0)) or level is not None:
            raise StandInError(400, f"Thinking is not supported for {model.name}: remove thinking_config.")
        return
    if budget is not None:
        if rules.budget_refused:
            raise StandInError(
                400, f"thinking_budget is not supported for {model.name}; set thinking_level "
                f"({', '.join(rules.levels)}) instead."
            )
        _check_budget(model, int(budget))
    if level is not None:
        if rules.control != THINKING_LEVEL:
            raise StandInError(
                400, f"thinking_level is not supported for {model.name}; set thinking_budget instead."
            )
        if level not in rules.levels and level != "THINKING_LEVEL_UNSPECIFIED":
            allowed = ", ".join(rules.levels)
            raise StandInError(400, f"thinking_level {level!r} is not supported for {model.name}; use one of {allowed}.")


def _level_name(level: Any) -> str | None:
    """A thinking level as its enum name (clients with integer enums send its number)."""
    if isinstance(level, int) and not isinstance(level, bool):
        from google.cloud.aiplatform_v1.types import GenerationConfig

        return GenerationConfig.ThinkingConfig.ThinkingLevel(level).name
    return None if level is None else str(level)


def _check_budget(model: CatalogModel, budget: int) -> None:
    rules = model.thinking
    assert rules is not None
    if budget == rules.dynamic_budget:
        return
    if budget == 0:
        if not rules.can_disable:
            raise StandInError(400, f"Budget 0 is invalid. {model.name} only works in thinking mode.")
        return
    low, high = rules.budget_min or 1, rules.budget_max
    if budget < low or (high is not None and budget > high):
        allowed = f"{low} to {high}" if high is not None else f"at least {low}"
        raise StandInError(
            400, f"The thinking budget {budget} is invalid for {model.name}: it must be {allowed}"
            + (", or 0 to turn thinking off" if rules.can_disable else "")
            + (f", or {rules.dynamic_budget} (dynamic)." if rules.dynamic_budget is not None else ".")
        )
