"""The tune stage: launch, watch, resume, cancel and account for a Vertex supervised tuning job.

The plain-Python core of ``components/tune.py``. It never imports a cloud SDK:
it talks to a :class:`TuningService` (the real one is
``gemini_sft.vertex_client.GenAITuningService``; tests pass a fake or point the
real one at the offline stand-in).

Flow of :func:`run_tuning`, one module per step:

1. :mod:`~gemini_sft.tune.settings`: :meth:`TuningSettings.check` validates
   every setting before any call (TuningSettingsError lists every problem) and
   chooses the start model (continuous tuning from the champion, or the base
   model when there is none); :class:`TuningData` holds the splits (an empty
   validation split is not sent).
2. :mod:`~gemini_sft.tune.launch`: the job an earlier attempt launched is
   resumed (found by ``gcp_resources`` or by identity labels); otherwise it is
   created, never twice; ``gcp_resources`` is written as soon as it is known.
3. :mod:`~gemini_sft.tune.watch`: polls with backoff and jitter until the job
   ends, logs each state change, stops at the maximum wait, and cancels the
   job on SIGTERM; :mod:`~gemini_sft.tune.sub_states` records the job's
   ``tuning_job_state`` and warns when it waits for quota or capacity longer
   than ``quota_wait_warning_minutes``.
4. :mod:`~gemini_sft.tune.outcome`: a SUCCEEDED job gives a
   :class:`TuningOutcome` (model, endpoint, checkpoints, tokens, cost); a job
   that ended FAILED, CANCELLED or EXPIRED raises TuningJobFailedError with
   the job's own message. The stage then reads the job's loss curves
   (:mod:`~gemini_sft.tune.curves`, through a :class:`CurveReader`; none is
   not an error), flags overfitting, gives each checkpoint its losses, and
   maps the examples Vertex truncated or dropped to the raw file's lines
   through the clean stage's source lines, with a fix each
   (:mod:`~gemini_sft.tune.data_stats`).
5. :mod:`~gemini_sft.tune.summary`: the Markdown summary (with the loss chart)
   and the step's files (tuned model JSON, summary, loss curves JSON).

Choosing among the checkpoints is :mod:`gemini_sft.checkpoints`.

:mod:`~gemini_sft.tune.service` holds what is exchanged with Vertex
(:class:`TuningRequest`, :class:`JobSnapshot`, :class:`Checkpoint`, the
:class:`TuningService` protocol) and the retried API call.
"""

from gemini_sft.errors import TransientApiError, TuningStoppedError
from gemini_sft.names import console_url, job_id, sanitize_label_key, sanitize_label_value
from gemini_sft.tune.launch import (
    GCP_RESOURCE_TYPE,
    create_job,
    find_previous_job,
    gcp_resources_json,
    identity_labels,
    job_name_from_gcp_resources,
    launch_or_resume,
    read_recorded_job,
    write_gcp_resources,
)
from gemini_sft.tune.outcome import (
    OFFLINE_STANDIN_MARKER,
    TuningOutcome,
    billable_count_covers_epochs,
    build_outcome,
    failure_error,
    is_offline_standin,
    split_model_version,
)
from gemini_sft.tune.curves import LossCurves, OverfittingVerdict, overfitting_verdict
from gemini_sft.tune.data_stats import TruncatedExample, TuningDataStats, load_source_lines
from gemini_sft.tune.service import (
    API_RETRY,
    FAILED_STATES,
    STATE_CANCELLED,
    STATE_EXPIRED,
    STATE_FAILED,
    STATE_PENDING,
    STATE_RUNNING,
    STATE_SUCCEEDED,
    TERMINAL_STATES,
    Checkpoint,
    CurveReader,
    JobSnapshot,
    TuningRequest,
    TuningService,
    call_api,
    jobs_labelled,
)
from gemini_sft.tune.settings import (
    DATASET_LABEL_KEY,
    MANAGED_BY_LABEL_KEY,
    MANAGED_BY_LABEL_VALUE,
    REQUEST_LABEL_KEY,
    RESERVED_LABEL_KEYS,
    RUN_LABEL_KEY,
    TuningData,
    TuningSettings,
    holds_no_rows,
)
from gemini_sft.tune.stage import run_tuning
from gemini_sft.tune.summary import render_summary, write_step_outputs
from gemini_sft.tune.watch import StopScope, WatchSettings, cancel_job, cancel_on_sigterm, watch_job

__all__ = [
    "API_RETRY", "DATASET_LABEL_KEY", "FAILED_STATES", "GCP_RESOURCE_TYPE", "MANAGED_BY_LABEL_KEY",
    "MANAGED_BY_LABEL_VALUE", "OFFLINE_STANDIN_MARKER", "REQUEST_LABEL_KEY", "RESERVED_LABEL_KEYS",
    "RUN_LABEL_KEY", "STATE_CANCELLED", "STATE_EXPIRED", "STATE_FAILED", "STATE_PENDING", "STATE_RUNNING",
    "STATE_SUCCEEDED", "TERMINAL_STATES", "Checkpoint", "CurveReader", "JobSnapshot", "LossCurves",
    "OverfittingVerdict", "TruncatedExample", "TuningDataStats", "overfitting_verdict", "StopScope", "TransientApiError",
    "TuningData", "TuningOutcome", "TuningRequest", "TuningService", "TuningSettings", "TuningStoppedError",
    "WatchSettings", "billable_count_covers_epochs", "build_outcome", "call_api", "cancel_job",
    "cancel_on_sigterm", "console_url", "create_job", "failure_error", "find_previous_job", "gcp_resources_json",
    "holds_no_rows", "identity_labels", "is_offline_standin", "job_id", "job_name_from_gcp_resources",
    "jobs_labelled", "launch_or_resume", "load_source_lines", "read_recorded_job", "render_summary", "run_tuning",
    "sanitize_label_key", "sanitize_label_value", "split_model_version", "watch_job", "write_gcp_resources",
    "write_step_outputs",
]
