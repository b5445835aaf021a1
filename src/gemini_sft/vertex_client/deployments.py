"""Model uploads and endpoint deployments through google-cloud-aiplatform (Vertex AI v1).

The cloud side of :mod:`gemini_sft.deployment`: Model Registry ``models.upload`` and the
endpoint calls ``create``, ``get``, ``deployModel``, ``undeployModel`` and
``patch`` (traffic). Long-running operations are waited for. Every failed call
raises DeploymentError naming the call and the API's message.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Iterator

from gemini_sft.errors import DeploymentError, GenerationCallError
from gemini_sft.retry import TRANSIENT_HTTP_CODES
from gemini_sft.vertex_client.settings import VertexSettings, init_aiplatform

if TYPE_CHECKING:
    from gemini_sft.deployment import DeploymentSettings

log = logging.getLogger(__name__)

OPERATION_TIMEOUT_SECONDS = 3 * 3600  # a GPU deployment can take long to come up


@contextlib.contextmanager
def _call(action: str) -> Iterator[None]:
    from google.api_core import exceptions

    try:
        yield
    except exceptions.GoogleAPICallError as exc:
        raise DeploymentError(f"Could not {action}: {exc.message or exc}") from exc


class VertexDeployments:
    """Implements ``gemini_sft.deployment.DeploymentService`` with aiplatform's v1 clients."""

    def __init__(self, settings: VertexSettings) -> None:
        init_aiplatform(settings)
        from google.cloud.aiplatform import initializer, utils

        self.settings = settings
        self.parent = f"projects/{settings.project}/locations/{settings.location}"
        self._models = initializer.global_config.create_client(
            client_class=utils.ModelClientWithOverride, location_override=settings.location)
        self._endpoints = initializer.global_config.create_client(
            client_class=utils.EndpointClientWithOverride, location_override=settings.location)

    def upload_model(self, display_name: str, artifact_uri: str, container_spec: dict[str, Any],
                     labels: dict[str, str]) -> str:
        from google.cloud.aiplatform_v1.types import Model, ModelContainerSpec, Port

        spec = ModelContainerSpec(
            image_uri=container_spec["imageUri"], command=container_spec["command"], args=container_spec["args"],
            ports=[Port(container_port=p["containerPort"]) for p in container_spec["ports"]],
            predict_route=container_spec["predictRoute"], health_route=container_spec["healthRoute"],
        )
        model = Model(display_name=display_name, artifact_uri=artifact_uri, container_spec=spec, labels=labels)
        with _call(f"upload {display_name} to Model Registry"):
            response = self._models.upload_model(parent=self.parent, model=model).result(
                timeout=OPERATION_TIMEOUT_SECONDS)
        name = f"{response.model}@{response.model_version_id or '1'}"
        log.info("Uploaded %s", name)
        return name

    def create_endpoint(self, display_name: str, labels: dict[str, str]) -> str:
        from google.cloud.aiplatform_v1.types import Endpoint

        with _call(f"create endpoint {display_name}"):
            endpoint = self._endpoints.create_endpoint(
                parent=self.parent, endpoint=Endpoint(display_name=display_name, labels=labels)
            ).result(timeout=OPERATION_TIMEOUT_SECONDS)
        log.info("Created endpoint %s", endpoint.name)
        return endpoint.name

    def _endpoint(self, endpoint: str) -> Any:
        with _call(f"read endpoint {endpoint}"):
            return self._endpoints.get_endpoint(name=endpoint)

    def traffic_split(self, endpoint: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._endpoint(endpoint).traffic_split.items()}

    def deployed_model_ids(self, endpoint: str) -> list[str]:
        return [d.id for d in self._endpoint(endpoint).deployed_models]

    def deploy_model(self, endpoint: str, model: str, display_name: str, settings: DeploymentSettings,
                     traffic_split: dict[str, int]) -> str:
        from google.cloud.aiplatform_v1.types import (
            DedicatedResources,
            DeployedModel,
            MachineSpec,
        )

        machine = MachineSpec(machine_type=settings.serving_machine_type)
        if settings.serving_accelerator_type:
            machine.accelerator_type = settings.serving_accelerator_type
            machine.accelerator_count = settings.serving_accelerator_count
        deployed = DeployedModel(
            model=model, display_name=display_name,
            dedicated_resources=DedicatedResources(machine_spec=machine, min_replica_count=settings.min_replicas,
                                                   max_replica_count=settings.max_replicas),
        )
        with _call(f"deploy {model} to {endpoint}"):
            response = self._endpoints.deploy_model(
                endpoint=endpoint, deployed_model=deployed, traffic_split=traffic_split
            ).result(timeout=OPERATION_TIMEOUT_SECONDS)
        return response.deployed_model.id

    def set_traffic_split(self, endpoint: str, traffic_split: dict[str, int]) -> None:
        from google.cloud.aiplatform_v1.types import Endpoint
        from google.protobuf import field_mask_pb2

        with _call(f"move the traffic of {endpoint}"):
            self._endpoints.update_endpoint(
                endpoint=Endpoint(name=endpoint, display_name=self._endpoint(endpoint).display_name,
                                  traffic_split=traffic_split),
                update_mask=field_mask_pb2.FieldMask(paths=["traffic_split"]),
            )
        log.info("Traffic of %s: %s", endpoint, traffic_split)

    def undeploy_model(self, endpoint: str, deployed_model_id: str, traffic_split: dict[str, int]) -> None:
        with _call(f"undeploy {deployed_model_id} from {endpoint}"):
            self._endpoints.undeploy_model(
                endpoint=endpoint, deployed_model_id=deployed_model_id, traffic_split=traffic_split
            ).result(timeout=OPERATION_TIMEOUT_SECONDS)
        log.info("Undeployed %s from %s", deployed_model_id, endpoint)

    def raw_predict(self, endpoint: str, body: dict[str, Any]) -> Any:
        """Send ``body`` (the vLLM container's ``{"instances": [...]}``) to the endpoint's container [rawPredict]."""
        try:
            return EndpointPredictor(self.settings)(endpoint, body)
        except GenerationCallError as exc:
            raise DeploymentError(f"Could not ask {endpoint}: {exc}") from exc


class EndpointPredictor:
    """Sends JSON bodies to endpoints' serving containers [rawPredict]; what the serving client asks vLLM with.

    Args:
        settings: project, region and API endpoint.
        timeout_seconds: how long one call may take.
    """

    def __init__(self, settings: VertexSettings, timeout_seconds: float = 60.0) -> None:
        init_aiplatform(settings)
        from google.cloud.aiplatform import initializer, utils

        self._timeout = timeout_seconds
        self._client = initializer.global_config.create_client(
            client_class=utils.PredictionClientWithOverride, location_override=settings.location)

    def __call__(self, endpoint: str, body: dict[str, Any]) -> Any:
        """The container's JSON answer; GenerationCallError (retryable for 408/429/5xx) when the call fails."""
        import json

        from google.api import httpbody_pb2
        from google.api_core import exceptions

        request = httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps(body).encode("utf-8"))
        try:
            response = self._client.raw_predict(endpoint=endpoint, http_body=request, timeout=self._timeout)
        except exceptions.GoogleAPICallError as exc:
            code = int(exc.code) if exc.code else None
            raise GenerationCallError(f"{endpoint}: {exc.message or exc}", status_code=code,
                                      retryable=code in TRANSIENT_HTTP_CODES) from exc
        except exceptions.RetryError as exc:
            raise GenerationCallError(f"{endpoint}: {exc}", retryable=True) from exc
        try:
            return json.loads(response.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise GenerationCallError(f"{endpoint}: the serving container did not answer with JSON") from exc
