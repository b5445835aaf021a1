"""Promotion stage: find the model in production, promote a candidate that passed the gate, record a rejection.

Thin KFP shells over ``gemini_sft.promotion``; the promotion history lives in
``registry_uri`` (``gs://bucket/prefix`` on Vertex, a local folder locally) and
the production alias in Model Registry.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Input, Model, Output

from gemini_sft.components.base import build_component


def find_champion(
    project: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    registry_uri: str = "",
) -> NamedTuple("ChampionOutputs", [("champion_model", str), ("champion_endpoint", str)]):
    """The model version in production and its endpoint, from the promotion history in ``registry_uri``.

    Outputs ``champion_model`` (``projects/P/locations/L/models/ID@V``) and
    ``champion_endpoint``; both are "" when nothing is in production yet or no
    ``registry_uri`` is set. Fails (PromotionError) when the history cannot be read.
    ``project``, ``location`` and ``api_endpoint`` are accepted for symmetry with
    the other stages; the history is the source of truth.
    """
    import logging
    from collections import namedtuple

    from gemini_sft.promotion import PromotionStore

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("gemini_sft.components.promote")
    outputs = namedtuple("ChampionOutputs", ["champion_model", "champion_endpoint"])
    if not registry_uri:
        log.warning("No registry_uri given: treating the run as having no champion")
        return outputs("", "")
    champion = PromotionStore(registry_uri).champion()
    if champion is None:
        log.info("No champion in the promotion registry yet")
        return outputs("", "")
    log.info("Champion: %s", champion.model.versioned_name)
    return outputs(champion.model.versioned_name, champion.model.endpoint)


def promote_model(
    tuned_model: Input[Model],
    decision: Input[Artifact],
    evaluation: Input[Artifact],
    promotion_record: Output[Artifact],
    project: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    registry_uri: str = "",
    pipeline_run: str = "",
    dataset_hash: str = "",
    production_alias: str = "production",
    update_model_registry: bool = True,
):
    """Make the tuned model the production model: Model Registry alias and labels, then a promotion record.

    Inputs: the tuned model (metadata ``model_resource``, ``model_version``,
    ``endpoint``, ``tuning_job``, ``base_model``), the gate ``decision`` (must
    have passed) and the ``evaluation`` whose metrics go into the record.
    Output ``promotion_record``: the record JSON (also appended to
    ``registry_uri``). With ``update_model_registry`` false only the record is
    written. Fails (PromotionError) when the gate did not pass, the model has no
    registry name, ``registry_uri`` is empty or a registry call fails.
    """
    import logging
    from pathlib import Path

    from gemini_sft.errors import PromotionError
    from gemini_sft.promotion import ModelVersion, PromotionStore, promote, read_decision, read_metrics
    from gemini_sft.vertex_client import VertexModelRegistry, VertexSettings

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("gemini_sft.components.promote")
    passed, reasons = read_decision(Path(decision.path).read_text(encoding="utf-8"))
    if not passed:
        raise PromotionError(
            f"The gate did not pass ({len(reasons)} reason(s)); refusing to promote. "
            "Wire promote_model under dsl.If(gate.outputs['passed'] == True)."
        )
    metadata = tuned_model.metadata
    candidate = ModelVersion.from_metadata(metadata)
    metrics = read_metrics(Path(evaluation.path).read_text(encoding="utf-8"))
    store = PromotionStore(registry_uri)
    registry = None
    if update_model_registry:
        registry = VertexModelRegistry(VertexSettings.create(project, location, api_endpoint or None))
    record = promote(
        store,
        candidate,
        registry=registry,
        alias=production_alias,
        metrics=metrics,
        dataset_hash=dataset_hash,
        pipeline_run=pipeline_run,
        base_model=str(metadata.get("base_model", "")),
        tuning_job=str(metadata.get("tuning_job", "")),
    )
    Path(promotion_record.path).parent.mkdir(parents=True, exist_ok=True)
    Path(promotion_record.path).write_text(record.to_json(), encoding="utf-8")
    promotion_record.metadata.update(
        {
            "record_id": record.record_id,
            "kind": record.kind,
            "model": record.model.versioned_name,
            "endpoint": record.model.endpoint,
            "alias": record.alias,
            "previous_champion": record.previous_champion.versioned_name if record.previous_champion else "",
            "registry_uri": registry_uri,
        }
    )
    log.info("Promotion %s recorded with %d metric(s)", record.record_id, len(metrics))


def record_rejection(
    tuned_model: Input[Model],
    decision: Input[Artifact],
    rejection_record: Output[Artifact],
    registry_uri: str = "",
    pipeline_run: str = "",
    dataset_hash: str = "",
):
    """Record that the tuned model did not pass the gate, with the gate's reasons; production is unchanged.

    Output ``rejection_record``: the record JSON (also appended to
    ``registry_uri``). Fails (PromotionError) when ``registry_uri`` is empty,
    the decision is unreadable or the model has no registry name.
    """
    import logging
    from pathlib import Path

    from gemini_sft.promotion import ModelVersion, PromotionStore, read_decision, read_metrics
    from gemini_sft.promotion import record_rejection as record_rejection_in_store

    logging.basicConfig(level=logging.INFO)
    log = logging.getLogger("gemini_sft.components.promote")
    decision_text = Path(decision.path).read_text(encoding="utf-8")
    passed, reasons = read_decision(decision_text)
    if passed:
        log.warning("The gate passed but the rejection branch ran; recording it as rejected anyway")
    metrics = read_metrics(decision_text)
    metadata = tuned_model.metadata
    candidate = ModelVersion.from_metadata(metadata)
    record = record_rejection_in_store(
        PromotionStore(registry_uri),
        candidate,
        reasons,
        metrics=metrics,
        dataset_hash=dataset_hash,
        pipeline_run=pipeline_run,
        base_model=str(metadata.get("base_model", "")),
        tuning_job=str(metadata.get("tuning_job", "")),
    )
    Path(rejection_record.path).parent.mkdir(parents=True, exist_ok=True)
    Path(rejection_record.path).write_text(record.to_json(), encoding="utf-8")
    rejection_record.metadata.update(
        {
            "record_id": record.record_id,
            "kind": record.kind,
            "model": record.model.versioned_name,
            "reasons": len(reasons),
            "registry_uri": registry_uri,
        }
    )
    log.info("Rejection recorded with %d reason(s)", len(reasons))


find_champion_op = build_component(find_champion)
promote_model_op = build_component(promote_model)
record_rejection_op = build_component(record_rejection)
