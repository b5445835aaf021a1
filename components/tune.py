"""KFP shell of the tune stage: launch (or resume) a Vertex supervised tuning job and watch it to the end.

The logic lives in :mod:`gemini_sft.tune`; this module reads the artifacts,
calls the core and writes the outputs.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output, OutputPath

from gemini_sft.components.base import build_component
from gemini_sft.contracts import describe_component
from gemini_sft.tune import TuningSettings
from gemini_sft.vertex_client import VertexTarget


@describe_component(
    """Tune Gemini (or an open model Vertex tunes) on the train split and wait for the tuned model.

    Idempotent: a job this step already launched for the pipeline run (same settings) is resumed, never
    launched twice. SIGTERM cancels the job unless cancel_on_stop is off; after max_wait_hours the step fails
    and the job is left running unless cancel_on_timeout. Actual cost = the job's billable training tokens
    (all epochs) x the price per million tokens. After the job, its loss curves are read from its Experiment
    (a job without curves goes on and says so) and overfitting is flagged; long waits for quota or capacity
    are warned about. Fails with TuningSettingsError before any call on a bad setting, TuningJobFailedError,
    TuningTimeoutError or VertexApiError; a retried attempt with the same inputs repeats a permanent failure
    at once, without calling Vertex.""",
    records=[VertexTarget, TuningSettings],
    inputs={
        "train": "Training split from the clean step, Gemini JSONL.",
        "validation": "Validation split from the clean step; an empty one is not sent.",
        "source_lines": "The clean step's source lines (each split row's line in the raw file), so truncated and "
        "dropped examples are named by their raw line; without them, by their line in the train split.",
    },
    outputs={
        "tuned_model": "The tuned model: model, version, endpoint, job, checkpoints with their losses, sub-states, "
        "truncated and dropped examples with their raw file, line and fix, tokens and costs (also as JSON).",
        "summary": "The job's settings, sub-states, data stats, loss curves, checkpoints, tokens and estimated vs "
        "actual cost, with its console link.",
        "loss_curves": 'Train and eval curves of the job, JSON {"train": [[step, value], ...], "eval": [...]}.',
        "gcp_resources": "The tuning job for the Vertex console (link and cancellation).",
        "endpoint": "Endpoint serving the tuned model; empty when Vertex reports none (an open model it tuned).",
        "model_resource": "Model Registry resource of the tuned model, without version.",
        "tuning_job": "Resource name of the tuning job.",
    },
)
def tune_model(
    train: Input[Dataset],
    validation: Input[Dataset],
    tuned_model: Output[Model],
    summary: Output[Markdown],
    loss_curves: Output[Artifact],
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
    quota_wait_warning_minutes: float = 30.0,
    start_checkpoint_id: str = "",
    tuning_mode: str = "",
    learning_rate: float = 0.0,
    batch_size: int = 0,
    source_lines: Input[Artifact] = None,
) -> NamedTuple("TuneOutputs", [("endpoint", str), ("model_resource", str), ("tuning_job", str)]):
    step_inputs = {k: v for k, v in locals().items() if k not in ("tuned_model", "summary", "loss_curves", "gcp_resources")}
    step_inputs.update(
        train=train.uri, validation=validation.uri, source_lines=source_lines.uri if source_lines else ""
    )
    import logging
    from collections import namedtuple
    from pathlib import Path

    from gemini_sft import tune, vertex_client
    from gemini_sft.contracts import record_from_values
    from gemini_sft.permanent_failure import fail_fast_when_retried

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    vertex_client.quiet_http_logs()  # per-request lines add nothing to the state-change log

    # The step is retried (a lost pod resumes its job), but a permanent error (a setting, invalid data, a 4xx)
    # would only be repeated: the attempts share this output folder, where it is recorded and read back.
    with fail_fast_when_retried(Path(summary.path).parent, step_inputs):
        vertex = record_from_values(vertex_client.VertexTarget, locals()).settings()
        settings = record_from_values(tune.TuningSettings, locals())
        data = tune.TuningData.from_splits(train.uri, validation.uri, validation.path)
        # Check before building any client, so a bad setting never reaches the API.
        settings.check(location, data, remote=not vertex.uses_local_server)
        outcome = tune.run_tuning(
            settings, data, vertex_client.GenAITuningService(vertex, open_models=settings.open_model is not None),
            project=project, location=location,
            uses_local_server=vertex.uses_local_server, gcp_resources_path=gcp_resources,
            curve_reader=vertex_client.AiplatformCurveReader(vertex), training_file=train.path,
            source_lines=tune.load_source_lines(source_lines.path if source_lines else None),
        )
        tuned_model.metadata.update(
            tune.write_step_outputs(outcome, settings, tuned_model.path, summary.path, loss_curves.path)
        )
    outputs = namedtuple("TuneOutputs", ["endpoint", "model_resource", "tuning_job"])
    return outputs(outcome.endpoint, outcome.model_resource, outcome.tuning_job)


tune_model_op = build_component(tune_model)
