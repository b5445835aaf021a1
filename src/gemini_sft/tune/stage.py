"""The tune stage from settings to outcome: check, launch or resume, watch, account."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import replace
from pathlib import Path

from gemini_sft import model_catalog
from gemini_sft.dataset.source_lines import SourceLines
from gemini_sft.errors import VertexApiError
from gemini_sft.tune.curves import LossCurves, overfitting_verdict
from gemini_sft.tune.data_stats import locate_truncated_examples
from gemini_sft.tune.launch import identity_labels, launch_or_resume, write_gcp_resources
from gemini_sft.tune.outcome import TuningOutcome, build_outcome, failure_error
from gemini_sft.tune.service import Clock, CurveReader, JobSnapshot, Sleep, TuningService, call_api
from gemini_sft.tune.settings import TuningData, TuningSettings
from gemini_sft.tune.sub_states import SubStateRecorder
from gemini_sft.tune.watch import StopScope, WatchSettings, cancel_on_sigterm, watch_job

log = logging.getLogger(__name__)


def run_tuning(
    settings: TuningSettings,
    data: TuningData,
    service: TuningService,
    *,
    project: str,
    location: str,
    uses_local_server: bool = False,
    gcp_resources_path: str | Path | None = None,
    watch: WatchSettings | None = None,
    handle_sigterm: bool = True,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    curve_reader: CurveReader | None = None,
    training_file: str | Path | None = None,
    source_lines: SourceLines | None = None,
) -> TuningOutcome:
    """Launch (or resume) the tuning job for ``settings`` and watch it to the end.

    Args:
        settings: the stage's settings; checked here before any call.
        data: the training and validation datasets.
        service: the tuning calls (the real one, or a fake in tests).
        project: Google Cloud project of the job.
        location: region of the job.
        uses_local_server: True when the service talks to a local server (local paths allowed; marked offline).
        gcp_resources_path: the ``gcp_resources`` output, written as soon as the job is known; an earlier
            attempt's file names the job to resume.
        watch: the watch pace; None takes it from ``settings`` (tests pass a faster one).
        handle_sigterm: whether SIGTERM cancels the job (also needs ``settings.cancel_on_stop``).
        clock: monotonic time source.
        sleep: how to wait.
        rng: the poll jitter's random source.
        curve_reader: reads the loss curves of the job's Experiment after it ends; None reads none.
        training_file: local path of the training split, to give truncated examples their line numbers.
        source_lines: the clean stage's record of each split row's raw line, to name the raw line of a
            truncated example; None (or a record of another training file) names the training split's line.

    Returns:
        The :class:`TuningOutcome` of a SUCCEEDED job.

    Raises:
        TuningSettingsError (before any call), TuningJobFailedError (job ended FAILED/CANCELLED/EXPIRED, now
        or in an earlier attempt), TuningStoppedError (SIGTERM), TuningTimeoutError, VertexApiError.
    """
    settings.check(location, data, remote=not uses_local_server)
    watch = watch or settings.watch_settings()
    request = settings.build_request(data)
    if not settings.run_label:
        log.warning("no pipeline run name given: a retry of this step cannot find this job and would launch another")
    if settings.continuous_tuning and not settings.start_model():
        log.info("continuous tuning requested but no model is in production yet: tuning the base model")
    if settings.start_checkpoint_id and not settings.start_model():
        log.info("start_checkpoint_id %r is not sent: the job starts from the base model, which has no checkpoints",
                 settings.start_checkpoint_id)

    scope = StopScope(identity=identity_labels(request))
    with cancel_on_sigterm(service, scope, enabled=handle_sigterm and settings.cancel_on_stop, sleep=sleep):
        job, resumed = launch_or_resume(
            service, request, watch, project, location, gcp_resources_path,
            retry_failed_job=settings.retry_failed_job, sleep=sleep,
        )
        scope.job_name = job.name
        write_gcp_resources(gcp_resources_path, job.name, location)
        recorder = SubStateRecorder(job.name, location, settings.quota_wait_warning_minutes)
        final, durations, watched = watch_job(
            service, job, watch, cancel_on_timeout=settings.cancel_on_timeout, clock=clock, sleep=sleep, rng=rng,
            sub_states=recorder,
        )
    if final.has_failed:
        raise failure_error(final, location, project)
    outcome = build_outcome(
        final,
        settings,
        location=location,
        project=project,
        uses_local_server=uses_local_server,
        resumed=resumed,
        state_durations=durations,
        watched_seconds=watched,
        request=request,
    )
    curves = read_loss_curves(curve_reader, final, sleep=sleep)
    stats = final.data_stats
    truncated = tuple(locate_truncated_examples(
        stats, training_file, data.training_uri, source_lines, model_catalog.limits_for(settings.base_model),
    )) if stats else ()
    if truncated or (stats and stats.total_truncated_example_count):
        log.warning("Vertex truncated or dropped %d training examples (%d named)",
                    stats.total_truncated_example_count or len(truncated), len(truncated))
    epochs = outcome.epochs
    verdict = overfitting_verdict(curves, epochs, total_steps=final.tuning_step_count) if not curves.empty else None
    if verdict is not None:
        (log.warning if verdict.overfitting else log.info)("%s", verdict.message)
    return replace(
        outcome, experiment=final.experiment, sub_states=tuple(recorder.spans), wait_warnings=tuple(recorder.warnings),
        data_stats=stats, truncated_examples=truncated, loss_curves=curves, overfitting=verdict,
    )


def read_loss_curves(reader: CurveReader | None, job: JobSnapshot, sleep: Sleep = time.sleep) -> LossCurves:
    """The job's curves, or empty curves with a note saying why there are none; never raises.

    Args:
        reader: the curve reader (None: curves are not read).
        job: the finished job (its ``experiment`` names the curves).
        sleep: how to wait between retries of a transient failure.
    """
    if reader is None:
        return LossCurves.missing("Loss curves were not read (no reader for this run).")
    if not job.experiment:
        return LossCurves.missing("The tuning job names no Experiment, so it has no loss curves to read.")
    try:
        curves = call_api(lambda: reader.read_curves(job.experiment), "read loss curves", sleep=sleep)
    except VertexApiError as error:
        log.warning("the loss curves of %s could not be read; the run goes on without them: %s", job.experiment, error)
        return LossCurves.missing(f"The loss curves could not be read ({error}).")
    if curves.empty:
        log.warning("no loss curves: %s", curves.note)
    else:
        log.info("loss curves read: %d train and %d eval points", len(curves.train), len(curves.eval))
    return curves
