"""The Gemini supervised fine-tuning pipeline.

Steps, in order:

1. **Find the raw data**: ``raw_data_uri``, with ``{date}``/``{latest}`` resolved for
   scheduled runs, becomes the raw Dataset artifact (emitted by that step, no importer).
2. **Find the production model**: the champion now in production, if any, from the promotion registry.
3. **Clean and split**: formats normalised to Gemini examples, bad rows rejected with reasons,
   train / validation / holdout splits with no prompt in two splits, a dataset version record.
4. **Validate and estimate cost**: every Vertex dataset rule, token statistics, a cost estimate;
   the run stops here when the data is invalid or the estimate exceeds ``max_budget_usd``.
5. **Tune**: a Vertex supervised tuning job through google-genai, watched to the end.
   **Choose checkpoint**: every checkpoint answers a validation sample; the best (by the rule) goes on.
6. **Evaluate**: base model, tuned model (and champion) answer the holdout prompts; ROUGE and more.
7. **Gate**: the tuned model passes only when it beats the baseline by the configured margins.
8. **Promote** when the gate passes; otherwise **record the rejection** with the gate's reasons.
9. **Write the run summary**: ``run_summary.json`` with the decision, metrics, costs and tuning.

``build_pipeline`` makes the pipeline for one component image; when notification
recipients are given, the steps run inside an ExitHandler that emails them the
run's final state (Vertex AI only).
"""


import contextlib
import inspect
from typing import Callable, Sequence

from kfp import dsl

from gemini_sft.components.base import DEFAULT_IMAGE, build_component
from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings
from gemini_sft.components.choose_checkpoint import choose_checkpoint
from gemini_sft.components.clean import clean_data
from gemini_sft.components.evaluate import evaluate_models
from gemini_sft.components.gate import gate_model
from gemini_sft.components.promote import find_champion, promote_model, record_rejection
from gemini_sft.components.resolve_data import resolve_raw_data
from gemini_sft.components.summarize_run import summarize_run
from gemini_sft.components.tune import tune_model
from gemini_sft.components.validate import validate_data
from gemini_sft.contracts import stage_arguments
from gemini_sft.dataset.settings import CleanConfig
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.gate import GatePolicy
from gemini_sft.tune import TuningSettings
from gemini_sft.validate import ValidationSettings
from gemini_sft.vertex_client import VertexTarget

PIPELINE_NAME = "gemini-sft"
PIPELINE_DESCRIPTION = (
    "Clean, validate, tune, evaluate and promote a supervised fine-tune of Gemini on Vertex AI."
)

# The stage records whose fields are pipeline parameters: the one list to extend when a stage gets its record.
# Their field descriptions become the parameter descriptions the Vertex console shows (the first record naming
# a parameter describes it), and every entry point checks the values it would send against them
# (gemini_sft.settings_check).
STAGE_RECORDS: tuple[type, ...] = (CleanConfig, TuningSettings, ValidationSettings, EvaluationSettings, GatePolicy,
                                   CheckpointSelectionSettings)
# Tune settings no pipeline parameter feeds: the component's defaults hold (see TuningSettings).
TUNE_KEEPS_DEFAULTS = ("continuous_from_model", "retry_failed_job", "cancel_on_timeout", "cancel_on_stop",
                       "start_checkpoint_id")

# Parameters of the pipeline itself; some stages share them (project, location, api_endpoint), and the
# description here, which speaks for the whole pipeline, wins over a stage record's.
PIPELINE_ONLY_PARAMETERS: dict[str, str] = {
    "project": "Google Cloud project that runs the tuning job and hosts the models.",
    "raw_data_uri": "The raw examples (JSONL/CSV/TSV, optionally gzip), gs:// on Vertex; {date} and {latest} "
                    "pick a dated or the newest folder at run time.",
    "registry_uri": "Promotion registry where the promotion and rejection records live (gs://BUCKET/PREFIX).",
    "location": "Vertex AI region; it must offer Gemini tuning.",
    "api_endpoint": "Vertex API endpoint; empty means Vertex itself.",
    "production_alias": "Model Registry version alias that marks the production model.",
    "notification_emails": "Recipients of the end-of-run email (used only when compiled with recipients).",
}

# Stage settings whose stage has no record yet; an entry goes when its record describes the parameter
# (a record's description wins over an entry here).
PARAMETERS_WITHOUT_RECORD: dict[str, str] = {
    "base_model": "The Gemini model to tune and to compare against.",
    "epochs": "Passes over the training split.",
    "adapter_size": "LoRA adapter size of the tuning job (the model's allowed sizes, e.g. 1, 4, 8, 16).",
    "learning_rate_multiplier": "Multiplier of the recommended learning rate.",
    "tuned_model_display_name": "Display name of the tuned model; {run} becomes the pipeline run's name.",
    "tuning_description": "Description of the tuned model in Model Registry.",
    "tuning_labels": "Labels put on the tuning job and the tuned model.",
    "encryption_key": "Cloud KMS key that encrypts the tuning job and model; empty uses Google-managed keys.",
    "tuning_output_uri": "Cloud Storage folder for the tuning job's output, where the model accepts one.",
    "export_last_checkpoint_only": "Keep only the last checkpoint of the tuning job.",
    "continuous_tuning": "Start from the model now in production instead of base_model.",
    "poll_interval_seconds": "Seconds between checks of the tuning job's state.",
    "max_wait_hours": "Hours to wait for the tuning job before the step fails (the job keeps running).",
    "max_budget_usd": "The run stops before tuning when the estimated cost is above this; 0 or less disables it.",
    "price_per_million_tokens_usd": "Training price per million tokens for the estimate; 0 uses the catalogue price.",
    "count_tokens_with_api": "Count tokens with the countTokens API (else an offline estimate).",
    "max_output_tokens": "Most tokens a model may answer with in the evaluation.",
    "eval_max_concurrency": "Evaluation requests in flight at once.",
    "eval_requests_per_minute": "Most evaluation requests per minute.",
    "label_pattern": "Regular expression taking a category label from each answer (confusion matrix); empty: none.",
    "bootstrap_samples": "Bootstrap resamples for the confidence interval of the improvement.",
    "primary_metric": "Metric the gate compares (e.g. rougeL).",
    "min_score": "Lowest tuned score the gate accepts.",
    "min_improvement": "Least improvement over the base model the gate accepts.",
    "improvement_mode": "How the improvement is measured: absolute (difference) or relative (ratio).",
    "require_significant": "The gate also needs the improvement's confidence interval above zero.",
    "max_champion_regression": "Most the tuned model may score below the model in production.",
    "max_error_rate": "Highest share of failed evaluation requests the gate accepts (0 to 1).",
}

PIPELINE_SUMMARY = "Clean, validate, tune, evaluate and gate a Gemini fine-tune; promote it when it wins."


def parameter_descriptions() -> dict[str, str]:
    """Pipeline parameter name -> its one-line description (pipeline-wide ones, then stage records, then the rest)."""
    from gemini_sft.contracts import pipeline_parameter_descriptions

    return {**PARAMETERS_WITHOUT_RECORD, **pipeline_parameter_descriptions(STAGE_RECORDS), **PIPELINE_ONLY_PARAMETERS}


def describe_parameters(func: Callable) -> Callable:
    """Give the pipeline function its docstring: the summary and one ``Args:`` line per parameter.

    Applied under ``@dsl.pipeline``, which reads the docstring for the spec's parameter descriptions.
    Raises TypeError naming any parameter without a description.
    """
    from gemini_sft.contracts import args_section

    descriptions = parameter_descriptions()
    names = list(inspect.signature(func).parameters)
    missing = [name for name in names if name not in descriptions]
    if missing:
        raise TypeError(f"pipeline parameters without a description: {', '.join(missing)}")
    func.__doc__ = PIPELINE_SUMMARY + "\n\n" + args_section((name, descriptions[name]) for name in names) + "\n"
    return func


def build_pipeline(
    image: str = DEFAULT_IMAGE, notification_emails: Sequence[str] = ()
) -> Callable:
    """The pipeline function for components running in ``image``.

    Args:
        image: container image every component runs in (built from this repository).
        notification_emails: when non-empty, the run is wrapped in an ExitHandler whose exit
            task emails these addresses (Google's VertexNotificationEmailOp; Vertex AI only,
            so the local run builds the pipeline without it).
    """
    resolve_op = build_component(resolve_raw_data, image)
    clean_op = build_component(clean_data, image)
    validate_op = build_component(validate_data, image)
    tune_op = build_component(tune_model, image)
    choose_op = build_component(choose_checkpoint, image)
    evaluate_op = build_component(evaluate_models, image)
    gate_op = build_component(gate_model, image)
    find_champion_op = build_component(find_champion, image)
    promote_op = build_component(promote_model, image)
    reject_op = build_component(record_rejection, image)
    summarize_op = build_component(summarize_run, image)
    recipients = list(notification_emails)

    @dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)
    @describe_parameters
    def gemini_sft_pipeline(
        project: str,
        raw_data_uri: str,
        registry_uri: str,
        location: str = "us-central1",
        api_endpoint: str = "",
        base_model: str = "gemini-2.5-flash",
        epochs: int = 3,
        adapter_size: int = 4,
        learning_rate_multiplier: float = 1.0,
        tuned_model_display_name: str = "gemini-sft-{run}",
        tuning_description: str = "Supervised fine-tune made by the gemini-sft pipeline.",
        tuning_labels: dict = {},
        encryption_key: str = "",
        tuning_output_uri: str = "",
        export_last_checkpoint_only: bool = False,
        continuous_tuning: bool = False,
        poll_interval_seconds: float = 60.0,
        max_wait_hours: float = 24.0,
        quota_wait_warning_minutes: float = 30.0,
        train_fraction: float = 0.8,
        validation_fraction: float = 0.1,
        holdout_fraction: float = 0.1,
        seed: int = 42,
        system_instruction: str = "",
        min_response_chars: int = 0,
        conflict_policy: str = "drop_all",
        mask_pii: bool = False,
        stratify_by: str = "",
        max_validation_examples: int = 5000,
        validation_overflow: str = "train",
        min_split_examples: int = 2,
        max_budget_usd: float = 100.0,
        price_per_million_tokens_usd: float = 0.0,
        count_tokens_with_api: bool = True,
        max_output_tokens: int = 1024,
        eval_max_concurrency: int = 8,
        eval_requests_per_minute: int = 300,
        label_pattern: str = "",
        bootstrap_samples: int = 1000,
        primary_metric: str = "rougeL",
        checkpoint_selection_rule: str = "best_validation_metric",
        checkpoint_validation_examples: int = 50,
        min_score: float = 0.0,
        min_improvement: float = 0.0,
        improvement_mode: str = "absolute",
        require_significant: bool = False,
        max_champion_regression: float = 0.0,
        max_error_rate: float = 0.05,
        production_alias: str = "production",
        notification_emails: list = recipients,
    ) -> None:
        if recipients:
            from google_cloud_pipeline_components.v1.vertex_notification_email import (
                VertexNotificationEmailOp,
            )

            notify = VertexNotificationEmailOp(recipients=notification_emails)
            notify.set_display_name("Email the run's outcome")
            steps: contextlib.AbstractContextManager = dsl.ExitHandler(notify, name="notify-on-exit")
        else:
            steps = contextlib.nullcontext()

        with steps:
            run_name = dsl.PIPELINE_JOB_NAME_PLACEHOLDER

            # The step emits the raw Dataset artifact itself: no importer takes a URI from a task output.
            raw = resolve_op(raw_data_uri=raw_data_uri).set_display_name("Find this run's raw data")
            raw.set_caching_options(False)  # {latest} must be looked up again on every run

            champion = find_champion_op(registry_uri=registry_uri).set_display_name("Find production model")
            champion.set_caching_options(False)

            # Every record field goes to its component by name (contracts.stage_arguments): a field added to
            # a record reaches the component, or building the pipeline fails naming it.
            parameters = locals()
            clean = clean_op(raw_data=raw.outputs["raw_data"], **stage_arguments([CleanConfig], parameters))
            clean.set_display_name("Clean and split data")
            clean.set_cpu_limit("2").set_memory_limit("8G")

            validate = validate_op(
                train=clean.outputs["train"],
                validation=clean.outputs["validation"],
                **stage_arguments([ValidationSettings], parameters),
            ).set_display_name("Validate dataset and estimate cost")
            validate.set_cpu_limit("2").set_memory_limit("8G")

            tune = tune_op(
                train=clean.outputs["train"],
                validation=clean.outputs["validation"],
                **stage_arguments(
                    [VertexTarget, TuningSettings],
                    parameters,
                    wired={
                        "dataset_hash": clean.outputs["dataset_hash"],
                        "estimated_cost_usd": validate.outputs["estimated_cost_usd"],
                        "champion_model": champion.outputs["champion_model"],
                        "pipeline_run": run_name,
                    },
                    keep_defaults=TUNE_KEEPS_DEFAULTS,
                ),
            ).set_display_name("Tune Gemini (supervised)")
            # Safe to retry: the step finds the job an earlier attempt launched and resumes it.
            tune.set_retry(num_retries=2, backoff_duration="60s", backoff_factor=2.0)
            tune.set_caching_options(False)

            # The checkpoint is chosen on the validation split, so the holdout judges only the chosen one.
            choose = choose_op(
                tuned_model=tune.outputs["tuned_model"],
                loss_curves=tune.outputs["loss_curves"],
                validation=clean.outputs["validation"],
                **stage_arguments([VertexTarget, CheckpointSelectionSettings], parameters),
            ).set_display_name("Choose checkpoint on validation")
            choose.set_retry(num_retries=1, backoff_duration="30s")
            choose.set_caching_options(False)

            evaluate = evaluate_op(
                holdout=clean.outputs["holdout"],
                checkpoint_choice=choose.outputs["checkpoint_choice"],
                **stage_arguments(
                    [VertexTarget, EvaluationSettings],
                    parameters,
                    wired={
                        "tuned_endpoint": choose.outputs["endpoint"],
                        "champion_endpoint": champion.outputs["champion_endpoint"],
                    },
                ),
            ).set_display_name("Evaluate base vs tuned on holdout")
            evaluate.set_retry(num_retries=1, backoff_duration="30s")
            evaluate.set_caching_options(False)

            gate = gate_op(evaluation=evaluate.outputs["evaluation"], **stage_arguments([GatePolicy], parameters))
            gate.set_display_name("Gate: does the tuned model beat the baseline?")
            gate.set_caching_options(False)

            summary = summarize_op(
                decision=gate.outputs["decision"],
                evaluation=evaluate.outputs["evaluation"],
                tuned_model=tune.outputs["tuned_model"],
                checkpoint_choice=choose.outputs["checkpoint_choice"],
            ).set_display_name("Write run summary")
            summary.set_caching_options(False)

            with dsl.If(gate.outputs["passed"] == True, name="gate-passed"):  # noqa: E712 (KFP needs ==)
                promote = promote_op(
                    tuned_model=tune.outputs["tuned_model"],
                    decision=gate.outputs["decision"],
                    evaluation=evaluate.outputs["evaluation"],
                    project=project,
                    location=location,
                    api_endpoint=api_endpoint,
                    registry_uri=registry_uri,
                    pipeline_run=run_name,
                    dataset_hash=clean.outputs["dataset_hash"],
                    production_alias=production_alias,
                    checkpoint_id=choose.outputs["checkpoint_id"],
                    checkpoint_endpoint=choose.outputs["endpoint"],
                ).set_display_name("Promote tuned model to production")
                promote.set_caching_options(False)
            with dsl.Else(name="gate-failed"):
                reject = reject_op(
                    tuned_model=tune.outputs["tuned_model"],
                    decision=gate.outputs["decision"],
                    registry_uri=registry_uri,
                    pipeline_run=run_name,
                    dataset_hash=clean.outputs["dataset_hash"],
                ).set_display_name("Record rejection and reasons")
                reject.set_caching_options(False)

    return gemini_sft_pipeline


gemini_sft_pipeline = build_pipeline()
