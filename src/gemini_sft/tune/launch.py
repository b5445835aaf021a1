"""Launch or resume: find the job an earlier attempt of this step launched, else create one, exactly once.

Idempotent resume: a job recorded in an earlier attempt's ``gcp_resources``
file, or any job carrying this step's identity labels (``gemini-sft-run=<run>``
and ``gemini-sft-request=<fingerprint of the settings>``, so two tune steps of
one run never take each other's job), is resumed instead of launching a second
paid job. A SUCCEEDED job is reused as is. A job that ended FAILED, CANCELLED
or EXPIRED is *not* relaunched automatically: the step fails again with that
job's error, because paying for a second attempt must be a decision
(``retry_failed_job``, or a new pipeline run, which has a new label).

A transient error on create is followed by a label search before trying
again, so a create that reached the server is never repeated.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Mapping, Sequence

from gemini_sft.errors import TransientApiError, VertexApiError
from gemini_sft.names import JOB_NAME_RE, job_id, job_resource_url
from gemini_sft.tune.outcome import failure_error
from gemini_sft.tune.service import JobSnapshot, Sleep, TuningRequest, TuningService, call_api, jobs_labelled
from gemini_sft.tune.settings import REQUEST_LABEL_KEY, RUN_LABEL_KEY
from gemini_sft.tune.watch import WatchSettings

log = logging.getLogger(__name__)

GCP_RESOURCE_TYPE = "TuningJob"


def identity_labels(request: TuningRequest) -> dict[str, str]:
    """The labels that say "launched by this step of this pipeline run": run and request fingerprint.

    Empty when no pipeline run is known (such a job can never be resumed).
    Two tune steps of one run with different settings (e.g. in a ParallelFor)
    get different fingerprints, so neither resumes the other's job.
    """
    if RUN_LABEL_KEY not in request.labels:
        return {}
    return {key: request.labels[key] for key in (RUN_LABEL_KEY, REQUEST_LABEL_KEY) if key in request.labels}


def gcp_resources_json(job_name: str, location: str) -> str:
    """The ``gcp_resources`` document Google's long-running components write (see GCPC job_remote_runner)."""
    return json.dumps(
        {"resources": [{"resourceType": GCP_RESOURCE_TYPE, "resourceUri": job_resource_url(job_name, location)}]}
    )


def job_name_from_gcp_resources(text: str) -> str | None:
    """The tuning job named in a ``gcp_resources`` document, or None when it names none."""
    if not text.strip():
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        log.warning("gcp_resources of an earlier attempt is not JSON; ignoring it")
        return None
    for resource in document.get("resources", []):
        if resource.get("resourceType") == GCP_RESOURCE_TYPE:
            uri = str(resource.get("resourceUri", ""))
            marker = uri.find("/v1/")
            if marker >= 0 and JOB_NAME_RE.match(uri[marker + 4 :]):
                return uri[marker + 4 :]
    return None


def write_gcp_resources(path: str | Path | None, job_name: str, location: str) -> None:
    """Write the ``gcp_resources`` output for ``job_name`` (no-op without a path)."""
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(gcp_resources_json(job_name, location))


def read_recorded_job(path: str | Path | None) -> str | None:
    """The job named in an existing ``gcp_resources`` file from an earlier attempt, or None."""
    if path is None:
        return None
    target = Path(path)
    if not target.is_file():
        return None
    return job_name_from_gcp_resources(target.read_text())


def _latest(jobs: Sequence[JobSnapshot]) -> JobSnapshot:
    return max(jobs, key=lambda j: (j.create_time, j.name))


def find_previous_job(
    service: TuningService, identity: Mapping[str, str], recorded_job: str | None, sleep: Sleep = time.sleep
) -> JobSnapshot | None:
    """The job an earlier attempt of this step launched, or None.

    Looks at the job named in the earlier ``gcp_resources`` first, then at
    jobs carrying this step's identity labels (run and request fingerprint).
    Prefers a live or succeeded job over a failed one; among equals, the newest.
    """
    candidates: list[JobSnapshot] = []
    if recorded_job:
        try:
            candidates.append(call_api(lambda: service.get(recorded_job), "get", sleep=sleep))
        except VertexApiError as error:
            log.warning("the job recorded by an earlier attempt cannot be read (%s); searching by label", error)
    known = {job.name for job in candidates}
    candidates.extend(job for job in jobs_labelled(service, identity, sleep) if job.name not in known)
    if not candidates:
        return None
    usable = [j for j in candidates if not j.has_failed]
    if len(usable) > 1:
        log.warning("%d tuning jobs carry this step's labels; resuming the newest", len(usable))
    return _latest(usable) if usable else _latest(candidates)


def create_job(
    service: TuningService,
    request: TuningRequest,
    watch: WatchSettings,
    sleep: Sleep = time.sleep,
) -> JobSnapshot:
    """Create the job; after a transient failure, look for it by label before trying again.

    Not a plain retry (so not :func:`gemini_sft.retry.call_with_retries`): between two attempts the
    label search may find that the failed-looking create did reach Vertex.
    Raises VertexApiError when creation keeps failing or fails for good.
    """
    for attempt in range(1, watch.create_attempts + 1):
        try:
            job = service.create(request)
            log.info("launched tuning job %s (%s)", job_id(job.name), job.state)
            return job
        except TransientApiError as error:
            log.warning("creating the tuning job failed transiently (attempt %d/%d)", attempt, watch.create_attempts)
            if attempt == watch.create_attempts:
                raise VertexApiError(
                    f"Creating the tuning job failed {attempt} times; last error: {error}"
                ) from error
            sleep(min(watch.initial_poll_seconds * 2 ** (attempt - 1), watch.max_poll_seconds))
            landed = [j for j in jobs_labelled(service, identity_labels(request), sleep) if not j.has_failed]
            if landed:
                job = _latest(landed)
                log.info("the create call had reached Vertex: using tuning job %s", job_id(job.name))
                return job
    raise AssertionError("unreachable")


def launch_or_resume(
    service: TuningService,
    request: TuningRequest,
    watch: WatchSettings,
    project: str,
    location: str,
    gcp_resources_path: str | Path | None,
    *,
    retry_failed_job: bool = False,
    sleep: Sleep = time.sleep,
) -> tuple[JobSnapshot, bool]:
    """The job to watch and whether it was resumed: an earlier attempt's live or succeeded job, else a new one.

    Raises TuningJobFailedError when the earlier attempt's job ended badly and
    ``retry_failed_job`` is off (nothing is launched).
    """
    previous = find_previous_job(
        service, identity_labels(request), read_recorded_job(gcp_resources_path), sleep=sleep
    )
    if previous is not None and not previous.has_failed:
        log.info("resuming tuning job %s launched by an earlier attempt (%s)", job_id(previous.name), previous.state)
        return previous, True
    if previous is not None and not retry_failed_job:
        write_gcp_resources(gcp_resources_path, previous.name, location)
        raise failure_error(previous, location, project, previous_attempt=True)
    if previous is not None:
        log.warning(
            "earlier tuning job %s ended %s; launching a new one (retry_failed_job)",
            job_id(previous.name),
            previous.state,
        )
    return create_job(service, request, watch, sleep=sleep), False
