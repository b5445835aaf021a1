"""Promotion history, champion lookup, rejection records and rollback over a local PromotionStore."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from gemini_sft.errors import PromotionError
from gemini_sft.promotion import (
    ModelVersion,
    PromotionStore,
    Provenance,
    promote,
    read_decision,
    read_metrics,
    record_rejection,
    rollback,
)

PARENT = "projects/p/locations/us-central1/models"
START = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc)


def version(model_id: str, number: str = "1") -> ModelVersion:
    return ModelVersion(model=f"{PARENT}/{model_id}", version=number, endpoint=f"projects/p/locations/us-central1/endpoints/e{model_id}")


def at(hours: int) -> datetime:
    return START + timedelta(hours=hours)


class RecordingRegistry:
    """Model Registry double that keeps aliases and labels per version and logs the calls."""

    def __init__(self) -> None:
        self.aliases: dict[str, set[str]] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.refuse_add = False

    def add_alias(self, version: ModelVersion, alias: str) -> None:
        self.calls.append(("add", version.versioned_name, alias))
        if self.refuse_add and version.version == "2":
            raise PromotionError("refused")
        for name, aliases in self.aliases.items():
            if name.split("@")[0] == version.model and alias in aliases:
                raise PromotionError(f"alias {alias} already on {name}")
        self.aliases.setdefault(version.versioned_name, set()).add(alias)

    def remove_alias(self, version: ModelVersion, alias: str) -> None:
        self.calls.append(("remove", version.versioned_name, alias))
        self.aliases.setdefault(version.versioned_name, set()).discard(alias)

    def merge_labels(self, version: ModelVersion, labels: dict[str, str]) -> None:
        self.labels.setdefault(version.versioned_name, {}).update(labels)


def test_model_version_parses_versioned_names_and_rejects_others() -> None:
    parsed = ModelVersion.parse(f"{PARENT}/123@4", endpoint="projects/p/locations/us-central1/endpoints/9")
    assert (parsed.model, parsed.version, parsed.versioned_name) == (f"{PARENT}/123", "4", f"{PARENT}/123@4")
    assert ModelVersion.parse(f"{PARENT}/123", version="2").version == "2"
    with pytest.raises(PromotionError, match="no version"):
        ModelVersion.parse(f"{PARENT}/123")
    with pytest.raises(PromotionError, match="not a Model Registry name"):
        ModelVersion.parse("gemini-2.5-flash")
    with pytest.raises(PromotionError, match="names version 4"):
        ModelVersion.parse(f"{PARENT}/123@4", version="5")


def test_empty_store_has_no_champion_and_no_history(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path / "registry"))
    assert store.history() == []
    assert store.champion() is None


def test_store_requires_a_uri() -> None:
    with pytest.raises(PromotionError, match="registry_uri"):
        PromotionStore("  ")


def test_gs_uri_is_read_through_the_fuse_mount_when_mounted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gemini_sft.promotion.store as promotion

    (tmp_path / "bucket").mkdir()
    monkeypatch.setattr(promotion, "GCS_MOUNT", f"{tmp_path}/")
    files = promotion.files_for("gs://bucket/gemini-sft/registry")
    assert isinstance(files, promotion.LocalFiles)
    assert files.root == Path("/gcs/bucket/gemini-sft/registry")


def test_promotion_record_holds_everything_and_becomes_champion(tmp_path: Path) -> None:
    store = PromotionStore(f"file://{tmp_path}/registry")
    first = promote(store, version("1"), provenance=Provenance(
        metrics={"tuned_rougeL": 0.61}, dataset_hash="ab" * 32, pipeline_run="run-1", base_model="gemini-2.5-flash",
        tuning_job="tj/1"), now=at(0))
    second = promote(store, version("2"), provenance=Provenance(metrics={"tuned_rougeL": 0.7}, pipeline_run="run-2"),
                     now=at(1))

    champion = store.champion()
    assert champion == second
    assert second.previous_champion == first.model
    assert first.previous_champion is None
    on_disk = json.loads((tmp_path / "registry" / "champion.json").read_text())
    assert on_disk["model"]["model"] == f"{PARENT}/2" and on_disk["pipeline_run"] == "run-2"
    files = sorted((tmp_path / "registry" / "records").glob("*.json"))
    assert len(files) == 2
    saved = json.loads(files[0].read_text())
    assert saved["kind"] == "promotion"
    assert saved["metrics"] == {"tuned_rougeL": 0.61}
    assert saved["dataset_hash"] == "ab" * 32
    assert saved["model"]["endpoint"].endswith("/endpoints/e1")
    assert saved["created_at"] == "2026-11-02T03:00:00.000000Z"
    assert saved["base_model"] == "gemini-2.5-flash" and saved["tuning_job"] == "tj/1"


def test_promoting_the_champion_again_changes_nothing(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    first = promote(store, version("1"), now=at(0))
    again = promote(store, version("1"), now=at(1))
    assert again == first
    assert len(store.history()) == 1


def test_rejection_is_recorded_with_reasons_and_keeps_the_champion(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    champion = promote(store, version("1"), now=at(0))
    rejected = record_rejection(store, version("2"), ["tuned_rougeL 0.41 < min_score 0.5"],
                                provenance=Provenance(metrics={"tuned_rougeL": 0.41}, dataset_hash="cd" * 32,
                                                      pipeline_run="run-2"), now=at(1))
    assert rejected.kind == "rejection"
    assert (rejected.metrics, rejected.dataset_hash, rejected.pipeline_run) == ({"tuned_rougeL": 0.41}, "cd" * 32, "run-2")
    assert rejected.reasons == ["tuned_rougeL 0.41 < min_score 0.5"]
    assert rejected.previous_champion == champion.model
    assert store.champion() == champion
    assert [record.kind for record in store.history()] == ["promotion", "rejection"]


def test_rollback_returns_to_the_previous_champion_and_records_it(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    first = promote(store, version("1"), provenance=Provenance(metrics={"tuned_rougeL": 0.6}, dataset_hash="d1"),
                    now=at(0))
    promote(store, version("2"), now=at(1))

    record = rollback(store, reason="answers too long", now=at(2))

    assert record.kind == "rollback"
    assert record.model == first.model
    assert record.previous_champion == version("2")
    assert record.reasons == ["answers too long"]
    assert record.metrics == {"tuned_rougeL": 0.6} and record.dataset_hash == "d1"
    assert store.champion().model == first.model
    assert json.loads((tmp_path / "champion.json").read_text())["model"]["model"] == f"{PARENT}/1"


def test_rollbacks_walk_back_the_production_line_and_promotion_continues_from_there(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    for hour, model_id in enumerate(["1", "2", "3"]):
        promote(store, version(model_id), now=at(hour))
    assert rollback(store, now=at(3)).model == version("2")
    assert rollback(store, now=at(4)).model == version("1")
    with pytest.raises(PromotionError, match="no previous champion"):
        rollback(store, now=at(5))
    newer = promote(store, version("4"), now=at(6))
    assert newer.previous_champion == version("1")
    assert rollback(store, now=at(7)).model == version("1")


def test_rollback_to_a_named_earlier_champion(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    for hour, model_id in enumerate(["1", "2", "3"]):
        promote(store, version(model_id), now=at(hour))
    with pytest.raises(PromotionError, match="not an earlier champion"):
        rollback(store, to_model=f"{PARENT}/3@1", now=at(3))
    record = rollback(store, to_model=f"{PARENT}/1@1", now=at(4))
    assert record.model == version("1") and record.previous_champion == version("3")
    assert [r.model for r in store.production_line()] == [version("1")]


def test_rollback_without_champion_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(PromotionError, match="nothing to roll back"):
        rollback(PromotionStore(str(tmp_path)))


def test_registry_alias_moves_to_the_new_model_and_back_on_rollback(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    registry = RecordingRegistry()
    promote(store, version("1"), registry=registry, provenance=Provenance(dataset_hash="ABC"), now=at(0))
    promote(store, version("2"), registry=registry, now=at(1))
    assert registry.aliases == {f"{PARENT}/1@1": set(), f"{PARENT}/2@1": {"production"}}
    assert registry.labels[f"{PARENT}/1@1"] == {"gemini-sft-status": "retired", "gemini-sft-dataset": "abc"}
    assert registry.labels[f"{PARENT}/2@1"]["gemini-sft-status"] == "production"

    rollback(store, registry=registry, now=at(2))
    assert registry.aliases == {f"{PARENT}/1@1": {"production"}, f"{PARENT}/2@1": set()}
    assert registry.labels[f"{PARENT}/2@1"]["gemini-sft-status"] == "rolled-back"


def test_alias_moves_between_versions_of_one_model_without_clashing(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    registry = RecordingRegistry()
    promote(store, version("7", "1"), registry=registry, now=at(0))
    promote(store, version("7", "2"), registry=registry, now=at(1))
    assert registry.aliases == {f"{PARENT}/7@1": set(), f"{PARENT}/7@2": {"production"}}
    assert registry.calls[-2:] == [("remove", f"{PARENT}/7@1", "production"), ("add", f"{PARENT}/7@2", "production")]


def test_a_refused_alias_is_put_back_and_nothing_is_recorded(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    registry = RecordingRegistry()
    promote(store, version("7", "1"), registry=registry, now=at(0))
    registry.refuse_add = True
    with pytest.raises(PromotionError, match="refused"):
        promote(store, version("7", "2"), registry=registry, now=at(1))
    assert registry.aliases[f"{PARENT}/7@1"] == {"production"}
    assert len(store.history()) == 1


def test_invalid_alias_is_refused_before_anything_changes(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    with pytest.raises(PromotionError, match="not valid"):
        promote(store, version("1"), alias="Prod Model")
    assert store.history() == []


def test_corrupt_record_names_the_file(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path))
    promote(store, version("1"), now=at(0))
    (tmp_path / "records" / "zz-broken.json").write_text("{not json")
    with pytest.raises(PromotionError, match="zz-broken.json"):
        store.champion()


def test_decision_and_metrics_readers() -> None:
    assert read_decision('{"passed": false, "reasons": ["too low"]}') == (False, ["too low"])
    with pytest.raises(PromotionError, match="boolean `passed`"):
        read_decision('{"passed": "yes"}')
    assert read_metrics('{"metrics": {"a": 1, "b": "x", "c": true, "d": 0.5}}') == {"a": 1.0, "d": 0.5}
    with pytest.raises(PromotionError, match="not JSON"):
        read_metrics("{")
