"""The whole pipeline, run locally with kfp.local against the offline stand-in on the shipped sample."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gemini_sft.gate import GatePolicy, decide_gate
from gemini_sft.local_run import LocalRunResult, run_local
from gemini_sft.standin import VertexStandIn

pytestmark = pytest.mark.e2e

HYPERPARAMETERS = {"epochs": 2, "adapter_size": 8, "learning_rate_multiplier": 0.5}


def _count_lines(path: Path) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def standin(module_standin: VertexStandIn) -> VertexStandIn:
    return module_standin


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory: pytest.TempPathFactory, standin: VertexStandIn) -> LocalRunResult:
    return run_local(
        output_dir=tmp_path_factory.mktemp("passing"),
        parameters=HYPERPARAMETERS,
        standin=standin,
    )


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> LocalRunResult:
    # An improvement nobody can reach: the gate must reject and nothing be promoted.
    return run_local(output_dir=tmp_path_factory.mktemp("failing"), parameters={"min_improvement": 2.0})


def test_split_counts_add_up_to_the_kept_rows(passing_run: LocalRunResult) -> None:
    clean_dir = passing_run.run_dir / "clean-data"
    version = _read_json(clean_dir / "dataset_version")
    counts = version["counts"]
    split_rows = sum(_count_lines(clean_dir / f"{name}.jsonl") for name in ("train", "validation", "holdout"))
    assert split_rows == counts["kept"] > 0
    assert counts["kept"] + counts["rejected"] == counts["rows_read"]
    assert _count_lines(clean_dir / "rejected.jsonl") == counts["rejected"] > 0


def test_tuning_request_carries_the_given_hyperparameters(
    passing_run: LocalRunResult, standin: VertexStandIn
) -> None:
    creates = [r for r in standin.requests if r.method == "POST" and r.path.endswith("/tuningJobs")]
    assert len(creates) == 1
    body = creates[0].body
    hyper = body["supervisedTuningSpec"]["hyperParameters"]
    assert int(hyper["epochCount"]) == HYPERPARAMETERS["epochs"]
    assert hyper["adapterSize"] == "ADAPTER_SIZE_EIGHT"
    assert float(hyper["learningRateMultiplier"]) == HYPERPARAMETERS["learning_rate_multiplier"]
    assert body["baseModel"] == "gemini-2.5-flash"
    train_uri = body["supervisedTuningSpec"]["trainingDatasetUri"]
    assert train_uri.endswith("clean-data/train.jsonl")


def test_metrics_exist_for_base_and_tuned(passing_run: LocalRunResult) -> None:
    for name in ("base_rougeL", "tuned_rougeL", "delta_rougeL"):
        assert math.isfinite(passing_run.metrics[name])
    assert passing_run.metrics["delta_rougeL"] == pytest.approx(
        passing_run.metrics["tuned_rougeL"] - passing_run.metrics["base_rougeL"], abs=1e-9
    )


@pytest.mark.parametrize("run_name", ["passing_run", "failing_run"])
def test_gate_decision_agrees_with_metrics_and_thresholds(run_name: str, request: pytest.FixtureRequest) -> None:
    run: LocalRunResult = request.getfixturevalue(run_name)
    decision = _read_json(run.run_dir / "gate-model" / "decision")
    evaluation = _read_json(run.run_dir / "evaluate-models" / "evaluation")
    policy = GatePolicy(**decision["policy"])
    assert decide_gate(evaluation["metrics"], policy).passed is decision["passed"] is run.gate_passed
    assert run.gate_reasons


def test_promotion_happens_exactly_when_the_gate_passes(
    passing_run: LocalRunResult, failing_run: LocalRunResult
) -> None:
    assert passing_run.gate_passed and not failing_run.gate_passed
    assert (passing_run.run_dir / "promote-model" / "promotion_record").is_file()
    assert not (passing_run.run_dir / "record-rejection").exists()
    assert (failing_run.run_dir / "record-rejection" / "rejection_record").is_file()
    assert not (failing_run.run_dir / "promote-model").exists()


def test_run_folder_has_readable_reports_labelled_as_offline(passing_run: LocalRunResult) -> None:
    summary = (passing_run.output_dir / "SUMMARY.md").read_text(encoding="utf-8")
    assert "OFFLINE STAND-IN" in summary
    html = (passing_run.output_dir / "evaluation_report.html").read_text(encoding="utf-8")
    assert "offline stand-in" in html.lower()
    assert (passing_run.output_dir / "evaluation_report.md").is_file()
