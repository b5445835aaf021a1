"""The safety net measured: "tuned with fallback" scored on the holdout, in the metrics and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import Artifact, Dataset, Markdown

from gemini_sft.components.evaluate import evaluate_models_op
from gemini_sft.components.gate import gate_model_op
from gemini_sft.evaluation.generation import GenerationResult
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.evaluation.run import run_evaluation
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import evaluation_case, make_example
from gemini_sft.serving.contract import OutputContract

LABEL = r"Category: (\w+)"
# The tuned model's answer per prompt: good, empty, cut at max tokens, looping, an unknown label, a failed call.
TUNED_ANSWERS = {
    "p0": ("Category: billing", "STOP"),
    "p1": ("", "STOP"),
    "p2": ("Category: bil", "MAX_TOKENS"),
    "p3": ("Category: billing " + "and again " * 20, "STOP"),
    "p4": ("Category: weather", "STOP"),
    "p5": None,
    "p6": ("Category: outage", "STOP"),
    "p7": ("Category: outage", "SAFETY"),
}
REFERENCES = {f"p{i}": f"Category: {'billing' if i < 4 else 'outage'}" for i in range(8)}


def _cases() -> list[HoldoutCase]:
    return [HoldoutCase(pid, evaluation_case(make_example(pid, ref))) for pid, ref in REFERENCES.items()]


def _tuned(case):
    from gemini_sft.errors import GenerationCallError

    answer = TUNED_ANSWERS[case.prompt_text]
    if answer is None:
        raise GenerationCallError("permission denied", status_code=403)
    return GenerationResult(answer[0], "v", answer[1])


def _base(case):
    # the base model always answers with the reference: every fallback lands on a right answer
    return GenerationResult(REFERENCES[case.prompt_text], "v", "STOP")


def _settings(**changes) -> EvaluationSettings:
    return EvaluationSettings(base_model="gemini-2.5-flash", tuned_endpoint="projects/p/locations/l/endpoints/1",
                              requests_per_minute=1e9, bootstrap_samples=100, label_pattern=LABEL, **changes)


def test_each_unfit_tuned_answer_falls_back_to_the_base_answer():
    contract = OutputContract(required_lines=("Category",), label_pattern=LABEL, labels=("billing", "outage"))
    result = run_evaluation(_cases(), {"base": _base, "tuned": _tuned}, _settings(), contract=contract)
    reasons = {r.example_id: r.fallback_reason for r in result.records}
    assert reasons == {"p0": None, "p1": "empty", "p2": "max_tokens", "p3": "repetitive",
                       "p4": "contract_label", "p5": "error", "p6": None, "p7": "blocked"}
    m = result.metrics
    assert m["fallback_rate"] == pytest.approx(6 / 8) and m["fallback_count"] == 6
    for reason in ("empty", "max_tokens", "repetitive", "contract_label", "error", "blocked"):
        assert m[f"fallback_reason_{reason}"] == 1
    assert m["fallback_reason_contract_lines"] == 0
    # tuned with fallback answered every example right (tuned right twice, base right on the six fallbacks)
    assert m["fallback_label_accuracy"] == pytest.approx(1.0)
    assert m["fallback_exact_match"] == pytest.approx(1.0)
    assert m["tuned_exact_match"] < m["fallback_exact_match"]
    assert m["fallback_error_rate"] == 0.0 and m["tuned_error_rate"] == pytest.approx(1 / 8)
    assert m["fallback_contract_checked"] == 1.0
    rows = {row["example_id"]: row for row in result.prediction_rows()}
    assert rows["p1"]["fallback"] == {"answered_by": "base", "reason": "empty"}
    assert rows["p0"]["fallback"] == {"answered_by": "tuned", "reason": None}
    assert result.to_document()["fallback"]["reasons"]["empty"] == 1


def test_without_a_contract_only_the_contract_free_rules_apply():
    result = run_evaluation(_cases(), {"base": _base, "tuned": _tuned}, _settings())
    reasons = {r.example_id: r.fallback_reason for r in result.records}
    assert reasons["p4"] is None  # an unknown label is a contract rule
    assert result.metrics["fallback_contract_checked"] == 0.0


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_component_reports_the_fallback_and_the_gate_ignores_it(tmp_path, monkeypatch):
    from gemini_sft import vertex_client

    class Generator:
        def __init__(self, settings, model, max_output_tokens=1024, *, thinking=None, client=None):
            self.call = _tuned if "endpoints" in model else _base

        def __call__(self, case):
            return self.call(case)

    monkeypatch.setattr(vertex_client, "GenAIGenerator", Generator)
    monkeypatch.setattr(vertex_client, "genai_client", lambda settings, timeout_ms=None: object())
    holdout = _write(tmp_path / "holdout.jsonl", [make_example(p, r) for p, r in REFERENCES.items()])
    # the training answers teach the contract: a Category line with billing or outage
    train = _write(tmp_path / "train.jsonl",
                   [make_example(f"t{i}", f"Category: {('billing', 'outage')[i % 2]}") for i in range(10)])
    from kfp.dsl import HTML, ClassificationMetrics, Metrics

    outs = {
        "metrics": Metrics(uri=str(tmp_path / "metrics")),
        "classification_metrics": ClassificationMetrics(uri=str(tmp_path / "cm")),
        "predictions": Dataset(uri=str(tmp_path / "predictions.jsonl")),
        "report": Markdown(uri=str(tmp_path / "report.md")),
        "html_report": HTML(uri=str(tmp_path / "report.html")),
        "evaluation": Artifact(uri=str(tmp_path / "evaluation.json")),
    }
    evaluate_models_op.python_func(
        holdout=Dataset(uri=str(holdout)), train=Dataset(uri=str(train)), project="p",
        tuned_endpoint="projects/p/locations/l/endpoints/1", label_pattern=LABEL, bootstrap_samples=100,
        requests_per_minute=600000, **outs,
    )
    logged = outs["metrics"].metadata
    assert logged["fallback_rate"] == pytest.approx(6 / 8)
    assert logged["fallback_reason_contract_label"] == 1  # the learned contract knows only billing and outage
    markdown = Path(outs["report"].path).read_text()
    assert "| ROUGE-L, tuned with fallback |" in markdown and "## Tuned with fallback" in markdown
    assert "6 of 8 examples (75.0%)" in markdown
    assert "tuned with fallback" in Path(outs["html_report"].path).read_text()

    def gate(evaluation_path: Path, name: str):
        return gate_model_op.python_func(
            evaluation=Artifact(uri=str(evaluation_path)), decision=Artifact(uri=str(tmp_path / f"{name}.json")),
            report=Markdown(uri=str(tmp_path / f"{name}.md")), primary_metric="label_accuracy", min_score=0.0,
        )

    document = json.loads(Path(outs["evaluation"].path).read_text())
    document["metrics"] = {k: v for k, v in document["metrics"].items() if not k.startswith("fallback_")}
    without = _write(tmp_path / "without_fallback.json", [document])
    assert gate(Path(outs["evaluation"].path), "with") == gate(without, "without")
    decision = json.loads((tmp_path / "with.json").read_text())
    assert not any(check["name"].startswith("fallback") for check in decision["checks"])
