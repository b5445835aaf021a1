"""The validate KFP shell (through .python_func with artifacts on tmp_path) and the countTokens counter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kfp.dsl import Artifact, Dataset, Markdown, Metrics

from gemini_sft import errors, vertex_client
from gemini_sft.components.validate import validate_data_op
from gemini_sft.errors import BudgetExceededError, DatasetInvalidError
from gemini_sft.examples import make_example
from gemini_sft.tokens import estimate_example_tokens
from gemini_sft.validate import TOKEN_SOURCE_API, TOKEN_SOURCE_ESTIMATE, ValidationConfig, validate_dataset


def write_split(path: Path, n: int, bad_line: int | None = None) -> list[dict]:
    examples = [make_example(f"ticket {i} about billing", f"Category: billing {i}", "Triage tickets.") for i in range(n)]
    lines = [json.dumps(e) for e in examples]
    if bad_line is not None:
        lines[bad_line - 1] = json.dumps({"contents": [{"role": "user", "parts": [{"text": "q"}]}]})
    path.write_text("".join(item + "\n" for item in lines), encoding="utf-8")
    return examples


def artifacts(tmp_path: Path, train_rows: int = 150, validation_rows: int = 20,
              bad_validation_line: int | None = None) -> dict[str, Any]:
    train = Dataset(uri=str(tmp_path / "train.jsonl"))
    validation = Dataset(uri=str(tmp_path / "validation.jsonl"))
    write_split(Path(train.path), train_rows)
    if validation_rows:
        write_split(Path(validation.path), validation_rows, bad_validation_line)
    return {
        "train": train,
        "validation": validation,
        "report": Markdown(uri=str(tmp_path / "out" / "report.md")),
        "validation_result": Artifact(uri=str(tmp_path / "out" / "validation_result.json")),
        "metrics": Metrics(uri=str(tmp_path / "out" / "metrics")),
    }


def test_valid_splits_write_report_result_and_metrics(tmp_path: Path) -> None:
    arts = artifacts(tmp_path)
    outputs = validate_data_op.python_func(**arts, epochs=2, max_budget_usd=100.0)
    examples = [json.loads(x) for x in Path(arts["train"].path).read_text().splitlines()]
    tokens = sum(estimate_example_tokens(e) for e in examples)
    assert outputs.examples == 150
    assert outputs.billable_tokens == (tokens + 8 * 150) * 2
    assert outputs.estimated_cost_usd == pytest.approx((tokens + 8 * 150) * 2 * 5.0 / 1e6)

    result = json.loads(Path(arts["validation_result"].path).read_text())
    assert result["valid"] is True and result["within_budget"] is True
    assert result["token_source"] == TOKEN_SOURCE_ESTIMATE
    assert result["train"]["examples"] == 150 and result["validation"]["examples"] == 20
    assert arts["validation_result"].metadata["valid"] is True

    report = Path(arts["report"].path).read_text()
    assert "train.jsonl" in report and "validation.jsonl" in report and "within budget" in report
    assert arts["metrics"].metadata["train_examples"] == 150
    assert arts["metrics"].metadata["validation_examples"] == 20
    assert arts["metrics"].metadata["billable_tokens"] == outputs.billable_tokens


def test_invalid_validation_split_fails_after_writing_the_report(tmp_path: Path) -> None:
    arts = artifacts(tmp_path, bad_validation_line=7)
    with pytest.raises(DatasetInvalidError, match=r"validation\.jsonl.*line 7: \[last_turn_not_model\]"):
        validate_data_op.python_func(**arts)
    result = json.loads(Path(arts["validation_result"].path).read_text())
    assert result["valid"] is False
    assert result["validation"]["errors"][0]["line"] == 7
    assert "last_turn_not_model" in Path(arts["report"].path).read_text()


def test_over_budget_fails_before_tuning(tmp_path: Path) -> None:
    arts = artifacts(tmp_path)
    with pytest.raises(BudgetExceededError, match="above the budget"):
        validate_data_op.python_func(**arts, max_budget_usd=0.0001, price_per_million_tokens_usd=100.0)
    result = json.loads(Path(arts["validation_result"].path).read_text())
    assert result["valid"] is True and result["within_budget"] is False
    assert "over budget" in Path(arts["report"].path).read_text()


def test_zero_budget_disables_the_guard(tmp_path: Path) -> None:
    outputs = validate_data_op.python_func(**artifacts(tmp_path), max_budget_usd=0.0, price_per_million_tokens_usd=1e6)
    assert outputs.estimated_cost_usd > 1.0


def test_missing_validation_split_is_allowed(tmp_path: Path) -> None:
    arts = artifacts(tmp_path, validation_rows=0)
    outputs = validate_data_op.python_func(**arts)
    assert outputs.examples == 150
    assert json.loads(Path(arts["validation_result"].path).read_text())["validation"] is None


def test_api_counter_is_used_when_a_project_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, str]] = []

    class FakeCounter:
        def __init__(self, settings: vertex_client.VertexSettings, model: str) -> None:
            made.append((settings.project, model))

        def count_example_tokens(self, examples: Any) -> list[int]:
            return [1_000 for _ in examples]

    monkeypatch.setattr(vertex_client, "ApiTokenCounter", FakeCounter)
    arts = artifacts(tmp_path)
    outputs = validate_data_op.python_func(**arts, project="p", epochs=1, api_endpoint="http://127.0.0.1:9")
    assert made == [("p", "gemini-2.5-flash")]
    assert outputs.billable_tokens == (1_000 + 8) * 150
    assert json.loads(Path(arts["validation_result"].path).read_text())["token_source"] == TOKEN_SOURCE_API


# ---------------------------------------------------------------------------- ApiTokenCounter


class FakeModels:
    """client.models with count_tokens: counts characters of the request; fails as told."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures = list(failures or [])

    def count_tokens(self, model: str, contents: Any, config: Any) -> Any:
        self.requests.append({"model": model, "contents": contents, "config": config})
        if self.failures:
            raise self.failures.pop(0)
        text = json.dumps(contents)
        return type("Response", (), {"total_tokens": len(text)})()


def counter_with(models: FakeModels, **kwargs: Any) -> vertex_client.ApiTokenCounter:
    client = type("Client", (), {"models": models})()
    settings = vertex_client.VertexSettings("p", "us-central1", "http://127.0.0.1:9")
    return vertex_client.ApiTokenCounter(settings, "gemini-2.5-flash-001", client=client, backoff_seconds=0, **kwargs)


def test_api_counter_sends_system_instruction_and_caches_duplicates() -> None:
    models = FakeModels()
    counter = counter_with(models)
    a = make_example("q1", "a1", "Be brief.")
    b = make_example("q2", "a2")
    counts = counter.count_example_tokens([a, b, a, a])
    assert counts[0] == counts[2] == counts[3] == len(json.dumps(a["contents"]))
    assert len(models.requests) == 2
    assert models.requests[0]["model"] == "gemini-2.5-flash-001"
    instructions = [r["config"].system_instruction for r in models.requests]
    texts = {i.parts[0].text if i is not None else None for i in instructions}
    assert texts == {"Be brief.", None}
    assert counter.count_example_tokens([b]) == [counts[1]]
    assert len(models.requests) == 2  # cached


def test_api_counter_retries_transient_errors_and_gives_up_on_others() -> None:
    from google.genai import errors as genai_errors

    unavailable = genai_errors.ServerError(503, {"error": {"code": 503, "status": "UNAVAILABLE"}})
    forbidden = genai_errors.ClientError(403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}})
    models = FakeModels([unavailable])
    assert counter_with(models).count_example_tokens([make_example("q", "a")])[0] > 0
    assert len(models.requests) == 2
    with pytest.raises(errors.VertexApiError, match="403"):
        counter_with(FakeModels([forbidden])).count_example_tokens([make_example("q", "a")])
    with pytest.raises(errors.VertexApiError, match="after 2 attempts"):
        counter_with(FakeModels([unavailable, unavailable]), attempts=2).count_example_tokens([make_example("q", "a")])


def test_api_counter_against_the_offline_standin(tmp_path: Path) -> None:
    standin = pytest.importorskip("gemini_sft.standin")
    path = tmp_path / "train.jsonl"
    examples = write_split(path, 12)
    with standin.VertexStandIn() as server:
        settings = vertex_client.VertexSettings.create("p", "us-central1", server.base_url)
        counter = vertex_client.ApiTokenCounter(settings, "gemini-2.5-flash")
        report = validate_dataset(path, ValidationConfig(), token_counter=counter)
    assert report.token_source == TOKEN_SOURCE_API
    assert counter.requests == len(examples)
    assert report.token_stats.examples == 12
    assert report.token_stats.total > 0
    assert report.valid


def test_unreachable_api_falls_back_to_the_estimate(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    write_split(path, 5)
    settings = vertex_client.VertexSettings.create("p", "us-central1", "http://127.0.0.1:9")
    counter = vertex_client.ApiTokenCounter(settings, "gemini-2.5-flash", attempts=1)
    report = validate_dataset(path, ValidationConfig(), token_counter=counter)
    assert report.token_source == TOKEN_SOURCE_ESTIMATE
    assert report.warning_counts["token_count_api_unavailable"] == 1
