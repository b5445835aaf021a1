"""Watching a tuning job: polls with backoff and jitter, state-change logs, the maximum wait, cancel on SIGTERM.

Maximum wait: when the job has not ended after ``WatchSettings.max_wait_seconds``
of watching, :class:`~gemini_sft.errors.TuningTimeoutError` is raised and, by
default, the job is **left running**: its tokens are being paid for anyway, and
a retry of the step (or of the pipeline run, same label) resumes watching it
and uses the result. ``cancel_on_timeout`` cancels it instead.

On SIGTERM (the pipeline run was cancelled) the job is cancelled and the step
fails (:class:`~gemini_sft.errors.TuningStoppedError`). A preempted pod also
gets SIGTERM and cannot be told apart: on preemptible nodes turn
``cancel_on_stop`` off so the retry resumes the job instead.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Iterator, Mapping

from gemini_sft.errors import (
    TransientApiError,
    TuningSettingsError,
    TuningStoppedError,
    TuningTimeoutError,
    VertexApiError,
)
from gemini_sft.names import job_id
from gemini_sft.retry import RetryPolicy
from gemini_sft.tune.service import Clock, JobSnapshot, Sleep, TuningService, call_api, jobs_labelled
from gemini_sft.tune.sub_states import SubStateRecorder

log = logging.getLogger(__name__)

# A cancel is worth a few quick tries: it runs while the step is being stopped.
CANCEL_RETRY = RetryPolicy(max_attempts=3, initial_backoff=2.0, max_backoff=10.0, multiplier=2.0, jitter=0.0)


@dataclass(frozen=True)
class WatchSettings:
    """The pace of the watch.

    Polls start ``initial_poll_seconds`` apart and grow by ``backoff_factor``
    up to ``max_poll_seconds``; each wait is jittered by +-``jitter_fraction``.
    ``max_consecutive_errors`` transient errors in a row end the watch with
    VertexApiError (the job is left running and a retry resumes it).
    ``create_attempts`` bounds the attempts to create the job.
    """

    max_poll_seconds: float = 60.0
    initial_poll_seconds: float = 5.0
    backoff_factor: float = 1.5
    jitter_fraction: float = 0.2
    max_wait_seconds: float = 24 * 3600.0
    max_consecutive_errors: int = 30
    create_attempts: int = 5

    def __post_init__(self) -> None:
        if self.max_poll_seconds <= 0 or self.initial_poll_seconds <= 0:
            raise TuningSettingsError("poll intervals must be > 0 seconds")
        if self.max_wait_seconds <= 0:
            raise TuningSettingsError("the maximum wait must be > 0")
        if self.backoff_factor < 1 or not 0 <= self.jitter_fraction < 1:
            raise TuningSettingsError("backoff_factor must be >= 1 and jitter_fraction in [0, 1)")

    @classmethod
    def from_pipeline(cls, poll_interval_seconds: float, max_wait_hours: float) -> "WatchSettings":
        """Watch settings from the pipeline parameters (poll interval is the backoff ceiling)."""
        if poll_interval_seconds <= 0:
            raise TuningSettingsError(f"poll_interval_seconds must be > 0, got {poll_interval_seconds}")
        if max_wait_hours <= 0:
            raise TuningSettingsError(f"max_wait_hours must be > 0, got {max_wait_hours}")
        return cls(
            max_poll_seconds=poll_interval_seconds,
            initial_poll_seconds=min(5.0, poll_interval_seconds),
            max_wait_seconds=max_wait_hours * 3600.0,
        )


@dataclass
class _Watch:
    """State of one watch: the latest job read, when its state began, seconds per state so far."""

    job: JobSnapshot
    started_at: float
    state_since: float
    durations: dict[str, float] = field(default_factory=dict)


def _log_state(job: JobSnapshot, previous: str | None, elapsed: float, in_previous: float) -> None:
    if previous is None:
        log.info("tuning job %s is %s (elapsed %.0fs)", job_id(job.name), job.state, elapsed)
    else:
        log.info(
            "tuning job %s: %s -> %s after %.0fs in %s (elapsed %.0fs)",
            job_id(job.name), previous, job.state, in_previous, previous, elapsed,
        )


def watch_job(
    service: TuningService,
    job: JobSnapshot,
    watch: WatchSettings,
    *,
    cancel_on_timeout: bool = False,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    sub_states: SubStateRecorder | None = None,
) -> tuple[JobSnapshot, dict[str, float], float]:
    """Poll ``job`` until it ends; returns (final job, seconds per observed state, seconds watched).

    The maximum wait counts from when this call starts watching (a resumed job
    gets a full wait). ``sub_states``, when given, records each read's
    ``tuning_job_state`` (and warns about long waits for quota or capacity). Raises TuningTimeoutError after
    ``watch.max_wait_seconds`` (cancelling the job only when
    ``cancel_on_timeout``), VertexApiError on a non-transient error or
    too many transient errors in a row.
    """
    rng = rng or random.Random()
    start = clock()
    state = _Watch(job=job, started_at=start, state_since=start)
    _log_state(job, None, 0.0, 0.0)
    if sub_states is not None:
        sub_states.observe(job.tuning_job_state, start)
    delay = watch.initial_poll_seconds
    consecutive_errors = 0
    polls = 0
    # A failed poll is not retried on its own schedule: the next poll comes at the watch's pace and within
    # the maximum wait, so an outage of up to max_consecutive_errors polls is ridden out.
    while not state.job.has_ended:
        elapsed = clock() - start
        remaining = watch.max_wait_seconds - elapsed
        if remaining <= 0:
            _on_timeout(service, state.job, watch, elapsed, cancel_on_timeout, sleep)
        jittered = delay * (1 + rng.uniform(-watch.jitter_fraction, watch.jitter_fraction))
        sleep(max(0.0, min(jittered, remaining)))
        delay = min(delay * watch.backoff_factor, watch.max_poll_seconds)
        polls += 1
        try:
            current = service.get(state.job.name)
        except TransientApiError as error:
            consecutive_errors += 1
            log.warning(
                "polling tuning job %s failed transiently (%s; %d in a row); retrying",
                job_id(state.job.name), error.status_code or type(error).__name__, consecutive_errors,
            )
            if consecutive_errors >= watch.max_consecutive_errors:
                raise VertexApiError(
                    f"Polling tuning job {state.job.name} failed {consecutive_errors} times in a row; the job "
                    f"was left running and a retry of this step resumes it. Last error: {error}"
                ) from error
            continue
        consecutive_errors = 0
        now = clock()
        if current.state != state.job.state:
            in_previous = now - state.state_since
            state.durations[state.job.state] = state.durations.get(state.job.state, 0.0) + in_previous
            _log_state(current, state.job.state, now - start, in_previous)
            state.state_since = now
        state.job = current
        if sub_states is not None:
            sub_states.observe(current.tuning_job_state, now)
    end = clock()
    if sub_states is not None:
        sub_states.finish(end)
    state.durations[state.job.state] = state.durations.get(state.job.state, 0.0) + (end - state.state_since)
    log.info(
        "tuning job %s ended %s after %d polls (%.0fs watched)", job_id(state.job.name), state.job.state, polls,
        end - start,
    )
    return state.job, state.durations, end - start


def _on_timeout(
    service: TuningService, job: JobSnapshot, watch: WatchSettings, elapsed: float, cancel: bool, sleep: Sleep
) -> None:
    hours = watch.max_wait_seconds / 3600
    if cancel:
        cancel_job(service, job.name, sleep=sleep)
        raise TuningTimeoutError(
            f"Tuning job {job.name} was still {job.state} after {elapsed:.0f}s (max_wait_hours={hours:g}); "
            "it was cancelled (cancel_on_timeout)."
        )
    raise TuningTimeoutError(
        f"Tuning job {job.name} was still {job.state} after {elapsed:.0f}s (max_wait_hours={hours:g}). "
        "It was left running: retry this step (same pipeline run) to resume watching it, or cancel it in the "
        "console; raise max_wait_hours for long jobs."
    )


def cancel_job(service: TuningService, name: str, sleep: Sleep = time.sleep) -> bool:
    """Ask Vertex to cancel ``name``; transient errors retried; True when the request was accepted.

    Never raises a VertexApiError: a failed cancel is logged and reported as False.
    """
    try:
        call_api(lambda: service.cancel(name), "cancel", policy=CANCEL_RETRY, sleep=sleep)
    except VertexApiError as error:
        log.error("cancel of tuning job %s failed: %s", job_id(name), error)
        return False
    log.info("cancel requested for tuning job %s", job_id(name))
    return True


class _StopRequested(BaseException):
    """Raised by the SIGTERM handler to unwind the watch (BaseException: nothing may swallow it)."""


@dataclass
class StopScope:
    """What a SIGTERM must cancel: the job once known, else this step's live jobs (found by identity labels)."""

    identity: Mapping[str, str] = field(default_factory=dict)
    job_name: str | None = None

    def jobs_to_cancel(self, service: TuningService, sleep: Sleep) -> list[str]:
        if self.job_name:
            return [self.job_name]
        # Stopped between create and its answer: the job may exist without us knowing its name.
        return [j.name for j in jobs_labelled(service, self.identity, sleep) if not j.has_ended]


@contextlib.contextmanager
def cancel_on_sigterm(
    service: TuningService, scope: StopScope, enabled: bool = True, sleep: Sleep = time.sleep
) -> Iterator[StopScope]:
    """While active, SIGTERM cancels the scope's tuning job and raises TuningStoppedError.

    The handler only unwinds the stack; the cancel call is made after the
    interrupted HTTP request is gone, on a fresh client. Signal handlers can be
    set only in the main thread: elsewhere this does nothing.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield scope
        return

    def _handler(signum: int, frame: FrameType | None) -> None:
        raise _StopRequested()

    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield scope
    except _StopRequested:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cancel
        names = scope.jobs_to_cancel(service, sleep)
        log.warning("SIGTERM received: cancelling %d tuning job(s)", len(names))
        cancelled = [name for name in names if cancel_job(service, name, sleep=sleep)]
        if not names:
            outcome = "no tuning job had been launched."
        elif len(cancelled) == len(names):
            outcome = f"tuning job {', '.join(names)} was cancelled."
        else:
            outcome = f"cancelling tuning job {', '.join(names)} FAILED: cancel it in the console."
        raise TuningStoppedError(f"The step was stopped (SIGTERM); {outcome}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
