"""The review page in a real browser (Debian's Chromium driven by Playwright): rate, escape, survive a kill."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from review_helpers import CHROMIUM, CHROMIUM_ARGS, HOSTILE_ANSWER, browser_or_skip, review_process, write_predictions


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_playwright = browser_or_skip()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _ratings(folder: Path) -> list[dict]:
    path = folder / "human_ratings.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _open_page(browser, url: str, rated: tuple[int, int]):
    """A new page of the review at ``url``, once it shows ``rated`` (done, total) prompts rated."""
    page = browser.new_page()
    page.goto(url)
    _wait_rated(page, *rated)
    return page


def _wait_for(read, expected: str, timeout: float = 10.0) -> None:
    """Poll ``read()`` (a Playwright read, which runs outside the page's scripts and its CSP) until it is ``expected``."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    assert value == expected


def _wait_rated(page, done: int, total: int) -> None:
    _wait_for(lambda: page.text_content("#progress-text"), f"{done} of {total} prompts rated")


def test_clicking_and_keys_rate_pairs_into_the_file_unblinded_and_escaped(tmp_path: Path, browser) -> None:
    folder = tmp_path / "evaluation"
    write_predictions(folder, count=5)
    with review_process(folder) as (_, url):
        page = _open_page(browser, url, rated=(0, 5))
        # untrusted markup is shown as text, and none of it ran
        assert page.inner_text("#prompt") == "Question 1: <b>was I charged twice?</b>"
        shown = [page.inner_text("#answer-1"), page.inner_text("#answer-2")]
        assert HOSTILE_ANSWER in shown
        assert page.evaluate("window.injected") is None
        assert page.locator("#answer-1 img, #answer-2 img, #prompt b").count() == 0

        hostile_position = shown.index(HOSTILE_ANSWER) + 1
        page.click(f"#choose-{hostile_position}")            # the tuned answer wins by a click
        _wait_rated(page, 1, 5)
        page.fill("#note", "both fine; 1 and = typed here are not ratings")
        page.keyboard.press("Escape")
        page.keyboard.press("=")
        _wait_rated(page, 2, 5)
        page.keyboard.press("s")
        _wait_rated(page, 3, 5)
        first_answer = page.inner_text("#answer-1")
        page.keyboard.press("1")
        _wait_rated(page, 4, 5)
        page.keyboard.press("2")
        _wait_rated(page, 5, 5)
        assert page.is_visible("#done")
        summary = page.inner_text("#summary")
        csv_text = page.evaluate("fetch(document.getElementById('export').href).then(r => r.text())")
        page.close()

    ratings = _ratings(folder)
    assert [r["example_id"] for r in ratings] == ["ex-1", "ex-2", "ex-3", "ex-4", "ex-5"]
    assert [r["choice"] for r in ratings] == [str(hostile_position), "tie", "skip", "1", "2"]
    assert ratings[0]["winner"] == "tuned" and ratings[0]["shown"][hostile_position - 1] == "tuned"
    assert ratings[1]["note"] == "both fine; 1 and = typed here are not ratings"
    assert ratings[2]["winner"] is None
    for rating in ratings[3:]:
        assert rating["winner"] == rating["shown"][int(rating["choice"]) - 1]
    expected_first = "A generic reply 4." if ratings[3]["shown"][0] == "base" else "Category: billing\nAction: refund order 4"
    assert first_answer == expected_first
    assert "Ties count as half" in summary and "1 skipped" in summary
    assert csv_text.splitlines()[0].startswith("example_id,choice,winner,answer_1_model,answer_2_model")
    assert len(csv_text.strip().splitlines()) >= 6


def test_a_killed_server_loses_no_rating_and_the_page_resumes(tmp_path: Path, browser) -> None:
    folder = tmp_path / "evaluation"
    write_predictions(folder, count=6)
    with review_process(folder) as (process, url):
        page = _open_page(browser, url, rated=(0, 6))
        for done, key in enumerate(["1", "2", "="], start=1):
            page.keyboard.press(key)
            _wait_rated(page, done, 6)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        page.keyboard.press("1")                              # the server is gone: not saved, and it says so
        _wait_for(lambda: page.get_attribute("#status", "class"), "error")
        page.close()
    ratings = _ratings(folder)
    assert [r["example_id"] for r in ratings] == ["ex-1", "ex-2", "ex-3"]

    with review_process(folder) as (_, url):
        page = _open_page(browser, url, rated=(3, 6))
        assert page.inner_text("#prompt") == "Question 4: <b>was I charged twice?</b>"
        page.keyboard.press("2")
        _wait_rated(page, 4, 6)
        page.close()
    assert [r["example_id"] for r in _ratings(folder)] == ["ex-1", "ex-2", "ex-3", "ex-4"]


def test_a_non_loopback_address_requires_the_token(tmp_path: Path, browser) -> None:
    folder = tmp_path / "evaluation"
    write_predictions(folder, count=2)
    with review_process(folder, "--host", "0.0.0.0") as (_, url):
        assert "?token=" in url
        page = browser.new_page()
        without = page.goto(url.split("?")[0].replace("0.0.0.0", "127.0.0.1"))
        assert without is not None and without.status == 403
        page.goto(url.replace("0.0.0.0", "127.0.0.1"))
        _wait_rated(page, 0, 2)
        page.keyboard.press("1")
        _wait_rated(page, 1, 2)
        page.close()
    assert len(_ratings(folder)) == 1
