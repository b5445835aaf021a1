"""KFP shell of the validate stage: check the splits against Vertex's rules and guard the budget.

The work is done by :func:`gemini_sft.validate.validate_splits`; this shell maps
artifacts to paths and writes the outcome's report, result and metrics before
failing the run (before any tuning cost) on invalid data or an estimate over the budget.
"""

from typing import NamedTuple

from gemini_sft.components.base import build_component
from gemini_sft.contracts import describe_component
from gemini_sft.validate import ValidationSettings
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output


@describe_component(
    """Validate the training and validation splits against Vertex's rules; estimate the run's cost; stop over budget.

    The estimate has a line each for the tuning job, the checkpoint selection (every checkpoint answers the
    validation sample) and the holdout evaluation, at the catalogue's prices; the budget holds their total. With
    tuning_backend=open-weights the tuning line is the training machine's GPU hours x its list price, and with
    compare_with_gemini a Gemini comparison line prices the Gemini model's holdout answers. An open model Vertex
    tunes is checked against the per-example token limit of its tuning_mode.
    An empty or absent validation split is allowed (tuning then runs without one). Fails with
    DatasetInvalidError for invalid data and BudgetExceededError above the budget, after writing the report.""",
    records=[ValidationSettings],
    inputs={
        "train": "Training split, Gemini JSONL.",
        "validation": "Validation split, Gemini JSONL (may be empty).",
        "holdout": "Holdout split, Gemini JSONL: its evaluation calls are estimated (optional).",
    },
    outputs={
        "report": "Both files' reports (errors and warnings by code with line numbers), the estimate line by line "
        "and the budget decision.",
        "validation_result": "JSON: validity, budget, the cost estimate by line and both files' reports in the "
        "--json shape.",
        "metrics": "Example, error, warning and token counts, billable tokens and the estimated cost by line.",
        "estimated_cost_usd": "Estimated cost of the tuning job in USD.",
        "billable_tokens": "Training tokens billed over all epochs.",
        "examples": "Examples in the training split.",
    },
)
def validate_data(
    train: Input[Dataset],
    validation: Input[Dataset],
    report: Output[Markdown],
    validation_result: Output[Artifact],
    metrics: Output[Metrics],
    base_model: str = "gemini-2.5-flash",
    epochs: int = 3,
    max_budget_usd: float = 100.0,
    price_per_million_tokens_usd: float = 0.0,
    project: str = "",
    location: str = "us-central1",
    api_endpoint: str = "",
    count_tokens_with_api: bool = True,
    export_last_checkpoint_only: bool = False,
    checkpoint_selection_rule: str = "best_validation_metric",
    checkpoint_validation_examples: int = 50,
    checkpoint_selection_cost_ratio: float = 1.5,
    max_output_tokens: int = 1024,
    tuning_backend: str = "vertex-gemini",
    machine_type: str = "g2-standard-8",
    accelerator_type: str = "NVIDIA_L4",
    accelerator_count: int = 1,
    tuning_mode: str = "",
    compare_with_gemini: str = "none",
    holdout: Input[Dataset] = None,
) -> NamedTuple("ValidateOutputs", [("estimated_cost_usd", float), ("billable_tokens", int), ("examples", int)]):
    import json
    import logging
    from collections import namedtuple
    from pathlib import Path

    from gemini_sft.contracts import record_from_values
    from gemini_sft.validate import ValidationSettings, split_if_present, validate_splits

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    settings = record_from_values(ValidationSettings, locals())
    outcome = validate_splits(
        Path(train.path), split_if_present(Path(validation.path)), settings, budget_usd=settings.budget_usd,
        holdout=Path(holdout.path) if holdout is not None else None,
    )
    result_json = json.dumps(outcome.to_result_json(), indent=2) + "\n"
    for artifact, text in ((report, outcome.to_markdown()), (validation_result, result_json)):
        Path(artifact.path).parent.mkdir(parents=True, exist_ok=True)
        Path(artifact.path).write_text(text, encoding="utf-8")
    validation_result.metadata.update(outcome.result_metadata())
    for name, value in outcome.metrics().items():
        metrics.log_metric(name, value)
    outcome.raise_if_failed()
    outputs = namedtuple("ValidateOutputs", ["estimated_cost_usd", "billable_tokens", "examples"])
    return outputs(float(outcome.estimated_cost_usd), int(outcome.billable_tokens), int(outcome.train.examples))


validate_data_op = build_component(validate_data)
