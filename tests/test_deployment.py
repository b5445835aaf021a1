"""Gated deployment of an open-weights model against the strict stand-in: upload, deploy, traffic, rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.cloud.aiplatform_v1.types import AcceleratorType

from gemini_sft.deployment import DeploymentSettings, deploy_open_model, rollback_deployment
from gemini_sft.errors import DeploymentError, PromotionError
from gemini_sft import cli
from gemini_sft.promotion import PromotionStore, Provenance
from gemini_sft.standin import VertexStandIn
from gemini_sft.standin.deployments import deployment_state
from gemini_sft.vertex_client import VertexSettings
from gemini_sft.vertex_client import VertexDeployments

METADATA = {"tuning_backend": "open-weights", "base_model": "tiny-local"}


def _service(standin: VertexStandIn) -> VertexDeployments:
    return VertexDeployments(VertexSettings.create("my-project", "us-central1", standin.base_url))


def _deploy(service, store, folder: str, run: str):
    return deploy_open_model(
        service, store, settings=DeploymentSettings(), model_folder_uri=folder, model_metadata=METADATA,
        provenance=Provenance(pipeline_run=run, metrics={"tuned_rougeL": 0.5}), display_name=f"open-{run}",
    )


def test_a_first_deployment_gets_an_endpoint_and_all_traffic(standin: VertexStandIn, tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path / "registry"))
    record = _deploy(_service(standin), store, str(tmp_path / "model-1"), "run-1")
    endpoint = deployment_state(standin).endpoint(record.model.endpoint)
    assert endpoint["trafficSplit"] == {record.deployed_model_id: 100}
    model = deployment_state(standin).models[record.model.versioned_name]
    assert model["artifactUri"] == str(tmp_path / "model-1")
    assert "--enable-lora" in model["containerSpec"]["args"]
    deployed = endpoint["deployedModels"][0]["dedicatedResources"]
    # the REST transport sends enums as numbers, which Vertex accepts as it accepts their names
    accelerator = deployed["machineSpec"]["acceleratorType"]
    assert accelerator in ("NVIDIA_L4", AcceleratorType.NVIDIA_L4.value)
    assert deployed["machineSpec"]["machineType"] == "g2-standard-12"
    assert deployed["machineSpec"]["acceleratorCount"] == 1
    champion = store.champion()
    assert champion.tuning_backend == "open-weights" and champion.deployed_model_id == record.deployed_model_id


def test_a_new_deployment_takes_traffic_after_it_is_up_and_the_previous_stays(
    standin: VertexStandIn, tmp_path: Path
) -> None:
    service, store = _service(standin), PromotionStore(str(tmp_path / "registry"))
    first = _deploy(service, store, str(tmp_path / "model-1"), "run-1")
    second = _deploy(service, store, str(tmp_path / "model-2"), "run-2")
    assert second.model.endpoint == first.model.endpoint
    assert second.previous_champion == first.model
    endpoint = deployment_state(standin).endpoint(first.model.endpoint)
    assert endpoint["trafficSplit"] == {second.deployed_model_id: 100, first.deployed_model_id: 0}
    assert {d["id"] for d in endpoint["deployedModels"]} == {first.deployed_model_id, second.deployed_model_id}
    # the new model was deployed with no traffic, then the traffic moved in a separate call
    names = [r.route for r in standin.requests if r.route.startswith("endpoints.")]
    deploys = [i for i, n in enumerate(names) if n == "endpoints.deployModel"]
    assert names[deploys[-1] + 1:].count("endpoints.patch") == 1


def test_gemini_sft_rollback_gives_the_traffic_back_and_undeploys_the_newer_model(
    standin: VertexStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service, registry_uri = _service(standin), str(tmp_path / "registry")
    store = PromotionStore(registry_uri)
    first = _deploy(service, store, str(tmp_path / "model-1"), "run-1")
    second = _deploy(service, store, str(tmp_path / "model-2"), "run-2")
    config = tmp_path / "dev.yaml"
    config.write_text(yaml.safe_dump({"project": "my-project", "region": "us-central1", "pipeline_root": "gs://b/root",
                                      "registry_uri": "gs://b/registry", "api_endpoint": standin.base_url}))
    assert cli.main(["rollback", "--config", str(config), "--registry-uri", registry_uri, "--reason", "worse"]) == 0
    assert f"moved back to deployed model {first.deployed_model_id}" in capsys.readouterr().out
    endpoint = deployment_state(standin).endpoint(first.model.endpoint)
    assert endpoint["trafficSplit"] == {first.deployed_model_id: 100}
    assert [d["id"] for d in endpoint["deployedModels"]] == [first.deployed_model_id]
    assert store.champion().model == first.model
    assert store.history()[-1].kind == "rollback"
    assert second.deployed_model_id not in service.deployed_model_ids(first.model.endpoint)


def test_rollback_refuses_when_the_previous_deployment_is_gone(standin: VertexStandIn, tmp_path: Path) -> None:
    service, store = _service(standin), PromotionStore(str(tmp_path / "registry"))
    first = _deploy(service, store, str(tmp_path / "model-1"), "run-1")
    second = _deploy(service, store, str(tmp_path / "model-2"), "run-2")
    service.undeploy_model(first.model.endpoint, first.deployed_model_id, {second.deployed_model_id: 100})
    with pytest.raises(DeploymentError, match="no longer on"):
        rollback_deployment(service, store.champion(), store.history()[-2])
    assert service.traffic_split(first.model.endpoint) == {second.deployed_model_id: 100}


def test_bad_replica_settings_are_refused_before_any_call() -> None:
    with pytest.raises(DeploymentError, match="min_replicas <= max_replicas"):
        DeploymentSettings(min_replicas=2, max_replicas=1)


def _artifact(kind, path: Path, text: str | None = None, **metadata):
    if text is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    artifact = kind(name=path.name, uri=str(path))
    artifact.metadata.update(metadata)
    return artifact


def test_the_deploy_step_refuses_a_model_that_failed_the_gate(standin: VertexStandIn, tmp_path: Path) -> None:
    from kfp.dsl import Artifact, Model

    from gemini_sft.components.deploy import deploy_open_weights

    decision = json.dumps({"passed": False, "reasons": ["min_improvement: tuned - base = -0.1 < 0"]})
    with pytest.raises(PromotionError, match="refusing to deploy"):
        deploy_open_weights(
            tuned_model=_artifact(Model, tmp_path / "model", **METADATA),
            decision=_artifact(Artifact, tmp_path / "decision.json", decision),
            evaluation=_artifact(Artifact, tmp_path / "evaluation.json", json.dumps({"metrics": {}})),
            deployment_record=_artifact(Artifact, tmp_path / "out" / "record"),
            project="my-project", api_endpoint=standin.base_url, registry_uri=str(tmp_path / "registry"),
        )
    assert not [r for r in standin.requests if r.route.startswith(("models.upload", "endpoints."))]
    assert not (tmp_path / "registry" / "champion.json").exists()
