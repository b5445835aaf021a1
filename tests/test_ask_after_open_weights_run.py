"""The README walk-through "Asking production, with the safety net" after a local open-weights run.

`gemini-sft run --local --param tuning_backend=open-weights` deploys the tiny open model to an endpoint
of the stand-in; `gemini-sft standin --replay` rebuilds that deployment, and `gemini-sft ask` reaches the
open model through the endpoint's rawPredict (vLLM's chat request), falling back to a Gemini model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("trl")

from gemini_sft.cli import main  # noqa: E402
from gemini_sft.local_run import run_local  # noqa: E402
from gemini_sft.model_catalog import DEFAULT_BASE_MODEL  # noqa: E402
from gemini_sft.promotion import PromotionStore  # noqa: E402
from gemini_sft.standin import LOCAL_RUN_FIRST_RESOURCE_ID, REQUEST_LOG_NAME, VertexStandIn  # noqa: E402
from gemini_sft.standin import replay_request_log  # noqa: E402
from gemini_sft.vertex_client import VertexSettings  # noqa: E402
from gemini_sft.vertex_client.deployments import EndpointPredictor  # noqa: E402

pytestmark = pytest.mark.e2e

QUESTIONS = ("My card was charged twice", "My printer is jammed", "My invoice shows a double charge",
             "I cannot log in to my account")


@pytest.fixture(scope="module")
def open_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("ask-ow") / "run"
    import io

    run_local(output_dir=output, parameters={"tuning_backend": "open-weights", "epochs": 2}, console=io.StringIO())
    return output


@pytest.fixture(scope="module")
def replayed(open_run: Path) -> Iterator[VertexStandIn]:
    with VertexStandIn(first_resource_id=LOCAL_RUN_FIRST_RESOURCE_ID) as fresh:
        assert replay_request_log(fresh.base_url, open_run / REQUEST_LOG_NAME) > 0
        yield fresh


def _ask(open_run: Path, standin: VertexStandIn, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["ask", "--registry-uri", str(open_run / "registry"), "--api-endpoint", standin.base_url,
                 "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_the_replay_rebuilds_the_deployment_and_its_container_answers_vllms_chat_request(
    open_run: Path, replayed: VertexStandIn
) -> None:
    champion = PromotionStore(str(open_run / "registry")).champion()
    assert champion is not None and champion.tuning_backend == "open-weights"
    ask = EndpointPredictor(VertexSettings.create("local-project", "us-central1", replayed.base_url))
    answer = ask(champion.model.endpoint, {"instances": [{
        "@requestFormat": "chatCompletions", "messages": [{"role": "user", "content": QUESTIONS[0]}],
        "max_tokens": 3, "temperature": 0}]})
    choice = answer["predictions"]["choices"][0]
    assert choice["finish_reason"] == "length" and choice["message"]["role"] == "assistant"
    assert answer["predictions"]["usage"]["completion_tokens"] == 3
    assert answer["deployedModelId"] == champion.deployed_model_id


def test_ask_is_answered_by_the_tuned_open_model_through_its_endpoint(
    open_run: Path, replayed: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    champion = PromotionStore(str(open_run / "registry")).champion()
    assert champion is not None
    answers = [_ask(open_run, replayed, capsys, question) for question in QUESTIONS]
    # the tiny model's answers are noise: some loop (the fallback catches them), the rest are returned
    tuned = [a for a in answers if a["answered_by"] == "tuned"]
    assert tuned, [a["fallback_reason"] for a in answers]
    for answer in tuned:
        assert answer["model"] == champion.model.endpoint and answer["fallback_reason"] is None
        assert answer["text"].strip()
        assert any("returned no log-probabilities" in note for note in answer["notes"])


def test_an_open_answer_cut_at_max_tokens_is_replaced_by_the_gemini_models_with_a_note(
    open_run: Path, replayed: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = _ask(open_run, replayed, capsys, "--max-output-tokens", "2", QUESTIONS[0])
    assert (answer["answered_by"], answer["fallback_reason"]) == ("base", "max_tokens")
    assert answer["model"] == DEFAULT_BASE_MODEL
    assert any(f"falls back to the Gemini model {DEFAULT_BASE_MODEL}" in note and "tiny-local" in note
               for note in answer["notes"])


def test_a_fallback_that_is_not_a_gemini_model_is_one_line_naming_the_setting(
    open_run: Path, replayed: VertexStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["ask", "--registry-uri", str(open_run / "registry"), "--api-endpoint", replayed.base_url,
                 "--base-model", "tiny-local", QUESTIONS[0]])
    assert code != 0
    assert "--base-model" in capsys.readouterr().err
