"""The promotion record and champion.json name the checkpoint chosen on validation, served by its endpoint."""

from __future__ import annotations

import json
from pathlib import Path

from gemini_sft.components.promote import find_champion, promote_model
from test_promotion_components import json_artifact, output_artifact, train_artifact, tuned_model_artifact

CHOSEN_ENDPOINT = "projects/p/locations/us-central1/endpoints/chosen-2"


def _promote(tmp_path: Path, **checkpoint: str) -> tuple[dict, dict]:
    registry_uri = str(tmp_path / "registry")
    record_out = output_artifact(tmp_path, "promotion_record")
    promote_model(
        tuned_model=tuned_model_artifact(tmp_path, "11"),
        decision=json_artifact(tmp_path, "decision.json", {"passed": True, "reasons": []}),
        evaluation=json_artifact(tmp_path, "evaluation.json", {"metrics": {"tuned_rougeL": 0.7}}),
        train=train_artifact(tmp_path),
        promotion_record=record_out, project="p", registry_uri=registry_uri, update_model_registry=False,
        **checkpoint,
    )
    champion = json.loads((tmp_path / "registry" / "champion.json").read_text())
    return json.loads(Path(record_out.path).read_text()), champion


def test_the_chosen_checkpoint_is_recorded_and_its_endpoint_serves_the_champion(tmp_path: Path) -> None:
    record, champion = _promote(tmp_path, checkpoint_id="2", checkpoint_endpoint=CHOSEN_ENDPOINT)
    for document in (record, champion):
        assert document["checkpoint_id"] == "2"
        assert document["model"]["endpoint"] == CHOSEN_ENDPOINT
    assert find_champion(registry_uri=str(tmp_path / "registry")).champion_endpoint == CHOSEN_ENDPOINT


def test_without_a_choice_the_tuned_models_endpoint_is_kept(tmp_path: Path) -> None:
    record, _ = _promote(tmp_path)
    assert record["checkpoint_id"] == ""
    assert record["model"]["endpoint"] == "projects/p/locations/us-central1/endpoints/11"
