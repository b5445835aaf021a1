"""Shared pieces of the review tests: a predictions file, the review server as a process, Chromium."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
HOSTILE_ANSWER = '<script>window.injected = 1</script><img src=x onerror="window.injected = 2">'


def write_predictions(folder: Path, count: int = 6) -> Path:
    """A predictions JSONL as the evaluation writes it; row 1's tuned answer is hostile markup."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.jsonl"
    rows = []
    for index in range(1, count + 1):
        tuned = HOSTILE_ANSWER if index == 1 else f"Category: billing\nAction: refund order {index}"
        rows.append({
            "example_id": f"ex-{index}",
            "prompt": f"Question {index}: <b>was I charged twice?</b>",
            "reference": f"Category: billing\nAction: refund order {index}",
            "base": {"answer": f"A generic reply {index}.", "error": None, "attempts": 1},
            "tuned": {"answer": tuned, "error": None, "attempts": 1},
        })
    rows.append({"example_id": "failed", "prompt": "p", "reference": "r",
                 "base": {"answer": None, "error": "HTTP 503", "attempts": 6},
                 "tuned": {"answer": "x", "error": None, "attempts": 1}})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@contextlib.contextmanager
def review_process(location: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``gemini-sft review LOCATION --port 0 --no-browser`` as a child process; yields (process, page URL)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gemini_sft.cli import main; sys.exit(main(sys.argv[1:]))", "review", str(location), "--port", "0", "--no-browser", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = ""
        assert process.stdout is not None
        for line in process.stdout:
            match = re.match(r"Open (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        assert url, "the review server printed no address"
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)


def browser_or_skip():
    """A Playwright-driven Debian Chromium; skipped off CI when either is missing (CI must have both)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (make install installs the dev dependencies)")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    return sync_playwright
