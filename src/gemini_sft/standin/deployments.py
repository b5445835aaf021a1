"""Model uploads, endpoints and deployments of the offline stand-in (Vertex AI v1 REST).

What the deployment of an open-weights model sends, under
``/v1/projects/{project}/locations/{location}/``:

* ``POST models:upload`` registers a model version (in the platform's Model
  Registry, so ``models.get`` finds it) with its ``artifactUri`` and
  ``containerSpec``; a done operation answers with ``UploadModelResponse``.
* ``POST endpoints`` creates an endpoint (done operation with the Endpoint);
  ``GET endpoints/ID`` reads it.
* ``POST endpoints/ID:deployModel`` adds a deployed model with its dedicated
  resources and applies the request's ``trafficSplit`` (key ``"0"`` is the new
  model); ``POST endpoints/ID:undeployModel`` removes one (refused while it
  still takes traffic unless the request moves that traffic);
  ``PATCH endpoints/ID?updateMask=traffic_split`` moves traffic (the shares must
  name deployed models and add up to 100); ``POST endpoints/ID:mutateDeployedModel``
  changes replicas.
* ``POST endpoints/ID:rawPredict`` (an HttpBody both ways) hands the body to
  the serving container of the deployed model that takes the most traffic, as
  Vertex does. The container is Vertex's prebuilt vLLM image (predict route
  ``/generate``), stood in for by :mod:`.vllm_container`: an open-weights
  adapter folder (a local ``artifactUri``) is loaded with peft and answers
  ``{"instances": [...]}`` as vLLM with LoRA would; the answer says it came
  from the stand-in.

Nothing is run on a machine. State lives in ``standin.extension_state["deployments"]``.
"""

from __future__ import annotations

import base64
import copy
import json
import itertools

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gemini_sft.standin.platform import platform_state
from gemini_sft.standin.routing import Route, StandInError, StandInRequest, api_path
from gemini_sft.standin.vllm_container import answer_instances, parse_prediction_body

STATE_KEY = "deployments"
_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _operation(name: str, metadata_type: str, response: dict[str, Any], response_type: str) -> dict[str, Any]:
    """A finished long-running operation, as Vertex answers it once the work is done."""
    now = _now()
    return {
        "name": f"{name}/operations/{next(_OPERATION_IDS)}",
        "done": True,
        "metadata": {"@type": _TYPE + metadata_type, "genericMetadata": {"createTime": now, "updateTime": now}},
        "response": {"@type": _TYPE + response_type, **response},
    }


_OPERATION_IDS = itertools.count(7_000_000_000)


class DeploymentState:
    """Uploaded models (artifact and container), endpoints and their deployed models; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(4_000_000_000)
        self.models: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self._generators: dict[str, Any] = {}

    def upload(self, standin: Any, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, dict) or not model.get("displayName"):
            raise StandInError(400, "model.displayName is required.")
        container = model.get("containerSpec") or {}
        if not container.get("imageUri"):
            raise StandInError(400, "model.containerSpec.imageUri is required for a custom serving container.")
        with self._lock:
            name = f"{parent}/models/{body.get('modelId') or next(self._ids)}"
        registered = platform_state(standin).register_model(name, "1", model["displayName"], model.get("labels"))
        with self._lock:
            self.models[f"{name}@1"] = {**copy.deepcopy(model), "name": name, "versionId": registered["versionId"]}
        return _operation(name, "UploadModelOperationMetadata", {"model": name, "modelVersionId": "1"},
                          "UploadModelResponse")

    def create_endpoint(self, parent: str, body: dict[str, Any], endpoint_id: str = "") -> dict[str, Any]:
        if not body.get("displayName"):
            raise StandInError(400, "endpoint.displayName is required.")
        with self._lock:
            name = f"{parent}/endpoints/{endpoint_id or next(self._ids)}"
            if name in self.endpoints:
                raise StandInError(409, f"Endpoint {name} already exists.")
            now = _now()
            endpoint = {"name": name, "displayName": body["displayName"], "labels": dict(body.get("labels") or {}),
                        "deployedModels": [], "trafficSplit": {}, "createTime": now, "updateTime": now,
                        "etag": "1"}
            self.endpoints[name] = endpoint
            return _operation(name, "CreateEndpointOperationMetadata", copy.deepcopy(endpoint), "Endpoint")

    def endpoint(self, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._endpoint(name))

    def _endpoint(self, name: str) -> dict[str, Any]:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise StandInError(404, f"Endpoint {name} not found in this offline stand-in.")
        return endpoint

    @staticmethod
    def _check_split(endpoint: dict[str, Any], split: dict[str, Any]) -> dict[str, int]:
        deployed = {d["id"] for d in endpoint["deployedModels"]}
        shares = {str(k): int(v) for k, v in split.items()}
        unknown = sorted(set(shares) - deployed)
        if unknown:
            raise StandInError(400, f"trafficSplit names models not deployed to {endpoint['name']}: {unknown}.")
        if shares and sum(shares.values()) != 100:
            raise StandInError(400, f"trafficSplit must add up to 100, got {sum(shares.values())}.")
        return {k: v for k, v in shares.items()}

    def deploy(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        deployed = body.get("deployedModel")
        if not isinstance(deployed, dict) or not deployed.get("model"):
            raise StandInError(400, "deployedModel.model is required.")
        model = deployed["model"] if "@" in deployed["model"] else deployed["model"] + "@1"
        with self._lock:
            if model not in self.models:
                raise StandInError(404, f"Model {deployed['model']} not found in this offline stand-in.")
            resources = deployed.get("dedicatedResources") or {}
            if not (resources.get("machineSpec") or {}).get("machineType"):
                raise StandInError(400, "deployedModel.dedicatedResources.machineSpec.machineType is required.")
            if int(resources.get("minReplicaCount") or 0) < 1:
                raise StandInError(400, "dedicatedResources.minReplicaCount must be at least 1.")
            endpoint = self._endpoint(name)
            new_id = str(next(self._ids))
            record = {**copy.deepcopy(deployed), "id": new_id, "model": model.split("@")[0],
                      "modelVersionId": model.split("@")[1], "createTime": _now()}
            endpoint["deployedModels"].append(record)
            split = {(new_id if k == "0" else k): v for k, v in (body.get("trafficSplit") or {"0": 100}).items()}
            endpoint["trafficSplit"] = self._check_split(endpoint, split)
            endpoint["updateTime"] = _now()
            return _operation(name, "DeployModelOperationMetadata", {"deployedModel": copy.deepcopy(record)},
                              "DeployModelResponse")

    def undeploy(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        deployed_id = str(body.get("deployedModelId") or "")
        with self._lock:
            endpoint = self._endpoint(name)
            if deployed_id not in {d["id"] for d in endpoint["deployedModels"]}:
                raise StandInError(404, f"Deployed model {deployed_id!r} is not on {name}.")
            split = dict(body.get("trafficSplit") or endpoint["trafficSplit"])
            split.pop(deployed_id, None)
            if endpoint["trafficSplit"].get(deployed_id) and not body.get("trafficSplit"):
                raise StandInError(400, f"Deployed model {deployed_id} still takes traffic: move it first.")
            endpoint["deployedModels"] = [d for d in endpoint["deployedModels"] if d["id"] != deployed_id]
            endpoint["trafficSplit"] = self._check_split(endpoint, split)
            endpoint["updateTime"] = _now()
            return _operation(name, "UndeployModelOperationMetadata", {}, "UndeployModelResponse")

    def update(self, name: str, body: dict[str, Any], mask: str) -> dict[str, Any]:
        paths = {p.strip() for p in mask.split(",") if p.strip()}
        if not paths or not paths <= {"traffic_split", "trafficSplit", "labels", "display_name", "displayName"}:
            raise StandInError(400, f"updateMask {mask!r}: this stand-in updates traffic_split, labels, display_name.")
        with self._lock:
            endpoint = self._endpoint(name)
            if paths & {"traffic_split", "trafficSplit"}:
                endpoint["trafficSplit"] = self._check_split(endpoint, body.get("trafficSplit") or {})
            if "labels" in paths:
                endpoint["labels"] = dict(body.get("labels") or {})
            if paths & {"display_name", "displayName"}:
                endpoint["displayName"] = body.get("displayName") or endpoint["displayName"]
            endpoint["updateTime"] = _now()
            return copy.deepcopy(endpoint)

    def mutate(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        change = body.get("deployedModel") or {}
        with self._lock:
            endpoint = self._endpoint(name)
            for deployed in endpoint["deployedModels"]:
                if deployed["id"] == str(change.get("id")):
                    resources = deployed.setdefault("dedicatedResources", {})
                    for key in ("minReplicaCount", "maxReplicaCount"):
                        if key in (change.get("dedicatedResources") or {}):
                            resources[key] = change["dedicatedResources"][key]
                    return _operation(name, "MutateDeployedModelOperationMetadata",
                                      {"deployedModel": copy.deepcopy(deployed)}, "MutateDeployedModelResponse")
        raise StandInError(404, f"Deployed model {change.get('id')!r} is not on {name}.")

    def serving_model(self, name: str) -> dict[str, Any]:
        """The uploaded model behind the deployed model that takes the most traffic."""
        with self._lock:
            endpoint = self._endpoint(name)
            if not endpoint["trafficSplit"]:
                raise StandInError(400, f"Endpoint {name} has no deployed model taking traffic.")
            serving_id = max(endpoint["trafficSplit"], key=lambda k: endpoint["trafficSplit"][k])
            deployed = next(d for d in endpoint["deployedModels"] if d["id"] == serving_id)
            return {**copy.deepcopy(self.models[f"{deployed['model']}@{deployed['modelVersionId']}"]),
                    "deployedModelId": serving_id}

    def generator(self, model: dict[str, Any]) -> Any:
        """The model's adapter generator (an ``AdapterGenerator``, loaded once per uploaded model)."""
        key = f"{model['name']}@{model['versionId']}"
        with self._lock:
            if key not in self._generators:
                self._generators[key] = _adapter_generator(Path(model.get("artifactUri") or ""))
            return self._generators[key]


def _adapter_generator(folder: Path) -> Any:
    """Load an open-weights training folder (base model + adapter) with peft."""
    from gemini_sft.open_weights.serving import AdapterGenerator

    if not (folder / "adapter" / "adapter_config.json").is_file():
        raise StandInError(400, f"artifactUri {folder} holds no adapter/adapter_config.json to serve.")
    return AdapterGenerator(folder)


def _raw_body(request: dict[str, Any]) -> dict[str, Any]:
    """The serving container's request: RawPredictRequest's ``httpBody.data`` (base64 JSON) decoded."""
    http_body = request.get("httpBody")
    if not isinstance(http_body, dict):
        raise StandInError(400, "rawPredict needs httpBody {contentType, data} (RawPredictRequest).")
    try:
        decoded = json.loads(base64.b64decode(http_body.get("data") or "").decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StandInError(400, f"httpBody.data is not base64 JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise StandInError(400, "httpBody.data must hold a JSON object.")
    return decoded


def deployment_state(standin: Any) -> DeploymentState:
    """The deployment state of one stand-in, created on first use."""
    return standin.extension_state.setdefault(STATE_KEY, DeploymentState())


def _parent(request: StandInRequest) -> str:
    return f"projects/{request.group('project')}/locations/{request.group('location')}"


def routes() -> list[Route]:
    """The model upload, endpoint and deployment routes, served after the built-in ones."""

    def endpoint_name(request: StandInRequest) -> str:
        return f"{_parent(request)}/endpoints/{request.group('endpoint')}"

    def upload(request: StandInRequest) -> tuple[int, Any]:
        return 200, deployment_state(request.standin).upload(request.standin, _parent(request), request.json_object())

    def create(request: StandInRequest) -> tuple[int, Any]:
        return 200, deployment_state(request.standin).create_endpoint(
            _parent(request), request.json_object(), request.query.get("endpointId", ""))

    def get(request: StandInRequest) -> tuple[int, Any]:
        return 200, deployment_state(request.standin).endpoint(endpoint_name(request))

    def deploy(request: StandInRequest) -> tuple[int, Any]:
        return 200, deployment_state(request.standin).deploy(endpoint_name(request), request.json_object())

    def undeploy(request: StandInRequest) -> tuple[int, Any]:
        return 200, deployment_state(request.standin).undeploy(endpoint_name(request), request.json_object())

    def update(request: StandInRequest) -> tuple[int, Any]:
        return 200, deployment_state(request.standin).update(
            endpoint_name(request), request.json_object(), request.query.get("updateMask", ""))

    def mutate(request: StandInRequest) -> tuple[int, Any]:
        return 200, deployment_state(request.standin).mutate(endpoint_name(request), request.json_object())

    def raw_predict(request: StandInRequest) -> tuple[int, Any]:
        state = deployment_state(request.standin)
        model = state.serving_model(endpoint_name(request))
        body = _raw_body(request.json_object())
        instances = parse_prediction_body(body)  # refused before the adapter is loaded
        predictions = answer_instances(state.generator(model), instances, model["name"])
        answer_body = {"predictions": predictions, "deployedModelId": model["deployedModelId"], "model": model["name"],
                       "note": "answered by the offline stand-in with the uploaded adapter"}
        # rawPredict answers with the container's HTTP body, as a google.api.HttpBody
        return 200, {"contentType": "application/json",
                     "data": base64.b64encode(json.dumps(answer_body).encode("utf-8")).decode("ascii")}

    endpoint = r"endpoints/(?P<endpoint>[^/:]+)"
    return [
        Route("POST", api_path("models:upload"), upload, name="models.upload"),
        Route("POST", api_path("endpoints"), create, name="endpoints.create"),
        Route("GET", api_path(endpoint), get, name="endpoints.get"),
        Route("PATCH", api_path(endpoint), update, name="endpoints.patch"),
        Route("POST", api_path(endpoint + ":deployModel"), deploy, name="endpoints.deployModel"),
        Route("POST", api_path(endpoint + ":undeployModel"), undeploy, name="endpoints.undeployModel"),
        Route("POST", api_path(endpoint + ":mutateDeployedModel"), mutate, name="endpoints.mutateDeployedModel"),
        Route("POST", api_path(endpoint + ":rawPredict"), raw_predict, name="endpoints.rawPredict"),
    ]



