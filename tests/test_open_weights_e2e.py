"""``gemini-sft run --local --param tuning_backend=open-weights``: the tiny local model through the whole pipeline.

Each run trains on CPU in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("trl")

from gemini_sft.local_run import LocalRunResult, run_local  # noqa: E402
from gemini_sft.standin import VertexStandIn  # noqa: E402
from gemini_sft.vertex_client import VertexSettings  # noqa: E402
from gemini_sft.vertex_client import VertexDeployments  # noqa: E402

pytestmark = pytest.mark.e2e

OPEN_WEIGHTS = {"tuning_backend": "open-weights", "epochs": 2}


def _summary(result: LocalRunResult) -> dict[str, Any]:
    return json.loads((result.output_dir / "run_summary.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory: pytest.TempPathFactory, module_standin: VertexStandIn) -> LocalRunResult:
    return run_local(output_dir=tmp_path_factory.mktemp("ow-pass"), parameters=OPEN_WEIGHTS, standin=module_standin)


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory, module_standin: VertexStandIn) -> LocalRunResult:
    return run_local(output_dir=tmp_path_factory.mktemp("ow-fail"),
                     parameters={**OPEN_WEIGHTS, "min_improvement": 2.0}, standin=module_standin)


def test_the_run_trains_the_open_model_and_says_so(passing_run: LocalRunResult) -> None:
    tuning = _summary(passing_run)["tuning"]
    assert tuning["backend"] == "open-weights"
    assert tuning["tiny_local_model"] is True
    train = [loss for _, loss in tuning["loss_curves"]["train"]]
    assert len(train) >= 2 and train[-1] < train[0]
    assert tuning["train_loss_falls"] is True
    assert not (passing_run.run_dir / "tune-model").exists()  # no Gemini tuning job


def test_the_pipelines_run_summary_names_the_backend_and_the_epoch_the_training_kept(
    passing_run: LocalRunResult,
) -> None:
    # The summarize step's own artifact (what Vertex keeps), before the local run adds its sections.
    tuning = json.loads((passing_run.run_dir / "summarize-run" / "run_summary").read_text())["tuning"]
    assert tuning["backend"] == "open-weights" and tuning["checkpoints"] == []
    chosen = tuning["chosen_checkpoint"]
    kept = min(_summary(passing_run)["tuning"]["eval_loss_by_epoch"], key=lambda pair: pair[1])
    assert chosen["rule"] == "lowest_eval_loss" and chosen["epoch"] == kept[0]
    assert chosen["checkpoint_id"].startswith("checkpoints/checkpoint-") and chosen["endpoint"] == ""


def test_the_run_folder_holds_the_adapter(passing_run: LocalRunResult) -> None:
    adapter = Path(_summary(passing_run)["tuning"]["adapter"])
    assert adapter.parent == passing_run.output_dir
    assert (adapter / "adapter_model.safetensors").stat().st_size > 0
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LORA"


def test_the_evaluation_scores_the_open_models_recorded_answers(passing_run: LocalRunResult) -> None:
    evaluation = json.loads((passing_run.run_dir / "evaluate-models" / "evaluation").read_text())
    assert "+lora" in json.dumps(evaluation["models"])
    rows = [json.loads(line) for line in
            (passing_run.run_dir / "evaluate-models" / "predictions").read_text().splitlines() if line]
    recorded = [json.loads(line) for line in
                (passing_run.run_dir / "train-open-weights" / "predictions").read_text().splitlines() if line]
    assert len(rows) == len(recorded) > 0
    assert {r["prompt"]: r["tuned"]["answer"] for r in recorded} == {
        r["prompt"]: r["tuned"]["answer"] for r in rows}


def test_a_passing_model_is_deployed_and_its_endpoint_answers_with_the_adapter(
    passing_run: LocalRunResult, module_standin: VertexStandIn
) -> None:
    deployment = _summary(passing_run)["deployment"]
    assert passing_run.gate_passed is True
    assert deployment["decision"] == "deployed"
    champion = json.loads((passing_run.output_dir / "registry" / "champion.json").read_text())
    assert champion["tuning_backend"] == "open-weights"
    assert champion["model"]["endpoint"] == deployment["endpoint"]
    service = VertexDeployments(VertexSettings.create("local-project", "us-central1", module_standin.base_url))
    assert service.traffic_split(deployment["endpoint"]) == {deployment["deployed_model_id"]: 100}
    answer = service.raw_predict(deployment["endpoint"], {"instances": [
        {"prompt": "My printer is jammed", "max_tokens": 8, "raw_response": False}]})
    assert answer["predictions"][0].startswith("Prompt:\nMy printer is jammed\nOutput:\n")
    assert answer["deployedModelId"] == deployment["deployed_model_id"]


def test_a_failed_gate_deploys_nothing_and_records_the_rejection(
    failing_run: LocalRunResult, module_standin: VertexStandIn
) -> None:
    summary = _summary(failing_run)
    assert failing_run.gate_passed is False
    assert summary["deployment"]["decision"] == "not-deployed"
    assert not (failing_run.run_dir / "deploy-open-weights").exists()
    rejection = json.loads((failing_run.run_dir / "record-rejection" / "rejection_record").read_text())
    assert rejection["kind"] == "rejection" and rejection["tuning_backend"] == "open-weights"
    assert not (failing_run.output_dir / "registry" / "champion.json").exists()
