"""Which tune settings belong to Gemini and which to the open models Vertex tunes itself.

Vertex tunes some open models (Gemma, Llama, Qwen; the catalogue's entries
with a ``managed_open_model`` group) through the same tuning API, in its
v1beta1 version. google-genai 2.34 documents ``tuning_mode``, ``learning_rate``,
``batch_size`` and ``output_uri`` as "OSS models only" and
``learning_rate_multiplier`` as "1P models only", mutually exclusive with
``learning_rate``; the v1 protos of google-cloud-aiplatform have none of the
open-model fields. Each function returns one line per setting given where it
does not belong, so the stage refuses the mix before any call.

A Gemini setting counts as given when it differs from its default
(``adapter_size`` 4 or 0, ``learning_rate_multiplier`` 1.0): with an open base
model those defaults are not sent.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gemini_sft import model_catalog

if TYPE_CHECKING:
    from gemini_sft.tune.settings import TuningSettings

# The Gemini settings' defaults, which are not sent for an open model (and so do not count as given).
UNSENT_ADAPTER_SIZES = (0, 4)
UNSENT_LEARNING_RATE_MULTIPLIER = 1.0


def gemini_only_problems(settings: "TuningSettings") -> list[str]:
    """The open-model settings given with a Gemini (or uncatalogued) base model, one line each."""
    problems: list[str] = []
    base = settings.base_model
    example = _an_open_model()
    if settings.tuning_mode:
        problems.append(
            f"tuning_mode {settings.tuning_mode!r} is for open models Vertex tunes (e.g. {example}); {base} is "
            "tuned with an adapter_size: leave tuning_mode empty"
        )
    if settings.learning_rate:
        problems.append(
            f"learning_rate (pipeline parameter tuning_learning_rate) {settings.learning_rate!r} is for open models; "
            f"{base} takes learning_rate_multiplier: leave learning_rate at 0"
        )
    if settings.batch_size:
        problems.append(
            f"batch_size (pipeline parameter tuning_batch_size) {settings.batch_size!r} is for open models; "
            f"Vertex chooses it for {base}: leave batch_size at 0"
        )
    # Vertex's v1 TuningJob has no outputUri for Gemini: google-genai documents it for open models only.
    if settings.output_uri and model_catalog.base_model_id(base).startswith("gemini"):
        problems.append(
            f"output_uri (pipeline parameter tuning_output_uri) {settings.output_uri!r} is not accepted for "
            f"{base}: Vertex takes an output URI only for open models; leave it empty for Gemini"
        )
    return problems


def open_model_problems(settings: "TuningSettings", entry: model_catalog.CatalogModel) -> list[str]:
    """What an open base model refuses in the settings: Gemini-only settings, modes and values, one line each.

    Args:
        settings: the tune settings.
        entry: the catalogue entry of the open base model (its ``open_model`` group is set).
    """
    rules = entry.open_model
    assert rules is not None
    name = entry.name
    problems: list[str] = []
    if settings.tuning_mode and settings.tuning_mode not in rules.tuning_modes:
        problems.append(
            f"tuning_mode {settings.tuning_mode!r} is not offered for {name}; use "
            + " or ".join(rules.tuning_modes) + " (or leave it empty to let Vertex choose)"
        )
    if settings.adapter_size not in UNSENT_ADAPTER_SIZES:
        problems.append(
            f"adapter_size {settings.adapter_size} is a Gemini setting; {name} is tuned in a tuning_mode "
            f"({' or '.join(rules.tuning_modes)}): leave adapter_size at its default"
        )
    if settings.learning_rate_multiplier != UNSENT_LEARNING_RATE_MULTIPLIER:
        problems.append(
            f"learning_rate_multiplier {settings.learning_rate_multiplier!r} is a Gemini setting; for {name} set "
            "learning_rate (pipeline parameter tuning_learning_rate) and leave the multiplier at 1.0"
        )
    if not (isinstance(settings.learning_rate, (int, float)) and math.isfinite(settings.learning_rate)
            and settings.learning_rate >= 0):
        problems.append(f"learning_rate must be > 0 (or 0 to let Vertex choose), got {settings.learning_rate!r}")
    if not isinstance(settings.batch_size, int) or isinstance(settings.batch_size, bool) or settings.batch_size < 0:
        problems.append(f"batch_size must be a whole number >= 1 (or 0 to let Vertex choose), got "
                        f"{settings.batch_size!r}")
    if rules.output_uri_required and not settings.output_uri:
        problems.append(
            f"output_uri (pipeline parameter tuning_output_uri) is required for {name}: Vertex writes the tuned "
            "model's files there; give a gs:// folder"
        )
    if settings.continuous_from_model or settings.continuous_tuning or settings.start_checkpoint_id:
        problems.append(
            f"continuous tuning (continuous_from_model, continuous_tuning, start_checkpoint_id) is for Gemini "
            f"models; {name} is tuned from its published weights: turn them off"
        )
    return problems


def hyper_parameter_rows(settings: "TuningSettings") -> list[str]:
    """The summary's Markdown table rows for the hyper-parameters sent: Gemini's, or an open model's."""
    if settings.open_model is None:
        return [
            f"| adapter size | {settings.adapter_size or 'Vertex default'} |",
            f"| learning-rate multiplier | {settings.learning_rate_multiplier:g} |",
        ]
    return [
        f"| tuning mode | {settings.tuning_mode or 'Vertex default'} |",
        f"| learning rate | {settings.learning_rate or 'Vertex default'} |",
        f"| batch size | {settings.batch_size or 'Vertex default'} |",
    ]


def _an_open_model() -> str:
    """One open model of the catalogue, for messages."""
    names = [name for name, entry in model_catalog.catalog().models.items() if entry.open_model is not None]
    return names[0] if names else "an open model"
