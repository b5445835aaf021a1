"""The promote.py shells: find_champion, promote_model and record_rejection (both backends) on artifacts in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import Artifact, Dataset, Model

from gemini_sft.components.promote import find_champion, promote_model, record_rejection
from gemini_sft.errors import PromotionError

PARENT = "projects/p/locations/us-central1/models"


def tuned_model_artifact(tmp_path: Path, model_id: str) -> Model:
    artifact = Model(name="tuned_model", uri=str(tmp_path / f"model-{model_id}"))
    artifact.metadata.update(
        {
            "model_resource": f"{PARENT}/{model_id}@1",
            "model_version": "1",
            "endpoint": f"projects/p/locations/us-central1/endpoints/{model_id}",
            "tuning_job": f"projects/p/locations/us-central1/tuningJobs/{model_id}",
            "base_model": "gemini-2.5-flash",
        }
    )
    return artifact


def json_artifact(tmp_path: Path, name: str, payload: dict) -> Artifact:
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return Artifact(name=name, uri=str(path))


def train_artifact(tmp_path: Path) -> Dataset:
    """A training split whose answers all carry a Category line with billing or outage."""
    from gemini_sft.examples import make_example

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(make_example(f"ticket {i}", f"Category: {('billing', 'outage')[i % 2]}"))
                            + "\n" for i in range(6)))
    return Dataset(name="train", uri=str(path))


def output_artifact(tmp_path: Path, name: str) -> Artifact:
    return Artifact(name=name, uri=str(tmp_path / "out" / name))


def test_find_champion_is_empty_before_any_promotion(tmp_path: Path) -> None:
    result = find_champion(registry_uri=str(tmp_path / "registry"))
    assert (result.champion_model, result.champion_endpoint) == ("", "")
    assert find_champion(registry_uri="") == ("", "", "")


def test_promote_then_find_champion_then_reject(tmp_path: Path) -> None:
    registry_uri = str(tmp_path / "registry")
    passed = json_artifact(tmp_path, "decision.json", {"passed": True, "reasons": []})
    evaluation = json_artifact(tmp_path, "evaluation.json", {"metrics": {"tuned_rougeL": 0.7, "delta_rougeL": 0.2}})
    record_out = output_artifact(tmp_path, "promotion_record")

    promote_model(
        tuned_model=tuned_model_artifact(tmp_path, "11"), decision=passed, evaluation=evaluation,
        train=train_artifact(tmp_path),
        promotion_record=record_out, project="p", registry_uri=registry_uri, pipeline_run="run-1",
        dataset_hash="f" * 64, update_model_registry=False,
    )
    record = json.loads(Path(record_out.path).read_text())
    assert record["kind"] == "promotion"
    assert record["model"] == {"model": f"{PARENT}/11", "version": "1", "endpoint": "projects/p/locations/us-central1/endpoints/11"}
    assert record["metrics"] == {"tuned_rougeL": 0.7, "delta_rougeL": 0.2}
    assert record["pipeline_run"] == "run-1" and record["dataset_hash"] == "f" * 64
    assert record_out.metadata["model"] == f"{PARENT}/11@1"

    champion = find_champion(registry_uri=registry_uri)
    assert champion.champion_model == f"{PARENT}/11@1"
    assert champion.champion_endpoint == "projects/p/locations/us-central1/endpoints/11"
    assert champion.champion_backend == "vertex-gemini"  # the evaluation asks it as a tuned Gemini model

    failed = json_artifact(tmp_path, "failed.json", {"passed": False, "reasons": ["delta_rougeL -0.1 < 0.0"], "metrics": {"delta_rougeL": -0.1}})
    rejection_out = output_artifact(tmp_path, "rejection_record")
    record_rejection(
        tuned_model=tuned_model_artifact(tmp_path, "12"), decision=failed, rejection_record=rejection_out,
        registry_uri=registry_uri, pipeline_run="run-2", dataset_hash="e" * 64,
    )
    rejection = json.loads(Path(rejection_out.path).read_text())
    assert rejection["kind"] == "rejection"
    assert rejection["reasons"] == ["delta_rougeL -0.1 < 0.0"]
    assert rejection["dataset_hash"] == "e" * 64 and rejection["pipeline_run"] == "run-2"
    assert rejection_out.metadata == {"record_id": rejection["record_id"], "kind": "rejection",
                                      "model": f"{PARENT}/12@1", "reasons": 1, "registry_uri": registry_uri}
    assert rejection["previous_champion"]["model"] == f"{PARENT}/11"
    assert rejection["tuning_backend"] == "vertex-gemini"
    assert find_champion(registry_uri=registry_uri).champion_model == f"{PARENT}/11@1"


def test_the_rejection_step_names_a_failed_open_model_by_its_training_folder(tmp_path: Path) -> None:
    registry_uri = str(tmp_path / "registry")
    folder = tmp_path / "open-model"
    tuned = Model(name="tuned_model", uri=str(folder))
    tuned.metadata.update({"tuning_backend": "open-weights", "base_model": "tiny-local"})
    failed = json_artifact(tmp_path, "failed.json", {"passed": False, "reasons": ["delta_rougeL -0.2 < 0.0"],
                                                     "metrics": {"delta_rougeL": -0.2}})
    rejection_out = output_artifact(tmp_path, "rejection_record")
    record_rejection(
        tuned_model=tuned, decision=failed, rejection_record=rejection_out,
        registry_uri=registry_uri, pipeline_run="run-3", dataset_hash="d" * 64,
    )
    rejection = json.loads(Path(rejection_out.path).read_text())
    assert rejection["kind"] == "rejection" and rejection["tuning_backend"] == "open-weights"
    assert rejection["model"] == {"model": str(folder), "version": "candidate", "endpoint": ""}
    assert rejection["reasons"] == ["delta_rougeL -0.2 < 0.0"] and rejection["metrics"] == {"delta_rougeL": -0.2}
    assert rejection["base_model"] == "tiny-local" and rejection["pipeline_run"] == "run-3"
    assert rejection["previous_champion"] is None and rejection["alias"] == "production"
    assert rejection_out.metadata["model"] == f"{folder}@candidate"
    assert find_champion(registry_uri=registry_uri) == ("", "", "")


def test_the_rejection_step_refuses_a_gemini_model_without_a_registry_name(tmp_path: Path) -> None:
    tuned = Model(name="tuned_model", uri=str(tmp_path / "model"))
    tuned.metadata.update({"base_model": "gemini-2.5-flash"})
    failed = json_artifact(tmp_path, "failed.json", {"passed": False, "reasons": ["too low"]})
    with pytest.raises(PromotionError, match="not a Model Registry name"):
        record_rejection(tuned_model=tuned, decision=failed, rejection_record=output_artifact(tmp_path, "r"),
                         registry_uri=str(tmp_path / "registry"))
    assert not (tmp_path / "registry" / "records").exists()


def test_promote_refuses_a_failed_decision(tmp_path: Path) -> None:
    failed = json_artifact(tmp_path, "decision.json", {"passed": False, "reasons": ["too low"]})
    evaluation = json_artifact(tmp_path, "evaluation.json", {"metrics": {}})
    with pytest.raises(PromotionError, match="did not pass"):
        promote_model(
            tuned_model=tuned_model_artifact(tmp_path, "11"), decision=failed, evaluation=evaluation,
            train=train_artifact(tmp_path), promotion_record=output_artifact(tmp_path, "r"), project="p", registry_uri=str(tmp_path / "reg"),
            update_model_registry=False,
        )
    assert not (tmp_path / "reg").exists()


def test_promote_requires_a_registry_uri(tmp_path: Path) -> None:
    passed = json_artifact(tmp_path, "decision.json", {"passed": True, "reasons": []})
    evaluation = json_artifact(tmp_path, "evaluation.json", {"metrics": {}})
    with pytest.raises(PromotionError, match="registry_uri"):
        promote_model(
            tuned_model=tuned_model_artifact(tmp_path, "11"), decision=passed, evaluation=evaluation,
            train=train_artifact(tmp_path), promotion_record=output_artifact(tmp_path, "r"), project="p",
            update_model_registry=False,
        )


def test_human_review_stages_the_candidate_and_both_paths_store_the_contract(tmp_path: Path) -> None:
    from gemini_sft.promotion import PromotionStore
    from gemini_sft.review.staging import staged_candidates
    from gemini_sft.serving import read_contract

    registry_uri = str(tmp_path / "registry")
    passed = json_artifact(tmp_path, "decision.json", {"passed": True, "reasons": []})
    evaluation = json_artifact(tmp_path, "evaluation.json", {"metrics": {"tuned_rougeL": 0.7}})
    for model_id, review in (("11", False), ("12", True)):
        promote_model(
            tuned_model=tuned_model_artifact(tmp_path, model_id), decision=passed, evaluation=evaluation,
            train=train_artifact(tmp_path), promotion_record=output_artifact(tmp_path, f"record-{model_id}"),
            project="p", registry_uri=registry_uri, pipeline_run=f"run-{model_id}",
            require_human_review=review, label_pattern=r"Category: (\w+)",
            # the staged candidate keeps the default: it must not touch Model Registry (no credentials here)
            update_model_registry=review,
        )
    store = PromotionStore(registry_uri)
    # the reviewed candidate waits; production is still the first model (no registry call was made for it)
    assert store.champion().model.versioned_name == f"{PARENT}/11@1"
    assert [r.model.versioned_name for r in staged_candidates(store)] == [f"{PARENT}/12@1"]
    staged_record = json.loads(Path(output_artifact(tmp_path, "record-12").path).read_text())
    assert staged_record["kind"] == "staged"
    for model_id in ("11", "12"):
        contract = read_contract(store, f"{PARENT}/{model_id}@1")
        assert contract is not None and contract.required_lines == ("Category",)
        assert contract.labels == ("billing", "outage")
