"""A Gemini run whose model in production is an open-weights deployment: the champion answers through vLLM."""

from __future__ import annotations

from gemini_sft.evaluation.settings import EvaluationSettings, build_generators
from gemini_sft.examples import EvaluationCase
from gemini_sft.serving.vllm import VllmCaseGenerator, case_chat_body
from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.vllm_container import parse_prediction_body
from gemini_sft.vertex_client import GenAIGenerator, VertexSettings

ENDPOINT = "projects/p/locations/us-central1/endpoints/77"
CASE = EvaluationCase(
    contents=[{"role": "user", "parts": [{"text": "My card was charged twice"}]},
              {"role": "model", "parts": [{"text": "Which card?"}]},
              {"role": "user", "parts": [{"text": "The ", }, {"text": "Visa one"}]}],
    reference="Category: billing", system_instruction="Triage the ticket.",
)


def test_a_case_becomes_one_chat_instance_the_container_takes() -> None:
    body = case_chat_body(CASE.system_instruction or "", CASE.contents, 64)
    (instance,) = parse_prediction_body(body)  # the stand-in's container, as strict as vLLM's, takes it
    assert [(m["role"], m["content"]) for m in instance["messages"]] == [
        ("system", "Triage the ticket."), ("user", "My card was charged twice"), ("assistant", "Which card?"),
        ("user", "The Visa one")]
    assert (instance["max_tokens"], instance["temperature"]) == (64, 0.0)
    assert case_chat_body("", CASE.contents[:1], 8)["instances"][0]["messages"][0]["role"] == "user"


def test_the_champion_answer_is_read_with_its_finish_reason_and_token_counts() -> None:
    sent: list[tuple[str, dict]] = []

    def raw_predict(endpoint: str, body: dict) -> dict:
        sent.append((endpoint, body))
        return {"predictions": {"model": "gemma+lora", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Category: billing"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 31, "completion_tokens": 4}}}

    result = VllmCaseGenerator(ENDPOINT, raw_predict, max_output_tokens=16)(CASE)
    assert (result.text, result.finish_reason, result.model_version) == ("Category: billing", "MAX_TOKENS", "gemma+lora")
    assert (result.input_tokens, result.output_tokens) == (31, 4)
    assert sent[0][0] == ENDPOINT and sent[0][1]["instances"][0]["max_tokens"] == 16


def test_an_open_weights_champion_gets_the_vllm_generator_and_a_gemini_one_does_not(standin: VertexStandIn) -> None:
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    settings = EvaluationSettings(tuned_endpoint="projects/p/locations/us-central1/endpoints/5",
                                  champion_endpoint=ENDPOINT, champion_backend="open-weights")
    generators = build_generators(settings, vertex)
    assert isinstance(generators["champion"], VllmCaseGenerator) and generators["champion"].model == ENDPOINT
    assert isinstance(generators["base"], GenAIGenerator) and isinstance(generators["tuned"], GenAIGenerator)
    gemini = build_generators(EvaluationSettings(tuned_endpoint=settings.tuned_endpoint, champion_endpoint=ENDPOINT,
                                                 champion_backend="vertex-gemini"), vertex)
    assert isinstance(gemini["champion"], GenAIGenerator)
