"""Have models answer the holdout prompts, then score and compare them.

Generation: every holdout example goes to every model (base, tuned and, when
given, champion) through a :data:`Generator` -- a callable taking an
:class:`~gemini_sft.examples.EvaluationCase` and returning a
:class:`GenerationResult`. The core knows no cloud SDK; the google-genai
implementation is :class:`gemini_sft.vertex_client.GenAIGenerator`.

Calls run on a bounded thread pool, paced by one :class:`RequestRateLimiter`
shared by all models (every attempt, retries included, takes a slot), and are
retried with exponential backoff and jitter when the failure is transient (429,
500, 503, timeouts, connection errors). A call that still fails is recorded as
an error for that example and model: it is neither dropped nor scored as an
empty answer. Every (example, model) pair gets exactly one :class:`Answer`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, TextIO

from gemini_sft.retry import RetryPolicy
from gemini_sft.errors import GenerationCallError, ConfigError, EvaluationError, InputFormatError
from gemini_sft.examples import EvaluationCase, evaluation_case
from gemini_sft.metrics import (
    BASE,
    MODEL_ROLES,
    TUNED,
    ConfusionMatrix,
    ExampleScores,
    ResponseScorer,
    summarize,
)

log = logging.getLogger(__name__)

OFFLINE_STANDIN_PREFIX = "offline-stand-in"
MAX_TOKENS_FINISH_REASON = "MAX_TOKENS"

ERROR_POLICY = (
    "A call that still failed after its retries is recorded as an error for that example and model. "
    "Errors are excluded from that model's score means (they are not scored as empty answers) and "
    "counted in its error rate, which the gate checks. Differences are the candidate's mean minus the "
    "baseline's mean; the bootstrap resamples holdout examples, the same ones for both models."
)


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationResult:
    """A model's answer to one case: its text, the model version that produced it, why it stopped.

    ``finish_reason`` is the API's value (``STOP``, ``MAX_TOKENS``, ``SAFETY``, ...), "" when unknown.
    """

    text: str
    model_version: str = ""
    finish_reason: str = ""


class Generator(Protocol):
    """Answers one evaluation case; raises GenerationCallError (or TimeoutError/ConnectionError) on failure."""

    def __call__(self, case: EvaluationCase) -> GenerationResult: ...


@dataclass(frozen=True)
class HoldoutCase:
    """One holdout example ready for evaluation."""

    example_id: str
    case: EvaluationCase


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

    @property
    def ok(self) -> bool:
        return self.error is None


# ---------------------------------------------------------------------------
# Pacing and retries
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------


class ProgressReporter(Protocol):
    """Told after every finished call how many of ``total`` are done and how many failed."""

    def update(self, done: int, total: int, errors: int, retries: int) -> None: ...

    def close(self) -> None: ...


class LogProgress:
    """Logs a counts line at most every ``every_seconds`` (and at the end); for components."""

    def __init__(self, every_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self._clock = clock
        self._last = clock()

    def update(self, done: int, total: int, errors: int, retries: int) -> None:
        now = self._clock()
        if done == total or now - self._last >= self.every_seconds:
            self._last = now
            log.info("generation: %d/%d calls done, %d failed, %d retries", done, total, errors, retries)

    def close(self) -> None:
        return None


class StderrProgress:
    """A single self-updating counts line on a terminal (one line per update elsewhere, throttled)."""

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._wrote = False

    def update(self, done: int, total: int, errors: int, retries: int) -> None:
        now = time.monotonic()
        interval = self.min_interval if self._tty else 5.0
        if done != total and now - self._last < interval:
            return
        self._last = now
        percent = 100.0 * done / total if total else 100.0
        line = f"evaluating: {done}/{total} calls ({percent:5.1f}%), {errors} failed, {retries} retries"
        if self._tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self._wrote = True
        self.stream.flush()

    def close(self) -> None:
        if self._tty and self._wrote:
            self.stream.write("\n")
            self.stream.flush()


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


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------


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
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:
            limiter.acquire()
        try:
            result = generator(holdout.case)
        except (GenerationCallError, TimeoutError, ConnectionError) as exc:
            if is_retryable(exc) and attempt < retry.max_attempts:
                counters.retried()
                sleep(retry.backoff(attempt, rng))
                continue
            log.debug("example %s, %s model: giving up after %d attempts", holdout.example_id, role, attempt)
            return Answer(
                example_id=holdout.example_id,
                role=role,
                text=None,
                error=describe_error(exc),
                attempts=attempt,
                latency_seconds=time.monotonic() - started,
            )
        return Answer(
            example_id=holdout.example_id,
            role=role,
            text=result.text if result.text is not None else "",
            error=None,
            attempts=attempt,
            model_version=result.model_version or "",
            latency_seconds=time.monotonic() - started,
            finish_reason=result.finish_reason or "",
        )


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


# ---------------------------------------------------------------------------
# Holdout
# ---------------------------------------------------------------------------


def _example_id(example: Mapping[str, Any], line_number: int) -> str:
    for key in ("id", "example_id"):
        value = example.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return f"line-{line_number}"


def load_holdout(path: str | Path) -> tuple[list[HoldoutCase], int]:
    """Read a Gemini-format JSONL holdout file; returns (cases, number of lines skipped).

    Blank lines are ignored; examples without a model turn after a user turn are
    skipped and counted. Raises InputFormatError when the file is missing or a line
    is not a JSON object, EvaluationError when no usable example remains.
    """
    file = Path(path)
    if not file.is_file():
        raise InputFormatError(f"holdout file {file} does not exist")
    cases: list[HoldoutCase] = []
    skipped = 0
    seen: set[str] = set()
    with file.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                example = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"{file}:{line_number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(example, dict):
                raise InputFormatError(f"{file}:{line_number}: expected a JSON object per line")
            try:
                case = evaluation_case(example)
            except ValueError:
                skipped += 1
                continue
            example_id = _example_id(example, line_number)
            if example_id in seen:
                example_id = f"{example_id}@line-{line_number}"
            seen.add(example_id)
            cases.append(HoldoutCase(example_id=example_id, case=case))
    if not cases:
        raise EvaluationError(
            f"holdout file {file} has no usable examples ({skipped} lines without a model turn); "
            "check the clean step's holdout fraction"
        )
    if skipped:
        log.warning("holdout: skipped %d examples without a model turn to use as reference", skipped)
    log.info("holdout: %d examples", len(cases))
    return cases, skipped


# ---------------------------------------------------------------------------
# The whole evaluation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationSettings:
    """How to run an evaluation (pacing, retries, scoring)."""

    max_concurrency: int = 8
    requests_per_minute: float = 300.0
    label_pattern: str = ""
    bootstrap_samples: int = 1000
    seed: int = 42
    confidence: float = 0.95
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class ExampleRecord:
    """Everything about one holdout example, for the predictions file and the report."""

    example_id: str
    prompt: str
    reference: str
    reference_label: str | None
    answers: dict[str, Answer]
    scores: dict[str, ExampleScores | None]


@dataclass
class EvaluationResult:
    """The outcome of an evaluation: flat metrics, per-example records and run facts."""

    metrics: dict[str, float]
    models: dict[str, str]  # role -> model name or endpoint as given
    records: list[ExampleRecord]
    model_versions: dict[str, list[str]]
    confusion: dict[str, ConfusionMatrix]
    label_classes: list[str]
    settings: EvaluationSettings
    stats: GenerationStats
    skipped_examples: int = 0

    @property
    def offline_standin(self) -> bool:
        """True when any answer came from the offline stand-in rather than Gemini."""
        return any(v.startswith(OFFLINE_STANDIN_PREFIX) for versions in self.model_versions.values() for v in versions)

    @property
    def roles(self) -> list[str]:
        return [role for role in MODEL_ROLES if role in self.models]

    def to_document(self) -> dict[str, Any]:
        """The ``evaluation`` artifact: JSON the gate and promotion read. Non-finite values become null."""
        return {
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "models": {
                role: {
                    "model": self.models[role],
                    "model_versions": self.model_versions.get(role, []),
                    "errors": int(self.metrics.get(f"{role}_errors", 0)),
                    "error_rate": self.metrics.get(f"{role}_error_rate"),
                }
                for role in self.roles
            },
            "offline_standin": self.offline_standin,
            "n_examples": len(self.records),
            "skipped_examples": self.skipped_examples,
            "label_pattern": self.settings.label_pattern,
            "label_classes": self.label_classes,
            "bootstrap": {
                "samples": self.settings.bootstrap_samples,
                "seed": self.settings.seed,
                "confidence": self.settings.confidence,
                "method": "paired bootstrap over holdout examples, percentile interval",
            },
            "error_policy": ERROR_POLICY,
            "generation": asdict(self.stats),
        }

    def prediction_rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per example: id, reference, each model's answer, scores and errors."""
        rows = []
        for record in self.records:
            row: dict[str, Any] = {
                "example_id": record.example_id,
                "prompt": record.prompt,
                "reference": record.reference,
            }
            if self.settings.label_pattern:
                row["reference_label"] = record.reference_label
            for role in self.roles:
                answer = record.answers[role]
                scores = record.scores[role]
                row[role] = {
                    "answer": answer.text,
                    "error": answer.error,
                    "attempts": answer.attempts,
                    "model_version": answer.model_version,
                    "finish_reason": answer.finish_reason,
                    "scores": scores.as_dict() if scores is not None else None,
                }
            rows.append(row)
        return rows


def run_evaluation(
    cases: Sequence[HoldoutCase],
    generators: Mapping[str, Generator],
    models: Mapping[str, str],
    settings: EvaluationSettings,
    *,
    progress: ProgressReporter | None = None,
    limiter: RequestRateLimiter | None = None,
    skipped_examples: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> EvaluationResult:
    """Generate answers from every model, score them and compare tuned against base (and champion).

    ``generators`` and ``models`` are keyed by role (``base``, ``tuned``, optional
    ``champion``). Raises ConfigError for unknown roles or a bad label pattern,
    EvaluationError when there are no cases or every call of base or tuned failed.
    """
    unknown = set(generators) - set(MODEL_ROLES)
    if unknown or BASE not in generators or TUNED not in generators:
        raise ConfigError(f"generators must be keyed by {MODEL_ROLES} with base and tuned present, got {sorted(generators)}")
    if not cases:
        raise EvaluationError("no holdout examples to evaluate")
    scorer = ResponseScorer(settings.label_pattern)  # validates the pattern before any call is made
    roles = [role for role in MODEL_ROLES if role in generators]
    limiter = limiter or RequestRateLimiter(settings.requests_per_minute)
    answers, stats = generate_answers(
        cases,
        {role: generators[role] for role in roles},
        max_concurrency=settings.max_concurrency,
        limiter=limiter,
        retry=settings.retry,
        progress=progress,
        seed=settings.seed,
        sleep=sleep,
    )
    for role in (BASE, TUNED):
        if all(not a.ok for a in answers[role]):
            first = answers[role][0].error
            raise EvaluationError(
                f"every call to the {role} model ({models.get(role, '?')}) failed, e.g. {first}; "
                "check the model name or endpoint, the region and your quota"
            )

    records: list[ExampleRecord] = []
    for index, holdout in enumerate(cases):
        reference = holdout.case.reference
        per_role_answers = {role: answers[role][index] for role in roles}
        per_role_scores = {
            role: scorer.score(reference, a.text or "") if a.ok else None for role, a in per_role_answers.items()
        }
        records.append(
            ExampleRecord(
                example_id=holdout.example_id,
                prompt=holdout.case.prompt_text,
                reference=reference,
                reference_label=scorer.reference_label(reference),
                answers=per_role_answers,
                scores=per_role_scores,
            )
        )
    if settings.label_pattern and not any(r.reference_label for r in records):
        log.warning("the label pattern matched no reference answer: label metrics cannot be computed")
    summary = summarize(
        [r.reference for r in records],
        {role: [r.scores[role] for r in records] for role in roles},
        reference_labels=[r.reference_label for r in records] if settings.label_pattern else None,
        bootstrap_samples=settings.bootstrap_samples,
        seed=settings.seed,
        confidence=settings.confidence,
    )
    for role in roles:
        # answers cut off by max_output_tokens: a sign the cap is too low for a fair comparison
        answered = [a for a in answers[role] if a.ok]
        cut = sum(1 for a in answered if a.finish_reason == MAX_TOKENS_FINISH_REASON)
        summary.metrics[f"{role}_max_tokens_rate"] = cut / len(answered) if answered else math.nan
        if cut:
            log.warning("%s model: %d of %d answers stopped at max_output_tokens", role, cut, len(answered))
    versions = {
        role: sorted({a.model_version for a in answers[role] if a.ok and a.model_version}) for role in roles
    }
    return EvaluationResult(
        metrics=summary.metrics,
        models={role: models.get(role, "") for role in roles},
        records=records,
        model_versions=versions,
        confusion=summary.confusion,
        label_classes=summary.label_classes,
        settings=settings,
        stats=stats,
        skipped_examples=skipped_examples,
    )


def write_predictions(result: EvaluationResult, path: str | Path) -> None:
    """Write the predictions JSONL (one row per example, see EvaluationResult.prediction_rows)."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in result.prediction_rows():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_evaluation(result: EvaluationResult, path: str | Path) -> None:
    """Write the evaluation JSON document the gate reads."""
    Path(path).write_text(json.dumps(result.to_document(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
