"""Generation orchestration: pacing, retries, exactly-once answers, holdout reading, the genai adapter."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time

import httpx
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from gemini_sft.errors import ConfigError, EvaluationError, GenerationCallError, InputFormatError
from gemini_sft.evaluation.generation import GenerationResult, RequestRateLimiter, generate_answers, is_retryable
from gemini_sft.evaluation.holdout import HoldoutCase, load_holdout
from gemini_sft.evaluation.progress import LogProgress, StderrProgress
from gemini_sft.evaluation.run import run_evaluation
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import evaluation_case, make_example
from gemini_sft.retry import RetryPolicy
from gemini_sft.vertex_client import GenAIGenerator, VertexSettings

NO_WAIT = RetryPolicy(max_attempts=4, initial_backoff=0.0, max_backoff=0.0)


def cases(n: int) -> list[HoldoutCase]:
    return [
        HoldoutCase(f"ex-{i}", evaluation_case(make_example(f"prompt {i}", f"answer {i}", "be brief")))
        for i in range(n)
    ]


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- rate limiter ---------------------------------------------------------------


def test_limiter_spaces_requests_at_the_cap():
    clock = FakeClock()
    limiter = RequestRateLimiter(120, clock=clock, sleep=clock.sleep)  # one every 0.5 s
    starts = []
    for _ in range(7):
        limiter.acquire()
        starts.append(clock.now)
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])


def test_limiter_never_exceeds_the_cap_in_any_minute_even_with_simultaneous_callers():
    clock = FakeClock()
    limiter = RequestRateLimiter(30, clock=clock, sleep=clock.sleep)
    # 100 callers arrive at t=0 at once: each reservation returns its own wait
    starts = sorted(limiter.reserve() for _ in range(100))
    assert starts[0] == 0.0
    for i, start in enumerate(starts):
        in_window = [s for s in starts if start <= s < start + 60.0]
        assert len(in_window) <= 30, f"window from {start}"
    assert starts[-1] == pytest.approx(99 * 2.0)


def test_limiter_does_not_bank_idle_time_into_a_burst():
    clock = FakeClock()
    limiter = RequestRateLimiter(60, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now = 100.0  # idle for a long time
    waits = [limiter.reserve() for _ in range(3)]
    assert waits == pytest.approx([0.0, 1.0, 2.0])


@pytest.mark.parametrize("rpm", [0, -5, float("inf"), float("nan")])
def test_limiter_rejects_invalid_rates(rpm):
    with pytest.raises(ConfigError):
        RequestRateLimiter(rpm)


def test_limiter_is_thread_safe():
    clock = FakeClock()
    limiter = RequestRateLimiter(600, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(50):
            w = limiter.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 distinct slots 0.1 s apart: no two callers got the same slot
    assert sorted(round(w, 6) for w in waits) == [round(0.1 * i, 6) for i in range(400)]


# --- retry policy -----------------------------------------------------------------


def test_backoff_grows_exponentially_with_bounded_jitter():
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=10.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(0)
    for attempt, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        values = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(nominal * 0.5 <= v <= nominal for v in values)
        assert len(set(values)) > 100  # jittered, not constant


def test_error_classification():
    assert is_retryable(GenerationCallError("x", status_code=429, retryable=True))
    assert not is_retryable(GenerationCallError("x", status_code=400, retryable=False))
    assert is_retryable(TimeoutError())
    assert is_retryable(ConnectionResetError())
    assert not is_retryable(ValueError())


# --- generation -------------------------------------------------------------------


class ScriptedGenerator:
    """Fails each case with the given exceptions in order, then answers."""

    def __init__(self, script: dict[str, list[BaseException]]) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, case):
        key = case.prompt_text
        with self.lock:
            self.calls.append(key)
            pending = self.script.get(key)
            exc = pending.pop(0) if pending else None
        if exc is not None:
            raise exc
        return GenerationResult(case.reference.upper(), "v1")


def test_transient_failures_are_retried_until_success():
    retryable = GenerationCallError("unavailable", status_code=503, retryable=True)
    generator = ScriptedGenerator({"prompt 0": [retryable, TimeoutError("slow"), retryable]})
    clock = FakeClock()
    answers, stats = generate_answers(
        cases(2), {"tuned": generator},
        retry=RetryPolicy(max_attempts=5, initial_backoff=1.0, multiplier=2.0, jitter=0.0),
        sleep=clock.sleep,
    )
    first = answers["tuned"][0]
    assert first.ok and first.text == "ANSWER 0" and first.attempts == 4
    assert generator.calls.count("prompt 0") == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]  # exponential backoff between attempts
    assert stats.retries == 3 and stats.attempts == 5 and stats.errors == 0


def test_call_that_keeps_failing_is_recorded_as_error_not_dropped():
    retryable = GenerationCallError("quota", status_code=429, retryable=True)
    generator = ScriptedGenerator({"prompt 1": [retryable] * 10})
    answers, stats = generate_answers(cases(3), {"tuned": generator}, retry=NO_WAIT, sleep=lambda s: None)
    failed = answers["tuned"][1]
    assert not failed.ok and failed.text is None and failed.attempts == 4
    assert "429" in failed.error
    assert [a.example_id for a in answers["tuned"]] == ["ex-0", "ex-1", "ex-2"]
    assert stats.errors == 1


def test_non_retryable_failure_is_not_retried():
    generator = ScriptedGenerator({"prompt 0": [GenerationCallError("bad request", status_code=400)]})
    answers, _ = generate_answers(cases(1), {"tuned": generator}, retry=NO_WAIT, sleep=lambda s: None)
    assert answers["tuned"][0].attempts == 1 and "400" in answers["tuned"][0].error


def test_programming_errors_propagate():
    def broken(case):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        generate_answers(cases(2), {"tuned": broken}, retry=NO_WAIT)


class FlakyGenerator:
    """Fails about ``rate`` of attempts with 429/503 (seeded per example and attempt) and 2% permanently."""

    def __init__(self, name: str, rate: float = 0.1) -> None:
        self.name = name
        self.rate = rate
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, case):
        key = case.prompt_text
        with self.lock:
            n = self.attempts[key] = self.attempts.get(key, 0) + 1
        rng = random.Random(f"{self.name}/{key}/{n}")
        if random.Random(f"{self.name}/{key}").random() < 0.02:
            raise GenerationCallError("forbidden", status_code=403)
        if rng.random() < self.rate:
            code = rng.choice([429, 503])
            raise GenerationCallError("transient", status_code=code, retryable=True)
        return GenerationResult(f"{self.name}: {case.reference}", "offline-stand-in/x")


def test_every_example_answered_exactly_once_per_model_with_ten_percent_failures():
    holdout = cases(300)
    generators = {"base": FlakyGenerator("base"), "tuned": FlakyGenerator("tuned"), "champion": FlakyGenerator("c")}
    answers, stats = generate_answers(holdout, generators, max_concurrency=6, retry=NO_WAIT, sleep=lambda s: None)
    for role, generator in generators.items():
        assert [a.example_id for a in answers[role]] == [c.example_id for c in holdout]
        assert all(a.role == role for a in answers[role])
        # every attempt the generator saw is accounted for in exactly one answer
        assert sum(a.attempts for a in answers[role]) == sum(generator.attempts.values())
        for answer in answers[role]:
            assert (answer.text is None) == (answer.error is not None)
        permanent = sum(1 for a in answers[role] if a.error and "403" in a.error)
        assert all(a.attempts == 1 for a in answers[role] if a.error and "403" in a.error)
        assert 0 < permanent < 20
    assert stats.calls == 900
    assert stats.retries > 50  # about 10% of attempts were retried


def test_concurrency_is_bounded():
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def slow(case):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.005)
        with lock:
            in_flight -= 1
        return GenerationResult("x")

    generate_answers(cases(40), {"base": slow, "tuned": slow}, max_concurrency=3)
    assert 1 <= peak <= 3


def test_one_limiter_paces_every_attempt_of_every_model():
    class CountingLimiter(RequestRateLimiter):
        def __init__(self) -> None:
            super().__init__(1e9)
            self.acquired = 0
            self.count_lock = threading.Lock()

        def acquire(self) -> None:
            with self.count_lock:
                self.acquired += 1

    limiter = CountingLimiter()
    generators = {"base": FlakyGenerator("base", 0.3), "tuned": FlakyGenerator("tuned", 0.3)}
    _, stats = generate_answers(cases(50), generators, limiter=limiter, retry=NO_WAIT, sleep=lambda s: None)
    assert limiter.acquired == stats.attempts > 100


def test_invalid_concurrency():
    with pytest.raises(ConfigError):
        generate_answers(cases(1), {"tuned": lambda c: GenerationResult("x")}, max_concurrency=0)


# --- progress ---------------------------------------------------------------------


def test_stderr_progress_shows_counts_without_content():
    stream = io.StringIO()
    progress = StderrProgress(stream=stream)
    generate_answers(cases(5), {"base": ScriptedGenerator({}), "tuned": ScriptedGenerator({})}, progress=progress)
    text = stream.getvalue()
    assert "10/10 calls" in text and "0 failed" in text
    assert "prompt" not in text and "answer" not in text


def test_log_progress_logs_counts_periodically(caplog):
    clock = FakeClock()
    progress = LogProgress(every_seconds=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="gemini_sft.evaluation.progress"):
        progress.update(1, 100, 0, 0)  # too soon
        clock.now = 11
        progress.update(2, 100, 1, 3)
        progress.update(3, 100, 1, 3)  # too soon again
        progress.update(100, 100, 1, 3)  # always at the end
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "generation: 2/100 calls done, 1 failed, 3 retries",
        "generation: 100/100 calls done, 1 failed, 3 retries",
    ]


def test_logs_carry_no_example_content(caplog):
    generator = ScriptedGenerator({"prompt 0": [GenerationCallError("x", status_code=400)]})
    with caplog.at_level(logging.DEBUG):
        run_evaluation(
            cases(4), {"base": generator, "tuned": ScriptedGenerator({})},
            EvaluationSettings(base_model="b", tuned_endpoint="t", requests_per_minute=1e9, bootstrap_samples=10),
            retry=NO_WAIT,
        )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "prompt" not in text and "answer" not in text.replace("answers", "") and "ANSWER" not in text


# --- holdout ----------------------------------------------------------------------


def test_load_holdout_ids_skips_and_blank_lines(tmp_path):
    path = tmp_path / "holdout.jsonl"
    with_id = make_example("p1", "r1")
    with_id["id"] = "ticket-9"
    no_model_turn = {"contents": [{"role": "user", "parts": [{"text": "only a question"}]}]}
    lines = [json.dumps(make_example("p0", "r0")), "", json.dumps(with_id), json.dumps(no_model_turn),
             json.dumps(with_id)]
    path.write_text("\n".join(lines) + "\n")
    loaded, skipped = load_holdout(path)
    assert [c.example_id for c in loaded] == ["line-1", "ticket-9", "ticket-9@line-5"]
    assert skipped == 1
    assert loaded[0].case.reference == "r0"


def test_load_holdout_errors(tmp_path):
    with pytest.raises(InputFormatError, match="does not exist"):
        load_holdout(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(make_example("p", "r")) + "\n{oops\n")
    with pytest.raises(InputFormatError, match=":2:"):
        load_holdout(bad)
    not_object = tmp_path / "list.jsonl"
    not_object.write_text("[1, 2]\n")
    with pytest.raises(InputFormatError, match="JSON object"):
        load_holdout(not_object)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(EvaluationError, match="no usable examples"):
        load_holdout(empty)


# --- whole evaluation -------------------------------------------------------------


def test_run_evaluation_scores_each_example_once_and_flags_the_stand_in():
    generators = {"base": FlakyGenerator("base"), "tuned": FlakyGenerator("tuned")}
    result = run_evaluation(
        cases(100), generators,
        EvaluationSettings(base_model="gemini-2.5-flash", tuned_endpoint="projects/p/locations/l/endpoints/1",
                           requests_per_minute=1e9, bootstrap_samples=50),
        retry=NO_WAIT,
    )
    assert len(result.records) == 100
    assert len({r.example_id for r in result.records}) == 100
    for record in result.records:
        for role in ("base", "tuned"):
            answer = record.answers[role]
            assert (record.scores[role] is None) == (not answer.ok)
    errors = sum(1 for r in result.records if not r.answers["tuned"].ok)
    assert result.metrics["tuned_error_rate"] == pytest.approx(errors / 100)
    assert result.offline_standin is True
    rows = result.prediction_rows()
    assert len(rows) == 100 and set(rows[0]) == {"example_id", "prompt", "reference", "base", "tuned", "fallback"}


def test_run_evaluation_fails_when_every_call_of_a_model_fails():
    def down(case):
        raise GenerationCallError("not found", status_code=404)

    with pytest.raises(EvaluationError, match="every call to the tuned model"):
        run_evaluation(
            cases(3), {"base": ScriptedGenerator({}), "tuned": down},
            EvaluationSettings(base_model="b", tuned_endpoint="endpoint-x", requests_per_minute=1e9), retry=NO_WAIT,
        )


def test_run_evaluation_validates_before_calling():
    generator = ScriptedGenerator({})
    with pytest.raises(ConfigError):
        run_evaluation(cases(2), {"base": generator, "tuned": generator}, EvaluationSettings(label_pattern="(unclosed"))
    with pytest.raises(ConfigError):
        run_evaluation(cases(2), {"base": generator, "candidate": generator}, EvaluationSettings())
    assert generator.calls == []


def test_real_gemini_versions_are_not_flagged_as_stand_in():
    def gemini(case):
        return GenerationResult("x", "gemini-2.5-flash-001")

    result = run_evaluation(cases(2), {"base": gemini, "tuned": gemini},
                            EvaluationSettings(base_model="b", tuned_endpoint="t", requests_per_minute=1e9,
                                               bootstrap_samples=0))
    assert result.offline_standin is False
    assert result.to_document()["offline_standin"] is False


# --- the google-genai adapter -----------------------------------------------------


class FakeModels:
    def __init__(self, outcome) -> None:
        self.outcome = outcome
        self.requests: list[dict] = []

    def generate_content(self, **kwargs):
        self.requests.append(kwargs)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class FakeClient:
    def __init__(self, outcome) -> None:
        self.models = FakeModels(outcome)


SETTINGS = VertexSettings("p", "us-central1", "http://127.0.0.1:9")


def test_genai_generator_sends_deterministic_settings_and_returns_text():
    response = types.GenerateContentResponse(
        candidates=[types.Candidate(content=types.Content(role="model", parts=[types.Part(text="Category: billing")]),
                                    finish_reason=types.FinishReason.STOP)],
        model_version="gemini-2.5-flash-001",
    )
    client = FakeClient(response)
    generator = GenAIGenerator(SETTINGS, "projects/p/locations/l/endpoints/5", 77, client=client)
    case = evaluation_case(make_example("ticket", "Category: billing", "Triage."))
    result = generator(case)
    assert result == GenerationResult("Category: billing", "gemini-2.5-flash-001", "STOP")
    request = client.models.requests[0]
    assert request["model"] == "projects/p/locations/l/endpoints/5"
    assert request["contents"] == case.contents
    assert request["config"].temperature == 0.0
    assert request["config"].max_output_tokens == 77
    assert request["config"].system_instruction == "Triage."


def test_genai_generator_answer_without_text_is_empty_not_an_error():
    client = FakeClient(types.GenerateContentResponse(candidates=[], model_version="v"))
    result = GenAIGenerator(SETTINGS, "m", client=client)(evaluation_case(make_example("p", "r")))
    assert result.text == ""


@pytest.mark.parametrize("code,retryable", [(429, True), (500, True), (503, True), (400, False), (404, False)])
def test_genai_generator_classifies_api_errors_by_code(code, retryable):
    error = genai_errors.APIError(code, {"error": {"code": code, "message": "m", "status": "S"}})
    generator = GenAIGenerator(SETTINGS, "m", client=FakeClient(error))
    with pytest.raises(GenerationCallError) as raised:
        generator(evaluation_case(make_example("p", "r")))
    assert raised.value.status_code == code and raised.value.retryable is retryable


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("t"), httpx.ConnectError("refused")])
def test_genai_generator_treats_timeouts_and_connection_errors_as_retryable(exc):
    generator = GenAIGenerator(SETTINGS, "m", client=FakeClient(exc))
    with pytest.raises(GenerationCallError) as raised:
        generator(evaluation_case(make_example("p", "r")))
    assert raised.value.retryable


def test_genai_generator_validates_arguments():
    with pytest.raises(ConfigError):
        GenAIGenerator(SETTINGS, "", client=FakeClient(None))
    with pytest.raises(ConfigError):
        GenAIGenerator(SETTINGS, "m", 0, client=FakeClient(None))


def test_a_bug_stops_further_requests():
    calls = 0
    lock = threading.Lock()

    def broken(case):
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.005)  # a call takes a moment, as a real one does
        raise KeyError("bug")

    with pytest.raises(KeyError):
        generate_answers(cases(500), {"tuned": broken}, max_concurrency=2, retry=NO_WAIT)
    assert calls < 50  # queued calls were cancelled, not sent


def test_label_pattern_that_matches_no_reference_warns_and_yields_nan(caplog):
    generator = ScriptedGenerator({})
    with caplog.at_level(logging.WARNING, logger="gemini_sft.evaluation.run"):
        result = run_evaluation(
            cases(3), {"base": generator, "tuned": generator},
            EvaluationSettings(base_model="b", tuned_endpoint="t", requests_per_minute=1e9, bootstrap_samples=10,
                               label_pattern=r"Category: (\w+)"),
        )
    assert "matched no reference" in caplog.text
    assert result.metrics["tuned_label_accuracy"] != result.metrics["tuned_label_accuracy"]  # NaN
    assert result.to_document()["metrics"]["tuned_label_accuracy"] is None


def test_answers_cut_at_max_tokens_are_counted():
    def cut(case):
        if case.prompt_text in ("prompt 0", "prompt 1"):
            return GenerationResult("partial", "v", "MAX_TOKENS")
        return GenerationResult(case.reference, "v", "STOP")

    result = run_evaluation(
        cases(8), {"base": ScriptedGenerator({}), "tuned": cut},
        EvaluationSettings(base_model="b", tuned_endpoint="t", requests_per_minute=1e9, bootstrap_samples=0),
    )
    assert result.metrics["tuned_max_tokens_rate"] == pytest.approx(0.25)
    assert result.metrics["base_max_tokens_rate"] == 0.0
    assert result.prediction_rows()[0]["tuned"]["finish_reason"] == "MAX_TOKENS"
