"""Shared pieces of the serving tests: scripted models, a registry with a champion, stand-in endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemini_sft.examples import make_example
from gemini_sft.promotion import ModelVersion, PromotionStore, Provenance, promote
from gemini_sft.review.staging import stage_candidate
from gemini_sft.serving import ModelReply, ReplyRequest, ServingClient, ServingSettings
from gemini_sft.serving.canary import ShadowLog
from gemini_sft.serving.client import read_serving_plan
from gemini_sft.standin import VertexStandIn

PROJECT, LOCATION = "local-project", "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
PRODUCTION = ModelVersion(model=f"{PARENT}/models/100", version="1", endpoint=f"{PARENT}/endpoints/101")
CANDIDATE = ModelVersion(model=f"{PARENT}/models/200", version="1", endpoint=f"{PARENT}/endpoints/201")
BASE_MODEL = "gemini-2.5-flash"
GOOD = "Category: billing\nPriority: high\nAction: Refund the second charge."


class ScriptedModel:
    """A reply generator that answers from a script (a reply, an exception, or a function of the request)."""

    def __init__(self, model: str, answer: ModelReply | Exception | Callable[[ReplyRequest], ModelReply]) -> None:
        self.model = model
        self.answer = answer
        self.requests: list[ReplyRequest] = []

    def __call__(self, request: ReplyRequest) -> ModelReply:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        if callable(self.answer):
            return self.answer(request)
        return self.answer


def registry_with_champion(root: Path, *, staged: bool = False) -> PromotionStore:
    """A local registry whose champion is PRODUCTION (and, with ``staged``, CANDIDATE waiting for review)."""
    store = PromotionStore(str(root))
    promote(store, PRODUCTION, provenance=Provenance(base_model=BASE_MODEL, pipeline_run="run-1"))
    if staged:
        stage_candidate(store, CANDIDATE, provenance=Provenance(base_model=BASE_MODEL, pipeline_run="run-2"))
    return store


def scripted_client(store: PromotionStore, models: dict[str, ScriptedModel], **settings: Any) -> ServingClient:
    """A client over the registry whose models are the scripted ones (keyed by endpoint / model name)."""
    return ServingClient(
        read_serving_plan(store),
        lambda name: models[name],
        ServingSettings(**settings),
        shadow_log=ShadowLog(store.files),
        sleep=lambda _seconds: None,
    )


def write_training_file(path: Path, answers: list[str]) -> Path:
    """A Gemini JSONL training file with one example per answer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(make_example(f"Ticket {i}: my card was charged twice", answer, "Triage the ticket."))
             for i, answer in enumerate(answers)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def standin_endpoint(standin: VertexStandIn, training_file: Path) -> ModelVersion:
    """A tuned model of the stand-in trained on ``training_file`` (it answers with those answers)."""
    jobs = standin.tuning_jobs
    resource = jobs.create(PROJECT, LOCATION, {
        "baseModel": BASE_MODEL, "supervisedTuningSpec": {"trainingDatasetUri": str(training_file)},
    })
    for _ in range(10):
        resource = jobs.poll(resource["name"])
        if resource["state"] == "JOB_STATE_SUCCEEDED":
            break
    tuned = resource["tunedModel"]
    return ModelVersion.parse(tuned["model"], endpoint=tuned["endpoint"])
