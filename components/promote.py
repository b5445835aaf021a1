"""Promotion stage: find the model in production, promote a candidate that passed the gate, record a rejection.

Thin KFP shells over ``gemini_sft.promotion``; the promotion history lives in
``registry_uri`` (``gs://bucket/prefix`` on Vertex, a local folder locally) and
the production alias in Model Registry.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Model, Output

from gemini_sft.contracts import describe_component

REGISTRY_URI = "Promotion registry holding the records: gs://BUCKET/PREFIX on Vertex, a local folder locally."
PIPELINE_RUN = "Name of the pipeline run, kept in the record."
DATASET_HASH = "Hash of the cleaned splits the model was tuned on, kept in the record."
TUNED_MODEL = "The tuned model (metadata model_resource, model_version, endpoint, tuning_job, base_model)."
DECISION = "The gate's decision JSON (passed, reasons, metrics)."


@describe_component(
    """The model version in production and its endpoint, from the promotion history in ``registry_uri``.

    Every output is "" when nothing is in production yet or no ``registry_uri`` is set.
    Fails (PromotionError) when the history cannot be read.""",
    inputs={"registry_uri": REGISTRY_URI},
    outputs={
        "champion_model": "The production model version, projects/P/locations/L/models/ID@V; empty when none.",
        "champion_endpoint": "The endpoint serving the production model; empty when none.",
        "champion_backend": "The backend that made it (vertex-gemini or open-weights); empty when none.",
    },
)
def find_champion(
    registry_uri: str = "",
) -> NamedTuple("ChampionOutputs", [("champion_model", str), ("champion_endpoint", str), ("champion_backend", str)]):
    import logging
    from collections import namedtuple

    from gemini_sft.promotion import PromotionStore

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("gemini_sft.components.promote")
    outputs = namedtuple("ChampionOutputs", ["champion_model", "champion_endpoint", "champion_backend"])
    if not registry_uri:
        log.warning("No registry_uri given: treating the run as having no champion")
        return outputs("", "", "")
    champion = PromotionStore(registry_uri).champion()
    if champion is None:
        log.info("No champion in the promotion registry yet")
        return outputs("", "", "")
    log.info("Champion: %s (%s)", champion.model.versioned_name, champion.tuning_backend)
    return outputs(champion.model.versioned_name, champion.model.endpoint, champion.tuning_backend)


@describe_component(
    """Make the tuned model the production model: Model Registry alias and labels, then a promotion record.

    The record is also appended to ``registry_uri``. With ``update_model_registry`` false only the
    record is written. With ``require_human_review`` the candidate is only recorded as staged (production
    unchanged) until ``gemini-sft approve`` promotes it. Either way the output contract learned from the
    training split is stored beside the records, for ``gemini-sft ask``. Fails (PromotionError) when the
    gate did not pass, the model has no registry name, ``registry_uri`` is empty or a registry call fails.""",
    inputs={
        "tuned_model": TUNED_MODEL,
        "decision": DECISION + " It must have passed.",
        "evaluation": "The evaluation JSON whose metrics go into the record.",
        "train": "The training split, Gemini JSONL: the output contract stored for the model is learned from it.",
        "project": "Google Cloud project of the Model Registry.",
        "location": "Vertex AI region of the Model Registry.",
        "api_endpoint": "Vertex API endpoint; empty means Vertex itself.",
        "registry_uri": REGISTRY_URI,
        "pipeline_run": PIPELINE_RUN,
        "dataset_hash": DATASET_HASH,
        "production_alias": "Model Registry version alias that marks the production model.",
        "update_model_registry": "Move the alias and labels in Model Registry; false writes only the record.",
        "require_human_review": "Record a passing candidate as staged for people to approve instead of promoting it.",
        "label_pattern": "The label regex of the evaluation; the output contract requires a label when it fits.",
        "checkpoint_id": "The checkpoint chosen on validation; empty keeps the tuned model's default one.",
        "checkpoint_endpoint": "The chosen checkpoint's endpoint, recorded as the model's endpoint; empty: the "
        "tuned model's.",
    },
    outputs={"promotion_record": "The promotion record JSON, as appended to the registry."},
)
def promote_model(
    tuned_model: Input[Model],
    decision: Input[Artifact],
    evaluation: Input[Artifact],
    train: Input[Dataset],
    promotion_record: Output[Artifact],
    project: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    registry_uri: str = "",
    pipeline_run: str = "",
    dataset_hash: str = "",
    production_alias: str = "production",
    update_model_registry: bool = True,
    require_human_review: bool = False,
    label_pattern: str = "",
    checkpoint_id: str = "",
    checkpoint_endpoint: str = "",
):
    import logging

    from gemini_sft.promotion import ModelVersion, PromotionStore
    from gemini_sft.promotion.artifacts import candidate_provenance, read_gate_decision, write_record_artifact
    from gemini_sft.review.staging import promote_or_stage
    from gemini_sft.serving import learn_output_contract, save_contract
    from gemini_sft.vertex_client import VertexModelRegistry, VertexSettings

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("gemini_sft.components.promote")
    read_gate_decision(
        decision.path, refuse_unless_passed="promote",
        hint="Wire promote_model under dsl.If(gate.outputs['passed'] == True).",
    )
    provenance = candidate_provenance(tuned_model.metadata, evaluation.path, dataset_hash=dataset_hash,
                                      pipeline_run=pipeline_run, checkpoint_id=checkpoint_id)
    contract = learn_output_contract(train.path, label_pattern)  # a bad split fails before anything is recorded
    registry = None
    if update_model_registry and not require_human_review:
        registry = VertexModelRegistry(VertexSettings.create(project, location, api_endpoint or None))
    store = PromotionStore(registry_uri)
    # The chosen checkpoint's endpoint serves the champion (the job's default one is the last checkpoint).
    served = {**tuned_model.metadata, **({"endpoint": checkpoint_endpoint} if checkpoint_endpoint else {})}
    record = promote_or_stage(
        store, ModelVersion.from_metadata(served), require_human_review=require_human_review, registry=registry,
        alias=production_alias, provenance=provenance,
    )
    contract_uri = save_contract(store, record.model.versioned_name, contract)
    promotion_record.metadata.update(write_record_artifact(promotion_record.path, record, registry_uri))
    promotion_record.metadata["output_contract"] = contract_uri
    log.info("%s %s recorded with %d metric(s); output contract at %s",
             "Staged candidate" if record.kind == "staged" else "Promotion", record.record_id,
             len(provenance.metrics), contract_uri)


@describe_component(
    """Record that the tuned model did not pass the gate, with the gate's reasons; production is unchanged.

    One step for both tuning backends: a Gemini model is recorded by its Model Registry version, an open
    model (nothing uploaded or deployed) by its training folder, and the record names the backend. The
    record is also appended to ``registry_uri``. Fails (PromotionError) when ``registry_uri`` is empty,
    the decision is unreadable or a Gemini model has no registry name.""",
    inputs={
        "tuned_model": "The tuned model of either backend: a Gemini model version (metadata model_resource, "
        "model_version, endpoint) or an open model's training folder (metadata tuning_backend open-weights).",
        "decision": DECISION,
        "registry_uri": REGISTRY_URI,
        "pipeline_run": PIPELINE_RUN,
        "dataset_hash": DATASET_HASH,
    },
    outputs={"rejection_record": "The rejection record JSON, as appended to the registry."},
)
def record_rejection(
    tuned_model: Input[Model],
    decision: Input[Artifact],
    rejection_record: Output[Artifact],
    registry_uri: str = "",
    pipeline_run: str = "",
    dataset_hash: str = "",
):
    import logging

    from gemini_sft.promotion import PromotionStore, record_tuned_model_rejection
    from gemini_sft.promotion.artifacts import candidate_provenance, read_gate_decision, write_record_artifact

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("gemini_sft.components.promote")
    passed, reasons = read_gate_decision(decision.path)
    if passed:
        log.warning("The gate passed but the rejection branch ran; recording it as rejected anyway")
    record = record_tuned_model_rejection(
        PromotionStore(registry_uri), tuned_model.uri, tuned_model.metadata, reasons,
        provenance=candidate_provenance(tuned_model.metadata, decision.path, dataset_hash=dataset_hash,
                                        pipeline_run=pipeline_run),
    )
    rejection_record.metadata.update(write_record_artifact(rejection_record.path, record, registry_uri))
    log.info("Rejection of the %s model recorded with %d reason(s)", record.tuning_backend, len(reasons))
