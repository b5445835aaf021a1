"""The open-weights backend in the pipeline: the compiled custom job, the recorded-answers evaluation, the local run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gemini_sft.contracts import find_task
from gemini_sft.errors import ConfigError
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.open_weights.evaluation import evaluate_recorded_answers
from gemini_sft.pipelines.compiler import compile_pipeline
from gemini_sft.pipelines.gemini_sft_pipeline import build_pipeline
from gemini_sft.pipelines.open_weights_step import DEFAULT_GPU_IMAGE, TrainingMachine


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _worker_pool(spec: dict[str, Any]) -> dict[str, Any]:
    component = spec["components"][find_task(spec, "train-open-weights")["componentRef"]["name"]]
    pools = component["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
    assert len(pools) == 1
    return pools[0]


def test_compiled_spec_trains_open_weights_as_a_gpu_custom_job(compiled_spec_path: Path) -> None:
    spec = _load(compiled_spec_path)
    pool = _worker_pool(spec)
    assert pool["machine_spec"] == {"machine_type": "g2-standard-8", "accelerator_type": "NVIDIA_L4",
                                    "accelerator_count": 1}
    assert pool["container_spec"]["image_uri"] == DEFAULT_GPU_IMAGE
    assert "train_open_weights" in " ".join(pool["container_spec"]["command"] + pool["container_spec"]["args"])
    launcher = spec["deploymentSpec"]["executors"]["exec-train-open-weights"]["container"]
    assert launcher["args"][:2] == ["--type", "CustomJob"]


def test_the_backend_is_chosen_at_run_time_and_both_branches_feed_the_evaluation(compiled_spec_path: Path) -> None:
    spec = _load(compiled_spec_path)
    conditions = [task.get("triggerPolicy", {}).get("condition", "")
                  for component in spec["components"].values() for task in component.get("dag", {}).get("tasks", {}).values()]
    assert any("tuning_backend" in c and "open-weights" in c for c in conditions)
    evaluate = spec["root"]["dag"]["tasks"]["evaluate-models"]["inputs"]
    # the tuned model and its endpoint come from whichever branch ran (dsl.OneOf)
    assert "producerTask" in evaluate["artifacts"]["tuned_model"]["taskOutputArtifact"]
    assert spec["root"]["inputDefinitions"]["parameters"]["tuning_backend"]["defaultValue"] == "vertex-gemini"


def _conditions_above(spec: dict[str, Any], task: str) -> list[str]:
    """The trigger conditions of ``task`` and of every condition group around it, innermost first."""
    parent_of = {ref["componentRef"]["name"]: (owner, ref)
                 for owner, component in [("root", spec["root"]), *spec["components"].items()]
                 for ref in component.get("dag", {}).get("tasks", {}).values()}
    found = find_task(spec, task)
    conditions, owner = [found.get("triggerPolicy", {}).get("condition", "")], found["componentRef"]["name"]
    while owner in parent_of:
        owner, ref = parent_of[owner]
        conditions.append(ref.get("triggerPolicy", {}).get("condition", ""))
    return [c for c in conditions if c]


def test_one_rejection_step_serves_both_backends_and_only_a_passing_model_is_promoted_or_deployed(
    compiled_spec_path: Path,
) -> None:
    spec = _load(compiled_spec_path)
    tasks = [name for component in [spec["root"], *spec["components"].values()]
             for name in component.get("dag", {}).get("tasks", {})]
    assert [name for name in tasks if "rejection" in name] == ["record-rejection"]
    rejection = _conditions_above(spec, "record-rejection")
    assert rejection == ["!(inputs.parameter_values['pipelinechannel--gate-model-passed'] == true)"]
    for task, backend in (("promote-model", "vertex-gemini"), ("deploy-open-weights", "open-weights")):
        conditions = _conditions_above(spec, task)
        assert conditions == [f"inputs.parameter_values['pipelinechannel--tuning_backend'] == '{backend}'",
                              "inputs.parameter_values['pipelinechannel--gate-model-passed'] == true"], task


def test_compile_options_set_the_training_machine_and_image(tmp_path: Path) -> None:
    machine = TrainingMachine("a2-ultragpu-1g", "NVIDIA_A100_80GB", 1)
    path = compile_pipeline(tmp_path / "spec.yaml", gpu_image="europe-docker.pkg.dev/p/r/gpu:2",
                            training_machine=machine)
    pool = _worker_pool(_load(path))
    assert pool["machine_spec"]["machine_type"] == "a2-ultragpu-1g"
    assert pool["machine_spec"]["accelerator_type"] == "NVIDIA_A100_80GB"
    assert pool["container_spec"]["image_uri"] == "europe-docker.pkg.dev/p/r/gpu:2"


def test_a_machine_and_gpu_that_do_not_go_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="accelerator_type=NVIDIA_L4"):
        TrainingMachine("g2-standard-8", "NVIDIA_TESLA_T4", 1)


def test_an_unknown_backend_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="vertex-gemini, open-weights"):
        build_pipeline(target="local", tuning_backend="gemini")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _answer(text: str | None, version: str, error: str | None = None) -> dict[str, Any]:
    return {"answer": text, "error": error, "attempts": 1, "model_version": version, "finish_reason": "STOP",
            "latency_seconds": 0.1, "scores": None}


def test_recorded_answers_are_scored_as_the_base_and_tuned_models(tmp_path: Path) -> None:
    pairs = [(f"Ticket {i}: printer {i} is jammed", f"Category: hardware {i}") for i in range(6)]
    holdout = _write_jsonl(tmp_path / "holdout.jsonl", [
        {"contents": [{"role": "user", "parts": [{"text": q}]}, {"role": "model", "parts": [{"text": a}]}]}
        for q, a in pairs
    ])
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _write_jsonl(model_dir / "predictions.jsonl", [
        {"example_id": f"line-{i + 1}", "prompt": q, "reference": a,
         "base": _answer("no idea", "tiny+base"),
         "tuned": _answer(a, "tiny+lora") if i else _answer(None, "tiny+lora", error="out of memory")}
        for i, (q, a) in enumerate(pairs)
    ])
    metadata = {"tuning_backend": "open-weights", "predictions": "predictions.jsonl",
                "base_model_version": "tiny+base", "tuned_model_version": "tiny+lora"}
    result = evaluate_recorded_answers(holdout, model_dir, metadata, EvaluationSettings(bootstrap_samples=0))
    assert result.models == {"base": "tiny+base", "tuned": "tiny+lora"}
    assert result.metrics["tuned_rougeL"] == pytest.approx(1.0)
    assert result.metrics["base_rougeL"] == pytest.approx(0.0)
    assert result.metrics["tuned_error_rate"] == pytest.approx(1 / 6)


def test_submit_and_local_runs_refuse_an_unknown_backend_before_starting() -> None:
    from gemini_sft.settings_check import setting_problems

    assert setting_problems({"tuning_backend": "open-weights"}, []) == []
    assert setting_problems({"tuning_backend": "gemma"}, []) == [
        "tuning_backend must be one of vertex-gemini, open-weights, got 'gemma'"]
