"""What a finished tuning job gives: the outcome of a SUCCEEDED job, or the error of one that ended badly.

Cost: Vertex bills training tokens = dataset tokens x epochs. The job reports
``tuningDataStats.supervisedTuningDataStats.totalBillableTokenCount``; its
field documentation says "in the tuning dataset", but the job also reports
``totalTuningCharacterCount`` (one pass) next to ``totalBillableCharacterCount``,
and the billable count is taken to cover every epoch already (as the offline
stand-in reports it). When the job's own character counts show otherwise
(billable characters about equal to one pass while epochs > 1), the token
count is multiplied by the epochs. So, normally,
``actual_cost_usd = totalBillableTokenCount x price per 1M training tokens / 1e6``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from gemini_sft.errors import TuningJobFailedError, VertexApiError
from gemini_sft.checkpoints import CheckpointCandidate
from gemini_sft.names import console_url, model_resource_url
from gemini_sft.tune.curves import LossCurves, OverfittingVerdict, value_at_step
from gemini_sft.tune.data_stats import TruncatedExample, TuningDataStats
from gemini_sft.tune.service import Checkpoint, JobSnapshot, TuningRequest
from gemini_sft.tune.sub_states import SubStateSpan
from gemini_sft.tune.settings import TuningSettings

log = logging.getLogger(__name__)

OFFLINE_STANDIN_MARKER = "offline-stand-in"


@dataclass(frozen=True)
class TuningOutcome:
    """A succeeded tuning job, as the tune step reports it.

    ``model_resource`` is the Model Registry resource without version
    (``projects/P/locations/L/models/ID``); ``tuned_model`` has the version
    (``...@1``). ``billable_tokens`` are the training tokens billed (every
    epoch); ``reported_billable_tokens`` is the job's raw count.
    ``actual_cost_usd`` is None when Vertex reported no billable token count.
    ``state_durations`` holds seconds spent in each state as observed by this
    step (a resumed job's earlier time is not included;
    ``create_time``/``start_time``/``end_time`` are Vertex's own).
    ``sub_states`` are the detail states seen while watching, ``wait_warnings``
    the long waits for quota or capacity; ``truncated_examples`` the examples
    Vertex truncated, with training-file line numbers; ``loss_curves`` the
    Experiment's curves (empty with a note when there are none) and
    ``overfitting`` what they say.
    """

    tuning_job: str
    state: str
    tuned_model: str
    model_resource: str
    model_version: str
    endpoint: str
    checkpoints: tuple[Checkpoint, ...]
    billable_tokens: int | None
    reported_billable_tokens: int | None
    epochs: int
    price_per_million_tokens_usd: float
    actual_cost_usd: float | None
    estimated_cost_usd: float
    base_model: str
    continuous_from: str
    offline_standin: bool
    resumed: bool
    location: str
    project: str
    state_durations: dict[str, float]
    watched_seconds: float
    create_time: str
    start_time: str
    end_time: str
    request: TuningRequest | None
    experiment: str = ""
    sub_states: tuple[SubStateSpan, ...] = ()
    wait_warnings: tuple[str, ...] = ()
    data_stats: TuningDataStats | None = None
    truncated_examples: tuple[TruncatedExample, ...] = ()
    loss_curves: LossCurves = field(default_factory=LossCurves)
    overfitting: OverfittingVerdict | None = None
    output_uri: str = ""

    @property
    def no_endpoint_reason(self) -> str:
        """Why the later steps have no endpoint to ask ("" when the job reports one).

        Vertex deploys a tuned Gemini model to an endpoint itself; for an open model it tunes, the job is only
        known to name the Model Registry model and the files under ``output_uri``.
        """
        if self.endpoint:
            return ""
        files = f" (its files are in {self.output_uri})" if self.output_uri else ""
        return (
            f"Tuning job {self.tuning_job} succeeded, but Vertex reports no endpoint for the tuned model "
            f"{self.tuned_model}{files}: the evaluation has nothing to ask, so the run stops before the gate and "
            "nothing is promoted. Deploy the model to an endpoint to serve or evaluate it."
        )

    def checkpoint_candidates(self) -> list[CheckpointCandidate]:
        """Every checkpoint with the train and eval loss at its step (None where the curves say nothing)."""
        return [
            CheckpointCandidate(
                checkpoint_id=c.checkpoint_id, epoch=c.epoch, step=c.step, endpoint=c.endpoint,
                train_loss=value_at_step(self.loss_curves.train, c.step),
                eval_loss=value_at_step(self.loss_curves.eval, c.step),
            )
            for c in self.checkpoints
        ]

    @property
    def console_url(self) -> str:
        return console_url(self.tuning_job, self.location, self.project)

    @property
    def model_url(self) -> str:
        return model_resource_url(self.model_resource, self.location)

    def artifact_metadata(self) -> dict[str, Any]:
        """Metadata for the tuned model artifact (keys fixed by the pipeline contract, plus links).

        ``billable_tokens`` and ``actual_cost_usd`` are None when Vertex reported no token count.
        """
        return {
            "model_resource": self.model_resource,
            "model_version": self.model_version,
            "tuned_model": self.tuned_model,
            "endpoint": self.endpoint,
            "tuning_job": self.tuning_job,
            "checkpoints": [c.as_dict() for c in self.checkpoint_candidates()],
            "billable_tokens": self.billable_tokens,
            "actual_cost_usd": round(self.actual_cost_usd, 6) if self.actual_cost_usd is not None else None,
            "estimated_cost_usd": round(self.estimated_cost_usd, 6),
            "base_model": self.base_model,
            "continuous_from": self.continuous_from,
            "offline_standin": self.offline_standin,
            "resumed": self.resumed,
            "console_url": self.console_url,
            "model_url": self.model_url,
            "experiment": self.experiment,
            "sub_states": [asdict(s) for s in self.sub_states],
            "wait_warnings": list(self.wait_warnings),
            "data_stats": self.data_stats.as_dict() if self.data_stats else None,
            "truncated_examples": [asdict(t) for t in self.truncated_examples],
            "loss_curves_note": self.loss_curves.note,
            "output_uri": self.output_uri,
            "no_endpoint_reason": self.no_endpoint_reason,
            "overfitting": None if self.overfitting is None else {
                "overfitting": self.overfitting.overfitting, "known": self.overfitting.known,
                "message": self.overfitting.message, "best_eval_step": self.overfitting.best_eval_step,
            },
        }


def split_model_version(tuned_model: str) -> tuple[str, str]:
    """``projects/.../models/ID@1`` -> (``projects/.../models/ID``, ``"1"``); no ``@`` gives version ""."""
    resource, _, version = tuned_model.partition("@")
    return resource, version


def is_offline_standin(job: JobSnapshot, uses_local_server: bool) -> bool:
    """True when the job came from the offline stand-in rather than Vertex."""
    if uses_local_server:
        return True
    texts = [job.description, job.tuned_model, job.endpoint, *job.labels.values()]
    return any(OFFLINE_STANDIN_MARKER in text for text in texts if text)


def billable_count_covers_epochs(job: JobSnapshot, epochs: int) -> bool:
    """Whether the job's billable token count already covers every epoch (see the module docstring).

    True unless the job's character counts show the billable count is a single
    pass (billable characters below 1.5x the one-pass count while epochs > 1).
    """
    if epochs <= 1 or not job.tuning_characters or job.billable_characters is None:
        return True
    return job.billable_characters >= 1.5 * job.tuning_characters


def build_outcome(
    job: JobSnapshot,
    settings: TuningSettings,
    *,
    location: str,
    project: str,
    uses_local_server: bool,
    resumed: bool,
    state_durations: Mapping[str, float],
    watched_seconds: float,
    request: TuningRequest | None,
) -> TuningOutcome:
    """The outcome of a SUCCEEDED job; raises VertexApiError when Vertex reported no tuned model."""
    if not job.tuned_model:
        raise VertexApiError(
            f"Tuning job {job.name} succeeded but reports no tuned model; "
            f"open {console_url(job.name, location, project)}"
        )
    resource, version = split_model_version(job.tuned_model)
    epochs = job.epoch_count or settings.epochs
    price = settings.price_per_million_tokens()
    billable_tokens: int | None = None
    if job.billable_tokens is not None:
        covers_epochs = billable_count_covers_epochs(job, epochs)
        billable_tokens = job.billable_tokens if covers_epochs else job.billable_tokens * epochs
    actual_cost = billable_tokens * price / 1_000_000 if billable_tokens is not None else None
    outcome = TuningOutcome(
        tuning_job=job.name,
        state=job.state,
        tuned_model=job.tuned_model,
        model_resource=resource,
        model_version=version,
        endpoint=job.endpoint,
        checkpoints=job.checkpoints,
        billable_tokens=billable_tokens,
        reported_billable_tokens=job.billable_tokens,
        epochs=epochs,
        price_per_million_tokens_usd=price,
        actual_cost_usd=actual_cost,
        estimated_cost_usd=settings.estimated_cost_usd,
        base_model=job.base_model or settings.base_model,
        continuous_from=settings.start_model(),
        offline_standin=is_offline_standin(job, uses_local_server),
        resumed=resumed,
        location=location,
        project=project,
        state_durations=dict(state_durations),
        watched_seconds=watched_seconds,
        create_time=job.create_time,
        start_time=job.start_time,
        end_time=job.end_time,
        request=request,
        output_uri=job.output_uri or settings.output_uri,
    )
    if outcome.no_endpoint_reason:
        log.warning("%s", outcome.no_endpoint_reason)
    return outcome


def failure_error(
    job: JobSnapshot, location: str, project: str, previous_attempt: bool = False
) -> TuningJobFailedError:
    """The error for a job that ended FAILED, CANCELLED or EXPIRED, with its own message and name."""
    state = job.state.removeprefix("JOB_STATE_")
    reason = job.error_message or "Vertex gave no error message"
    code = f" (code {job.error_code})" if job.error_code is not None else ""
    text = f"Tuning job {job.name} ended {state}{code}: {reason}. Details: {console_url(job.name, location, project)}"
    if previous_attempt:
        text += (
            ". It was launched by an earlier attempt of this pipeline run; the step does not pay for a second job "
            "on its own. Fix the cause and start a new pipeline run, or set retry_failed_job=True."
        )
    return TuningJobFailedError(text)
