"""The tuning job's detail state (``tuning_job_state``) over time, and warnings for long waits.

While a job is RUNNING, Vertex reports what it is doing in
``tuning_job_state``: ``TUNING_JOB_STATE_WAITING_FOR_QUOTA``,
``_PROCESSING_DATASET``, ``_WAITING_FOR_CAPACITY``, ``_TUNING``,
``_POST_PROCESSING``. :class:`SubStateRecorder` logs each change with the
time it began and how long the previous one lasted, and raises one warning
per waiting sub-state once the job has waited in it longer than the
configured minutes (which quota or capacity, in which region, what to do).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from gemini_sft.names import job_id

log = logging.getLogger(__name__)

PREFIX = "TUNING_JOB_STATE_"
WAITING_FOR_QUOTA = PREFIX + "WAITING_FOR_QUOTA"
PROCESSING_DATASET = PREFIX + "PROCESSING_DATASET"
WAITING_FOR_CAPACITY = PREFIX + "WAITING_FOR_CAPACITY"
TUNING = PREFIX + "TUNING"
POST_PROCESSING = PREFIX + "POST_PROCESSING"
WAITING_SUB_STATES = frozenset({WAITING_FOR_QUOTA, WAITING_FOR_CAPACITY})


def short_name(sub_state: str) -> str:
    """``TUNING_JOB_STATE_WAITING_FOR_QUOTA`` -> ``WAITING_FOR_QUOTA``."""
    return sub_state.removeprefix(PREFIX)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SubStateSpan:
    """One stretch of a sub-state: when it began (UTC, ISO 8601) and seconds spent in it as observed."""

    sub_state: str
    began_at: str
    seconds: float


def wait_warning(sub_state: str, job_name: str, location: str, minutes: float, limit_minutes: float) -> str:
    """The plain-words warning for a job that has waited ``minutes`` in a waiting sub-state."""
    waited = f"Tuning job {job_id(job_name)} has waited {minutes:.0f} min"
    limit = f"(more than quota_wait_warning_minutes={limit_minutes:g})"
    if sub_state == WAITING_FOR_QUOTA:
        return (
            f"{waited} for tuning quota in {location} {limit}: Vertex AI's concurrent tuning jobs quota "
            f"(aiplatform.googleapis.com) in region {location} is in use by other jobs. Wait, cancel other tuning "
            f"jobs in {location}, or ask for more of that quota in the console (IAM & Admin > Quotas)."
        )
    return (
        f"{waited} for hardware capacity in {location} {limit}: Vertex has no free tuning accelerators in region "
        f"{location} now. Wait, or run in another tuning region."
    )


@dataclass
class SubStateRecorder:
    """Records the sub-states of one watch and warns about long waits.

    Args (fields):
        job_name: the job's resource name (for messages).
        location: the job's region (named in warnings).
        warn_after_minutes: minutes in WAITING_FOR_QUOTA or WAITING_FOR_CAPACITY before a warning; 0 never warns.
        wall_clock: the UTC time as ISO 8601 (tests pass a fixed one).
    """

    job_name: str
    location: str
    warn_after_minutes: float = 30.0
    wall_clock: Callable[[], str] = _utc_now
    spans: list[SubStateSpan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _current: str = ""
    _since: float = 0.0
    _began_at: str = ""
    _waited: dict[str, float] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    def observe(self, sub_state: str, now: float) -> None:
        """Note the sub-state read at monotonic time ``now`` ("" when the job reports none)."""
        if sub_state != self._current:
            self._close(now)
            if sub_state:
                log.info("tuning job %s: sub-state %s since %s", job_id(self.job_name), short_name(sub_state),
                         self.wall_clock())
            self._current, self._since, self._began_at = sub_state, now, self.wall_clock()
        self._check_wait(now)

    def finish(self, now: float) -> None:
        """Close the last stretch when the watch ends."""
        self._check_wait(now)
        self._close(now)
        self._current = ""

    def _close(self, now: float) -> None:
        if not self._current:
            return
        seconds = max(0.0, now - self._since)
        self.spans.append(SubStateSpan(self._current, self._began_at, seconds))
        self._waited[self._current] = self._waited.get(self._current, 0.0) + seconds
        log.info("tuning job %s: %s lasted %.0fs", job_id(self.job_name), short_name(self._current), seconds)

    def _check_wait(self, now: float) -> None:
        if self._current not in WAITING_SUB_STATES or self._current in self._warned or self.warn_after_minutes <= 0:
            return
        minutes = (self._waited.get(self._current, 0.0) + now - self._since) / 60
        if minutes > self.warn_after_minutes:
            warning = wait_warning(self._current, self.job_name, self.location, minutes, self.warn_after_minutes)
            self._warned.add(self._current)
            self.warnings.append(warning)
            log.warning("%s", warning)
