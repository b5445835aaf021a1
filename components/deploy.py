"""KFP shells of the open-weights deployment: deploy a model that passed the gate, or record its rejection.

The work is done by :mod:`gemini_sft.deployment` with the calls of
:mod:`gemini_sft.vertex_client.deployments`; the records go to the promotion registry.
"""

from kfp.dsl import Artifact, Input, Model, Output

from gemini_sft.components.promote import DATASET_HASH, PIPELINE_RUN, REGISTRY_URI
from gemini_sft.contracts import describe_component
from gemini_sft.deployment import DeploymentSettings

TUNED_MODEL = "The open-weights training folder (adapter, predictions, summary) and its metadata."


@describe_component(
    """Serve the open model that passed the gate: Model Registry upload with a vLLM container, endpoint deploy.

    The new deployment gets traffic only once it is up; the previous one stays deployed with no traffic and
    is recorded for `gemini-sft rollback`. Fails (PromotionError) when the gate did not pass,
    DeploymentError when a call fails (the serving deployment keeps its traffic).""",
    records=[DeploymentSettings],
    inputs={
        "tuned_model": TUNED_MODEL,
        "decision": "The gate's decision JSON; it must have passed.",
        "evaluation": "The evaluation JSON whose metrics go into the record.",
        "project": "Google Cloud project of Model Registry and the endpoint.",
        "location": "Vertex AI region of Model Registry and the endpoint.",
        "api_endpoint": "Vertex API endpoint; empty means Vertex itself.",
        "registry_uri": REGISTRY_URI,
        "pipeline_run": "Name of the pipeline run, kept in the record and the model's name.",
        "dataset_hash": DATASET_HASH,
    },
    outputs={"deployment_record": "The promotion record of the deployment (model, endpoint, deployed model id)."},
)
def deploy_open_weights(
    tuned_model: Input[Model],
    decision: Input[Artifact],
    evaluation: Input[Artifact],
    deployment_record: Output[Artifact],
    project: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    registry_uri: str = "",
    pipeline_run: str = "",
    dataset_hash: str = "",
    serving_image: str = "us-docker.pkg.dev/vertex-ai/vertex-vision-model-garden-dockers/pytorch-vllm-serve:latest",
    serving_machine_type: str = "g2-standard-12",
    serving_accelerator_type: str = "NVIDIA_L4",
    serving_accelerator_count: int = 1,
    min_replicas: int = 1,
    max_replicas: int = 1,
    endpoint_display_name: str = "gemini-sft-open-weights",
):
    import logging

    from gemini_sft.contracts import record_from_values
    from gemini_sft.deployment import DeploymentSettings, deployment_display_name, deploy_open_model
    from gemini_sft.promotion import PromotionStore
    from gemini_sft.promotion.artifacts import candidate_provenance, read_gate_decision, write_record_artifact
    from gemini_sft.vertex_client import VertexDeployments, VertexSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    read_gate_decision(decision.path, refuse_unless_passed="deploy")
    settings = record_from_values(DeploymentSettings, locals())
    record = deploy_open_model(
        VertexDeployments(VertexSettings.create(project, location, api_endpoint or None)),
        PromotionStore(registry_uri),
        settings=settings,
        model_folder_uri=tuned_model.uri,
        model_metadata=tuned_model.metadata,
        provenance=candidate_provenance(tuned_model.metadata, evaluation.path, dataset_hash=dataset_hash,
                                        pipeline_run=pipeline_run),
        display_name=deployment_display_name(pipeline_run),
    )
    deployment_record.metadata.update(write_record_artifact(deployment_record.path, record, registry_uri))


@describe_component(
    """Record that the open model did not pass the gate: nothing is uploaded or deployed.

    The rejection record (the candidate is named by its training folder) is appended to ``registry_uri``;
    the model in production stays. Fails (PromotionError) when the registry cannot be written.""",
    inputs={
        "tuned_model": TUNED_MODEL,
        "decision": "The gate's decision JSON (reasons, metrics).",
        "registry_uri": REGISTRY_URI,
        "pipeline_run": PIPELINE_RUN,
        "dataset_hash": DATASET_HASH,
    },
    outputs={"rejection_record": "The rejection record JSON, as appended to the registry."},
)
def record_open_weights_rejection(
    tuned_model: Input[Model],
    decision: Input[Artifact],
    rejection_record: Output[Artifact],
    registry_uri: str = "",
    pipeline_run: str = "",
    dataset_hash: str = "",
):
    import logging

    from gemini_sft.deployment import record_open_weights_rejection as record
    from gemini_sft.promotion import PromotionStore
    from gemini_sft.promotion.artifacts import candidate_provenance, read_gate_decision, write_record_artifact

    logging.basicConfig(level=logging.INFO)
    _, reasons = read_gate_decision(decision.path)
    provenance = candidate_provenance(tuned_model.metadata, decision.path, dataset_hash=dataset_hash,
                                      pipeline_run=pipeline_run)
    result = record(PromotionStore(registry_uri), tuned_model.uri, reasons, provenance)
    rejection_record.metadata.update(write_record_artifact(rejection_record.path, result, registry_uri))
