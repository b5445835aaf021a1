"""The validate stage's result over the training and validation splits, and the budget decision.

:func:`validate_splits` checks both files; the :class:`ValidationOutcome` it
returns is the one record both the KFP component and ``gemini-sft validate``
render: :meth:`~ValidationOutcome.to_json` (the documented CLI JSON),
:meth:`~ValidationOutcome.to_result_json` (the component's result artifact),
:meth:`~ValidationOutcome.to_markdown`, :meth:`~ValidationOutcome.metrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gemini_sft.cost import TUNING_ADVICE, check_budget, format_usd
from gemini_sft.errors import BudgetExceededError
from gemini_sft.open_weights.costs import TrainingCost, open_weights_training_cost
from gemini_sft.open_weights.pipeline_step import VERTEX_GEMINI_BACKEND
from gemini_sft.validate.report import ValidationReport, raise_if_invalid
from gemini_sft.validate.run import ProgressCallback, validate_dataset
from gemini_sft.validate.serving import (
    ComparisonEstimate,
    ServingEstimate,
    estimate_gemini_comparison,
    estimate_serving,
)
from gemini_sft.validate.settings import DEFAULT_MAX_API_EXAMPLES, ValidationSettings

log = logging.getLogger(__name__)

# The figures of the result JSON that the console shows on the result artifact.
RESULT_METADATA_KEYS = ("valid", "within_budget", "estimated_cost_usd", "estimated_total_usd", "billable_tokens",
                        "token_source")
SELECTION_ADVICE = (
    "Checkpoint selection costs {cost}: lower checkpoint_validation_examples or checkpoint_selection_cost_ratio, "
    "or set checkpoint_selection_rule=lowest_eval_loss (no calls)."
)
COMPARISON_ADVICE = "The Gemini comparison costs {cost}: set compare_with_gemini=none to leave it out."

ProgressFactory = Callable[[Path], tuple[ProgressCallback | None, Callable[[], None]]]
"""Given a file, returns a progress callback (or None) and a function closing it."""


@dataclass(frozen=True)
class ValidationOutcome:
    """The reports of the training and (optional) validation split, the serving estimate, and the budget.

    ``budget_usd`` None means no budget. ``serving`` (checkpoint selection and holdout evaluation calls)
    counts towards the budget; None when it was not estimated. ``training_cost``: an open-weights run's
    GPU-hour estimate, which then is the tuning line instead of the Gemini token price. ``comparison``: an
    open-weights run's Gemini comparison (``compare_with_gemini``), which counts towards the budget too.
    """

    train: ValidationReport
    validation: ValidationReport | None
    budget_usd: float | None
    serving: ServingEstimate | None = None
    training_cost: TrainingCost | None = None
    comparison: ComparisonEstimate | None = None

    @property
    def reports(self) -> list[ValidationReport]:
        return [self.train] + ([self.validation] if self.validation is not None else [])

    @property
    def valid(self) -> bool:
        """Both splits break no rule."""
        return all(report.valid for report in self.reports)

    @property
    def estimated_cost_usd(self) -> float:
        """The tuning estimate (the validation split is not billed as training)."""
        if self.training_cost is not None:
            return self.training_cost.budget_usd
        return self.train.estimated_cost_usd

    @property
    def billable_tokens(self) -> int:
        return self.train.billable_tokens

    @property
    def estimated_total_usd(self) -> float:
        """The tuning estimate plus the checkpoint-selection, holdout-evaluation and Gemini-comparison calls: what
        the budget holds."""
        return (self.estimated_cost_usd + (self.serving.total_usd if self.serving is not None else 0.0)
                + (self.comparison.cost_usd if self.comparison is not None else 0.0))

    @property
    def within_budget(self) -> bool:
        return self.budget_usd is None or self.estimated_total_usd <= self.budget_usd

    def over_budget_message(self) -> str:
        """Why the estimate is over the budget, or "" when it is within."""
        try:
            self._check_budget()
        except BudgetExceededError as exc:
            return str(exc)
        return ""

    def _check_budget(self) -> None:
        """The budget guard over the whole estimate; its message names each line and the settings to change."""
        comparison = self.comparison.cost_usd if self.comparison is not None else 0.0
        if self.serving is None:
            if not comparison:
                check_budget(self.estimated_cost_usd, self.budget_usd)
                return
            breakdown = (f"open-weights training {format_usd(self.estimated_cost_usd)} + Gemini comparison "
                         f"{format_usd(comparison)}")
            advice = f"{TUNING_ADVICE} {COMPARISON_ADVICE.format(cost=format_usd(comparison))}"
            check_budget(self.estimated_total_usd, self.budget_usd, breakdown, advice)
            return
        selection = self.serving.selection.cost_usd or 0.0
        evaluation = self.serving.evaluation.cost_usd if self.serving.evaluation is not None else None
        breakdown = (f"tuning job {format_usd(self.estimated_cost_usd)} + checkpoint selection {format_usd(selection)}"
                     + (f" + holdout evaluation {format_usd(evaluation)}" if evaluation is not None else ""))
        advice = TUNING_ADVICE
        if selection > 0:
            selection_advice = SELECTION_ADVICE.format(cost=format_usd(selection))
            advice = (f"{selection_advice} Or raise max_budget_usd if the cost is intended."
                      if self.budget_usd is not None and self.estimated_total_usd - selection <= self.budget_usd
                      else f"{TUNING_ADVICE} {selection_advice}")
        check_budget(self.estimated_total_usd, self.budget_usd, breakdown, advice)

    def raise_if_failed(self) -> None:
        """Raise DatasetInvalidError for an invalid split, then BudgetExceededError above the budget."""
        for report in self.reports:
            raise_if_invalid(report)
        self._check_budget()

    def costs(self) -> dict[str, Any]:
        """The estimate line by line: ``{"tuning_usd", "checkpoint_selection", "holdout_evaluation",
        "selection_to_evaluation_calls", "gemini_comparison", "total_usd"}`` (a line None when not estimated)."""
        serving = self.serving.to_dict() if self.serving is not None else {
            "checkpoint_selection": None, "holdout_evaluation": None, "selection_to_evaluation_calls": None}
        comparison = self.comparison.to_dict() if self.comparison is not None else None
        return {"tuning_usd": round(self.estimated_cost_usd, 6), **serving, "gemini_comparison": comparison,
                "total_usd": round(self.estimated_total_usd, 6)}

    def to_json(self) -> dict[str, Any]:
        """The ``gemini-sft validate --json`` document: the training report's keys, plus ``validation`` when given.

        Keys: valid (both splits), examples, errors, warnings, token_stats,
        estimated_cost_usd (of the training split), validation, costs (the estimate line by line: tuning,
        checkpoint selection, holdout evaluation, total), within_budget.
        """
        document = self.train.to_json_dict()
        document["valid"] = self.valid
        if self.validation is not None:
            document["validation"] = self.validation.to_json_dict()
        document["costs"] = self.costs()
        document["within_budget"] = self.within_budget
        if self.training_cost is not None:
            document["estimated_cost_usd"] = self.estimated_cost_usd
            document["open_weights_training"] = self.training_cost.to_dict()
        return document

    def to_result_json(self) -> dict[str, Any]:
        """The component's result artifact: validity, budget, cost inputs and both reports' JSON."""
        return {
            "valid": self.valid,
            "within_budget": self.within_budget,
            "estimated_cost_usd": self.estimated_cost_usd,
            "estimated_total_usd": self.estimated_total_usd,
            "costs": self.costs(),
            "max_budget_usd": self.budget_usd,
            "billable_tokens": self.billable_tokens,
            "token_source": self.train.token_source,
            "base_model": self.train.model,
            "epochs": self.train.cost.epochs,
            "price_per_million_tokens_usd": self.train.cost.price_per_million_tokens_usd,
            "train": self.train.to_json_dict(),
            "validation": self.validation.to_json_dict() if self.validation is not None else None,
            "open_weights_training": self.training_cost.to_dict() if self.training_cost is not None else None,
        }

    def result_metadata(self) -> dict[str, Any]:
        """The figures of :meth:`to_result_json` shown on the result artifact in the console."""
        result = self.to_result_json()
        return {key: result[key] for key in RESULT_METADATA_KEYS}

    def metrics(self) -> dict[str, float | int]:
        """Example, issue and token counts and the cost, as logged to the KFP metrics artifact."""
        stats = self.train.token_stats
        return {
            "train_examples": self.train.examples,
            "validation_examples": self.validation.examples if self.validation is not None else 0,
            "errors": sum(report.error_count for report in self.reports),
            "warnings": sum(report.warning_count for report in self.reports),
            "tokens_total": stats.total,
            "tokens_mean": round(stats.mean, 2),
            "tokens_p95": stats.p95,
            "tokens_max": stats.max,
            "billable_tokens": self.billable_tokens,
            "estimated_cost_usd": round(self.estimated_cost_usd, 4),
            **self._serving_metrics(),
            "estimated_total_cost_usd": round(self.estimated_total_usd, 4),
        }

    def _serving_metrics(self) -> dict[str, float | int]:
        """Calls and cost of the checkpoint selection, the holdout evaluation and the Gemini comparison (lines not
        estimated are left out)."""
        lines = {"checkpoint_selection": self.serving.selection, "holdout_evaluation": self.serving.evaluation} \
            if self.serving is not None else {}
        if self.comparison is not None:
            lines["gemini_comparison"] = self.comparison.cost
        metrics: dict[str, float | int] = {}
        for name, line in lines.items():
            if line is not None:
                metrics[f"{name}_calls"] = line.calls
                metrics[f"{name}_tokens"] = line.tokens
                if line.cost_usd is not None:
                    metrics[f"{name}_cost_usd"] = round(line.cost_usd, 4)
        if self.serving is not None and self.serving.ratio_to_evaluation is not None:
            metrics["selection_to_evaluation_calls"] = round(self.serving.ratio_to_evaluation, 4)
        return metrics

    def cost_rows(self) -> list[tuple[str, str]]:
        """(line, figures) pairs of the estimate: tuning, checkpoint selection, holdout evaluation, Gemini comparison,
        total."""
        tuning = "Open-weights training (GPU hours x machine price)" if self.training_cost is not None else "Tuning job"
        rows = [(tuning, format_usd(self.estimated_cost_usd))]
        rows += self.serving.rows() if self.serving is not None else []
        rows += [self.comparison.row()] if self.comparison is not None else []
        return rows + [("Total", format_usd(self.estimated_total_usd))]

    def to_markdown(self) -> str:
        """Both reports, the estimate line by line, then the budget decision."""
        cost, budget = self.estimated_total_usd, self.budget_usd
        budget_line = (
            f"Estimated cost **{format_usd(cost)}** "
            + (f"against a budget of {format_usd(budget)}: " if budget is not None else "(no budget set): ")
            + ("within budget." if self.within_budget else "**over budget, tuning stopped.**")
            + "\n"
        )
        table = ["| Cost | Estimate |", "|---|---|"] + [f"| {line} | {figures} |" for line, figures in self.cost_rows()]
        basis = [self.training_cost.markdown() + "\n"] if self.training_cost is not None else []
        return "\n".join([report.to_markdown() for report in self.reports]
                         + ["# Budget\n", *table, "", budget_line] + basis)

    def to_text(self) -> str:
        """The console report of ``gemini-sft validate``: each file, the estimate line by line, then the verdict."""
        out = [f"Validation of {report.path} ({report.split})\n{report.to_text()}" for report in self.reports]
        rows = self.cost_rows()
        width = max(len(line) for line, _ in rows)
        out.append("Estimated cost\n" + "\n".join(f"  {line.ljust(width)}  {figures}" for line, figures in rows) + "\n")
        if self.training_cost is not None:
            out.append(self.training_cost.markdown().replace("**", ""))
        if not self.valid:
            out.append("INVALID: fix the errors above before tuning.")
        else:
            out.append("VALID" + (", but the estimated cost is over the budget." if not self.within_budget else ""))
        return "\n".join(out) + "\n"


def split_if_present(path: Path) -> Path | None:
    """The path of an optional split, or None when it is absent or empty (tuning then runs without it)."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    log.info("no validation split: tuning will run without a validation dataset")
    return None


def validate_splits(
    train: Path,
    validation: Path | None,
    settings: ValidationSettings,
    budget_usd: float | None,
    *,
    holdout: Path | None = None,
    workers: int | None = None,
    max_api_examples: int | None = DEFAULT_MAX_API_EXAMPLES,
    progress: ProgressFactory | None = None,
) -> ValidationOutcome:
    """Validate the training split and the validation split (when given) under the stage settings.

    Args:
        train: the training file.
        validation: the validation file, or None.
        settings: model, epochs, price and how tokens are counted.
        budget_usd: the budget the estimate is held to (None: no budget).
        holdout: the holdout split, whose evaluation (and Gemini comparison) calls are estimated and which
            bounds the checkpoint-selection sample (None: not estimated).
        workers: worker processes per file (None: automatic).
        max_api_examples: ask the countTokens API about at most this many examples per file.
        progress: makes a progress callback per file.

    Raises InputFormatError when a file cannot be opened, ConfigError for invalid settings.
    """
    counter = settings.token_counter()
    reports: list[ValidationReport] = []
    for path, split in ((train, "training"), (validation, "validation")):
        if path is None:
            continue
        callback, close = progress(path) if progress is not None else (None, lambda: None)
        try:
            config = settings.file_config(split, workers=workers, max_api_examples=max_api_examples)
            reports.append(validate_dataset(path, config, counter, callback))
        finally:
            close()
    # an open model chooses no checkpoint by calls and answers the holdout on its training machine
    serving = estimate_serving(settings, validation, holdout) if settings.tuning_backend == VERTEX_GEMINI_BACKEND \
        else None
    outcome = ValidationOutcome(reports[0], reports[1] if len(reports) > 1 else None, budget_usd, serving,
                                open_weights_training_cost(reports[0].billable_tokens, settings),
                                estimate_gemini_comparison(settings, holdout))
    log.info(
        "%s: %d training examples, %d billable tokens, estimated $%.2f in all%s",
        "dataset valid" if outcome.valid else "dataset invalid",
        outcome.train.examples,
        outcome.billable_tokens,
        outcome.estimated_total_usd,
        "" if outcome.within_budget else " (over budget)",
    )
    return outcome
