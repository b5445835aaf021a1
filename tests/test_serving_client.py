"""The serving client: who answers, when it falls back, retries, logprobs, and what it never sends."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_sft.errors import GenerationCallError, PromotionError, VertexApiError
from gemini_sft.serving import ModelReply, OutputContract, save_contract
from gemini_sft.serving.client import read_serving_plan
from serving_helpers import (
    BASE_MODEL,
    GOOD,
    PRODUCTION,
    ScriptedModel,
    registry_with_champion,
    scripted_client,
)

BASE_TEXT = "A general answer from the base model."


def _models(tuned_answer) -> dict[str, ScriptedModel]:
    return {
        PRODUCTION.endpoint: ScriptedModel(PRODUCTION.endpoint, tuned_answer),
        BASE_MODEL: ScriptedModel(BASE_MODEL, ModelReply(BASE_TEXT, "STOP")),
    }


def test_a_good_tuned_answer_is_returned_and_the_base_model_is_not_asked(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path)
    models = _models(ModelReply(GOOD, "STOP", avg_logprob=-0.05))
    answer = scripted_client(store, models).ask("My card was charged twice")
    assert (answer.text, answer.answered_by, answer.model, answer.fallback_reason) == (
        GOOD, "tuned", PRODUCTION.endpoint, None)
    assert models[BASE_MODEL].requests == []
    assert models[PRODUCTION.endpoint].requests[0].response_logprobs is True


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (ModelReply("", "STOP"), "empty"),
        (ModelReply("", "SAFETY"), "blocked"),
        (ModelReply(GOOD[:20], "MAX_TOKENS"), "max_tokens"),
        (ModelReply("ok ok ok ok " * 20, "STOP"), "repetitive"),
        (ModelReply("Category: billing\nAction: refund", "STOP"), "contract_lines"),
        (ModelReply("Category: spam\nPriority: high\nAction: x", "STOP"), "contract_label"),
        (ModelReply(GOOD, "STOP", avg_logprob=-3.0), "low_logprobs"),
        (GenerationCallError("HTTP 404 no such endpoint", status_code=404), "error"),
    ],
)
def test_each_unfit_answer_falls_back_to_the_base_model_and_says_why(tmp_path: Path, reply, reason) -> None:
    store = registry_with_champion(tmp_path)
    contract = OutputContract(("Category", "Priority", "Action"), r"Category: (\w+)", ("billing",), "Triage.")
    save_contract(store, PRODUCTION.versioned_name, contract)
    models = _models(reply)
    answer = scripted_client(store, models).ask("My card was charged twice")
    assert (answer.text, answer.answered_by, answer.model, answer.fallback_reason) == (
        BASE_TEXT, "base", BASE_MODEL, reason)
    assert models[BASE_MODEL].requests[0].system_instruction == "Triage."   # asked the way the model was tuned


def test_transient_failures_are_retried_and_permanent_ones_are_not(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path)
    calls = {"n": 0}

    def flaky(_request):
        calls["n"] += 1
        if calls["n"] < 3:
            raise GenerationCallError("HTTP 503", status_code=503, retryable=True)
        return ModelReply(GOOD, "STOP")

    answer = scripted_client(store, _models(flaky)).ask("q")
    assert answer.answered_by == "tuned" and calls["n"] == 3
    models = _models(GenerationCallError("HTTP 403", status_code=403))
    scripted_client(store, models).ask("q")
    assert len(models[PRODUCTION.endpoint].requests) == 1


def test_an_endpoint_that_refuses_logprobs_is_asked_without_and_it_is_said_once(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path)

    def refuses_logprobs(request):
        if request.response_logprobs:
            raise GenerationCallError("INVALID_ARGUMENT Logprobs is not supported for this model", status_code=400)
        return ModelReply(GOOD, "STOP")

    models = _models(refuses_logprobs)
    client = scripted_client(store, models)
    first = client.ask("q1")
    second = client.ask("q2")
    assert first.answered_by == "tuned" and len(first.notes) == 1 and "log-probabilities" in first.notes[0]
    assert second.notes == ()
    assert [r.response_logprobs for r in models[PRODUCTION.endpoint].requests] == [True, False, False]


def test_when_the_base_model_fails_too_the_caller_gets_an_error(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path)
    models = _models(ModelReply("", "STOP"))
    models[BASE_MODEL] = ScriptedModel(BASE_MODEL, GenerationCallError("HTTP 404", status_code=404))
    with pytest.raises(VertexApiError, match="Neither the tuned nor the base model"):
        scripted_client(store, models).ask("q")


def test_an_empty_registry_says_nothing_is_in_production(tmp_path: Path) -> None:
    from gemini_sft.promotion import PromotionStore

    with pytest.raises(PromotionError, match="Nothing is in production"):
        read_serving_plan(PromotionStore(str(tmp_path)))
