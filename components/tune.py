"""KFP shell of the tune stage: launch (or resume) a Vertex supervised tuning job and watch it to the end.

The logic lives in :mod:`gemini_sft.tune`; this module reads the artifacts,
calls the core and writes the outputs.
"""

from typing import NamedTuple

from kfp.dsl import Dataset, Input, Markdown, Model, Output, OutputPath

from gemini_sft.components.base import build_component


def tune_model(
    train: Input[Dataset],
    validation: Input[Dataset],
    tuned_model: Output[Model],
    summary: Output[Markdown],
    gcp_resources: OutputPath(str),
    project: str,
    location: str = "us-central1",
    api_endpoint: str = "",
    base_model: str = "gemini-2.5-flash",
    epochs: int = 3,
    adapter_size: int = 4,
    learning_rate_multiplier: float = 1.0,
    tuned_model_display_name: str = "gemini-sft-{run}",
    description: str = "",
    labels: dict = {},
    dataset_hash: str = "",
    estimated_cost_usd: float = 0.0,
    encryption_key: str = "",
    output_uri: str = "",
    export_last_checkpoint_only: bool = False,
    continuous_from_model: str = "",
    poll_interval_seconds: float = 60.0,
    max_wait_hours: float = 24.0,
    pipeline_run: str = "",
    continuous_tuning: bool = False,
    champion_model: str = "",
    price_per_million_tokens_usd: float = 0.0,
    retry_failed_job: bool = False,
    cancel_on_timeout: bool = False,
    cancel_on_stop: bool = True,
) -> NamedTuple("TuneOutputs", [("endpoint", str), ("model_resource", str), ("tuning_job", str)]):
    """Tune Gemini on the train split (validation split for validation) and wait for the tuned model.

    Continuous tuning: ``continuous_from_model`` (``projects/P/locations/L/models/ID@alias``)
    is used when set; otherwise, with ``continuous_tuning=True``, ``champion_model``
    (the model now in production) is; with no champion yet, the base model is.

    Idempotent: a job this step already launched for ``pipeline_run`` (same
    settings) is resumed, never launched twice; ``pipeline_run`` "" disables this. A previous attempt's FAILED/CANCELLED/EXPIRED job fails the
    step again unless ``retry_failed_job``. SIGTERM cancels the job (unless
    ``cancel_on_stop=False``, e.g. on preemptible nodes). After ``max_wait_hours``
    the step fails and the job is left running (``cancel_on_timeout`` cancels it).

    Cost: ``actual_cost_usd`` = the job's billable training tokens (all epochs) x
    ``price_per_million_tokens_usd`` (0 = catalogue price) / 1e6.

    Outputs: ``tuned_model`` (metadata: model_resource, model_version, endpoint,
    tuning_job, checkpoints, billable_tokens, actual_cost_usd, estimated_cost_usd,
    base_model, continuous_from, offline_standin, console_url; its file holds the
    same as JSON), ``summary``
    (Markdown), ``gcp_resources`` (console link and cancellation), and the
    endpoint, model resource and tuning job names.
    Raises TuningSettingsError, TuningJobFailedError, TuningTimeoutError, VertexApiError.
    """
    import json
    import logging
    from collections import namedtuple
    from pathlib import Path

    from gemini_sft import tune, vertex_client

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("gemini_sft.components.tune")
    vertex_client.quiet_http_logs()  # per-request lines add nothing to the state-change log

    vertex = vertex_client.VertexSettings.create(project, location, api_endpoint or None)

    def holds_no_rows(path: str) -> bool:
        """True only for a readable file without a non-blank line (an unreadable one is Vertex's to judge)."""
        file = Path(path)
        if not file.is_file():
            return False
        with file.open("rb") as handle:
            return not any(line.strip() for line in handle)

    validation_uri = validation.uri
    if holds_no_rows(validation.path):
        validation_uri = ""
        log.info("the validation split is empty: tuning without a validation dataset")

    start_from = continuous_from_model
    if not start_from and continuous_tuning:
        if champion_model:
            start_from = champion_model
        else:
            log.info("continuous tuning requested but no model is in production yet: tuning the base model")

    settings = tune.TuningSettings(
        training_uri=train.uri,
        validation_uri=validation_uri,
        base_model=base_model,
        epochs=epochs,
        adapter_size=adapter_size,
        learning_rate_multiplier=learning_rate_multiplier,
        tuned_model_display_name=tuned_model_display_name,
        description=description,
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        pipeline_run=pipeline_run,
        dataset_hash=dataset_hash,
        encryption_key=encryption_key,
        output_uri=output_uri,
        export_last_checkpoint_only=export_last_checkpoint_only,
        continuous_from_model=start_from,
        price_per_million_tokens_usd=price_per_million_tokens_usd,
    )
    watch = tune.WatchSettings.from_pipeline(
        poll_interval_seconds,
        max_wait_hours,
        retry_failed_job=retry_failed_job,
        cancel_on_timeout=cancel_on_timeout,
        cancel_on_stop=cancel_on_stop,
    )
    # Check before building any client, so a bad setting never reaches the API.
    settings.check(location, remote=not vertex.uses_local_server)
    outcome = tune.run_tuning(
        settings,
        watch,
        vertex_client.GenAITuningService(vertex),
        project=project,
        location=location,
        uses_local_server=vertex.uses_local_server,
        estimated_cost_usd=estimated_cost_usd,
        gcp_resources_path=gcp_resources,
    )

    metadata = outcome.artifact_metadata()
    tuned_model.metadata.update(metadata)
    Path(tuned_model.path).parent.mkdir(parents=True, exist_ok=True)
    Path(tuned_model.path).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    Path(summary.path).parent.mkdir(parents=True, exist_ok=True)
    Path(summary.path).write_text(tune.render_summary(outcome, settings))
    log.info(
        "tuned model ready: %d checkpoints, %s billable tokens, actual cost %s USD (estimated %.4f)",
        len(outcome.checkpoints),
        outcome.billable_tokens,
        "n/a" if outcome.actual_cost_usd is None else f"{outcome.actual_cost_usd:.4f}",
        estimated_cost_usd,
    )
    outputs = namedtuple("TuneOutputs", ["endpoint", "model_resource", "tuning_job"])
    return outputs(outcome.endpoint, outcome.model_resource, outcome.tuning_job)


tune_model_op = build_component(tune_model)
