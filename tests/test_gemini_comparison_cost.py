"""What an open-weights run's Gemini comparison costs: validate's estimate and budget, the actual, the champion rule."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from gemini_sft.components.promote import find_champion
from gemini_sft.cost import serving_cost
from gemini_sft.errors import BudgetExceededError
from gemini_sft.evaluation.comparison import OPEN_WEIGHTS_CHAMPION
from gemini_sft.evaluation.output import write_outputs
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import make_example
from gemini_sft.open_weights.evaluation import evaluate_recorded_answers
from gemini_sft.promotion import ModelVersion, PromotionStore
from gemini_sft.promotion.records import PromotionRecord, new_record_id, record_timestamp
from gemini_sft.run_summary import build_run_summary
from gemini_sft.validate import ValidationSettings, validate_splits
from gemini_sft.vertex_client import VertexSettings

OPEN = {"tuning_backend": "open-weights"}
ENDPOINT = "projects/p/locations/us-central1/endpoints/77"


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _pairs(n: int) -> list[tuple[str, str]]:
    return [(f"Ticket {i}: the printer on floor {i} is jammed again", f"Category: hardware\nPriority: p{i % 3}")
            for i in range(n)]


def _splits(tmp_path: Path, holdout_examples: int = 12) -> tuple[Path, Path, Path]:
    rows = [make_example(q, a) for q, a in _pairs(60)]
    return (_jsonl(tmp_path / "train.jsonl", rows), _jsonl(tmp_path / "validation.jsonl", rows[:10]),
            _jsonl(tmp_path / "holdout.jsonl", [make_example(q, a) for q, a in _pairs(holdout_examples)]))


def _validate(tmp_path: Path, budget: float | None = None, **settings: Any) -> Any:
    train, validation, holdout = _splits(tmp_path)
    return validate_splits(train, validation, ValidationSettings(**settings), budget, holdout=holdout)


def test_the_estimate_prices_the_gemini_comparison_as_one_model_on_the_holdout(tmp_path: Path) -> None:
    compared = _validate(tmp_path, **OPEN, compare_with_gemini="base")
    line = compared.comparison.cost
    assert line.calls == 12  # one Gemini model x every holdout example
    # the holdout evaluation of a Gemini run asks two models the same questions: the same tokens, twice
    evaluation = _validate(tmp_path).serving.evaluation
    assert evaluation.calls == 2 * line.calls
    assert line.input_tokens == pytest.approx(evaluation.input_tokens / 2, abs=1)
    assert line.output_tokens == pytest.approx(evaluation.output_tokens / 2, abs=1)
    assert line.cost_usd == pytest.approx(serving_cost("gemini-2.5-flash", 12, line.input_tokens,
                                                       line.output_tokens).cost_usd)
    assert line.cost_usd > 0
    assert compared.estimated_total_usd == pytest.approx(compared.estimated_cost_usd + line.cost_usd)
    costs = compared.to_result_json()["costs"]
    assert costs["gemini_comparison"]["calls"] == 12 and costs["gemini_comparison"]["model"] == "gemini-2.5-flash"
    assert compared.metrics()["gemini_comparison_calls"] == 12
    assert "| Gemini comparison |" in compared.to_markdown() and "Gemini comparison" in compared.to_text()
    # a champion is priced as the Gemini base it was tuned from
    champion = _validate(tmp_path, **OPEN, compare_with_gemini="champion").comparison.cost
    assert champion.cost_usd == pytest.approx(line.cost_usd)


def test_no_comparison_line_without_the_comparison_or_for_a_gemini_run(tmp_path: Path) -> None:
    for settings in (OPEN, {"compare_with_gemini": "base"}):  # compare_with_gemini applies to open weights only
        outcome = _validate(tmp_path, **settings)
        assert outcome.comparison is None and outcome.costs()["gemini_comparison"] is None
        assert "Gemini comparison" not in outcome.to_markdown()


def test_the_budget_holds_the_comparison_and_names_the_setting_that_drops_it(tmp_path: Path) -> None:
    compared = _validate(tmp_path, **OPEN, compare_with_gemini="base")
    budget = compared.estimated_cost_usd + compared.comparison.cost_usd / 2
    over = _validate(tmp_path, budget, **OPEN, compare_with_gemini="base")
    assert not over.within_budget
    with pytest.raises(BudgetExceededError, match="Gemini comparison") as refused:
        over.raise_if_failed()
    assert "compare_with_gemini=none" in str(refused.value)
    _validate(tmp_path, budget, **OPEN).raise_if_failed()


def _training_folder(tmp_path: Path, pairs: list[tuple[str, str]]) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path / "model"
    folder.mkdir()

    def answer(text: str, version: str) -> dict[str, Any]:
        return {"answer": text, "error": None, "attempts": 1, "model_version": version, "finish_reason": "STOP",
                "latency_seconds": 0.1, "scores": None}

    _jsonl(folder / "predictions.jsonl", [
        {"example_id": f"line-{i + 1}", "prompt": q, "reference": a,
         "base": answer("no idea", "tiny-local"), "tuned": answer(a, "tiny-local+lora")}
        for i, (q, a) in enumerate(pairs)])
    (folder / "training_summary.json").write_text(json.dumps({
        "tiny_local_model": True, "epochs_trained": 1,
        "settings": {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1},
        "figures": {"train_tokens": 1000, "gpu_hours": 0.1}}), encoding="utf-8")
    return folder, {"tuning_backend": "open-weights", "predictions": "predictions.jsonl",
                    "base_model_version": "tiny-local", "tuned_model_version": "tiny-local+lora"}


def test_the_run_summary_puts_the_comparison_estimate_beside_its_actual(tmp_path: Path, standin) -> None:
    train, validation, holdout = _splits(tmp_path)
    estimate = validate_splits(train, validation, ValidationSettings(**OPEN, compare_with_gemini="base"), None,
                               holdout=holdout).to_result_json()
    folder, metadata = _training_folder(tmp_path, _pairs(12))
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    result = evaluate_recorded_answers(holdout, folder, metadata,
                                       EvaluationSettings(bootstrap_samples=0, compare_with_gemini="base"),
                                       vertex=vertex, train_path=train)
    summary = build_run_summary({"passed": True}, result.to_document(), {"base_model": "tiny-local"}, {}, estimate)
    comparison = summary["costs"]["gemini_comparison"]
    assert comparison["estimate"] == estimate["costs"]["gemini_comparison"]
    actual = comparison["actual"]
    metrics = result.metrics
    expected = serving_cost("gemini-2.5-flash", 12, metrics["gemini_input_tokens"],
                            metrics["gemini_output_tokens"] + metrics["gemini_thinking_tokens"])
    assert actual == expected.to_dict() and actual["calls"] == comparison["estimate"]["calls"] == 12
    assert actual["cost_usd"] == pytest.approx(metrics["gemini_cost_usd"], rel=1e-3)
    # the Gemini calls are the comparison's, not the open model's holdout evaluation
    holdout_actual = summary["costs"]["holdout_evaluation"]["actual"]
    assert holdout_actual["calls"] == 24 and holdout_actual["input_tokens"] == 0


def _record_open_weights_champion(registry: Path) -> None:
    record = PromotionRecord(record_id=new_record_id(), kind="promotion", created_at=record_timestamp(),
                             model=ModelVersion.parse("projects/p/locations/us-central1/models/9@1", endpoint=ENDPOINT),
                             tuning_backend="open-weights", deployed_model_id="555")
    PromotionStore(str(registry)).append(record)


def test_an_open_weights_champion_is_not_asked_as_a_gemini_model(tmp_path: Path, standin, caplog) -> None:
    registry = tmp_path / "registry"
    _record_open_weights_champion(registry)
    champion = find_champion(registry_uri=str(registry))
    assert (champion.champion_endpoint, champion.champion_backend) == (ENDPOINT, "open-weights")

    _, _, holdout = _splits(tmp_path)
    folder, metadata = _training_folder(tmp_path, _pairs(12))
    settings = EvaluationSettings(bootstrap_samples=0, compare_with_gemini="champion",
                                  champion_endpoint=champion.champion_endpoint,
                                  champion_backend=champion.champion_backend)
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    with caplog.at_level(logging.WARNING, logger="gemini_sft.evaluation.comparison"):
        result = evaluate_recorded_answers(holdout, folder, metadata, settings, vertex=vertex)
    assert result.roles == ["base", "tuned"]
    assert standin.requests_to("endpoints/77") == []  # nothing asked the deployment for a Gemini answer
    assert [r.getMessage() for r in caplog.records] == [f"compare_with_gemini=champion: {OPEN_WEIGHTS_CHAMPION}"]
    assert result.comparison["gemini_skipped"] == OPEN_WEIGHTS_CHAMPION
    write_outputs(result, predictions=tmp_path / "out/p.jsonl", evaluation=tmp_path / "out/e.json",
                  markdown=tmp_path / "out/r.md", html=tmp_path / "out/r.html")
    section = (tmp_path / "out/r.md").read_text().split("## Managed vs self-hosted", 1)[1]
    assert OPEN_WEIGHTS_CHAMPION in section and "a Gemini model answered" not in section
    assert OPEN_WEIGHTS_CHAMPION in (tmp_path / "out/r.html").read_text()
    summary = build_run_summary({"passed": True}, result.to_document(), {"base_model": "tiny-local"}, {}, None)
    assert summary["costs"]["gemini_comparison"]["actual"]["calls"] == 0


def test_a_gemini_champion_is_still_asked(tmp_path: Path) -> None:
    from gemini_sft.evaluation.comparison import gemini_comparison_model

    settings = EvaluationSettings(compare_with_gemini="champion", champion_endpoint=ENDPOINT,
                                  champion_backend="vertex-gemini")
    assert gemini_comparison_model(settings) == ENDPOINT
