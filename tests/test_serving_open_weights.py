"""An open model in production: asked with vLLM's request shape through its endpoint, falling back to Gemini."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_sft.errors import ConfigError, GenerationCallError
from gemini_sft.promotion import ModelVersion, PromotionStore, Provenance, append_new_record, promote
from gemini_sft.review.staging import set_canary, stage_candidate, staged_candidates
from gemini_sft.serving import ModelReply, ReplyRequest, ServingClient, ServingSettings
from gemini_sft.serving.canary import ShadowLog
from gemini_sft.serving.client import read_serving_plan
from gemini_sft.serving.vllm import VllmReplyGenerator, chat_request_body, reply_from_chat_response
from gemini_sft.standin.routing import StandInError
from gemini_sft.standin.vllm_container import parse_prediction_body
from serving_helpers import BASE_MODEL, CANDIDATE, GOOD, PARENT, PRODUCTION, ScriptedModel

OPEN = ModelVersion(model=f"{PARENT}/models/300", version="1", endpoint=f"{PARENT}/endpoints/301")
OPEN_BASE = "tiny-local"


def _chat_completion(content: str, finish: str = "stop", logprobs: list[float] | None = None) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish,
              "logprobs": {"content": [{"token": "t", "logprob": v} for v in logprobs]} if logprobs else None}
    return {"predictions": {"object": "chat.completion", "model": "m", "choices": [choice]}}


def test_a_question_becomes_one_chat_instance_with_the_system_instruction_first() -> None:
    body = chat_request_body(ReplyRequest("My card was charged twice", "Triage the ticket.", 64, 0.0,
                                          response_logprobs=False))
    assert body == {"instances": [{
        "@requestFormat": "chatCompletions",
        "messages": [{"role": "system", "content": "Triage the ticket."},
                     {"role": "user", "content": "My card was charged twice"}],
        "max_tokens": 64, "temperature": 0.0,
    }]}
    assert parse_prediction_body(body) == body["instances"]  # the stand-in's container takes it


def test_the_chat_completion_is_read_with_its_finish_reason_and_logprobs() -> None:
    cut = reply_from_chat_response(_chat_completion("Category: bill", "length"), "e")
    assert (cut.text, cut.finish_reason, cut.avg_logprob) == ("Category: bill", "MAX_TOKENS", None)
    listed = {"predictions": [_chat_completion(GOOD, logprobs=[-0.5, -1.5])["predictions"]]}
    reply = reply_from_chat_response(listed, "e")
    assert (reply.text, reply.finish_reason, reply.avg_logprob) == (GOOD, "STOP", -1.0)
    with pytest.raises(GenerationCallError, match="no choices"):
        reply_from_chat_response({"predictions": ["Prompt:\nhi\nOutput:\nhello"]}, "e")


def test_the_generator_posts_the_chat_body_to_its_endpoint() -> None:
    sent: list[tuple[str, dict]] = []
    generator = VllmReplyGenerator(OPEN.endpoint, lambda endpoint, body: sent.append((endpoint, body))
                                   or _chat_completion(GOOD))
    assert generator(ReplyRequest("hi", max_output_tokens=8)).text == GOOD
    assert sent[0][0] == OPEN.endpoint and sent[0][1]["instances"][0]["max_tokens"] == 8


@pytest.mark.parametrize("body, message", [
    ({"prompt": "hi", "max_tokens": 8}, "unknown field"),
    ({"instances": []}, "non-empty list"),
    ({"instances": [{"prompt": "hi", "max_output_tokens": 8}]}, "unknown field"),
    ({"instances": [{"prompt": ""}]}, "non-empty \"prompt\""),
    ({"instances": [{"@requestFormat": "chat", "messages": []}]}, "must be 'chatCompletions'"),
    ({"instances": [{"@requestFormat": "chatCompletions", "messages": [{"role": "model", "content": "x"}]}]},
     "role must be one of"),
    ({"instances": [{"@requestFormat": "chatCompletions", "messages": [{"role": "user", "content": "x"}],
                     "max_tokens": 0}]}, "max_tokens must be a positive integer"),
    ({"instances": [{"@requestFormat": "chatCompletions", "messages": [{"role": "user", "content": "x"}]}] * 2},
     "exactly one instance"),
])
def test_the_standin_container_refuses_what_vllm_would(body: dict, message: str) -> None:
    with pytest.raises(StandInError, match=message) as refused:
        parse_prediction_body(body)
    assert refused.value.http_status == 400


def _open_champion(root: Path) -> PromotionStore:
    store = PromotionStore(str(root))
    append_new_record(store, "promotion", OPEN, Provenance(base_model=OPEN_BASE, pipeline_run="run-ow"), None,
                      alias="production", tuning_backend="open-weights", deployed_model_id="302")
    return store


def _client(store: PromotionStore, gemini: dict[str, ScriptedModel], vllm: dict[str, ScriptedModel],
            **plan: str) -> ServingClient:
    return ServingClient(read_serving_plan(store, **plan), lambda name: gemini[name], ServingSettings(),
                         open_generator_for=lambda endpoint: vllm[endpoint], shadow_log=ShadowLog(store.files),
                         sleep=lambda _seconds: None)


def test_an_open_champion_is_asked_through_its_endpoint_without_logprobs(tmp_path: Path) -> None:
    store = _open_champion(tmp_path)
    tuned = ScriptedModel(OPEN.endpoint, ModelReply(GOOD, "STOP"))
    answer = _client(store, {}, {OPEN.endpoint: tuned}).ask("My card was charged twice")
    assert (answer.answered_by, answer.model, answer.text) == ("tuned", OPEN.endpoint, GOOD)
    assert tuned.requests[0].response_logprobs is False
    assert any("no log-probabilities" in note for note in answer.notes)


def test_an_unfit_open_answer_falls_back_to_a_gemini_model_and_says_so(tmp_path: Path) -> None:
    store = _open_champion(tmp_path)
    tuned = ScriptedModel(OPEN.endpoint, ModelReply("Category: bil", "MAX_TOKENS"))
    gemini = ScriptedModel("gemini-2.0-flash-001", ModelReply(GOOD, "STOP"))
    answer = _client(store, {"gemini-2.0-flash-001": gemini}, {OPEN.endpoint: tuned},
                     gemini_fallback="gemini-2.0-flash-001").ask("My card was charged twice")
    assert (answer.answered_by, answer.model, answer.fallback_reason) == ("base", "gemini-2.0-flash-001", "max_tokens")
    assert any("falls back to the Gemini model gemini-2.0-flash-001" in note and OPEN_BASE in note
               for note in answer.notes)


def test_the_default_fallback_of_an_open_champion_is_the_catalogues_gemini_model(tmp_path: Path) -> None:
    from gemini_sft.model_catalog import DEFAULT_BASE_MODEL

    assert read_serving_plan(_open_champion(tmp_path)).base_model == DEFAULT_BASE_MODEL
    assert read_serving_plan(_open_champion(tmp_path), base_model="gemini-2.5-pro").base_model == "gemini-2.5-pro"


def test_a_fallback_that_is_not_gemini_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set --base-model .*base_model in the config"):
        read_serving_plan(_open_champion(tmp_path), base_model="google/gemma-3-1b-it")


def test_an_open_canary_beside_a_gemini_champion_is_asked_with_vllm(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    promote(store, PRODUCTION, provenance=Provenance(base_model=BASE_MODEL, pipeline_run="run-1"))
    stage_candidate(store, OPEN, provenance=Provenance(base_model=OPEN_BASE, pipeline_run="run-ow"))
    staged = staged_candidates(store)[0]
    # the staged record of an open model names its backend; the canary record alone does not
    store.append(staged.model_copy(update={"record_id": "ow-staged", "tuning_backend": "open-weights"}))
    set_canary(store, staged_candidates(store)[0], share=1.0)
    vllm = ScriptedModel(OPEN.endpoint, ModelReply("", "STOP"))
    production = ScriptedModel(PRODUCTION.endpoint, ModelReply(GOOD, "STOP"))
    client = _client(store, {PRODUCTION.endpoint: production}, {OPEN.endpoint: vllm})
    assert client.plan.base_model == BASE_MODEL
    answer = client.ask("My card was charged twice")
    assert len(vllm.requests) == 1 and (answer.answered_by, answer.fallback_reason) == ("tuned", "empty")


def test_a_gemini_canary_beside_an_open_champion_lends_its_base_model(tmp_path: Path) -> None:
    store = _open_champion(tmp_path)
    stage_candidate(store, CANDIDATE, provenance=Provenance(base_model="gemini-2.0-flash-001", pipeline_run="r2"))
    set_canary(store, staged_candidates(store)[0], share=1.0)
    canary = ScriptedModel(CANDIDATE.endpoint, ModelReply(GOOD, "STOP"))
    client = _client(store, {CANDIDATE.endpoint: canary}, {})
    assert client.plan.base_model == "gemini-2.0-flash-001"
    answer = client.ask("My card was charged twice")
    assert (answer.answered_by, answer.model) == ("canary", CANDIDATE.endpoint)
