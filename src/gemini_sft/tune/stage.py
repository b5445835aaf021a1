"""The tune stage from settings to outcome: check, launch or resume, watch, account."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

from gemini_sft.tune.launch import identity_labels, launch_or_resume, write_gcp_resources
from gemini_sft.tune.outcome import TuningOutcome, build_outcome, failure_error
from gemini_sft.tune.service import Clock, Sleep, TuningService
from gemini_sft.tune.settings import TuningData, TuningSettings
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

    scope = StopScope(identity=identity_labels(request))
    with cancel_on_sigterm(service, scope, enabled=handle_sigterm and settings.cancel_on_stop, sleep=sleep):
        job, resumed = launch_or_resume(
            service, request, watch, project, location, gcp_resources_path,
            retry_failed_job=settings.retry_failed_job, sleep=sleep,
        )
        scope.job_name = job.name
        write_gcp_resources(gcp_resources_path, job.name, location)
        final, durations, watched = watch_job(
            service, job, watch, cancel_on_timeout=settings.cancel_on_timeout, clock=clock, sleep=sleep, rng=rng
        )
    if final.has_failed:
        raise failure_error(final, location, project)
    return build_outcome(
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
