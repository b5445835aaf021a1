"""The stand-in's request log: one JSON object a line, exactly what the client sent and the status answered."""

from __future__ import annotations

import argparse
import io
import re
import threading
import time
from pathlib import Path

import pytest
from google.genai import errors

from gemini_sft.cli import standin as standin_cli
from gemini_sft.errors import ConfigError
from gemini_sft.standin import REQUEST_LOG_NAME, VertexStandIn, read_request_log, write_request_log
from gemini_sft.vertex_client import VertexSettings, genai_client


def test_the_log_holds_method_path_with_query_body_and_status(standin: VertexStandIn, tmp_path: Path) -> None:
    client = genai_client(VertexSettings.create("p", "us-central1", standin.base_url))
    client.models.count_tokens(model="gemini-2.5-flash", contents="Hello")
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="gemini-9-ultra", contents="Hello")
    list(client.tunings.list(config={"page_size": 2}))

    path = tmp_path / REQUEST_LOG_NAME
    assert write_request_log(standin.requests, path) == 3
    count, missing, listing = read_request_log(path)
    assert count == {
        "method": "POST",
        "path": "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:countTokens",
        "body": {"contents": [{"parts": [{"text": "Hello"}], "role": "user"}]},
        "status": 200,
    }
    assert missing["status"] == 404 and missing["path"].endswith("gemini-9-ultra:generateContent")
    assert listing == {"method": "GET", "path": "/v1/projects/p/locations/us-central1/tuningJobs?pageSize=2",
                       "body": None, "status": 200}


def _serve_in_thread(argv: list[str]) -> tuple[threading.Event, threading.Thread, io.StringIO, str]:
    parser = argparse.ArgumentParser()
    standin_cli.register(parser.add_subparsers())
    stop, out = threading.Event(), io.StringIO()
    thread = threading.Thread(target=standin_cli.serve, args=(parser.parse_args(argv), stop, out))
    thread.start()
    deadline = time.monotonic() + 5
    while "http://" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    url = re.search(r"http://127\.0\.0\.1:\d+", out.getvalue())
    assert url is not None
    return stop, thread, out, url.group(0)


def test_the_standin_command_writes_its_requests_when_stopped(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    stop, thread, out, url = _serve_in_thread(["standin", "--request-log", str(log_file)])
    try:
        client = genai_client(VertexSettings.create("p", "us-central1", url))
        client.models.count_tokens(model="gemini-2.5-flash", contents="abc")
    finally:
        stop.set()
        thread.join(timeout=5)
    assert [line["status"] for line in read_request_log(log_file)] == [200]
    assert f"1 requests written to {log_file}" in out.getvalue()


def test_the_standin_command_refuses_a_log_in_a_missing_folder(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    standin_cli.register(parser.add_subparsers())
    args = parser.parse_args(["standin", "--request-log", str(tmp_path / "nowhere" / "log.jsonl")])
    with pytest.raises(ConfigError, match="does not exist"):
        standin_cli.serve(args, threading.Event(), io.StringIO())
