"""The evaluate stage's settings (one record), and the generators they call for.

:class:`EvaluationSettings` is the stage's contract: the component's parameters,
the CLI's options and the compiled spec's descriptions all come from its fields.
:func:`build_generators` is the one place that turns it into a generator per
model role; the component and the CLI both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gemini_sft.contracts import setting
from gemini_sft.errors import ConfigError
from gemini_sft.evaluation.metrics import BASE, CHAMPION, TUNED
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND

if TYPE_CHECKING:
    from gemini_sft.evaluation.generation import Generator
    from gemini_sft.vertex_client import VertexSettings

# Bootstrap interval level; the result document and the reports state it.
CONFIDENCE = 0.95
# Per-request timeout of the generation client.
GENERATION_TIMEOUT_MS = 120_000
# Which Gemini model an open-weights run is compared with: none, the base model, or the champion in production.
COMPARE_NONE, COMPARE_BASE, COMPARE_CHAMPION = "none", "base", "champion"
COMPARE_CHOICES = (COMPARE_NONE, COMPARE_BASE, COMPARE_CHAMPION)


@dataclass(frozen=True)
class EvaluationSettings:
    """Which models answer the holdout prompts, how fast they are asked, and how the answers are scored."""

    base_model: str = setting("gemini-2.5-flash", "The baseline: a Gemini model id (or endpoint) the tuned model must beat.")
    tuned_endpoint: str = setting("", "The tuned model to evaluate: its endpoint resource name (or a model id); required.")
    champion_endpoint: str = setting(
        "", "Endpoint of the model now in production, evaluated as 'champion'; empty when there is none."
    )
    champion_backend: str = setting(
        "", "Which backend made the model in production (its promotion record's tuning_backend: vertex-gemini or "
        "open-weights); empty when there is none.", cli=False,
    )
    max_output_tokens: int = setting(1024, "Cap on the length of each answer, in tokens (thinking tokens count too).")
    thinking: str = setting(
        "off-or-lowest",
        "Thinking of every model: off-or-lowest (off where the model allows, else its lowest budget or "
        "level), model-default, a level (MINIMAL, LOW, ...) or a budget number.",
        pipeline_name="eval_thinking",
    )
    max_concurrency: int = setting(8, "Generation calls in flight at once, all models together.",
                                   pipeline_name="eval_max_concurrency")
    requests_per_minute: int = setting(300, "Generation requests started per minute, all models and retries together.",
                                       pipeline_name="eval_requests_per_minute")
    label_pattern: str = setting(
        "", "Regex whose first group is the answer's label (e.g. 'Category: (\\w+)'); enables label metrics."
    )
    bootstrap_samples: int = setting(1000, "Paired bootstrap replicates for the confidence intervals (0 = none).")
    seed: int = setting(42, "Seed of the bootstrap and of the retry backoff jitter.")
    compare_with_gemini: str = setting(
        COMPARE_NONE,
        "With tuning_backend=open-weights, also ask a Gemini model the holdout questions and report it side by "
        "side (quality, latency, cost): none, base (base_model) or champion (the Gemini model in production). "
        "Information only: the gate compares the tuned model with its own base.",
        choices=COMPARE_CHOICES, cli=False,
    )
    # The open model's serving machine (the deploy step's), priced per 1,000 answers in the comparison.
    serving_machine_type: str = setting("g2-standard-12", "Machine type of each serving replica.", cli=False)
    serving_accelerator_type: str = setting("NVIDIA_L4", "GPU of each serving replica.", cli=False)
    serving_accelerator_count: int = setting(1, "GPUs of each serving replica.", cli=False)

    def __post_init__(self) -> None:
        if self.compare_with_gemini not in COMPARE_CHOICES:
            raise ConfigError(f"compare_with_gemini must be one of {', '.join(COMPARE_CHOICES)}, "
                              f"got {self.compare_with_gemini!r}")
        # the base model's rules (which a tuned endpoint follows) refuse a bad choice before anything runs
        from gemini_sft.model_catalog import catalog_entry, thinking_config_for

        if catalog_entry(self.base_model) is not None:  # an uncatalogued model has no rules to check here
            thinking_config_for(self.base_model, self.thinking, setting="eval_thinking")

    def models(self) -> dict[str, str]:
        """Model name or endpoint per role: base, tuned and (when given) champion."""
        models = {BASE: self.base_model, TUNED: self.tuned_endpoint}
        if self.champion_endpoint:
            models[CHAMPION] = self.champion_endpoint
        return models

    def thinking_configs(self) -> dict[str, dict[str, int | str] | None]:
        """The thinking config sent to each role's model (None: none sent), by the catalogue's rules.

        An endpoint or tuned model follows the rules of ``base_model``, the model it was tuned from.
        Raises ConfigError when a model's rules refuse ``thinking``.
        """
        from gemini_sft.model_catalog import thinking_config_for

        return {
            role: thinking_config_for(model, self.thinking, rules_of=self.base_model)
            for role, model in self.models().items()
        }


def build_generators(settings: EvaluationSettings, vertex: VertexSettings) -> dict[str, Generator]:
    """A google-genai generator per model role, sharing one client.

    Args:
        settings: the evaluation settings (models, answer length cap, thinking).
        vertex: where to call Vertex (project, region, API endpoint).

    Raises:
        ConfigError: when the tuned model or the base model is not named, or a model's thinking
            rules refuse ``settings.thinking``.
    """
    from gemini_sft.vertex_client import GenAIGenerator, genai_client

    if not settings.tuned_endpoint:
        raise ConfigError("tuned_endpoint is required: the endpoint (or model) of the tuned model to evaluate")
    if not settings.base_model:
        raise ConfigError("base_model is required: the model the tuned model is compared against")
    thinking = settings.thinking_configs()  # refuses a bad choice before any call is made
    client = genai_client(vertex, timeout_ms=GENERATION_TIMEOUT_MS)
    generators: dict[str, Generator] = {
        role: GenAIGenerator(
            vertex, model, max_output_tokens=settings.max_output_tokens, thinking=thinking[role], client=client
        )
        for role, model in settings.models().items()
    }
    if CHAMPION in generators and settings.champion_backend == OPEN_WEIGHTS_BACKEND:
        # An open-weights champion is a vLLM deployment: it answers through its container, not generateContent.
        from gemini_sft.serving.vllm import VllmCaseGenerator
        from gemini_sft.vertex_client import EndpointPredictor

        generators[CHAMPION] = VllmCaseGenerator(settings.champion_endpoint, EndpointPredictor(vertex),
                                                 settings.max_output_tokens)
    return generators
