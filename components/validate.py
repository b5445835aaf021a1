"""KFP shell of the validate stage: check the splits against Vertex's rules and guard the budget.

The logic lives in :mod:`gemini_sft.validate` and :mod:`gemini_sft.cost`; this
module reads the artifacts, calls the cores and writes the outputs. It fails
the run (before any tuning cost) when the data is invalid or the estimate is
above the budget, after writing its report so the reason can be read.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from gemini_sft.components.base import build_component


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
) -> NamedTuple("ValidateOutputs", [("estimated_cost_usd", float), ("billable_tokens", int), ("examples", int)]):
    """Validate the training and validation splits; estimate the tuning cost; stop over budget.

    Tokens are counted with the countTokens API when ``count_tokens_with_api``
    and a ``project`` are set (falling back to the offline estimate when the API
    fails); otherwise estimated offline. An empty or absent validation split is
    allowed (tuning then runs without one). ``price_per_million_tokens_usd`` 0
    uses the catalogue price; ``max_budget_usd`` <= 0 disables the budget guard.

    Outputs: ``report`` (Markdown), ``validation_result`` (JSON: validity, both
    files' reports in the ``gemini-sft validate --json`` shape, cost and budget),
    ``metrics`` (counts, tokens, cost) and the estimated cost, billable training
    tokens (all epochs) and training example count.
    Raises DatasetInvalidError for invalid data, BudgetExceededError above the budget.
    """
    import json
    import logging
    from collections import namedtuple
    from dataclasses import replace
    from pathlib import Path

    from gemini_sft import cost, validate, vertex_client

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("gemini_sft.components.validate")

    config = validate.ValidationConfig(
        model=base_model,
        epochs=epochs,
        price_per_million_tokens_usd=price_per_million_tokens_usd or None,
    )
    token_counter = None
    if count_tokens_with_api and project:
        settings = vertex_client.VertexSettings.create(project, location, api_endpoint or None)
        token_counter = vertex_client.ApiTokenCounter(settings, base_model)
    else:
        log.info("counting tokens with the offline estimate (no project, or count_tokens_with_api is off)")

    train_report = validate.validate_dataset(Path(train.path), config, token_counter)

    validation_path = Path(validation.path)
    validation_report = None
    if validation_path.is_file() and validation_path.stat().st_size > 0:
        validation_report = validate.validate_dataset(
            validation_path, replace(config, split="validation"), token_counter
        )
    else:
        log.info("no validation split: tuning will run without a validation dataset")

    estimated_cost = train_report.estimated_cost_usd
    budget_usd = max_budget_usd if max_budget_usd > 0 else None
    within_budget = budget_usd is None or estimated_cost <= budget_usd
    valid = train_report.valid and (validation_report is None or validation_report.valid)

    markdown = [train_report.to_markdown()]
    if validation_report is not None:
        markdown.append(validation_report.to_markdown())
    markdown.append("# Budget\n")
    markdown.append(
        f"Estimated tuning cost **${estimated_cost:,.2f}** "
        + (f"against a budget of ${budget_usd:,.2f}: " if budget_usd is not None else "(no budget set): ")
        + ("within budget." if within_budget else "**over budget, tuning stopped.**")
        + "\n"
    )
    Path(report.path).parent.mkdir(parents=True, exist_ok=True)
    Path(report.path).write_text("\n".join(markdown), encoding="utf-8")

    result = {
        "valid": valid,
        "within_budget": within_budget,
        "estimated_cost_usd": estimated_cost,
        "max_budget_usd": budget_usd,
        "billable_tokens": train_report.billable_tokens,
        "token_source": train_report.token_source,
        "base_model": base_model,
        "epochs": epochs,
        "price_per_million_tokens_usd": train_report.cost.price_per_million_tokens_usd,
        "train": train_report.to_json_dict(),
        "validation": validation_report.to_json_dict() if validation_report is not None else None,
    }
    Path(validation_result.path).parent.mkdir(parents=True, exist_ok=True)
    Path(validation_result.path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    validation_result.metadata.update(
        {
            "valid": valid,
            "within_budget": within_budget,
            "estimated_cost_usd": estimated_cost,
            "billable_tokens": train_report.billable_tokens,
            "token_source": train_report.token_source,
        }
    )

    stats = train_report.token_stats
    metrics.log_metric("train_examples", train_report.examples)
    metrics.log_metric("validation_examples", validation_report.examples if validation_report else 0)
    metrics.log_metric("errors", train_report.error_count + (validation_report.error_count if validation_report else 0))
    metrics.log_metric(
        "warnings", train_report.warning_count + (validation_report.warning_count if validation_report else 0)
    )
    metrics.log_metric("tokens_total", stats.total)
    metrics.log_metric("tokens_mean", round(stats.mean, 2))
    metrics.log_metric("tokens_p95", stats.p95)
    metrics.log_metric("tokens_max", stats.max)
    metrics.log_metric("billable_tokens", train_report.billable_tokens)
    metrics.log_metric("estimated_cost_usd", round(estimated_cost, 4))

    validate.raise_if_invalid(train_report)
    if validation_report is not None:
        validate.raise_if_invalid(validation_report)
    cost.check_budget(estimated_cost, budget_usd)
    log.info(
        "dataset valid: %d training examples, %d billable tokens, estimated $%.2f",
        train_report.examples,
        train_report.billable_tokens,
        estimated_cost,
    )
    outputs = namedtuple("ValidateOutputs", ["estimated_cost_usd", "billable_tokens", "examples"])
    return outputs(float(estimated_cost), int(train_report.billable_tokens), int(train_report.examples))


validate_data_op = build_component(validate_data)
