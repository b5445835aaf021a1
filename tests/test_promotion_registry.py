"""Promotion against Model Registry over real HTTP: the alias moves, labels follow, status and rollback agree."""

import json
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kfp.dsl import Artifact, Dataset, Model

import gemini_sft.cli as cli
from gemini_sft.components.promote import find_champion, promote_model
from gemini_sft.errors import PromotionError
from gemini_sft.promotion import ModelVersion, PromotionStore, promote
from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.platform import platform_state, routes
from gemini_sft.vertex_client import VertexModelRegistry, VertexSettings

MY_COMMANDS = ("submit", "schedule", "status", "rollback", "dag", "config")
PROJECT = "my-project-dev"
PARENT = f"projects/{PROJECT}/locations/us-central1"


@pytest.fixture()
def standin(monkeypatch: pytest.MonkeyPatch, start_standin) -> Iterator[VertexStandIn]:
    monkeypatch.setattr(cli, "COMMAND_MODULES", MY_COMMANDS)
    server = start_standin(extra_routes=routes())
    state = platform_state(server)
    for model_id in ("101", "202", "303"):
        state.register_model(f"{PARENT}/models/{model_id}", "1", display_name=f"gemini-sft-{model_id}")
    yield server


def aliases(standin: VertexStandIn, model_id: str, version: str = "1") -> list[str]:
    return platform_state(standin).get_model(f"{PARENT}/models/{model_id}@{version}")["versionAliases"]


def labels(standin: VertexStandIn, model_id: str) -> dict:
    return platform_state(standin).get_model(f"{PARENT}/models/{model_id}@1")["labels"]


def promote_through_component(tmp_path: Path, standin: VertexStandIn, registry_uri: str, model_id: str, run: str) -> dict:
    work = tmp_path / run
    work.mkdir()
    tuned = Model(name="tuned_model", uri=str(work / "model"))
    tuned.metadata.update({"model_resource": f"{PARENT}/models/{model_id}@1", "model_version": "1",
                           "endpoint": f"{PARENT}/endpoints/{model_id}", "base_model": "gemini-2.5-flash"})
    (work / "decision.json").write_text(json.dumps({"passed": True, "reasons": []}))
    (work / "evaluation.json").write_text(json.dumps({"metrics": {"tuned_rougeL": 0.5 + int(model_id) / 1000}}))
    (work / "train.jsonl").write_text(json.dumps(
        {"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"text": "a"}]}]}) + "\n")
    record = Artifact(name="promotion_record", uri=str(work / "record.json"))
    promote_model(
        tuned_model=tuned, decision=Artifact(name="d", uri=str(work / "decision.json")),
        evaluation=Artifact(name="e", uri=str(work / "evaluation.json")),
        train=Dataset(name="train", uri=str(work / "train.jsonl")), promotion_record=record,
        project=PROJECT, location="us-central1", api_endpoint=standin.base_url, registry_uri=registry_uri,
        pipeline_run=run, dataset_hash="ABCDEF" + model_id,
    )
    return json.loads(Path(record.path).read_text())


def write_config(tmp_path: Path, standin: VertexStandIn) -> Path:
    path = tmp_path / "dev.yaml"
    path.write_text(yaml.safe_dump({
        "project": PROJECT, "region": "us-central1", "pipeline_root": "gs://b/root",
        "registry_uri": "gs://b/registry", "api_endpoint": standin.base_url,
    }))
    return path


def test_promotion_moves_the_alias_and_labels_then_rollback_moves_it_back(
    tmp_path: Path, standin: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    registry_uri = str(tmp_path / "registry")
    first = promote_through_component(tmp_path, standin, registry_uri, "101", "run-1")
    assert aliases(standin, "101") == ["default", "production"]
    assert labels(standin, "101") == {"gemini-sft-status": "production", "gemini-sft-dataset": "abcdef101"}
    assert first["previous_champion"] is None

    second = promote_through_component(tmp_path, standin, registry_uri, "202", "run-2")
    assert aliases(standin, "202") == ["default", "production"]
    assert aliases(standin, "101") == ["default"]
    assert labels(standin, "101")["gemini-sft-status"] == "retired"
    assert second["previous_champion"]["model"] == f"{PARENT}/models/101"
    merges = [(r.path.rsplit("/", 1)[-1], r.body["versionAliases"])
              for r in standin.requests_to(":mergeVersionAliases", "POST")]
    assert merges == [("101@1:mergeVersionAliases", ["production"]),
                      ("202@1:mergeVersionAliases", ["production"]),
                      ("101@1:mergeVersionAliases", ["-production"])]
    champion = find_champion(registry_uri=registry_uri)
    assert champion.champion_model == f"{PARENT}/models/202@1"
    assert champion.champion_endpoint == f"{PARENT}/endpoints/202"

    config = write_config(tmp_path, standin)
    assert cli.main(["status", "--registry-uri", registry_uri, "--config", str(config), "--check-registry"]) == 0
    out = capsys.readouterr().out
    assert f"In production ('production'): {PARENT}/models/202@1" in out
    assert "Model Registry agrees" in out
    assert out.index("run=run-2") < out.index("run=run-1")

    assert cli.main(["rollback", "--config", str(config), "--registry-uri", registry_uri,
                     "--reason", "answers got longer"]) == 0
    assert f"{PARENT}/models/202@1 -> {PARENT}/models/101@1" in capsys.readouterr().out
    assert aliases(standin, "101") == ["default", "production"]
    assert aliases(standin, "202") == ["default"]
    assert labels(standin, "202")["gemini-sft-status"] == "rolled-back"
    store = PromotionStore(registry_uri)
    last = store.history()[-1]
    assert last.kind == "rollback" and last.reasons == ["answers got longer"]
    assert last.previous_champion == ModelVersion(model=f"{PARENT}/models/202", version="1",
                                                   endpoint=f"{PARENT}/endpoints/202")
    assert store.champion().model.versioned_name == f"{PARENT}/models/101@1"

    assert cli.main(["status", "--registry-uri", registry_uri, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["champion"]["model"]["model"] == f"{PARENT}/models/101"
    assert [entry["kind"] for entry in status["history"]] == ["rollback", "promotion", "promotion"]

    assert cli.main(["rollback", "--config", str(config), "--registry-uri", registry_uri]) == 1
    assert "no previous champion" in capsys.readouterr().err


def test_status_detects_an_alias_moved_outside_gemini_sft(
    tmp_path: Path, standin: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    registry_uri = str(tmp_path / "registry")
    promote_through_component(tmp_path, standin, registry_uri, "101", "run-1")
    platform_state(standin).merge_aliases(f"{PARENT}/models/101@1", ["-production"])
    config = write_config(tmp_path, standin)
    assert cli.main(["status", "--registry-uri", registry_uri, "--config", str(config), "--check-registry"]) == 1
    assert "Model Registry disagrees" in capsys.readouterr().out


def test_registry_failure_leaves_no_record(tmp_path: Path, standin: VertexStandIn) -> None:
    store = PromotionStore(str(tmp_path / "registry"))
    registry = VertexModelRegistry(VertexSettings.create(PROJECT, "us-central1", standin.base_url))
    missing = ModelVersion(model=f"{PARENT}/models/999", version="1")
    with pytest.raises(PromotionError, match="Model Registry could not add alias 'production' to .*models/999@1"):
        promote(store, missing, registry=registry)
    assert store.history() == []


def test_rollback_without_registry_only_records(
    tmp_path: Path, standin: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    registry_uri = str(tmp_path / "registry")
    promote_through_component(tmp_path, standin, registry_uri, "101", "run-1")
    promote_through_component(tmp_path, standin, registry_uri, "303", "run-2")
    before = len(standin.requests)
    assert cli.main(["rollback", "--registry-uri", registry_uri, "--dry-run"]) == 0
    assert "would move 'production'" in capsys.readouterr().out
    assert cli.main(["rollback", "--registry-uri", registry_uri]) == 2
    assert "needs --config" in capsys.readouterr().err
    assert cli.main(["rollback", "--registry-uri", registry_uri, "--no-registry"]) == 0
    assert len(standin.requests) == before
    assert PromotionStore(registry_uri).champion().model.model == f"{PARENT}/models/101"


def test_tuned_models_of_the_standin_can_be_promoted(tmp_path: Path, standin: VertexStandIn) -> None:
    train = tmp_path / "train.jsonl"
    example = {"contents": [{"role": "user", "parts": [{"text": "q"}]}, {"role": "model", "parts": [{"text": "a"}]}]}
    train.write_text(json.dumps(example) + "\n")
    body = json.dumps({"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": {"trainingDatasetUri": str(train)}})
    request = urllib.request.Request(f"{standin.base_url}/v1/{PARENT}/tuningJobs", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    job = json.loads(urllib.request.urlopen(request, timeout=10).read())
    deadline = time.monotonic() + 10
    while job["state"] != "JOB_STATE_SUCCEEDED" and time.monotonic() < deadline:
        job = json.loads(urllib.request.urlopen(f"{standin.base_url}/v1/{job['name']}", timeout=10).read())
    tuned = ModelVersion.parse(job["tunedModel"]["model"], endpoint=job["tunedModel"]["endpoint"])
    registry = VertexModelRegistry(VertexSettings.create(PROJECT, "us-central1", standin.base_url))
    promote(PromotionStore(str(tmp_path / "registry")), tuned, registry=registry)
    assert "production" in registry.version_aliases(tuned)
