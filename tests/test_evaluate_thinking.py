"""Thinking in the evaluation: what each model is sent, checked by the strict stand-in; thinking tokens and cost."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from google.genai import types

from gemini_sft.errors import ConfigError
from gemini_sft.evaluation.generation import GenerationResult
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.evaluation.markdown_report import render_markdown
from gemini_sft.evaluation.html_report import render_html
from gemini_sft.evaluation.run import evaluate_holdout, run_evaluation
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import evaluation_case, make_example
from gemini_sft.model_catalog import catalog_entry, thinking_config_for
from gemini_sft.vertex_client import GenAIGenerator, VertexSettings, genai_client

ENDPOINT = "projects/p/locations/us-central1/endpoints/9"


@pytest.mark.parametrize(
    "model, expected",
    [
        ("gemini-2.5-flash", {"thinking_budget": 0}),
        ("gemini-2.5-pro", {"thinking_budget": 128}),  # cannot turn thinking off: its lowest budget
        ("gemini-3.5-flash", {"thinking_level": "MINIMAL"}),  # levels replace budgets
        ("gemini-3.1-flash-lite", {"thinking_level": "MINIMAL"}),
    ],
)
def test_off_or_lowest_follows_each_models_rules(model, expected):
    assert thinking_config_for(model, "off-or-lowest") == expected
    # an endpoint tuned from that model follows the same rules
    assert thinking_config_for(ENDPOINT, "off-or-lowest", rules_of=model) == expected


def test_explicit_choices_are_checked_against_the_model():
    assert thinking_config_for("gemini-2.5-flash", "model-default") is None
    assert thinking_config_for("gemini-2.5-flash", "1024") == {"thinking_budget": 1024}
    assert thinking_config_for("gemini-2.5-pro", "-1") == {"thinking_budget": -1}
    assert thinking_config_for("gemini-3.5-flash", "low") == {"thinking_level": "LOW"}
    with pytest.raises(ConfigError, match="cannot turn thinking off"):
        thinking_config_for("gemini-2.5-pro", "0")
    with pytest.raises(ConfigError, match="refuses a thinking budget"):
        thinking_config_for("gemini-3.5-flash", "512")
    with pytest.raises(ConfigError, match="takes a thinking budget"):
        thinking_config_for("gemini-2.5-flash", "MINIMAL")
    with pytest.raises(ConfigError, match="not a thinking level"):
        thinking_config_for("gemini-3.5-flash", "TURBO")
    with pytest.raises(ConfigError, match="out of range"):
        thinking_config_for("gemini-2.5-flash", "100000")


def _examples(n: int) -> list[dict]:
    return [make_example(f"Ticket {i}: the {('billing', 'outage')[i % 2]} issue number {i}",
                         f"Category: {('billing', 'outage')[i % 2]}", "Triage the ticket.") for i in range(n)]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _tuned_endpoint(standin, base_model: str, train: Path) -> str:
    client = genai_client(VertexSettings.create("p", "us-central1", standin.base_url))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK flags its tuning API as experimental
        job = client.tunings.tune(base_model=base_model, training_dataset=types.TuningDataset(gcs_uri=str(train)))
    for _ in range(20):
        if job.has_ended:
            break
        job = client.tunings.get(name=job.name)
    assert job.has_succeeded, job.error
    return job.tuned_model.endpoint


@pytest.mark.parametrize(
    "base_model, thinking, sent",
    [
        ("gemini-2.5-flash", "off-or-lowest", {"thinkingBudget": 0}),
        ("gemini-2.5-pro", "off-or-lowest", {"thinkingBudget": 128}),
        ("gemini-3.5-flash", "off-or-lowest", {"thinkingLevel": "MINIMAL"}),
        ("gemini-3.5-flash", "LOW", {"thinkingLevel": "LOW"}),
        ("gemini-2.5-pro", "model-default", None),
    ],
)
def test_the_strict_stand_in_accepts_what_the_evaluation_sends(tmp_path, start_standin, base_model, thinking, sent):
    standin = start_standin(polls_per_state=0)
    train = _write(tmp_path / "train.jsonl", _examples(8))
    endpoint = _tuned_endpoint(standin, base_model, train)
    settings = EvaluationSettings(base_model=base_model, tuned_endpoint=endpoint, thinking=thinking,
                                  requests_per_minute=60000, bootstrap_samples=0)
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    result = evaluate_holdout(_write(tmp_path / "holdout.jsonl", _examples(6)), settings, vertex, train_path=train)
    # every call was accepted by the stand-in, which refuses what Vertex refuses
    assert result.metrics["base_error_rate"] == 0.0 and result.metrics["tuned_error_rate"] == 0.0
    calls = standin.requests_to(":generateContent")
    assert len(calls) == 12 and {c.status for c in calls} == {200}
    for call in calls:
        config = call.body["generationConfig"].get("thinkingConfig")
        normalised = None if config is None else {
            {"thinking_budget": "thinkingBudget", "thinking_level": "thinkingLevel"}.get(k, k): v
            for k, v in config.items()
        }
        assert normalised == sent
    assert result.to_document()["thinking"]["setting"] == thinking


def test_a_choice_the_model_refuses_fails_before_any_call(tmp_path, start_standin):
    standin = start_standin(polls_per_state=0)
    with pytest.raises(ConfigError, match="cannot turn thinking off"):
        EvaluationSettings(base_model="gemini-2.5-pro", tuned_endpoint=ENDPOINT, thinking="0")
    # the base model allows budget 0, the compared publisher model does not: refused before any call
    settings = EvaluationSettings(base_model="gemini-2.5-flash", tuned_endpoint="gemini-2.5-pro", thinking="0")
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    with pytest.raises(ConfigError, match="gemini-2.5-pro cannot turn thinking off"):
        evaluate_holdout(_write(tmp_path / "holdout.jsonl", _examples(2)), settings, vertex)
    assert standin.requests_to(":generateContent") == []


class _Client:
    def __init__(self, response) -> None:
        self.models = self
        self.response = response
        self.configs: list = []

    def generate_content(self, **kwargs):
        self.configs.append(kwargs["config"])
        return self.response


def test_generator_reads_thinking_tokens_apart_from_answer_tokens():
    response = types.GenerateContentResponse(
        candidates=[types.Candidate(content=types.Content(role="model", parts=[types.Part(text="Category: billing")]),
                                    finish_reason=types.FinishReason.STOP)],
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=12, candidates_token_count=4, thoughts_token_count=300),
    )
    client = _Client(response)
    generator = GenAIGenerator(VertexSettings("p", "us-central1", None), "gemini-3.5-flash",
                               thinking={"thinking_level": "MINIMAL"}, client=client)
    result = generator(evaluation_case(make_example("ticket", "Category: billing")))
    assert (result.input_tokens, result.output_tokens, result.thinking_tokens) == (12, 4, 300)
    assert client.configs[0].thinking_config.thinking_level == types.ThinkingLevel.MINIMAL


def test_thinking_tokens_and_their_cost_are_reported_per_model():
    holdout = [HoldoutCase(f"ex-{i}", evaluation_case(make_example(f"p{i}", "Category: billing"))) for i in range(4)]

    def base(case):
        return GenerationResult("Category: billing", "v", "STOP", input_tokens=10, output_tokens=5, thinking_tokens=0)

    def tuned(case):
        return GenerationResult("Category: billing", "v", "STOP", input_tokens=10, output_tokens=5,
                                thinking_tokens=100)

    settings = EvaluationSettings(base_model="gemini-2.5-pro", tuned_endpoint=ENDPOINT, requests_per_minute=1e9,
                                  bootstrap_samples=0)
    result = run_evaluation(holdout, {"base": base, "tuned": tuned}, settings,
                            thinking=settings.thinking_configs())
    m = result.metrics
    assert (m["base_thinking_tokens"], m["tuned_thinking_tokens"]) == (0, 400)
    assert m["tuned_thinking_tokens_mean"] == 100
    prices = catalog_entry("gemini-2.5-pro").prices  # the endpoint is priced as its base model
    assert m["tuned_thinking_cost_usd"] == pytest.approx(400 * prices.generation_output / 1e6)
    assert m["tuned_cost_usd"] == pytest.approx((40 * prices.generation_input + 420 * prices.generation_output) / 1e6)
    assert m["tuned_cost_usd"] > m["base_cost_usd"]
    markdown = render_markdown(result)
    assert "## Thinking and cost" in markdown and "budget 128" in markdown
    assert "| Tuned | budget 128 | 400 | 100.0 | 20 |" in markdown
    assert "Thinking and cost" in render_html(result)


def test_every_entry_point_refuses_a_thinking_choice_the_base_model_refuses():
    from gemini_sft.settings_check import pipeline_stage_records, setting_problems

    records = pipeline_stage_records()
    assert setting_problems({"base_model": "gemini-2.5-flash", "eval_thinking": "0"}, records) == []
    [problem] = setting_problems({"base_model": "gemini-2.5-pro", "eval_thinking": "0"}, records)
    assert problem.startswith("eval_thinking=0: gemini-2.5-pro cannot turn thinking off")
    [problem] = setting_problems({"base_model": "gemini-2.5-flash", "eval_thinking": "HIGH"}, records)
    assert "takes a thinking budget" in problem
