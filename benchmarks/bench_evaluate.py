"""Benchmark of the evaluate stage against the offline stand-in (real google-genai SDK over HTTP).

Prints, in one run:

1. the achieved request rate of a paced, concurrent evaluation of N holdout
   examples by two models (a base model and a tuned endpoint) against the
   requests-per-minute cap (target: at least 90% of the cap);
2. the rate of a one-at-a-time loop, measured on a subset of calls and
   extrapolated to the whole evaluation (said so in the output);
3. the same evaluation with a share of calls failing with 429/503: every
   example must be scored exactly once per model, and every request the
   stand-in saw must be accounted for by exactly one recorded answer;
4. the calls, tokens, USD (catalogue prices) and time of choosing the
   checkpoint on validation (every checkpoint of a 3-epoch job answers the
   default validation sample) relative to one holdout evaluation (goal: at
   most 1.5x), for the benchmark's holdout and for the shipped sample's
   split sizes, where the cost ratio setting cuts the sample.

Usage: python benchmarks/bench_evaluate.py [--examples 1000] [--rpm 3000] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

from google.genai import types

from gemini_sft.checkpoint_scoring import CheckpointSelectionSettings, choose_on_validation
from gemini_sft.cost import format_usd, serving_cost
from gemini_sft.evaluation.generation import RequestRateLimiter, generate_answers
from gemini_sft.evaluation.holdout import HoldoutCase
from gemini_sft.evaluation.run import run_evaluation
from gemini_sft.evaluation.settings import EvaluationSettings
from gemini_sft.examples import evaluation_case, make_example
from gemini_sft.retry import RetryPolicy
from gemini_sft.sample_data import DEFAULT_SEED, SYSTEM_INSTRUCTION, make_ticket
from gemini_sft.standin import VertexStandIn
from gemini_sft.vertex_client import GenAIGenerator, VertexSettings, genai_client

TARGET_SHARE_OF_CAP = 0.90
SELECTION_GOAL_RATIO = 1.5
BASE_MODEL = "gemini-2.5-flash"


def synthetic_examples(n: int, offset: int = 0) -> list[dict]:
    """Support-ticket examples from the shipped sample's generator (no private data); ``offset`` seeds another set."""
    rng = random.Random(DEFAULT_SEED + offset)
    return [make_example(ticket.text, ticket.response, SYSTEM_INSTRUCTION)
            for ticket in (make_ticket(rng) for _ in range(n))]


def tuned_endpoint(settings: VertexSettings, train_path: Path) -> str:
    """Run a tuning job on the stand-in and return its endpoint."""
    client = genai_client(settings)
    job = client.tunings.tune(
        base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri=str(train_path))
    )
    while not job.has_ended:
        job = client.tunings.get(name=job.name)
    if not job.has_succeeded or job.tuned_model is None or not job.tuned_model.endpoint:
        raise SystemExit(f"the stand-in's tuning job did not succeed: {job.state}")
    return job.tuned_model.endpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=1000, help="holdout examples (default 1000)")
    parser.add_argument("--rpm", type=int, default=3000, help="requests-per-minute cap (default 3000)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (default 16)")
    parser.add_argument("--latency", type=float, default=0.1, help="stand-in latency per request, s (default 0.1)")
    parser.add_argument("--sequential-calls", type=int, default=100, help="calls timed one at a time (default 100)")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of calls failing with 429/503")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", message=".*tuning implementation is experimental")

    cases = [HoldoutCase(f"ex-{i}", evaluation_case(e)) for i, e in enumerate(synthetic_examples(args.examples))]
    calls = 2 * len(cases)
    print(f"evaluate benchmark: {len(cases)} examples x 2 models = {calls} calls; stand-in latency "
          f"{args.latency * 1000:.0f} ms; cap {args.rpm} requests/min; concurrency {args.concurrency}")

    with tempfile.TemporaryDirectory() as tmp, VertexStandIn(latency_seconds=0.0, polls_per_state=0) as standin:
        train = Path(tmp) / "train.jsonl"
        train.write_text("".join(json.dumps(e) + "\n" for e in synthetic_examples(200)), encoding="utf-8")
        settings = VertexSettings.create("bench", "us-central1", standin.base_url)
        models = {"base": "gemini-2.5-flash", "tuned": tuned_endpoint(settings, train)}
        client = genai_client(settings, timeout_ms=30_000)
        generators = {role: GenAIGenerator(settings, model, 256, client=client) for role, model in models.items()}
        standin.latency_seconds = args.latency

        # 1. paced and concurrent, no faults
        standin.reset()
        standin.latency_seconds = args.latency
        answers, stats = generate_answers(
            cases, generators, max_concurrency=args.concurrency,
            limiter=RequestRateLimiter(args.rpm), retry=RetryPolicy(),
        )
        achieved = stats.attempts_per_minute
        share = achieved / args.rpm
        print(f"\n1. concurrent, paced: {stats.attempts} requests in {stats.elapsed_seconds:.1f} s = "
              f"{achieved:.0f} requests/min = {100 * share:.1f}% of the {args.rpm}/min cap "
              f"({'meets' if share >= TARGET_SHARE_OF_CAP else 'MISSES'} the {TARGET_SHARE_OF_CAP:.0%} target); "
              f"{stats.errors} failed")

        # 2. one at a time (measured on a subset, extrapolated)
        subset = [cases[i % len(cases)] for i in range(args.sequential_calls)]
        started = time.monotonic()
        for i, holdout in enumerate(subset):
            generators["base" if i % 2 == 0 else "tuned"](holdout.case)
        sequential_seconds = time.monotonic() - started
        sequential_rate = 60.0 * len(subset) / sequential_seconds
        print(f"2. one at a time: {len(subset)} calls measured in {sequential_seconds:.1f} s = "
              f"{sequential_rate:.0f} requests/min; extrapolated to {calls} calls: "
              f"{calls / sequential_rate:.1f} min vs {stats.elapsed_seconds / 60:.1f} min concurrent "
              f"({achieved / sequential_rate:.1f}x faster)")

        # 3. with faults: every example scored exactly once per model
        standin.reset()
        standin.latency_seconds = args.latency
        standin.inject_faults((429, 503), rate=args.fault_rate, seed=7)
        result = run_evaluation(
            cases, generators,
            EvaluationSettings(base_model=models["base"], tuned_endpoint=models["tuned"],
                               max_concurrency=args.concurrency, requests_per_minute=args.rpm,
                               label_pattern=r"Category: (\w+)", bootstrap_samples=1000, seed=42),
        )
        requests = standin.requests_to(":generateContent")
        injected = sum(1 for r in requests if r.status in (429, 503))
        answers_per_role = {role: [r.answers[role] for r in result.records] for role in models}
        ids_ok = all(
            [a.example_id for a in answers_per_role[role]] == [c.example_id for c in cases] for role in models
        )
        scored_once = all(
            (r.scores[role] is not None) == r.answers[role].ok for r in result.records for role in models
        )
        attempts = sum(a.attempts for role in models for a in answers_per_role[role])
        accounted = attempts == len(requests)
        errors = sum(1 for role in models for a in answers_per_role[role] if not a.ok)
        gen = result.stats
        print(f"3. with {args.fault_rate:.0%} of calls failing with 429/503: {len(requests)} requests, "
              f"{injected} failed ({100 * injected / max(1, len(requests)):.1f}%) and were retried; "
              f"{gen.attempts_per_minute:.0f} requests/min ({100 * gen.attempts_per_minute / args.rpm:.1f}% of cap); "
              f"{len(result.records)} examples x {len(models)} models answered once each: "
              f"{'yes' if ids_ok and scored_once else 'NO'}; every request accounted for by one answer: "
              f"{'yes' if accounted else 'NO'}; errors after retries: {errors}; "
              f"error rate base {result.metrics['base_error_rate']:.3f}, tuned {result.metrics['tuned_error_rate']:.3f}")
        print(f"   tuned - base ROUGE-L {result.metrics['delta_rougeL']:+.3f} "
              f"[{result.metrics['delta_rougeL_ci_low']:+.3f}, {result.metrics['delta_rougeL_ci_high']:+.3f}] "
              f"(offline stand-in answers, not Gemini)")
        ok = share >= TARGET_SHARE_OF_CAP and ids_ok and scored_once and accounted

        # 4. checkpoint selection on validation vs one holdout evaluation (no faults)
        standin.reset()
        standin.latency_seconds = args.latency
        ratio = checkpoint_selection_ratio(settings, client, train, cases, args)
        ok = ok and ratio <= SELECTION_GOAL_RATIO
    return 0 if ok else 1


def _answer_tokens(answers: dict) -> tuple[int, int]:
    """Input and output tokens (thinking billed as output) of every answered call."""
    answered = [a for role_answers in answers.values() for a in role_answers if a.ok]
    return (sum(a.input_tokens for a in answered),
            sum(a.output_tokens + a.thinking_tokens for a in answered))


def checkpoint_selection_ratio(settings: VertexSettings, client, train: Path, cases: list[HoldoutCase],
                               args: argparse.Namespace) -> float:
    """Print the calls, tokens, USD and time of choosing a checkpoint (default settings) relative to one holdout
    evaluation, for the benchmark's holdout and for the shipped sample's split sizes; return the worst time ratio."""
    job = client.tunings.tune(
        base_model=BASE_MODEL, training_dataset=types.TuningDataset(gcs_uri=str(train)),
        config=types.CreateTuningJobConfig(epoch_count=3, export_last_checkpoint_only=False),
    )
    while not job.has_ended:
        job = client.tunings.get(name=job.name)
    tuned = job.tuned_model
    metadata = {"endpoint": tuned.endpoint, "base_model": BASE_MODEL, "checkpoints": [
        {"checkpoint_id": c.checkpoint_id, "epoch": c.epoch, "step": c.step, "endpoint": c.endpoint}
        for c in tuned.checkpoints or []]}
    validation = [HoldoutCase(f"val-{i}", evaluation_case(e))
                  for i, e in enumerate(synthetic_examples(max(200, len(cases)), offset=len(cases)))]
    selection_settings = CheckpointSelectionSettings(
        max_concurrency=args.concurrency, requests_per_minute=args.rpm, max_output_tokens=256)
    worst = 0.0
    scenarios = [(f"{len(cases)}-example holdout", validation, cases),
                 ("shipped sample's split sizes (36 validation, 33 holdout)", validation[:36], cases[:33])]
    print(f"4. checkpoint selection on validation (default settings: {selection_settings.validation_sample_size} "
          f"examples, cost ratio {selection_settings.selection_cost_ratio:g}) vs one holdout evaluation "
          f"(base and tuned), at {BASE_MODEL}'s catalogue prices:")
    for name, scored_on, holdout_cases in scenarios:
        selection = choose_on_validation(
            metadata, scored_on, lambda endpoint: GenAIGenerator(settings, endpoint, 256, client=client),
            selection_settings, holdout_examples=len(holdout_cases))
        holdout_generators = {"base": GenAIGenerator(settings, BASE_MODEL, 256, client=client),
                              "tuned": GenAIGenerator(settings, selection.endpoint, 256, client=client)}
        answers, holdout = generate_answers(holdout_cases, holdout_generators, max_concurrency=args.concurrency,
                                            limiter=RequestRateLimiter(args.rpm), retry=RetryPolicy())
        chosen = selection.stats
        seconds = chosen.elapsed_seconds if chosen else 0.0
        picked = serving_cost(BASE_MODEL, chosen.calls if chosen else 0, selection.input_tokens,
                              selection.output_tokens + selection.thinking_tokens)
        evaluated = serving_cost(BASE_MODEL, holdout.calls, *_answer_tokens(answers))
        ratio = seconds / holdout.elapsed_seconds if holdout.elapsed_seconds else float("inf")
        worst = max(worst, ratio)
        usd_ratio = (picked.cost_usd or 0.0) / evaluated.cost_usd if evaluated.cost_usd else float("nan")
        print(f"   {name}: {len(metadata['checkpoints'])} checkpoints x {selection.validation_examples} validation "
              f"examples = {picked.calls} calls, {picked.tokens:,} tokens, "
              f"{format_usd(picked.cost_usd or 0.0)}, {seconds:.1f} s; holdout evaluation {evaluated.calls} calls, "
              f"{evaluated.tokens:,} tokens, {format_usd(evaluated.cost_usd or 0.0)}, {holdout.elapsed_seconds:.1f} s; "
              f"selection / evaluation = {picked.calls / holdout.calls:.2f}x calls, "
              f"{picked.tokens / max(1, evaluated.tokens):.2f}x tokens, {usd_ratio:.2f}x USD, {ratio:.2f}x time "
              f"({'meets' if ratio <= SELECTION_GOAL_RATIO else 'MISSES'} the {SELECTION_GOAL_RATIO}x goal)")
    return worst


if __name__ == "__main__":
    sys.exit(main())
