"""A scripted in-memory tuning service and a fake clock for the tune-stage unit tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from gemini_sft import tune
from gemini_sft.names import job_id
from gemini_sft.tune import JobSnapshot, TuningRequest

PROJECT = "proj"
LOCATION = "us-central1"


@dataclass
class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeJob:
    snapshot: JobSnapshot
    states: list[str]  # states the job moves through, one per get()


class FakeTuningService:
    """Jobs move through ``states`` one get() at a time; errors can be queued per call kind."""

    def __init__(
        self,
        states: tuple[str, ...] = (tune.STATE_PENDING, tune.STATE_RUNNING, tune.STATE_SUCCEEDED),
        error_message: str = "",
        billable_tokens: int | None = 1000,
    ) -> None:
        self.states = states
        self.error_message = error_message
        self.billable_tokens = billable_tokens
        self.jobs: dict[str, FakeJob] = {}
        self.calls: list[tuple[str, object]] = []
        self.errors: dict[str, list[Exception]] = {"create": [], "get": [], "list": [], "cancel": []}
        self.on_get: Callable[[int], None] | None = None
        self.on_create: Callable[[], None] | None = None
        self.create_lands_despite_error = False
        self._ids = itertools.count(1)

    def add_job(self, state: str, labels: Mapping[str, str], **fields: object) -> JobSnapshot:
        name = f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/{next(self._ids)}"
        snapshot = JobSnapshot(name=name, state=state, labels=dict(labels), **fields)  # type: ignore[arg-type]
        snapshot = self._finish(snapshot)
        self.jobs[name] = FakeJob(snapshot, [state])
        return snapshot

    def _finish(self, snapshot: JobSnapshot) -> JobSnapshot:
        if snapshot.state == tune.STATE_SUCCEEDED:
            model_id = job_id(snapshot.name)
            return replace(
                snapshot,
                tuned_model=f"projects/{PROJECT}/locations/{LOCATION}/models/m{model_id}@1",
                endpoint=f"projects/{PROJECT}/locations/{LOCATION}/endpoints/e{model_id}",
                checkpoints=(tune.Checkpoint("1", epoch=1, step=10),),
                billable_tokens=self.billable_tokens,
            )
        if snapshot.state in tune.FAILED_STATES:
            return replace(snapshot, error_message=self.error_message, error_code=9)
        return snapshot

    def _raise_queued(self, kind: str) -> None:
        if self.errors[kind]:
            raise self.errors[kind].pop(0)

    def create(self, request: TuningRequest) -> JobSnapshot:
        self.calls.append(("create", request))
        if self.errors["create"] and self.create_lands_despite_error:
            self._store_new(request)
        self._raise_queued("create")
        stored = self._store_new(request)
        if self.on_create:
            self.on_create()
        return stored

    def _store_new(self, request: TuningRequest) -> JobSnapshot:
        name = f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/{next(self._ids)}"
        snapshot = JobSnapshot(
            name=name,
            state=self.states[0],
            labels=dict(request.labels),
            base_model=request.base_model,
            description=request.description,
            epoch_count=request.epoch_count,
            create_time=f"2026-11-21T00:00:{len(self.jobs):02d}",
        )
        self.jobs[name] = FakeJob(snapshot, list(self.states[1:]))
        return snapshot

    def get(self, name: str) -> JobSnapshot:
        self.calls.append(("get", name))
        if self.on_get:
            self.on_get(sum(1 for kind, _ in self.calls if kind == "get"))
        self._raise_queued("get")
        job = self.jobs[name]
        if job.states:
            job.snapshot = self._finish(replace(job.snapshot, state=job.states.pop(0)))
        return job.snapshot

    def find_by_labels(self, labels: Mapping[str, str]) -> list[JobSnapshot]:
        self.calls.append(("list", dict(labels)))
        self._raise_queued("list")
        return [
            job.snapshot
            for job in self.jobs.values()
            if all(job.snapshot.labels.get(k) == v for k, v in labels.items())
        ]

    def cancel(self, name: str) -> None:
        self.calls.append(("cancel", name))
        self._raise_queued("cancel")
        job = self.jobs[name]
        job.states = []
        job.snapshot = replace(job.snapshot, state=tune.STATE_CANCELLED, error_message="cancelled by user")

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.calls if k == kind)
