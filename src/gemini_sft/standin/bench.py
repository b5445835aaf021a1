"""Benchmark of the stand-in's tuned model: index build time and answer latency.

``python -m gemini_sft.standin.bench [--examples N] [--queries Q]`` builds a
seeded synthetic training set of N examples, then prints the time to build
the nearest-example index, the mean in-process lookup time for prompts that
are and are not in the training set, and the mean generateContent round trip
through google-genai over HTTP. Target: lookups under 2 ms for a few
thousand examples.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from gemini_sft.examples import Example, make_example

_WORDS_PER_PROMPT = 40
_VOCABULARY_SIZE = 4000


def synthetic_examples(count: int, seed: int = 0) -> list[Example]:
    """``count`` single-turn examples with random prompts over a fixed vocabulary (reproducible)."""
    rng = random.Random(seed)
    vocabulary = [f"term{i}" for i in range(_VOCABULARY_SIZE)] + ["the", "my", "order", "please", "account"] * 50

    def sentence(words: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(words))

    return [make_example(sentence(_WORDS_PER_PROMPT), sentence(8), "Triage the ticket.") for _ in range(count)]


def _mean_ms(durations: list[float]) -> float:
    return statistics.fmean(durations) * 1000.0


def run(examples: int, queries: int) -> dict[str, float]:
    """Measure and return the figures (milliseconds unless named otherwise)."""
    from google.genai import types

    from gemini_sft.standin.responder import NearestExampleIndex
    from gemini_sft.standin.server import VertexStandIn
    from gemini_sft.vertex_client import VertexSettings, genai_client

    warnings.filterwarnings("ignore", message="The SDK's tuning implementation is experimental")
    training = synthetic_examples(examples)
    started = time.perf_counter()
    index = NearestExampleIndex.from_examples(training)
    build_seconds = time.perf_counter() - started

    seen = [f"Triage the ticket.\n{e['contents'][0]['parts'][0]['text']}" for e in training[:queries]]
    unseen = [f"Triage the ticket.\n{e['contents'][0]['parts'][0]['text']}" for e in synthetic_examples(queries, 1)]
    timings: dict[str, list[float]] = {"seen": [], "unseen": []}
    for label, prompts in (("seen", seen), ("unseen", unseen)):
        for prompt in prompts:
            started = time.perf_counter()
            index.answer(prompt)
            timings[label].append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as directory, VertexStandIn(polls_per_state=0) as standin:
        train = Path(directory) / "train.jsonl"
        train.write_text("".join(json.dumps(e) + "\n" for e in training), encoding="utf-8")
        client = genai_client(VertexSettings.create("bench", "us-central1", standin.base_url))
        job = client.tunings.tune(
            base_model="gemini-2.5-flash", training_dataset=types.TuningDataset(gcs_uri=str(train))
        )
        endpoint = client.tunings.get(name=job.name).tuned_model.endpoint
        round_trips = []
        for example in synthetic_examples(queries, 2):
            started = time.perf_counter()
            client.models.generate_content(model=endpoint, contents=example["contents"][0]["parts"][0]["text"])
            round_trips.append(time.perf_counter() - started)

    return {
        "examples": float(index.size),
        "index_build_seconds": build_seconds,
        "lookup_seen_ms": _mean_ms(timings["seen"]),
        "lookup_unseen_ms": _mean_ms(timings["unseen"]),
        "http_generate_content_ms": _mean_ms(round_trips),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="training examples (default: 3000)")
    parser.add_argument("--queries", type=int, default=300, help="prompts per measurement (default: 300)")
    args = parser.parse_args(argv)
    figures = run(args.examples, args.queries)
    print(f"offline stand-in tuned model, {int(figures['examples'])} training examples")
    print(f"  index build:                {figures['index_build_seconds']:.3f} s")
    print(f"  lookup, training prompt:    {figures['lookup_seen_ms']:.3f} ms")
    print(f"  lookup, unseen prompt:      {figures['lookup_unseen_ms']:.3f} ms (target < 2 ms)")
    print(f"  generateContent over HTTP:  {figures['http_generate_content_ms']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
