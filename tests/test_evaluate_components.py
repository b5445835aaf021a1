"""The evaluate and gate KFP shells, called through .python_func with artifacts on tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from artifact_helpers import output_artifacts
from kfp.dsl import Artifact, Dataset, Markdown

from gemini_sft import vertex_client
from gemini_sft.components.evaluate import evaluate_models_op
from gemini_sft.components.gate import gate_model_op
from gemini_sft.errors import ConfigError, GateError, GenerationCallError
from gemini_sft.evaluation.generation import GenerationResult
from gemini_sft.examples import make_example

CATEGORIES = ["billing", "outage", "account"]


def write_holdout(path: Path, n: int = 30) -> list[str]:
    references = []
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            category = CATEGORIES[i % len(CATEGORIES)]
            reference = f"Category: {category}\nPriority: high"
            references.append(reference)
            handle.write(json.dumps(make_example(f"ticket {i} about {category}", reference, "Triage tickets.")) + "\n")
    return references


class FakeGenerator:
    """Stands in for GenAIGenerator: the tuned endpoint repeats the reference, the base model does not."""

    calls: list[tuple[str, int]] = []

    def __init__(self, settings, model, max_output_tokens=1024, *, thinking=None, client=None):
        self.model = model
        self.max_output_tokens = max_output_tokens

    def __call__(self, case):
        FakeGenerator.calls.append((self.model, self.max_output_tokens))
        if "endpoints" in self.model:
            return GenerationResult(case.reference, "offline-stand-in/tuned")
        if self.model == "champion-model":
            return GenerationResult("Category: billing", "offline-stand-in/champion")
        return GenerationResult("I cannot tell the category.", "offline-stand-in/base")


@pytest.fixture
def fake_vertex(monkeypatch):
    FakeGenerator.calls = []
    monkeypatch.setattr(vertex_client, "GenAIGenerator", FakeGenerator)
    monkeypatch.setattr(vertex_client, "genai_client", lambda settings, timeout_ms=None: object())
    return FakeGenerator


def artifacts(tmp_path: Path) -> dict[str, Artifact]:
    """The output artifacts, and the train split input (whose answers teach the output contract)."""
    train = tmp_path / "train.jsonl"
    write_holdout(train, 9)
    return {"train": Dataset(uri=str(train)), **output_artifacts(evaluate_models_op, tmp_path)}


def evaluate_to_endpoint(tmp_path: Path, examples: int, bootstrap_samples: int) -> dict[str, Artifact]:
    """Evaluate a holdout of ``examples`` examples against a tuned endpoint; returns the output artifacts."""
    holdout = tmp_path / "holdout.jsonl"
    write_holdout(holdout, examples)
    outs = artifacts(tmp_path)
    evaluate_models_op.python_func(
        holdout=Dataset(uri=str(holdout)), project="p", tuned_endpoint="projects/p/locations/l/endpoints/1",
        bootstrap_samples=bootstrap_samples, requests_per_minute=600000, **outs,
    )
    return outs


def test_evaluate_shell_writes_every_output(tmp_path, fake_vertex):
    holdout = tmp_path / "holdout.jsonl"
    write_holdout(holdout, 30)
    outs = artifacts(tmp_path)
    evaluate_models_op.python_func(
        holdout=Dataset(uri=str(holdout)),
        project="p",
        api_endpoint="http://127.0.0.1:9",
        tuned_endpoint="projects/p/locations/us-central1/endpoints/7",
        champion_endpoint="champion-model",
        label_pattern=r"Category: (\w+)",
        max_output_tokens=64,
        bootstrap_samples=200,
        requests_per_minute=600000,
        **outs,
    )
    # every example went to every model exactly once, with the configured token cap
    models = [m for m, _ in fake_vertex.calls]
    assert len(models) == 90
    assert {models.count(m) for m in set(models)} == {30}
    assert {t for _, t in fake_vertex.calls} == {64}

    logged = outs["metrics"].metadata
    assert logged["tuned_rougeL"] == pytest.approx(1.0)
    assert logged["delta_rougeL"] == pytest.approx(logged["tuned_rougeL"] - logged["base_rougeL"])
    assert logged["champion_label_accuracy"] == pytest.approx(1 / 3)
    assert logged["delta_vs_champion_label_accuracy"] == pytest.approx(2 / 3)
    assert logged["n_examples"] == 30

    matrix = outs["classification_metrics"].metadata["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == sorted(CATEGORIES)
    assert [row["row"] for row in matrix["rows"]] == [[10, 0, 0], [0, 10, 0], [0, 0, 10]]

    rows = [json.loads(line) for line in Path(outs["predictions"].path).read_text().splitlines()]
    assert len(rows) == 30 and rows[0]["tuned"]["answer"] == rows[0]["reference"]
    assert set(rows[0]) >= {"example_id", "reference", "base", "tuned", "champion"}

    document = json.loads(Path(outs["evaluation"].path).read_text())
    assert document["offline_standin"] is True
    assert document["models"]["tuned"]["model"] == "projects/p/locations/us-central1/endpoints/7"
    assert document["metrics"]["tuned_error_rate"] == 0.0
    assert "offline stand-in" in Path(outs["report"].path).read_text()
    assert "<svg" in Path(outs["html_report"].path).read_text()


def test_evaluate_shell_requires_a_tuned_endpoint(tmp_path, fake_vertex):
    holdout = tmp_path / "holdout.jsonl"
    write_holdout(holdout, 3)
    with pytest.raises(ConfigError, match="tuned_endpoint"):
        evaluate_models_op.python_func(holdout=Dataset(uri=str(holdout)), project="p", **artifacts(tmp_path))


def test_evaluate_then_gate_through_the_artifact(tmp_path, fake_vertex):
    outs = evaluate_to_endpoint(tmp_path, examples=12, bootstrap_samples=100)
    decision = Artifact(uri=str(tmp_path / "decision.json"))
    report = Markdown(uri=str(tmp_path / "gate.md"))
    passed, summary = gate_model_op.python_func(
        evaluation=outs["evaluation"], decision=decision, report=report, min_score=0.9, require_significant=True
    )
    assert passed is True and summary.startswith("PASSED")
    strict, _ = gate_model_op.python_func(
        evaluation=outs["evaluation"], decision=Artifact(uri=str(tmp_path / "d2.json")),
        report=Markdown(uri=str(tmp_path / "g2.md")), min_improvement=2.0,
    )
    assert strict is False


def write_evaluation(path: Path, metrics: dict) -> Artifact:
    path.write_text(json.dumps({"metrics": metrics, "models": {}, "offline_standin": True}))
    return Artifact(uri=str(path))


def test_gate_shell_writes_decision_and_report(tmp_path):
    evaluation = write_evaluation(
        tmp_path / "evaluation.json",
        {"n_examples": 50, "base_rougeL": 0.3, "tuned_rougeL": 0.5, "delta_rougeL": 0.2,
         "delta_rougeL_ci_low": None, "base_error_rate": 0.0, "tuned_error_rate": 0.1},
    )
    decision = Artifact(uri=str(tmp_path / "decision.json"))
    report = Markdown(uri=str(tmp_path / "gate.md"))
    passed, summary = gate_model_op.python_func(
        evaluation=evaluation, decision=decision, report=report, require_significant=True, max_error_rate=0.05
    )
    assert passed is False
    assert "significance" in summary and "error_rate_tuned" in summary
    document = json.loads(Path(decision.path).read_text())
    assert document["passed"] is False
    assert set(document) >= {"passed", "reasons", "checks", "policy", "metrics"}
    assert document["policy"]["max_error_rate"] == 0.05
    assert len(document["reasons"]) == len(document["checks"])
    assert decision.metadata["passed"] is False
    assert "# Promotion gate: FAILED" in Path(report.path).read_text()


def test_gate_shell_rejects_bad_policy_and_bad_artifact(tmp_path):
    evaluation = write_evaluation(tmp_path / "evaluation.json", {"n_examples": 1})
    common = {"decision": Artifact(uri=str(tmp_path / "d.json")), "report": Markdown(uri=str(tmp_path / "r.md"))}
    with pytest.raises(GateError):
        gate_model_op.python_func(evaluation=evaluation, improvement_mode="ratio", **common)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(GateError, match="cannot read"):
        gate_model_op.python_func(evaluation=Artifact(uri=str(broken)), **common)
    no_metrics = tmp_path / "no_metrics.json"
    no_metrics.write_text(json.dumps({"models": {}}))
    with pytest.raises(GateError, match="metrics"):
        gate_model_op.python_func(evaluation=Artifact(uri=str(no_metrics)), **common)


def test_failed_calls_are_errors_in_the_artifact(tmp_path, monkeypatch):
    class FlakyTuned(FakeGenerator):
        def __call__(self, case):
            if "endpoints" in self.model and "ticket 0 " in case.prompt_text:
                raise GenerationCallError("permission denied", status_code=403)
            return super().__call__(case)

    monkeypatch.setattr(vertex_client, "GenAIGenerator", FlakyTuned)
    monkeypatch.setattr(vertex_client, "genai_client", lambda settings, timeout_ms=None: object())
    outs = evaluate_to_endpoint(tmp_path, examples=10, bootstrap_samples=50)
    document = json.loads(Path(outs["evaluation"].path).read_text())
    assert document["metrics"]["tuned_error_rate"] == pytest.approx(0.1)
    assert document["metrics"]["tuned_rougeL"] == pytest.approx(1.0)  # the error is not scored as empty
    rows = [json.loads(line) for line in Path(outs["predictions"].path).read_text().splitlines()]
    failed = [r for r in rows if r["tuned"]["error"]]
    assert len(failed) == 1 and failed[0]["tuned"]["answer"] is None and failed[0]["tuned"]["scores"] is None
    assert "403" in failed[0]["tuned"]["error"]


def test_generators_are_built_once_for_component_and_cli(fake_vertex, monkeypatch):
    from gemini_sft.evaluation.settings import EvaluationSettings, build_generators
    from gemini_sft.vertex_client import VertexSettings

    clients = []
    monkeypatch.setattr(vertex_client, "genai_client", lambda settings, timeout_ms=None: clients.append(1) or object())
    vertex = VertexSettings.create("p", "us-central1", "http://127.0.0.1:9")
    two = build_generators(EvaluationSettings(tuned_endpoint="projects/p/locations/l/endpoints/1",
                                              max_output_tokens=77), vertex)
    assert {role: g.model for role, g in two.items()} == {
        "base": "gemini-2.5-flash", "tuned": "projects/p/locations/l/endpoints/1",
    }
    assert {g.max_output_tokens for g in two.values()} == {77}
    three = build_generators(EvaluationSettings(tuned_endpoint="t", champion_endpoint="c"), vertex)
    assert list(three) == ["base", "tuned", "champion"] and three["champion"].model == "c"
    assert len(clients) == 2  # one client per evaluation, shared by its models
    with pytest.raises(ConfigError, match="tuned_endpoint is required"):
        build_generators(EvaluationSettings(), vertex)
    with pytest.raises(ConfigError, match="base_model is required"):
        build_generators(EvaluationSettings(base_model="", tuned_endpoint="t"), vertex)


def test_cli_options_are_the_evaluation_settings():
    from gemini_sft.cli import build_parser
    from gemini_sft.contracts import record_from_cli
    from gemini_sft.evaluation.settings import EvaluationSettings

    parser = build_parser()
    base = ["evaluate", "--holdout", "h.jsonl", "--model", "a", "--model", "b"]
    args = parser.parse_args(base + ["--requests-per-minute", "120", "--max-concurrency", "3", "--seed", "7",
                                     "--max-output-tokens", "50", "--bootstrap-samples", "9"])
    settings = record_from_cli(EvaluationSettings, args)
    assert (settings.requests_per_minute, settings.max_concurrency, settings.seed) == (120, 3, 7)
    assert (settings.max_output_tokens, settings.bootstrap_samples) == (50, 9)
    short = record_from_cli(EvaluationSettings, parser.parse_args(base + ["--rpm", "60", "--concurrency", "2"]))
    assert (short.requests_per_minute, short.max_concurrency) == (60, 2)
    defaults = record_from_cli(EvaluationSettings, parser.parse_args(base))
    assert defaults == EvaluationSettings()
    for field_name in ("--base-model", "--tuned-endpoint", "--champion-endpoint"):
        with pytest.raises(SystemExit):
            parser.parse_args(base + [field_name, "x"])
