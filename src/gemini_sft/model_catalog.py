"""What Vertex allows and charges per tunable Gemini model, in one table.

Prices are list prices per million training tokens seen in 2025 and are not
guaranteed; they can be overridden (``price_per_million_tokens_usd`` settings)
wherever a cost is estimated. Limits come from Google's tuning documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemini_sft.errors import ConfigError


@dataclass(frozen=True)
class ModelLimits:
    """Tuning limits and list price of one base model."""

    name: str
    max_tokens_per_example: int
    max_training_examples_text: int
    max_training_examples_multimodal: int
    max_validation_examples: int
    max_training_file_bytes: int
    adapter_sizes: tuple[int, ...]
    price_per_million_training_tokens_usd: float


_GB = 1024**3

MODEL_LIMITS: dict[str, ModelLimits] = {
    m.name: m
    for m in (
        ModelLimits("gemini-2.5-flash", 131_072, 1_000_000, 300_000, 5_000, _GB, (1, 2, 4, 8, 16), 5.00),
        ModelLimits("gemini-2.5-flash-lite", 131_072, 1_000_000, 300_000, 5_000, _GB, (1, 2, 4, 8, 16), 1.50),
        ModelLimits("gemini-2.5-pro", 131_072, 1_000_000, 300_000, 5_000, _GB, (1, 2, 4, 8), 25.00),
    )
}

DEFAULT_BASE_MODEL = "gemini-2.5-flash"

# Regions where Vertex offers Gemini supervised tuning (Google's documentation, 2026).
TUNING_REGIONS: frozenset[str] = frozenset(
    {
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west4",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-north1",
        "europe-central2",
        "europe-southwest1",
        "asia-northeast1",
        "asia-northeast3",
        "asia-southeast1",
        "asia-south1",
        "australia-southeast1",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "southamerica-east1",
    }
)

ADAPTER_SIZE_ENUM: dict[int, str] = {
    1: "ADAPTER_SIZE_ONE",
    2: "ADAPTER_SIZE_TWO",
    4: "ADAPTER_SIZE_FOUR",
    8: "ADAPTER_SIZE_EIGHT",
    16: "ADAPTER_SIZE_SIXTEEN",
}


def base_model_id(model: str) -> str:
    """The bare model id of a base model reference.

    Accepts ``gemini-2.5-flash``, ``gemini-2.5-flash-001``,
    ``publishers/google/models/gemini-2.5-flash`` and full resource names.
    """
    return model.rstrip("/").rsplit("/", 1)[-1]


def limits_for(model: str) -> ModelLimits:
    """Limits of a base model; versioned ids (``-001``) map to their family.

    A tuned model (``projects/.../models/ID@alias``, continuous tuning) has the
    limits of the family it was tuned from, which is not knowable offline: the
    default base model's limits are used. Raises ConfigError for an unknown
    publisher model.
    """
    if model.startswith("projects/") and "/models/" in model and "publishers" not in model:
        return MODEL_LIMITS[DEFAULT_BASE_MODEL]
    model_id = base_model_id(model)
    for name in sorted(MODEL_LIMITS, key=len, reverse=True):
        if model_id == name or model_id.startswith(name + "-0"):
            return MODEL_LIMITS[name]
    known = ", ".join(sorted(MODEL_LIMITS))
    raise ConfigError(f"Model {model!r} cannot be tuned here; tunable base models are: {known}.")
