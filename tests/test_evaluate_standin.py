"""Evaluation through the real google-genai SDK against the offline stand-in (HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from artifact_helpers import output_artifacts
from google.genai import types
from kfp.dsl import Dataset

from gemini_sft.cli import main
from gemini_sft.components.evaluate import evaluate_models_op
from gemini_sft.evaluation.holdout import load_holdout
from gemini_sft.evaluation.run import run_evaluation
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import make_example
from gemini_sft.retry import RetryPolicy
from gemini_sft.standin import VertexStandIn
from gemini_sft.vertex_client import GenAIGenerator, VertexSettings, genai_client

CATEGORIES = ["billing", "outage", "account", "refund"]


def examples(n: int, offset: int = 0) -> list[dict]:
    rows = []
    for i in range(offset, offset + n):
        category = CATEGORIES[i % len(CATEGORIES)]
        rows.append(make_example(
            f"Ticket {i}: customer reports a {category} problem number {i}",
            f"Category: {category}\nPriority: {'high' if i % 3 else 'low'}",
            "Triage the ticket.",
        ))
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def standin(start_standin):
    return start_standin(polls_per_state=0)


def tuned_endpoint(standin: VertexStandIn, train: Path) -> str:
    client = genai_client(VertexSettings.create("p", "us-central1", standin.base_url))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK flags its tuning API as experimental
        job = client.tunings.tune(
            base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri=str(train))
        )
    for _ in range(20):
        if job.has_ended:
            break
        job = client.tunings.get(name=job.name)
    assert job.has_succeeded
    return job.tuned_model.endpoint


def test_shell_against_stand_in_with_injected_faults(tmp_path, standin):
    # the holdout repeats the training prompts, so the stand-in's tuned model (nearest training example) wins
    train = write_jsonl(tmp_path / "train.jsonl", examples(24))
    holdout = write_jsonl(tmp_path / "holdout.jsonl", examples(24))
    endpoint = tuned_endpoint(standin, train)
    standin.inject_faults((429, 503), rate=0.15, seed=5)
    outs = output_artifacts(evaluate_models_op, tmp_path)
    evaluate_models_op.python_func(
        holdout=Dataset(uri=str(holdout)), train=Dataset(uri=str(train)), project="p", api_endpoint=standin.base_url,
        tuned_endpoint=endpoint, label_pattern=r"Category: (\w+)", max_concurrency=8,
        requests_per_minute=60000, bootstrap_samples=200, max_output_tokens=256, **outs,
    )
    document = json.loads(Path(outs["evaluation"].path).read_text())
    m = document["metrics"]
    assert document["offline_standin"] is True
    assert document["models"]["tuned"]["model"] == endpoint
    assert m["n_examples"] == 24
    assert m["tuned_label_accuracy"] == 1.0
    assert m["tuned_rougeL"] > m["base_rougeL"] and m["delta_rougeL_ci_low"] > 0
    rows = [json.loads(line) for line in Path(outs["predictions"].path).read_text().splitlines()]
    assert len(rows) == 24
    # every attempt the stand-in saw is accounted for by exactly one recorded answer per example and model
    attempts = sum(row[role]["attempts"] for row in rows for role in ("base", "tuned"))
    generate_calls = standin.requests_to(":generateContent")
    assert attempts == len(generate_calls)
    failed = [r for r in generate_calls if r.status in (429, 503)]
    assert failed, "faults were injected, so some calls must have been retried"
    assert m["tuned_error_rate"] == 0.0 and m["base_error_rate"] == 0.0  # all recovered by retries
    assert m["tuned_max_tokens_rate"] == 0.0 and rows[0]["tuned"]["finish_reason"] == "STOP"
    request = [r for r in generate_calls if endpoint.split("/")[-1] in r.path][0].body
    assert request["generationConfig"]["temperature"] == 0
    assert request["generationConfig"]["maxOutputTokens"] == 256
    assert request["systemInstruction"]["parts"][0]["text"] == "Triage the ticket."
    # thinking off by default: the tuned endpoint follows its base model, gemini-2.5-flash, which can turn it off
    assert list(request["generationConfig"]["thinkingConfig"].values()) == [0]
    assert document["thinking"]["sent"]["tuned"] == {"thinking_budget": 0}
    assert "answers were made by the offline stand-in" in Path(outs["html_report"].path).read_text()


def test_persistent_failures_are_errors_counted_once(tmp_path, standin):
    holdout = write_jsonl(tmp_path / "holdout.jsonl", examples(20))
    cases, _ = load_holdout(holdout)
    settings = VertexSettings.create("p", "us-central1", standin.base_url)
    client = genai_client(settings)
    standin.inject_faults((503,), rate=0.6, seed=2)
    models = {"base": "gemini-2.5-flash", "tuned": "gemini-2.5-flash-lite"}
    result = run_evaluation(
        cases,
        {role: GenAIGenerator(settings, model, 128, client=client) for role, model in models.items()},
        EvaluationSettings(base_model=models["base"], tuned_endpoint=models["tuned"], requests_per_minute=60000,
                           bootstrap_samples=50),
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0),
    )
    answers = [r.answers[role] for r in result.records for role in models]
    assert len(answers) == 40
    errors = [a for a in answers if not a.ok]
    assert errors and all(a.attempts == 2 and "503" in a.error for a in errors)
    assert sum(a.attempts for a in answers) == len(standin.requests_to(":generateContent"))
    assert result.metrics["base_errors"] + result.metrics["tuned_errors"] == len(errors)


def test_cli_compares_two_models(tmp_path, standin, capsys):
    holdout = write_jsonl(tmp_path / "holdout.jsonl", examples(8))
    out = tmp_path / "out"
    code = main([
        "evaluate", "--holdout", str(holdout), "--model", "gemini-2.5-flash", "--model", "gemini-2.5-flash-lite",
        "--project", "p", "--api-endpoint", standin.base_url, "--out", str(out), "--rpm", "60000",
        "--bootstrap-samples", "50", "--label-pattern", r"Category: (\w+)", "--thinking-budget", "0",
    ])
    captured = capsys.readouterr()
    assert code == 0
    assert "offline stand-in" in captured.out and "ROUGE-L" in captured.out
    assert "16/16 calls" in captured.err
    for name in ("evaluation.json", "predictions.jsonl", "report.md", "report.html"):
        assert (out / name).is_file()
    document = json.loads((out / "evaluation.json").read_text())
    assert document["models"]["tuned"]["model"] == "gemini-2.5-flash-lite"
    sent = standin.requests_to(":generateContent")[0].body["generationConfig"]
    # the SDK spells the field thinking_budget; the API accepts snake_case and lowerCamelCase alike
    assert list(sent["thinkingConfig"].values()) == [0] and sent["temperature"] == 0


def test_cli_usage_errors(tmp_path):
    holdout = write_jsonl(tmp_path / "holdout.jsonl", examples(2))
    assert main(["evaluate", "--holdout", str(holdout), "--model", "a", "--project", "p"]) == 2
    assert main(["evaluate", "--holdout", str(tmp_path / "missing.jsonl"), "--model", "a", "--model", "b",
                 "--project", "p", "--api-endpoint", "http://127.0.0.1:9"]) == 1


def test_answers_cut_by_the_token_cap_are_reported(tmp_path, standin):
    cases, _ = load_holdout(write_jsonl(tmp_path / "holdout.jsonl", examples(4)))
    settings = VertexSettings.create("p", "us-central1", standin.base_url)
    client = genai_client(settings)
    models = {"base": "gemini-2.5-flash", "tuned": "gemini-2.5-flash-lite"}
    result = run_evaluation(
        cases,
        {"base": GenAIGenerator(settings, models["base"], 2, client=client),
         "tuned": GenAIGenerator(settings, models["tuned"], 1024, client=client)},
        EvaluationSettings(base_model=models["base"], tuned_endpoint=models["tuned"], requests_per_minute=60000,
                           bootstrap_samples=0),
    )
    assert result.metrics["base_max_tokens_rate"] == 1.0
    assert result.metrics["tuned_max_tokens_rate"] == 0.0
