"""The Gemini supervised fine-tuning pipeline.

Steps, in order:

1. **Find the raw data**: ``raw_data_uri``, with ``{date}``/``{latest}`` resolved for
   scheduled runs, becomes the raw Dataset artifact (emitted by that step, no importer).
2. **Find the production model**: the champion now in production, if any, from the promotion registry.
3. **Clean and split**: formats normalised to Gemini examples, bad rows rejected with reasons,
   train / validation / holdout splits with no prompt in two splits, a dataset version record.
4. **Validate and estimate cost**: every Vertex dataset rule, token statistics, a cost estimate;
   the run stops here when the data is invalid or the estimate exceeds ``max_budget_usd``.
5. **Tune**: with ``tuning_backend=vertex-gemini`` (the default) a Vertex supervised tuning job through
   google-genai, watched to the end; with ``open-weights`` a LoRA fine-tune of an open model (a custom job
   on a GPU machine on Vertex, in-process on CPU locally) that also answers the holdout with base and tuned.
   **Choose checkpoint**: every Gemini checkpoint answers a validation sample; the best (by the rule) goes on.
   An open model is passed through (its training keeps its best epoch).
6. **Evaluate**: base model, tuned model (and champion) answer the holdout prompts, or the open model's
   recorded answers are scored; ROUGE and more.
7. **Gate**: the tuned model passes only when it beats the baseline by the configured margins.
8. **Promote** when the gate passes; otherwise **record the rejection** with the gate's reasons.
   An open model that passes is **deployed** instead: Model Registry upload with a vLLM container,
   endpoint deploy, traffic once it is up (the previous deployment kept for rollback).
9. **Write the run summary**: ``run_summary.json`` with the decision, metrics, costs and tuning.

``build_pipeline`` makes the pipeline for one component image and one target: ``vertex``
(the compiled spec: the tuning backend is chosen at run time with dsl.If / dsl.Else and the
branches joined with dsl.OneOf; the open-weights step is a GCPC custom job on a GPU machine)
or ``local`` (kfp.local: it runs no GCPC component and joins no artifacts across branches, so
the backend is chosen when the pipeline is built and the step runs in-process on CPU). When
notification recipients are given, the steps run inside an ExitHandler that emails them the
run's final state (Vertex AI only).
"""


import contextlib
import dataclasses
import inspect
from typing import Any, Callable, Sequence

from kfp import dsl

from gemini_sft.components.base import DEFAULT_IMAGE, build_component
from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings
from gemini_sft.components.choose_checkpoint import choose_checkpoint
from gemini_sft.components.clean import clean_data
from gemini_sft.components.deploy import deploy_open_weights
from gemini_sft.components.evaluate import evaluate_models
from gemini_sft.components.gate import gate_model
from gemini_sft.components.promote import find_champion, promote_model, record_rejection
from gemini_sft.components.resolve_data import resolve_raw_data
from gemini_sft.components.summarize_run import summarize_run
from gemini_sft.components.train_open_weights import train_open_weights
from gemini_sft.components.tune import tune_model
from gemini_sft.components.validate import validate_data
from gemini_sft.contracts import (
    pipeline_parameter_descriptions,
    pipeline_signature,
    setting,
    stage_arguments,
    with_signature,
)
from gemini_sft.dataset.settings import CleanConfig
from gemini_sft.deployment import DeploymentSettings
from gemini_sft.errors import ConfigError
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.gate import GatePolicy
from gemini_sft.open_weights.pipeline_step import OPEN_WEIGHTS_BACKEND, TUNING_BACKENDS, VERTEX_GEMINI_BACKEND
from gemini_sft.open_weights.settings import OpenWeightsSettings
from gemini_sft.pipelines.open_weights_step import (
    DEFAULT_GPU_IMAGE,
    LOCAL_TRAINING_MACHINE,
    TrainingMachine,
    open_weights_op,
)
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
                                   OpenWeightsSettings, DeploymentSettings, CheckpointSelectionSettings)
# Tune settings no pipeline parameter feeds: the component's defaults hold (see TuningSettings).
TUNE_KEEPS_DEFAULTS = ("continuous_from_model", "retry_failed_job", "cancel_on_timeout", "cancel_on_stop",
                       "start_checkpoint_id")

# Record fields that are not pipeline parameters: fed from a task output or the run, or left at their default.
WIRED_FIELDS = ("dataset_hash", "estimated_cost_usd", "champion_model", "pipeline_run", "tuned_endpoint",
                "champion_endpoint", "champion_backend")
# The open-weights training machine is part of the compiled spec (the custom job's), not a run parameter.
COMPILED_FIELDS = ("machine_type", "accelerator_type", "accelerator_count")


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """The pipeline's own parameters. Some stages share them (project, location, api_endpoint); the description
    here, which speaks for the whole pipeline, is the one the console shows."""

    project: str = setting(dataclasses.MISSING, "Google Cloud project that runs the tuning job and hosts the models.")
    raw_data_uri: str = setting(
        dataclasses.MISSING,
        "The raw examples (JSONL/CSV/TSV, optionally gzip), gs:// on Vertex; {date} and {latest} pick a dated or "
        "the newest folder at run time.",
    )
    registry_uri: str = setting(
        dataclasses.MISSING, "Promotion registry where the promotion and rejection records live (gs://BUCKET/PREFIX)."
    )
    location: str = setting("us-central1", "Vertex AI region; it must offer Gemini tuning.")
    api_endpoint: str = setting("", "Vertex API endpoint; empty means Vertex itself.")
    production_alias: str = setting("production", "Model Registry version alias that marks the production model.")
    require_human_review: bool = setting(
        False, "A candidate that passes the gate is staged for people to approve (gemini-sft approve) instead of "
        "promoted."
    )
    notification_emails: list = setting(
        [], "Recipients of the end-of-run email (used only when compiled with recipients)."
    )
    tuning_backend: str = setting(
        VERTEX_GEMINI_BACKEND,
        "Who tunes: vertex-gemini (a Vertex Gemini tuning job) or open-weights (LoRA on an open model, see "
        "docs/open-weights.md).",
        choices=TUNING_BACKENDS,
    )


# The pipeline's parameters: the pipeline's own, then every stage record's (the first record naming one describes it).
PARAMETER_RECORDS: tuple[type, ...] = (PipelineSettings, *STAGE_RECORDS)

PIPELINE_SUMMARY = "Clean, validate, tune, evaluate and gate a Gemini fine-tune; promote it when it wins."


def parameter_descriptions() -> dict[str, str]:
    """Pipeline parameter name -> its one-line description, from the records' fields."""
    return pipeline_parameter_descriptions(PARAMETER_RECORDS)


def parameter_signature(notification_emails: Sequence[str] = ()) -> inspect.Signature:
    """The pipeline's parameters with their types and defaults, from the records (TypeError on disagreement)."""
    return pipeline_signature(
        PipelineSettings,
        STAGE_RECORDS,
        exclude=WIRED_FIELDS + TUNE_KEEPS_DEFAULTS + COMPILED_FIELDS,
        defaults={"notification_emails": list(notification_emails)},
    )


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
    image: str = DEFAULT_IMAGE,
    notification_emails: Sequence[str] = (),
    *,
    target: str = "vertex",
    tuning_backend: str = VERTEX_GEMINI_BACKEND,
    gpu_image: str = DEFAULT_GPU_IMAGE,
    training_machine: TrainingMachine | None = None,
) -> Callable:
    """The pipeline function for components running in ``image``.

    Args:
        image: container image every component runs in (built from this repository).
        notification_emails: when non-empty, the run is wrapped in an ExitHandler whose exit
            task emails these addresses (Google's VertexNotificationEmailOp; Vertex AI only,
            so the local run builds the pipeline without it).
        target: ``vertex`` (both backends in the spec, chosen at run time by ``tuning_backend``)
            or ``local`` (kfp.local: only the backend given here, the open-weights step in-process).
        tuning_backend: the backend a ``local`` pipeline runs (its ``tuning_backend`` parameter must
            say the same); ignored for ``vertex``.
        gpu_image: the image of the open-weights custom job (built from Dockerfile.gpu).
        training_machine: the machine and GPUs of that job (default one L4 on Vertex, CPU locally).

    Raises:
        ConfigError: for an unknown target or backend.
    """
    if target not in ("vertex", "local"):
        raise ConfigError(f"target must be vertex or local, got {target!r}")
    if tuning_backend not in TUNING_BACKENDS:
        raise ConfigError(f"tuning_backend must be one of {', '.join(TUNING_BACKENDS)}, got {tuning_backend!r}")
    local_target = target == "local"
    machine = training_machine or (LOCAL_TRAINING_MACHINE if local_target else TrainingMachine())
    backends = (tuning_backend,) if local_target else TUNING_BACKENDS
    train_open_op = open_weights_op(train_open_weights, image=image, gpu_image=gpu_image, machine=machine,
                                    custom_job=not local_target)
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
    deploy_op = build_component(deploy_open_weights, image)
    summarize_op = build_component(summarize_run, image)
    recipients = list(notification_emails)

    signature = parameter_signature(recipients)

    @dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)
    @describe_parameters
    @with_signature(signature)
    def gemini_sft_pipeline(*args: Any, **kwargs: Any) -> None:
        # KFP calls the pipeline with one value (a channel) per parameter of ``signature``, positionally.
        parameters = signature.bind(*args, **kwargs).arguments
        if recipients:
            from google_cloud_pipeline_components.v1.vertex_notification_email import (
                VertexNotificationEmailOp,
            )

            notify = VertexNotificationEmailOp(recipients=parameters["notification_emails"])
            notify.set_display_name("Email the run's outcome")
            steps: contextlib.AbstractContextManager = dsl.ExitHandler(notify, name="notify-on-exit")
        else:
            steps = contextlib.nullcontext()

        with steps:
            run_name = dsl.PIPELINE_JOB_NAME_PLACEHOLDER

            # The step emits the raw Dataset artifact itself: no importer takes a URI from a task output.
            raw = resolve_op(raw_data_uri=parameters["raw_data_uri"]).set_display_name("Find this run's raw data")
            raw.set_caching_options(False)  # {latest} must be looked up again on every run

            champion = find_champion_op(registry_uri=parameters["registry_uri"]).set_display_name("Find production model")
            champion.set_caching_options(False)

            # Every record field goes to its component by name (contracts.stage_arguments): a field added to
            # a record reaches the component and the pipeline's parameters.
            clean = clean_op(raw_data=raw.outputs["raw_data"], **stage_arguments([CleanConfig], parameters))
            clean.set_display_name("Clean and split data")
            clean.set_cpu_limit("2").set_memory_limit("8G")

            validate = validate_op(
                train=clean.outputs["train"],
                validation=clean.outputs["validation"],
                holdout=clean.outputs["holdout"],
                **stage_arguments([ValidationSettings], parameters, wired=machine.fields()),
            ).set_display_name("Validate dataset and estimate cost")
            validate.set_cpu_limit("2").set_memory_limit("8G")

            def tune_gemini() -> dsl.PipelineTask:
                tune = tune_op(
                    train=clean.outputs["train"],
                    validation=clean.outputs["validation"],
                    source_lines=clean.outputs["source_lines"],
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
                return tune

            def tune_open_weights() -> dsl.PipelineTask:
                train_open = train_open_op(
                    train=clean.outputs["train"],
                    validation=clean.outputs["validation"],
                    holdout=clean.outputs["holdout"],
                    **stage_arguments([OpenWeightsSettings], parameters, wired=machine.fields()),
                ).set_display_name("Tune open model (LoRA)")
                train_open.after(validate)  # never train on data the validation refused
                # Safe to retry: the training resumes from its last checkpoint in the same output folder.
                train_open.set_retry(num_retries=1, backoff_duration="60s")
                return train_open

            # The tuned model (and its endpoint, "" for an open model) as the later steps see it.
            if len(backends) == 1:
                tuned = tune_gemini() if backends[0] == VERTEX_GEMINI_BACKEND else tune_open_weights()
                tuned_model, tuned_endpoint = tuned.outputs["tuned_model"], tuned.outputs["endpoint"]
                loss_curves = tuned.outputs["loss_curves"]
            else:
                with dsl.If(parameters["tuning_backend"] == OPEN_WEIGHTS_BACKEND, name="open-weights"):
                    open_tuned = tune_open_weights()
                with dsl.Else(name="vertex-gemini"):
                    gemini_tuned = tune_gemini()
                tuned_model = dsl.OneOf(open_tuned.outputs["tuned_model"], gemini_tuned.outputs["tuned_model"])
                tuned_endpoint = dsl.OneOf(open_tuned.outputs["endpoint"], gemini_tuned.outputs["endpoint"])
                loss_curves = dsl.OneOf(open_tuned.outputs["loss_curves"], gemini_tuned.outputs["loss_curves"])

            # The checkpoint is chosen on the validation split, so the holdout judges only the chosen one
            # (an open model is passed through: its endpoint stays empty and its recorded answers are scored).
            choose = choose_op(
                tuned_model=tuned_model,
                loss_curves=loss_curves,
                validation=clean.outputs["validation"],
                holdout=clean.outputs["holdout"],
                **stage_arguments([VertexTarget, CheckpointSelectionSettings], parameters),
            ).set_display_name("Choose checkpoint on validation")
            choose.set_retry(num_retries=1, backoff_duration="30s")
            choose.set_caching_options(False)

            evaluate = evaluate_op(
                holdout=clean.outputs["holdout"],
                tuned_model=tuned_model,
                train=clean.outputs["train"],
                checkpoint_choice=choose.outputs["checkpoint_choice"],
                **stage_arguments(
                    [VertexTarget, EvaluationSettings],
                    parameters,
                    wired={
                        "tuned_endpoint": choose.outputs["endpoint"],
                        "champion_endpoint": champion.outputs["champion_endpoint"],
                        "champion_backend": champion.outputs["champion_backend"],
                    },
                ),
            ).set_display_name("Evaluate base vs tuned on holdout")
            evaluate.set_retry(num_retries=1, backoff_duration="30s")
            evaluate.set_caching_options(False)

            gate = gate_op(evaluation=evaluate.outputs["evaluation"], **stage_arguments([GatePolicy], parameters))
            gate.set_display_name("Gate: does the tuned model beat the baseline?")
            gate.set_caching_options(False)

            # What every promotion, deployment and rejection record keeps of the candidate.
            outcome = {
                "tuned_model": tuned_model,
                "decision": gate.outputs["decision"],
                "registry_uri": parameters["registry_uri"],
                "pipeline_run": run_name,
                "dataset_hash": clean.outputs["dataset_hash"],
            }
            target = {name: parameters[name] for name in ("project", "location", "api_endpoint")}

            def only_for(backend: str, name: str) -> contextlib.AbstractContextManager:
                """The steps of one backend: a condition on ``tuning_backend``, none when it is the only one."""
                if len(backends) == 1:
                    return contextlib.nullcontext()
                return dsl.If(parameters["tuning_backend"] == backend, name=name)

            # A passing model is promoted (Gemini) or deployed (open weights); a failing one of either backend
            # is recorded as rejected by one step.
            with dsl.If(gate.outputs["passed"] == True, name="gate-passed"):  # noqa: E712 (KFP needs ==)
                if VERTEX_GEMINI_BACKEND in backends:
                    with only_for(VERTEX_GEMINI_BACKEND, "gemini-promotion"):
                        promote = promote_op(
                            **outcome,
                            **target,
                            evaluation=evaluate.outputs["evaluation"],
                            train=clean.outputs["train"],
                            production_alias=parameters["production_alias"],
                            require_human_review=parameters["require_human_review"],
                            label_pattern=parameters["label_pattern"],
                            checkpoint_id=choose.outputs["checkpoint_id"],
                            checkpoint_endpoint=choose.outputs["endpoint"],
                        ).set_display_name("Promote tuned model to production")
                        promote.set_caching_options(False)
                # An open model is served only when it passed: upload, deploy, then traffic.
                if OPEN_WEIGHTS_BACKEND in backends:
                    with only_for(OPEN_WEIGHTS_BACKEND, "open-weights-deployment"):
                        deploy = deploy_op(
                            **outcome,
                            **target,
                            evaluation=evaluate.outputs["evaluation"],
                            **stage_arguments([DeploymentSettings], parameters),
                        ).set_display_name("Deploy open model to an endpoint")
                        deploy.set_caching_options(False)
            with dsl.Else(name="gate-failed"):
                reject = reject_op(**outcome).set_display_name("Record rejection and reasons")
                reject.set_caching_options(False)

            # Last: one document with the decision, metrics, costs and the tuning (checkpoints, the chosen one).
            summary = summarize_op(
                decision=gate.outputs["decision"],
                evaluation=evaluate.outputs["evaluation"],
                tuned_model=tuned_model,
                checkpoint_choice=choose.outputs["checkpoint_choice"],
                validation_result=validate.outputs["validation_result"],
            ).set_display_name("Write run summary")
            summary.set_caching_options(False)

    return gemini_sft_pipeline


gemini_sft_pipeline = build_pipeline()
