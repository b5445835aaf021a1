"""Asking every model about every holdout case: paced, retried, exactly one answer per pair.

Every holdout example goes to every model (base, tuned and, when given,
champion) through a :class:`Generator` -- a callable taking an
:class:`~gemini_sft.examples.EvaluationCase` and returning a
:class:`GenerationResult`. This module knows no cloud SDK; the google-genai
implementation is :class:`gemini_sft.vertex_client.GenAIGenerator`.

Calls run on a bounded thread pool, paced by one :class:`RequestRateLimiter`
shared by all models (every attempt, retries included, takes a slot), and are
retried through :func:`gemini_sft.retry.call_with_retries` when the failure is
transient (429, 500, 503, timeouts, connection errors). A call that still fails
is recorded as an error for that example and model: it is neither dropped nor
scored as an empty answer. Every (example, model) pair gets exactly one :class:`Answer`.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

from gemini_sft.errors import ConfigError, EvaluationError, GenerationCallError
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.evaluation.progress import ProgressReporter
from gemini_sft.examples import EvaluationCase
from gemini_sft.retry import RetryPolicy, call_with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationResult:
    """A model's answer to one case: its text, the model version that produced it, why it stopped.

    ``finish_reason`` is the API's value (``STOP``, ``MAX_TOKENS``, ``SAFETY``, ...), "" when unknown.
    Token counts are the API's usage figures (0 when not reported): ``output_tokens`` counts the
    answer, ``thinking_tokens`` the thoughts before it (billed as output, and within
    ``max_output_tokens``). ``latency_seconds``: how long the answer took where it was made, for an
    answer made elsewhere (a recorded one); None: the call's own time is measured.
    """

    text: str
    model_version: str = ""
    finish_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    latency_seconds: float | None = None


class Generator(Protocol):
    """Answers one evaluation case; raises GenerationCallError (or TimeoutError/ConnectionError) on failure."""

    def __call__(self, case: EvaluationCase) -> GenerationResult: ...


@dataclass(frozen=True)
class Answer:
    """The outcome of asking one model about one example: text, or an error after ``attempts`` tries."""

    example_id: str
    role: str
    text: str | None
    error: str | None
    attempts: int
    model_version: str = ""
    latency_seconds: float = 0.0
    finish_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class RequestRateLimiter:
    """Spaces requests evenly so that at most ``requests_per_minute`` start per minute.

    Each :meth:`acquire` reserves the next free start slot (slots are ``60 /
    requests_per_minute`` seconds apart) and sleeps until it. Idle time does not
    accumulate credit, so there is never a burst above the cap. Thread-safe; the
    clock and sleep functions are injectable for tests.
    """

    def __init__(
        self,
        requests_per_minute: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not requests_per_minute or requests_per_minute <= 0 or not math.isfinite(requests_per_minute):
            raise ConfigError(f"requests_per_minute must be a positive number, got {requests_per_minute!r}")
        self.requests_per_minute = float(requests_per_minute)
        self.interval = 60.0 / self.requests_per_minute
        self._clock = clock
        self._sleep = sleep
        self._next_slot: float | None = None
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next start slot; returns how many seconds to wait before starting."""
        with self._lock:
            now = self._clock()
            slot = now if self._next_slot is None else max(now, self._next_slot)
            self._next_slot = slot + self.interval
            return slot - now

    def acquire(self) -> None:
        """Block until this caller may start a request."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed when tried again."""
    if isinstance(exc, GenerationCallError):
        return exc.retryable
    return isinstance(exc, (TimeoutError, ConnectionError))


def describe_error(exc: BaseException) -> str:
    """A short description of a failure, without any example content."""
    if isinstance(exc, GenerationCallError):
        return f"HTTP {exc.status_code}: {exc}" if exc.status_code else str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Counters:
    def __init__(self, total: int, progress: ProgressReporter | None) -> None:
        self.total = total
        self.done = 0
        self.errors = 0
        self.retries = 0
        self.progress = progress
        self._lock = threading.Lock()

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def finished(self, answer: Answer) -> None:
        with self._lock:
            self.done += 1
            if not answer.ok:
                self.errors += 1
            if self.progress is not None:
                self.progress.update(self.done, self.total, self.errors, self.retries)


@dataclass
class GenerationStats:
    """Counts of one generation run."""

    calls: int
    attempts: int
    retries: int
    errors: int
    elapsed_seconds: float

    @property
    def attempts_per_minute(self) -> float:
        return 60.0 * self.attempts / self.elapsed_seconds if self.elapsed_seconds > 0 else math.nan


def _ask(
    holdout: HoldoutCase,
    role: str,
    generator: Generator,
    limiter: RequestRateLimiter | None,
    retry: RetryPolicy,
    rng: random.Random,
    sleep: Callable[[float], None],
    counters: _Counters,
) -> Answer:
    """One model's answer to one case: a success, or the error left after the retries (never raised)."""
    started = time.monotonic()
    attempts = 0

    def attempt() -> GenerationResult:
        nonlocal attempts
        attempts += 1
        if limiter is not None:
            limiter.acquire()  # every attempt, retries included, takes a slot
        return generator(holdout.case)

    try:
        result = call_with_retries(
            attempt, retryable=is_retryable, policy=retry, what=f"{role} model call", sleep=sleep, rng=rng,
            on_retry=lambda _attempt, _error: counters.retried(),
        )
    except (GenerationCallError, TimeoutError, ConnectionError) as exc:
        log.debug("example %s, %s model: giving up after %d attempts", holdout.example_id, role, attempts)
        return Answer(
            example_id=holdout.example_id,
            role=role,
            text=None,
            error=describe_error(exc),
            attempts=attempts,
            latency_seconds=time.monotonic() - started,
        )
    return Answer(
        example_id=holdout.example_id,
        role=role,
        text=result.text if result.text is not None else "",
        error=None,
        attempts=attempts,
        model_version=result.model_version or "",
        latency_seconds=_latency(result, started),
        finish_reason=result.finish_reason or "",
        input_tokens=int(getattr(result, "input_tokens", 0) or 0),
        output_tokens=int(getattr(result, "output_tokens", 0) or 0),
        thinking_tokens=int(getattr(result, "thinking_tokens", 0) or 0),
    )


def _latency(result: GenerationResult, started: float) -> float:
    """The answer's own latency when it was made elsewhere, else the time this call took."""
    recorded = getattr(result, "latency_seconds", None)
    return float(recorded) if recorded is not None else time.monotonic() - started


def generate_answers(
    cases: Sequence[HoldoutCase],
    generators: Mapping[str, Generator],
    *,
    max_concurrency: int = 8,
    limiter: RequestRateLimiter | None = None,
    retry: RetryPolicy | None = None,
    progress: ProgressReporter | None = None,
    seed: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, list[Answer]], GenerationStats]:
    """Ask every generator about every case; returns answers per role, aligned with ``cases``.

    Exactly one Answer per (case, role): a success, or an error after the retries.
    Exceptions other than GenerationCallError/TimeoutError/ConnectionError are bugs and
    propagate. ``seed`` seeds the backoff jitter.
    """
    if max_concurrency < 1:
        raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}")
    retry = retry or RetryPolicy()
    roles = list(generators)
    slots: dict[str, list[Answer | None]] = {role: [None] * len(cases) for role in roles}
    counters = _Counters(len(cases) * len(roles), progress)
    rng_lock = threading.Lock()
    master_rng = random.Random(seed)

    def task(index: int, role: str) -> tuple[int, str, Answer]:
        with rng_lock:
            rng = random.Random(master_rng.random())
        answer = _ask(cases[index], role, generators[role], limiter, retry, rng, sleep, counters)
        counters.finished(answer)
        return index, role, answer

    started = time.monotonic()
    # Interleave models so that a slow or failing model does not hold back the others.
    work = [(i, role) for i in range(len(cases)) for role in roles]
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="evaluate") as pool:
        futures = [pool.submit(task, i, role) for i, role in work]
        try:
            for future in as_completed(futures):
                index, role, answer = future.result()
                if slots[role][index] is not None:
                    raise EvaluationError(f"example {cases[index].example_id} was answered twice by {role}")
                slots[role][index] = answer
        except BaseException:
            # a bug or Ctrl-C: send no further requests, let calls in flight finish, re-raise
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if progress is not None:
        progress.close()
    elapsed = time.monotonic() - started

    answers: dict[str, list[Answer]] = {}
    for role in roles:
        missing = [cases[i].example_id for i, a in enumerate(slots[role]) if a is None]
        if missing:
            raise EvaluationError(f"{len(missing)} examples have no answer from {role}")
        answers[role] = [a for a in slots[role] if a is not None]
    all_answers = [a for role in roles for a in answers[role]]
    stats = GenerationStats(
        calls=len(all_answers),
        attempts=sum(a.attempts for a in all_answers),
        retries=counters.retries,
        errors=sum(1 for a in all_answers if not a.ok),
        elapsed_seconds=elapsed,
    )
    log.info(
        "generation finished: %d calls, %d attempts, %d failed, %.1f s", stats.calls, stats.attempts, stats.errors, elapsed
    )
    return answers, stats
