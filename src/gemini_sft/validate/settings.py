"""The settings of the validate stage (one described record) and of checking one file.

:class:`ValidationSettings` is the stage's contract: its fields are the
parameters of the ``validate_data`` component, the pipeline passes each of
them, and ``gemini-sft validate`` offers them as options. :class:`ValidationConfig`
says how one file is checked (its split, the stored-issue caps, workers); it is
built from the stage settings by :meth:`ValidationSettings.file_config`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings
from gemini_sft.contracts import setting, settings_of
from gemini_sft.cost import PADDING_TOKENS_PER_EXAMPLE
from gemini_sft.errors import ConfigError
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.model_catalog import DEFAULT_BASE_MODEL
from gemini_sft.open_weights.pipeline_step import TUNING_BACKENDS, VERTEX_GEMINI_BACKEND
from gemini_sft.tune import TuningSettings
from gemini_sft.validate.token_limit import example_token_limit

if TYPE_CHECKING:
    from gemini_sft.validate.counting import TokenCounter

log = logging.getLogger(__name__)

Split = Literal["training", "validation"]

DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024
# countTokens takes one request per example; beyond this many, counting would take too long
# (Vertex's default countTokens quota is a few thousand requests per minute).
DEFAULT_MAX_API_EXAMPLES = 20_000


def _shared(record: type, name: str) -> Any:
    """Another stage's setting taken here under its pipeline parameter name: same default, description, choices.

    The pipeline passes shared parameters by name, so the estimate uses exactly the values the later stages get.
    """
    item = next(field for field in settings_of(record) if field.name == name)
    return setting(item.default, item.description, choices=item.choices)


@dataclass(frozen=True)
class ValidationSettings:
    """The validate stage's settings: model, cost inputs, budget, how tokens are counted, and the serving calls.

    The shared fields are other stages' settings under their pipeline names (checkpoints kept, the checkpoint
    selection's rule, sample and cost ratio, the answer cap, the Gemini comparison): the estimate prices the calls
    those stages will make; ``tuning_mode`` picks an open model's per-example token limit.

    Validated on construction (raises ConfigError for epochs below 1 or a model
    that cannot be tuned).
    """

    base_model: str = setting(DEFAULT_BASE_MODEL, "Gemini model to tune; its limits and training price apply.")
    epochs: int = setting(3, "Epochs of the tuning job, used for the cost estimate.")
    max_budget_usd: float = setting(
        100.0, "Stop before tuning when the estimated cost is above this many USD; 0 or less disables the guard.",
        cli=False,
    )
    price_per_million_tokens_usd: float = setting(
        0.0, "Price per million training tokens in USD; 0 uses the catalogue price of the model."
    )
    project: str = setting("", "Google Cloud project of the countTokens requests; empty counts tokens offline.")
    location: str = setting("us-central1", "Vertex AI region of the countTokens requests.")
    api_endpoint: str = setting("", "Vertex-compatible API endpoint (e.g. the offline stand-in); empty means Vertex.")
    count_tokens_with_api: bool = setting(
        True, "Count tokens with the countTokens API when a project is set; otherwise estimate them offline."
    )
    # What the serving calls after tuning depend on: the checkpoints, the validation sample, the answer length.
    export_last_checkpoint_only: bool = _shared(TuningSettings, "export_last_checkpoint_only")
    checkpoint_selection_rule: str = _shared(CheckpointSelectionSettings, "selection_rule")
    checkpoint_validation_examples: int = _shared(CheckpointSelectionSettings, "validation_sample_size")
    checkpoint_selection_cost_ratio: float = _shared(CheckpointSelectionSettings, "selection_cost_ratio")
    max_output_tokens: int = _shared(EvaluationSettings, "max_output_tokens")
    # With open weights the budget holds the training's GPU hours x machine price (gemini_sft.open_weights.costs).
    tuning_backend: str = setting(
        VERTEX_GEMINI_BACKEND, "Who tunes: vertex-gemini (priced per token) or open-weights (priced as GPU hours x "
        "the training machine's price from the machine catalogue).", choices=TUNING_BACKENDS,
    )
    machine_type: str = setting("g2-standard-8", "Training machine of an open-weights run, for its cost estimate.",
                                pipeline_name="open_weights_machine_type")
    accelerator_type: str = setting("NVIDIA_L4", "GPU of that machine, for its cost estimate.",
                                    pipeline_name="open_weights_accelerator_type")
    accelerator_count: int = setting(1, "GPUs of that machine, for its cost estimate.",
                                     pipeline_name="open_weights_accelerator_count")
    # An open model Vertex tunes has a token limit per tuning mode; an open-weights run may ask Gemini the holdout.
    tuning_mode: str = _shared(TuningSettings, "tuning_mode")
    compare_with_gemini: str = _shared(EvaluationSettings, "compare_with_gemini")

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}.")
        example_token_limit(self.base_model, self.tuning_mode)  # ConfigError: a model that cannot be tuned, a bad mode
        self.selection_settings()  # raises ConfigError naming a bad checkpoint-selection setting

    def selection_settings(self) -> CheckpointSelectionSettings:
        """The checkpoint-selection record these values give (its sample-size rule prices the selection)."""
        return CheckpointSelectionSettings(
            selection_rule=self.checkpoint_selection_rule,
            validation_sample_size=self.checkpoint_validation_examples,
            selection_cost_ratio=self.checkpoint_selection_cost_ratio,
            max_output_tokens=self.max_output_tokens,
        )

    @property
    def budget_usd(self) -> float | None:
        """The budget the estimate is held to; None when ``max_budget_usd`` <= 0 disables the guard."""
        return self.max_budget_usd if self.max_budget_usd > 0 else None

    def file_config(
        self, split: Split, workers: int | None = None, max_api_examples: int | None = DEFAULT_MAX_API_EXAMPLES
    ) -> ValidationConfig:
        """How to check one file of ``split`` under these settings.

        Args:
            split: "training" or "validation".
            workers: worker processes (None: automatic).
            max_api_examples: ask the token counter about at most this many examples (None: no cap).
        """
        return ValidationConfig(
            model=self.base_model,
            epochs=self.epochs,
            price_per_million_tokens_usd=self.price_per_million_tokens_usd or None,
            split=split,
            workers=workers,
            max_api_examples=max_api_examples,
            tuning_mode=self.tuning_mode,
        )

    def token_counter(self) -> TokenCounter | None:
        """The countTokens client when ``count_tokens_with_api`` and a project are set; else None (offline estimate)."""
        if not (self.count_tokens_with_api and self.project):
            log.info("counting tokens with the offline estimate (no project, or count_tokens_with_api is off)")
            return None
        from gemini_sft import vertex_client

        vertex = vertex_client.VertexSettings.create(self.project, self.location, self.api_endpoint or None)
        return vertex_client.ApiTokenCounter(vertex, self.base_model)


@dataclass(frozen=True)
class ValidationConfig:
    """How to validate one file.

    ``split`` selects the rules of a training or a validation file (the latter is
    capped at the model's validation-set limit). ``price_per_million_tokens_usd``
    None or 0 uses the catalogue price. ``workers`` None chooses automatically
    (several processes only for large files); 1 checks in-process.
    ``chunk_bytes``: how much is read (and checked by one worker) at a time.
    ``max_api_examples``: a token counter is asked about at most this many
    examples (one request each); a larger file uses the offline estimate and
    says so (None: no cap). ``tuning_mode``: the mode an open model Vertex tunes is tuned in, whose
    per-example token limit applies ("": Vertex chooses, the stricter limit is assumed).
    """

    model: str = DEFAULT_BASE_MODEL
    epochs: int = 3
    price_per_million_tokens_usd: float | None = None
    split: Split = "training"
    max_stored_errors: int = 1000
    max_stored_warnings: int = 1000
    min_recommended_examples: int = 100
    padding_tokens_per_example: int = PADDING_TOKENS_PER_EXAMPLE
    workers: int | None = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    max_api_examples: int | None = DEFAULT_MAX_API_EXAMPLES
    tuning_mode: str = ""

    def __post_init__(self) -> None:
        if self.split not in ("training", "validation"):
            raise ConfigError(f"split must be 'training' or 'validation', got {self.split!r}.")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}.")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}.")
        if self.chunk_bytes < 1024:
            raise ConfigError(f"chunk_bytes must be at least 1024, got {self.chunk_bytes}.")
        example_token_limit(self.model, self.tuning_mode)  # ConfigError: a model that cannot be tuned, a bad mode
