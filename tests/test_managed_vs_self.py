"""Open weights beside Gemini: the machine catalogue, the side-by-side evaluation and validate's open-weights budget."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import pytest

from gemini_sft import machine_catalog
from gemini_sft.errors import BudgetExceededError
from gemini_sft.evaluation.output import write_outputs
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import make_example
from gemini_sft.gate import GatePolicy, decide_gate
from gemini_sft.machine_catalog import MachineSpec, UncataloguedMachineWarning, load_machine_catalog
from gemini_sft.open_weights.costs import estimate_training_cost, serving_cost_per_1k_answers
from gemini_sft.open_weights.evaluation import evaluate_recorded_answers
from gemini_sft.run_summary import build_run_summary
from gemini_sft.validate import ValidationSettings, validate_splits
from gemini_sft.vertex_client import VertexSettings


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture()
def catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A copy of the shipped machine catalogue the code reads instead; ``set_price(machine, usd)`` edits it."""
    path = tmp_path / "machines.json"
    document = json.loads(machine_catalog.MACHINES_FILE.read_text(encoding="utf-8"))

    def set_price(machine: str, usd: float) -> None:
        document["machines"][machine]["on_demand_usd_per_hour"] = {"us-central1": usd}
        path.write_text(json.dumps(document), encoding="utf-8")
        machine_catalog.machine_catalog.cache_clear()

    path.write_text(json.dumps(document), encoding="utf-8")
    monkeypatch.setattr(machine_catalog, "MACHINES_FILE", path)
    machine_catalog.machine_catalog.cache_clear()
    set_price.path = path
    yield set_price
    machine_catalog.machine_catalog.cache_clear()


def _training_folder(tmp_path: Path, pairs: list[tuple[str, str]], *, machine: str, accelerator: str, count: int,
                     gpu_hours: float, tokens: int) -> tuple[Path, dict[str, Any]]:
    """A finished open-weights training folder: recorded answers (tuned right, base wrong) and its summary."""
    folder = tmp_path / "model"
    folder.mkdir()

    def answer(text: str, version: str, seconds: float) -> dict[str, Any]:
        return {"answer": text, "error": None, "attempts": 1, "model_version": version, "finish_reason": "STOP",
                "latency_seconds": seconds, "scores": None}

    _write_jsonl(folder / "predictions.jsonl", [
        {"example_id": f"line-{i + 1}", "prompt": q, "reference": a,
         "base": answer("no idea at all", "tiny-local", 0.2), "tuned": answer(a, "tiny-local+lora", 0.5)}
        for i, (q, a) in enumerate(pairs)
    ])
    (folder / "training_summary.json").write_text(json.dumps({
        "tiny_local_model": True, "epochs_trained": 2,
        "settings": {"machine_type": machine, "accelerator_type": accelerator, "accelerator_count": count,
                     "epochs": 2},
        "figures": {"train_tokens": tokens, "gpu_hours": gpu_hours},
    }), encoding="utf-8")
    metadata = {"tuning_backend": "open-weights", "predictions": "predictions.jsonl", "tiny_local_model": True,
                "base_model_version": "tiny-local", "tuned_model_version": "tiny-local+lora"}
    return folder, metadata


def _holdout(tmp_path: Path, n: int = 6) -> tuple[Path, list[tuple[str, str]]]:
    pairs = [(f"Ticket {i}: the printer on floor {i} is jammed", f"Category: hardware\nPriority: p{i}")
             for i in range(n)]
    holdout = _write_jsonl(tmp_path / "holdout.jsonl", [make_example(q, a) for q, a in pairs])
    return holdout, pairs


def _compare(tmp_path: Path, standin: Any, **training: Any) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    holdout, pairs = _holdout(tmp_path)
    folder, metadata = _training_folder(tmp_path, pairs, **training)
    train = _write_jsonl(tmp_path / "train.jsonl", [make_example(q, a) for q, a in pairs])
    settings = EvaluationSettings(bootstrap_samples=200, compare_with_gemini="base")
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    return evaluate_recorded_answers(holdout, folder, metadata, settings, vertex=vertex, train_path=train)


L4_TRAINING = {"machine": "g2-standard-8", "accelerator": "NVIDIA_L4", "count": 1, "gpu_hours": 1.5,
               "tokens": 100_000}


def test_one_report_puts_open_weights_tuned_its_base_and_gemini_side_by_side(tmp_path, standin, catalogue) -> None:
    result = _compare(tmp_path, standin, **L4_TRAINING)
    assert result.roles == ["base", "tuned", "gemini"]
    assert result.models["gemini"] == "gemini-2.5-flash"
    # every model's score is the mean of its own scored answers; the Gemini ones came from the stand-in
    for role in ("base", "tuned", "gemini"):
        scores = [record.scores[role].rougeL for record in result.records]
        assert result.metrics[f"{role}_rougeL"] == pytest.approx(sum(scores) / len(scores))
    assert all(record.answers["gemini"].ok for record in result.records)
    assert result.metrics["delta_vs_gemini_rougeL"] == pytest.approx(
        result.metrics["tuned_rougeL"] - result.metrics["gemini_rougeL"])
    assert result.metrics["delta_vs_gemini_rougeL_ci_low"] <= result.metrics["delta_vs_gemini_rougeL_ci_high"]
    # the recorded latencies of the training machine, the measured one of the Gemini calls
    assert result.metrics["tuned_latency_seconds_mean"] == pytest.approx(0.5)
    assert result.metrics["base_latency_seconds_mean"] == pytest.approx(0.2)
    assert result.metrics["gemini_latency_seconds_mean"] > 0

    files = write_outputs(result, predictions=tmp_path / "out/p.jsonl", evaluation=tmp_path / "out/e.json",
                          markdown=tmp_path / "out/r.md", html=tmp_path / "out/r.html")
    markdown = (tmp_path / "out/r.md").read_text()
    section = markdown.split("## Managed vs self-hosted", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| Open weights") or line.startswith("| Gemini")]
    assert len(rows) == 3
    assert f"{result.metrics['gemini_rougeL']:.3f}" in rows[2] and "stand-in" in rows[2]
    assert "tiny local model" in rows[0] and "tiny local model" in rows[1]
    assert "Managed vs self-hosted" in (tmp_path / "out/r.html").read_text()
    document = json.loads((tmp_path / "out/e.json").read_text())
    assert [row["role"] for row in document["comparison"]["models"]] == ["tuned", "base", "gemini"]
    assert "gemini_rougeL" in files.metrics
    summary = build_run_summary({"passed": True, "reasons": []}, document, {}, {})
    assert summary["comparison"] == document["comparison"]
    assert summary["metrics"]["gemini_serving_cost_per_1k_answers_usd"] > 0


def test_the_gate_still_compares_tuned_with_its_own_base(tmp_path, standin, catalogue) -> None:
    result = _compare(tmp_path, standin, **L4_TRAINING)
    decision = decide_gate(result.to_document()["metrics"], GatePolicy(max_champion_regression=0.0))
    assert decision.passed
    assert not any("gemini" in reason for reason in decision.reasons)


def test_cost_lines_move_with_the_catalogue_prices(tmp_path, standin, catalogue) -> None:
    catalogue("g2-standard-8", 2.0)
    catalogue("g2-standard-12", 3.0)
    first = _compare(tmp_path / "a", standin, **L4_TRAINING)
    catalogue("g2-standard-8", 4.0)
    catalogue("g2-standard-12", 9.0)
    second = _compare(tmp_path / "b", standin, **L4_TRAINING)
    # 1.5 GPU hours measured on one L4
    assert first.metrics["open_weights_training_cost_usd"] == pytest.approx(1.5 * 2.0)
    assert second.metrics["open_weights_training_cost_usd"] == pytest.approx(1.5 * 4.0)
    # 1,000 answers at 0.5 s each on the serving machine
    assert first.metrics["tuned_serving_cost_per_1k_answers_usd"] == pytest.approx(1000 * 0.5 / 3600 * 3.0)
    assert second.metrics["tuned_serving_cost_per_1k_answers_usd"] == pytest.approx(1000 * 0.5 / 3600 * 9.0)
    gemini = first.comparison["models"][2]
    assert gemini["training_cost"]["usd"] == 0.0 and "nothing to tune" in gemini["training_cost"]["basis"]


def test_an_eight_gpu_machine_is_paid_per_machine_hour(tmp_path, standin, catalogue) -> None:
    catalogue("a3-highgpu-8g", 80.0)
    result = _compare(tmp_path, standin, machine="a3-highgpu-8g", accelerator="NVIDIA_H100_80GB", count=8,
                      gpu_hours=16.0, tokens=10_000_000)
    assert result.metrics["open_weights_training_cost_usd"] == pytest.approx(16.0 / 8 * 80.0)


def test_a_run_trained_on_cpu_is_priced_as_an_estimate_on_the_default_machine(tmp_path, standin, catalogue) -> None:
    catalogue("g2-standard-8", 2.0)
    result = _compare(tmp_path, standin, machine="local-cpu", accelerator="", count=0, gpu_hours=0.0,
                      tokens=144_000)
    throughput = load_machine_catalog(catalogue.path).throughput["NVIDIA_L4"].tokens_per_second_per_gpu
    hours = 144_000 / throughput / 3600
    assert result.metrics["open_weights_training_gpu_hours"] == pytest.approx(hours)
    assert result.metrics["open_weights_training_cost_usd"] == pytest.approx(hours * 2.0)
    assert result.comparison["training"]["estimated"] is True
    assert "trained on local-cpu" in result.comparison["training"]["cost"]["basis"]


def test_an_unknown_serving_machine_warns_naming_the_file_and_says_unknown_price(tmp_path, catalogue) -> None:
    with pytest.warns(UncataloguedMachineWarning, match=str(catalogue.path)):
        figure = serving_cost_per_1k_answers(0.5, MachineSpec("z9-imaginary-4", "NVIDIA_L4", 1))
    assert figure.usd is None and figure.text() == "unknown price"


def test_no_champion_in_production_compares_with_no_gemini_model(tmp_path, standin, catalogue) -> None:
    holdout, pairs = _holdout(tmp_path)
    folder, metadata = _training_folder(tmp_path, pairs, **L4_TRAINING)
    settings = EvaluationSettings(bootstrap_samples=0, compare_with_gemini="champion")
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    result = evaluate_recorded_answers(holdout, folder, metadata, settings, vertex=vertex)
    assert result.roles == ["base", "tuned"]
    assert [row["role"] for row in result.comparison["models"]] == ["tuned", "base"]


def _splits(tmp_path: Path, n: int = 200) -> tuple[Path, Path]:
    rows = [make_example(f"question {i} " + "word " * 40, f"answer {i} " + "text " * 40, "Be brief.")
            for i in range(n)]
    return _write_jsonl(tmp_path / "train.jsonl", rows), _write_jsonl(tmp_path / "validation.jsonl", rows[:10])


def test_validate_prices_an_open_weights_run_as_gpu_hours_times_the_machine_price(tmp_path, catalogue) -> None:
    train, validation = _splits(tmp_path)
    catalogue("a2-highgpu-1g", 5.0)
    settings = ValidationSettings(tuning_backend="open-weights", machine_type="a2-highgpu-1g",
                                  accelerator_type="NVIDIA_TESLA_A100", accelerator_count=1, epochs=3)
    outcome = validate_splits(train, validation, settings, budget_usd=None, holdout=validation)
    # an open model makes no checkpoint-selection or holdout calls: the training is the whole estimate
    assert outcome.estimated_total_usd == pytest.approx(outcome.estimated_cost_usd)
    throughput = load_machine_catalog(catalogue.path).throughput["NVIDIA_TESLA_A100"].tokens_per_second_per_gpu
    assert outcome.estimated_cost_usd == pytest.approx(outcome.billable_tokens / throughput / 3600 * 5.0)
    gemini = validate_splits(train, validation, ValidationSettings(epochs=3), budget_usd=None, holdout=validation)
    assert gemini.estimated_cost_usd == pytest.approx(gemini.train.estimated_cost_usd)
    assert gemini.estimated_total_usd > gemini.estimated_cost_usd  # its checkpoint selection and evaluation calls
    assert not math.isclose(gemini.estimated_cost_usd, outcome.estimated_cost_usd)
    assert "GPU hours" in outcome.to_markdown() and "a2-highgpu-1g" in outcome.to_markdown()
    assert outcome.to_result_json()["open_weights_training"]["machine"]["machine_type"] == "a2-highgpu-1g"


def test_validate_refuses_an_open_weights_run_over_budget_naming_the_setting(tmp_path, catalogue) -> None:
    train, validation = _splits(tmp_path)
    catalogue("g2-standard-8", 1000.0)  # an hourly price that makes the small run expensive
    settings = ValidationSettings(tuning_backend="open-weights")
    outcome = validate_splits(train, validation, settings, budget_usd=0.01)
    assert not outcome.within_budget
    with pytest.raises(BudgetExceededError, match="max_budget_usd"):
        outcome.raise_if_failed()
    catalogue("g2-standard-8", 0.001)
    validate_splits(train, validation, settings, budget_usd=0.01).raise_if_failed()


def test_an_estimate_with_no_price_says_so_and_names_the_file(catalogue) -> None:
    with pytest.warns(UncataloguedMachineWarning, match="machines.json"):
        estimate = estimate_training_cost(1_000_000, MachineSpec("z9-imaginary-4", "NVIDIA_L4", 1))
    assert estimate.cost.usd is None
    assert "unknown price" in estimate.markdown() and "cannot apply" in estimate.markdown()


def test_the_shipped_catalogue_prices_every_machine_it_lists_with_its_source() -> None:
    catalog = load_machine_catalog()
    for name in ("g2-standard-8", "a2-highgpu-1g", "a2-ultragpu-1g", "a3-highgpu-1g", "a3-highgpu-8g"):
        machine = catalog.machines[name]
        assert machine.gpu_count >= 1 and machine.gpu_memory_gb > 0 and machine.provenance.source
        assert catalog.hourly_price(MachineSpec(name)).usd_per_hour > 0
    t4 = catalog.hourly_price(MachineSpec("n1-standard-8", "NVIDIA_TESLA_T4", 2))
    assert t4.usd_per_hour == pytest.approx(catalog.machines["n1-standard-8"].usd_per_hour["us-central1"]
                                            + 2 * catalog.accelerators["NVIDIA_TESLA_T4"]
                                            .usd_per_hour_per_gpu["us-central1"])


def test_a_tuned_gemini_champion_is_priced_with_what_tuning_it_on_this_split_costs(tmp_path, standin,
                                                                                    catalogue) -> None:
    import warnings

    from google.genai import types

    from gemini_sft.cost import estimate_tuning_cost, token_stats
    from gemini_sft.model_catalog import limits_for
    from gemini_sft.tokens import estimate_example_tokens
    from gemini_sft.vertex_client import genai_client

    holdout, pairs = _holdout(tmp_path)
    folder, metadata = _training_folder(tmp_path, pairs, **L4_TRAINING)
    train = _write_jsonl(tmp_path / "train.jsonl", [make_example(q, a) for q, a in pairs])
    vertex = VertexSettings.create("p", "us-central1", standin.base_url)
    client = genai_client(vertex)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK flags its tuning API as experimental
        job = client.tunings.tune(base_model="gemini-2.5-flash",
                                  training_dataset=types.TuningDataset(gcs_uri=str(train)))
    for _ in range(20):
        if job.has_ended:
            break
        job = client.tunings.get(name=job.name)
    settings = EvaluationSettings(bootstrap_samples=0, compare_with_gemini="champion",
                                  champion_endpoint=job.tuned_model.endpoint)
    result = evaluate_recorded_answers(holdout, folder, metadata, settings, vertex=vertex, train_path=train)
    gemini = result.comparison["models"][2]
    assert gemini["label"] == "Gemini, champion (tuned)" and gemini["model"] == job.tuned_model.endpoint
    stats = token_stats(estimate_example_tokens(json.loads(line)) for line in train.read_text().splitlines())
    expected = estimate_tuning_cost(stats, 2, "gemini-2.5-flash").estimated_cost_usd  # the open model's 2 epochs
    assert gemini["training_cost"]["usd"] == pytest.approx(expected)
    assert expected == pytest.approx((stats.total + 8 * len(pairs)) * 2
                                     * limits_for("gemini-2.5-flash").price_per_million_training_tokens_usd / 1e6)
    assert result.metrics["gemini_cost_usd"] > 0  # the endpoint is priced as the Gemini base it was tuned from
    # the gate still judges tuned against its own base: the Gemini champion is no champion to it
    reasons = decide_gate(result.to_document()["metrics"], GatePolicy()).reasons
    assert any("no champion in production" in reason for reason in reasons)


def test_an_unknown_comparison_choice_is_refused_before_the_run_naming_the_setting() -> None:
    from gemini_sft.errors import ConfigError
    from gemini_sft.settings_check import pipeline_stage_records, raise_for_settings

    with pytest.raises(ConfigError, match="compare_with_gemini must be one of none, base, champion"):
        raise_for_settings({"compare_with_gemini": "sometimes"}, pipeline_stage_records(), "the run")
