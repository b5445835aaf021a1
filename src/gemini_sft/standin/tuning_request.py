"""What a tuning-job create body must be for Vertex to accept it, beyond its v1 (or v1beta1) message.

:func:`parse_tuning_request` checks the body the way Vertex does once it has
parsed into a ``TuningJob``: a supervised tuning spec with a training
dataset that is a ``.jsonl`` object (``gs://``, or a local path the stand-in
maps), a base model the catalogue knows and Vertex tunes (404 for an unknown
or retired one), hyper-parameters in range and an adapter size the model
allows. For an open model Vertex tunes itself (the catalogue's
``managed_open_model``): ``outputUri`` is required and a ``gs://`` folder,
``tuningMode`` must be one the model allows, ``learningRate`` and ``batchSize``
positive, and the Gemini-only ``adapterSize`` and ``learningRateMultiplier``
are refused; those open-model fields are refused for Gemini (google-genai
documents them "only available for open source models"). Errors are
StandInError(400/404) naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gemini_sft.model_catalog import ADAPTER_SIZE_ENUM, TUNING_MODE_ENUM_PREFIX, CatalogModel, catalog
from gemini_sft.standin.model_checks import tunable_base_model
from gemini_sft.standin.routing import StandInError
from gemini_sft.storage import GCS_PREFIX

# Used when the request sets no epoch count (Vertex chooses one itself).
DEFAULT_EPOCH_COUNT = 3


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def proto_field(message: dict[str, Any], camel_name: str) -> Any:
    """A field of a JSON-encoded proto message under its lowerCamel or its snake_case name.

    Vertex parses both spellings, and google-genai sends some nested messages
    (``preTunedModel``, ``encryptionSpec``) with snake_case keys.
    """
    if camel_name in message:
        return message[camel_name]
    snake_name = re.sub(r"(?<!^)(?=[A-Z])", "_", camel_name).lower()
    return message.get(snake_name)


def camel_case_keys(value: Any) -> Any:
    """A JSON value with every object key in lowerCamelCase, as Vertex writes resources (label keys kept)."""
    if isinstance(value, list):
        return [camel_case_keys(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {
        _camel(key): (dict(item) if key == "labels" and isinstance(item, dict) else camel_case_keys(item))
        for key, item in value.items()
    }


@dataclass(frozen=True)
class TuningRequest:
    """The parts of a create body the stand-in acts on (the full body is kept as sent)."""

    base_model: str | None
    pre_tuned_model: str | None
    training_uri: str
    validation_uri: str | None
    epochs: int
    export_last_checkpoint_only: bool
    display_name: str = ""
    pre_tuned_checkpoint_id: str | None = None
    open_model: bool = False
    tuning_mode: str | None = None
    output_uri: str | None = None


def _check_dataset_uri(uri: str, field_name: str) -> None:
    """Vertex reads tuning data from a JSONL object in Cloud Storage; the stand-in also maps local paths."""
    if not (uri.startswith(GCS_PREFIX) or uri.startswith("file://") or uri.startswith("/")):
        raise StandInError(
            400, f"{field_name} should be a GCS object of type JSONL (gs://bucket/object.jsonl), got {uri!r}."
        )
    if not uri.endswith(".jsonl"):
        raise StandInError(400, f"{field_name} should be a GCS object of type JSONL, got {uri!r}.")


def _check_adapter_size(adapter: Any, entry: CatalogModel | None) -> None:
    if adapter is None:
        return
    sizes = {name: size for size, name in ADAPTER_SIZE_ENUM.items()}
    if adapter not in sizes:
        allowed = ", ".join(ADAPTER_SIZE_ENUM.values())
        raise StandInError(400, f"hyperParameters.adapterSize {adapter!r} is not one of {allowed}.")
    if entry is not None and sizes[adapter] not in entry.adapter_sizes:
        allowed = ", ".join(ADAPTER_SIZE_ENUM[size] for size in entry.adapter_sizes)
        raise StandInError(
            400, f"Adapter size {adapter} is not supported for {entry.name}; supported adapter sizes: {allowed}."
        )


def parse_tuning_request(
    body: dict[str, Any], parent: str = "projects/-/locations/-", base_of_tuned: str | None = None
) -> TuningRequest:
    """Check a create body as Vertex would; StandInError(400) naming the offending field.

    Args:
        body: the TuningJob of the create request (already checked against the v1 message).
        parent: ``projects/P/locations/L`` of the request, for error messages.
        base_of_tuned: for continuous tuning, the base model of the tuned model it starts from (None: unknown).

    The base model must be a tunable model of the catalogue (404 for an
    unknown or retired one), the adapter size one the model allows, and the
    dataset URIs JSONL objects.
    """
    spec = body.get("supervisedTuningSpec")
    if not isinstance(spec, dict):
        raise StandInError(400, "supervisedTuningSpec is required: the offline stand-in only runs supervised tuning.")
    training_uri = spec.get("trainingDatasetUri")
    if not isinstance(training_uri, str) or not training_uri:
        raise StandInError(400, "supervisedTuningSpec.trainingDatasetUri is required.")
    _check_dataset_uri(training_uri, "training_dataset_uri")
    validation_uri = spec.get("validationDatasetUri")
    if validation_uri is not None and (not isinstance(validation_uri, str) or not validation_uri):
        raise StandInError(400, "supervisedTuningSpec.validationDatasetUri must be a non-empty string.")
    if validation_uri:
        _check_dataset_uri(validation_uri, "validation_dataset_uri")
    base_model = body.get("baseModel")
    pre_tuned = body.get("preTunedModel")
    pre_tuned_name = proto_field(pre_tuned, "tunedModelName") if isinstance(pre_tuned, dict) else None
    checkpoint_id = proto_field(pre_tuned, "checkpointId") if isinstance(pre_tuned, dict) else None
    if not base_model and not pre_tuned_name:
        raise StandInError(400, "baseModel (or preTunedModel.tunedModelName for continuous tuning) is required.")
    entry = tunable_base_model(parent, base_model) if isinstance(base_model, str) and base_model else None
    if entry is None and base_of_tuned:
        entry = catalog().find(base_of_tuned)
    hyper = spec.get("hyperParameters") or {}
    if not isinstance(hyper, dict):
        raise StandInError(400, "supervisedTuningSpec.hyperParameters must be an object.")
    epochs_value = hyper.get("epochCount", DEFAULT_EPOCH_COUNT)
    try:
        epochs = int(epochs_value)
    except (TypeError, ValueError):
        raise StandInError(400, f"hyperParameters.epochCount must be an integer, got {epochs_value!r}.") from None
    if epochs < 1:
        raise StandInError(400, f"hyperParameters.epochCount must be at least 1, got {epochs}.")
    multiplier = hyper.get("learningRateMultiplier")
    if multiplier is not None and (not isinstance(multiplier, (int, float)) or multiplier <= 0):
        raise StandInError(400, f"hyperParameters.learningRateMultiplier must be > 0, got {multiplier!r}.")
    open_model = entry is not None and entry.open_model is not None
    if open_model:
        tuning_mode = _check_open_model_fields(body, spec, hyper, entry, parent)
    else:
        _check_adapter_size(hyper.get("adapterSize"), entry)
        _refuse_open_model_fields(body, spec, hyper, entry.name if entry else "the base model")
        tuning_mode = None
    display_name = body.get("tunedModelDisplayName")
    return TuningRequest(
        base_model=base_model if isinstance(base_model, str) else None,
        pre_tuned_model=pre_tuned_name if isinstance(pre_tuned_name, str) else None,
        training_uri=training_uri,
        validation_uri=validation_uri,
        epochs=epochs,
        export_last_checkpoint_only=bool(spec.get("exportLastCheckpointOnly", False)),
        display_name=display_name if isinstance(display_name, str) else "",
        pre_tuned_checkpoint_id=checkpoint_id if isinstance(checkpoint_id, str) and checkpoint_id else None,
        open_model=open_model,
        tuning_mode=tuning_mode,
        output_uri=body.get("outputUri") if open_model else None,
    )


def _check_open_model_fields(body: dict[str, Any], spec: dict[str, Any], hyper: dict[str, Any],
                             entry: CatalogModel, parent: str) -> str:
    """Vertex's rules for an open model's job; returns the tuning mode it runs in (the model's first by default)."""
    rules = entry.open_model
    assert rules is not None
    location = parent.rsplit("/", 1)[-1]
    if location != "-" and location not in rules.regions:
        raise StandInError(400, f"Tuning {entry.name} is not supported in {location}; supported regions: "
                           f"{', '.join(rules.regions)}.")
    output_uri = body.get("outputUri")
    if rules.output_uri_required and not output_uri:
        raise StandInError(
            400, f"outputUri is required to tune {entry.name}: the Cloud Storage folder the tuned model is written "
            "to (a field of the v1beta1 TuningJob)."
        )
    if output_uri is not None and not (isinstance(output_uri, str) and output_uri.startswith(GCS_PREFIX)
                                       and len(output_uri) > len(GCS_PREFIX)):
        raise StandInError(400, f"outputUri must be a Cloud Storage folder gs://bucket/path, got {output_uri!r}.")
    for name in ("adapterSize", "learningRateMultiplier"):
        if hyper.get(name) is not None:
            raise StandInError(400, f"hyperParameters.{name} is not supported for {entry.name}: it is available for "
                               "Gemini models only (open models take tuningMode and learningRate).")
    mode = spec.get("tuningMode")
    allowed = [TUNING_MODE_ENUM_PREFIX + name for name in rules.tuning_modes]
    if mode in (None, TUNING_MODE_ENUM_PREFIX + "UNSPECIFIED", 0):
        mode = allowed[0]
    if mode not in allowed:
        raise StandInError(400, f"supervisedTuningSpec.tuningMode {mode} is not supported for {entry.name}; "
                           f"supported tuning modes: {', '.join(allowed)}.")
    rate = hyper.get("learningRate")
    if rate is not None and not (isinstance(rate, (int, float)) and rate > 0):
        raise StandInError(400, f"hyperParameters.learningRate must be > 0, got {rate!r}.")
    batch = hyper.get("batchSize")
    if batch is not None and not (_as_int(batch) is not None and _as_int(batch) >= 1):
        raise StandInError(400, f"hyperParameters.batchSize must be a positive integer, got {batch!r}.")
    return str(mode)


def _refuse_open_model_fields(body: dict[str, Any], spec: dict[str, Any], hyper: dict[str, Any], model: str) -> None:
    """The open-model fields a Gemini job must not carry (google-genai: "only available for open source models")."""
    given = [name for name, value in (("outputUri", body.get("outputUri")), ("tuningMode", spec.get("tuningMode")),
                                      ("hyperParameters.learningRate", hyper.get("learningRate")),
                                      ("hyperParameters.batchSize", hyper.get("batchSize"))) if value is not None]
    if given:
        raise StandInError(400, f"{', '.join(given)} is only available for open source models, not for {model}.")


def _as_int(value: Any) -> int | None:
    """An int64 field's value (JSON number or string), None when it is not a whole number."""
    if isinstance(value, bool):
        return None
    try:
        return int(value) if str(value).lstrip("-").isdigit() else None
    except (TypeError, ValueError):
        return None
