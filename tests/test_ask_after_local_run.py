"""A fresh user's walk-through: run the pipeline locally, then ask the model it promoted.

The local run's stand-in stops with the run; `gemini-sft standin --replay RUN/standin_requests.jsonl`
rebuilds its tuned endpoints, so `gemini-sft ask --registry-uri RUN/registry` reaches the promoted model.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.local_run import run_local
from gemini_sft.promotion import PromotionStore
from gemini_sft.standin import LOCAL_RUN_FIRST_RESOURCE_ID, REQUEST_LOG_NAME, VertexStandIn, replay_request_log

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("ask") / "run"
    run_local(output_dir=output, console=io.StringIO())
    return output


def test_the_promoted_model_answers_after_a_replay(local_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    champion = PromotionStore(str(local_run / "registry")).champion()
    assert champion is not None
    with VertexStandIn(first_resource_id=LOCAL_RUN_FIRST_RESOURCE_ID) as fresh:
        assert replay_request_log(fresh.base_url, local_run / REQUEST_LOG_NAME) > 0
        code = main(["ask", "--registry-uri", str(local_run / "registry"), "--api-endpoint", fresh.base_url,
                     "--json", "My invoice shows a double charge for last month."])
    answer = json.loads(capsys.readouterr().out)
    assert code == 0
    assert answer["answered_by"] == "tuned" and answer["fallback_reason"] is None
    assert answer["model"] == champion.model.endpoint
    assert answer["text"].strip()


def test_the_standin_command_replays_a_run(local_run: Path) -> None:
    from gemini_sft.cli.standin import serve
    import argparse

    args = argparse.Namespace(port=0, latency=0.0, polls_per_state=1, fail_jobs_with=None, request_log=None,
                              replay=local_run / REQUEST_LOG_NAME)
    stop, out = threading.Event(), io.StringIO()
    worker = threading.Thread(target=serve, args=(args, stop, out))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert "Replayed" in out.getvalue() and "listening on" in out.getvalue()
