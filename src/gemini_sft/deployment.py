"""Gated deployment of an open-weights model: Model Registry upload, endpoint deploy, traffic once healthy.

An open model does not deploy itself as a tuned Gemini does. When the gate
passes, :func:`deploy_open_model`:

1. uploads the trained folder to Model Registry with a vLLM serving container
   (Vertex's prebuilt vLLM image by default; the base model with the adapter
   served through LoRA);
2. deploys it to the endpoint of the open model now in production (or a new
   endpoint) with no traffic, beside the deployment that serves now;
3. once the deployment is up (the deploy operation finished and the endpoint
   lists it), moves all traffic to it; the previous deployment stays deployed,
   with no traffic, for :func:`rollback_deployment`;
4. appends a promotion record (``tuning_backend`` ``open-weights``, the
   deployed model id) to the promotion registry, so ``champion.json`` says
   which backend serves.

Cloud calls go through a :class:`DeploymentService` (``gemini_sft.vertex_client.deployments``
on Vertex and against the stand-in). Failures raise DeploymentError; a failed
step leaves the serving deployment taking the traffic it had. An open model that
fails the gate is recorded as Gemini's are, by
:func:`gemini_sft.promotion.record_tuned_model_rejection`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from gemini_sft.contracts import setting
from gemini_sft.errors import DeploymentError
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND as OPEN_WEIGHTS
from gemini_sft.promotion import (
    DEFAULT_PRODUCTION_ALIAS,
    ModelVersion,
    PromotionRecord,
    PromotionStore,
    Provenance,
    append_new_record,
)

log = logging.getLogger(__name__)

# Vertex's prebuilt vLLM serving image (Model Garden); a parameter, pin a dated tag for production.
VLLM_IMAGE = "us-docker.pkg.dev/vertex-ai/vertex-vision-model-garden-dockers/pytorch-vllm-serve:latest"
SERVING_PORT = 8080
ADAPTER_NAME = "tuned"


@dataclass(frozen=True)
class DeploymentSettings:
    """How a passing open-weights model is served: the container, the machine and the replicas."""

    serving_image: str = setting(VLLM_IMAGE, "Serving container of the open model: Vertex's prebuilt vLLM image "
                                             "by default (the adapter is served with LoRA enabled).")
    serving_machine_type: str = setting("g2-standard-12", "Machine type of each serving replica.")
    serving_accelerator_type: str = setting("NVIDIA_L4", "GPU of each serving replica.")
    serving_accelerator_count: int = setting(1, "GPUs of each serving replica.")
    min_replicas: int = setting(1, "Fewest serving replicas.")
    max_replicas: int = setting(1, "Most serving replicas (autoscaling up to this).")
    endpoint_display_name: str = setting("gemini-sft-open-weights",
                                         "Display name of the endpoint made when no open model serves yet.")

    def __post_init__(self) -> None:
        problems = []
        if not self.serving_image.strip():
            problems.append("serving_image must name a container image")
        if not self.serving_machine_type.strip():
            problems.append("serving_machine_type must name a machine type, e.g. g2-standard-12")
        if self.serving_accelerator_count < 0 or (self.serving_accelerator_type and self.serving_accelerator_count < 1):
            problems.append("serving_accelerator_count must be at least 1 with a serving_accelerator_type")
        if self.min_replicas < 1 or self.max_replicas < self.min_replicas:
            problems.append(f"replicas must satisfy 1 <= min_replicas <= max_replicas, got {self.min_replicas} "
                            f"and {self.max_replicas}")
        if problems:
            raise DeploymentError("deployment settings: " + "; ".join(problems))

    def machine_spec(self) -> dict[str, Any]:
        """The deployed model's ``dedicatedResources.machineSpec`` (REST JSON)."""
        spec: dict[str, Any] = {"machineType": self.serving_machine_type}
        if self.serving_accelerator_type:
            spec["acceleratorType"] = self.serving_accelerator_type
            spec["acceleratorCount"] = self.serving_accelerator_count
        return spec


def vllm_container_spec(settings: DeploymentSettings, base_model: str, model_folder_uri: str) -> dict[str, Any]:
    """The Model's ``containerSpec``: vLLM's API server with the base model and the adapter as a LoRA module.

    Args:
        settings: the serving settings (image).
        base_model: the base model (Hugging Face id or folder) the adapter was trained on.
        model_folder_uri: the training folder (``adapter/`` inside it).
    """
    adapter = model_folder_uri.rstrip("/") + "/adapter"
    return {
        "imageUri": settings.serving_image,
        "command": ["python", "-m", "vllm.entrypoints.api_server"],
        "args": ["--host=0.0.0.0", f"--port={SERVING_PORT}", f"--model={base_model}", "--enable-lora",
                 f"--lora-modules={ADAPTER_NAME}={adapter}", "--max-loras=1"],
        "ports": [{"containerPort": SERVING_PORT}],
        "predictRoute": "/generate",
        "healthRoute": "/ping",
    }


class DeploymentService(Protocol):
    """The Model Registry and endpoint calls a deployment needs (REST names in brackets)."""

    def upload_model(self, display_name: str, artifact_uri: str, container_spec: dict[str, Any],
                     labels: dict[str, str]) -> str:
        """Register a model version [models.upload]; returns ``projects/P/locations/L/models/ID@V``."""

    def create_endpoint(self, display_name: str, labels: dict[str, str]) -> str:
        """Make an endpoint [endpoints.create]; returns its resource name."""

    def deploy_model(self, endpoint: str, model: str, display_name: str, settings: DeploymentSettings,
                     traffic_split: dict[str, int]) -> str:
        """Deploy ``model`` [endpoints.deployModel] with ``traffic_split`` ("0" = the new one); its deployed id."""

    def traffic_split(self, endpoint: str) -> dict[str, int]:
        """Deployed model id -> share of traffic [endpoints.get]."""

    def deployed_model_ids(self, endpoint: str) -> list[str]:
        """The ids of the models deployed on ``endpoint`` [endpoints.get]."""

    def set_traffic_split(self, endpoint: str, traffic_split: dict[str, int]) -> None:
        """Move traffic [endpoints.patch with updateMask traffic_split]."""

    def undeploy_model(self, endpoint: str, deployed_model_id: str, traffic_split: dict[str, int]) -> None:
        """Take a deployed model off the endpoint [endpoints.undeployModel], leaving ``traffic_split``."""


def _open_champion(store: PromotionStore) -> PromotionRecord | None:
    champion = store.champion()
    if champion is not None and champion.tuning_backend == OPEN_WEIGHTS and champion.model.endpoint:
        return champion
    return None


def deploy_open_model(
    service: DeploymentService,
    store: PromotionStore,
    *,
    settings: DeploymentSettings,
    model_folder_uri: str,
    model_metadata: Mapping[str, Any],
    provenance: Provenance,
    display_name: str,
    labels: Mapping[str, str] | None = None,
) -> PromotionRecord:
    """Upload, deploy without traffic, move traffic once up, keep the previous deployment, and record it.

    Args:
        service: the Model Registry and endpoint calls.
        store: the promotion registry (the champion now, and where the record goes).
        settings: the serving container, machine and replicas.
        model_folder_uri: the trained folder (the tuned model artifact's URI).
        model_metadata: the tuned model artifact's metadata (base model, versions).
        provenance: metrics, dataset hash and run of the candidate.
        display_name: the Model Registry display name.
        labels: labels of the model and of a new endpoint.

    Raises:
        DeploymentError: a call failed, or the new deployment never showed up on the endpoint.
    """
    labels = dict(labels or {})
    champion = store.champion()
    open_champion = _open_champion(store)
    container = vllm_container_spec(settings, str(model_metadata.get("base_model", "")), model_folder_uri)
    model_name = service.upload_model(display_name, model_folder_uri, container, labels)
    endpoint = open_champion.model.endpoint if open_champion else service.create_endpoint(
        settings.endpoint_display_name, labels)
    before = service.traffic_split(endpoint)
    # the new deployment starts with no traffic while another one serves; an empty endpoint has nothing to keep
    split = {"0": 0, **before} if before else {"0": 100}
    deployed_id = service.deploy_model(endpoint, model_name, display_name, settings, split)
    if deployed_id not in service.deployed_model_ids(endpoint):
        raise DeploymentError(f"{model_name} was deployed as {deployed_id} but {endpoint} does not list it; "
                              "traffic was not moved")
    if before:
        service.set_traffic_split(endpoint, {deployed_id: 100, **{k: 0 for k in before if k != deployed_id}})
    log.info("Deployed %s to %s as %s (%d earlier deployment(s) kept with no traffic)", model_name, endpoint,
             deployed_id, len(before))
    version = ModelVersion.parse(model_name, endpoint=endpoint)
    return append_new_record(
        store, "promotion", version, provenance, None,
        alias=champion.alias if champion else DEFAULT_PRODUCTION_ALIAS,
        previous_champion=champion.model if champion else None,
        tuning_backend=OPEN_WEIGHTS, deployed_model_id=deployed_id,
    )


def rollback_deployment(service: DeploymentService, current: PromotionRecord, target: PromotionRecord) -> str:
    """Give the traffic of ``current``'s endpoint back to ``target``'s deployment and undeploy ``current``'s.

    Called before the rollback is recorded (``gemini-sft rollback``). When ``target`` is served
    elsewhere (a Gemini endpoint), ``current`` is only undeployed once something else serves.

    Args:
        service: the endpoint calls.
        current: the record of the open model in production.
        target: the record of the model to return to.

    Returns:
        What was done, in one line.

    Raises:
        DeploymentError: the target's deployment is gone from the endpoint, or a call failed.
    """
    endpoint, current_id = current.model.endpoint, current.deployed_model_id
    deployed = service.deployed_model_ids(endpoint)
    if target.tuning_backend == OPEN_WEIGHTS and target.model.endpoint == endpoint:
        if target.deployed_model_id not in deployed:
            raise DeploymentError(f"the previous deployment {target.deployed_model_id} is no longer on {endpoint}; "
                                  "redeploy it before rolling back")
        service.set_traffic_split(endpoint, {target.deployed_model_id: 100, current_id: 0})
        service.undeploy_model(endpoint, current_id, {target.deployed_model_id: 100})
        return f"traffic of {endpoint} moved back to deployed model {target.deployed_model_id}; {current_id} undeployed"
    return f"{target.model.endpoint or target.model.versioned_name} serves again; {endpoint} left as it is"


def deployment_display_name(pipeline_run: str) -> str:
    """The Model Registry display name of an open model tuned by ``pipeline_run`` (at most 128 characters)."""
    return f"gemini-sft-open-weights-{pipeline_run or 'manual'}"[:128]

