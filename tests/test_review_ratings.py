"""Ratings file, blinding and the win rate: what approve and the page rely on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gemini_sft.errors import InputFormatError
from gemini_sft.review.items import find_predictions, load_items, shown_order
from gemini_sft.review.ratings import Rating, RatingsFile, summarize, wilson_interval
from gemini_sft.review.server import ReviewSession
from review_helpers import write_predictions


def _rating(example_id: str, choice: str, shown=("base", "tuned"), note: str = "") -> Rating:
    return Rating.make(example_id, choice, shown, note)


def test_win_rate_counts_ties_as_half_excludes_skips_and_uses_the_latest_rating() -> None:
    ratings = [
        _rating("a", "2"),                      # tuned shown second: tuned wins
        _rating("b", "1", ("tuned", "base")),   # tuned wins
        _rating("c", "1"),                      # base wins
        _rating("d", "tie"),
        _rating("e", "skip"),
        _rating("c", "2"),                      # c re-rated: tuned wins now
    ]
    summary = summarize(ratings)
    assert (summary.wins, summary.losses, summary.ties, summary.skips) == (3, 0, 1, 1)
    assert summary.win_rate == pytest.approx(3.5 / 4)
    assert summary.ci_low < summary.win_rate < summary.ci_high <= 1.0
    assert summary.as_metrics()["human_win_rate"] == pytest.approx(0.875)


def test_wilson_interval_matches_the_textbook_values() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_ratings_file_survives_a_torn_last_line(tmp_path: Path) -> None:
    file = RatingsFile(tmp_path / "human_ratings.jsonl")
    file.append(_rating("a", "1"))
    with file.path.open("a", encoding="utf-8") as handle:
        handle.write('{"example_id": "b", "cho')       # a crash in the middle of a write
    file.append(_rating("c", "2", note='says "hi"\nand bye'))
    ratings = file.read()
    assert [r.example_id for r in ratings] == ["a", "c"]
    assert ratings[1].note == 'says "hi"\nand bye' and ratings[1].winner == "tuned"


def test_blinding_is_stable_recorded_and_mixes_the_order(tmp_path: Path) -> None:
    predictions = write_predictions(tmp_path / "evaluation", count=6)
    items, left_out = load_items(predictions)
    again, _ = load_items(predictions)
    assert left_out == 1 and len(items) == 6                       # the row with a failed call is left out
    assert [i.shown for i in items] == [i.shown for i in again]    # same order when the reviewer comes back
    orders = {shown_order(f"salt-{n}", "ex-1") for n in range(20)}
    assert orders == {("base", "tuned"), ("tuned", "base")}
    assert (tmp_path / "evaluation" / "review_blinding.json").is_file()


def test_session_rating_goes_to_the_file_beside_the_predictions_and_refuses_bad_input(tmp_path: Path) -> None:
    write_predictions(tmp_path / "evaluation", count=3)
    session = ReviewSession.open(tmp_path / "evaluation")
    session.rate("ex-1", "1", "ok")
    with pytest.raises(ValueError):
        session.rate("nope", "1")
    with pytest.raises(ValueError):
        session.rate("ex-2", "3")
    state = session.state()
    assert state["done"] == 1 and state["item"]["example_id"] == "ex-2"
    assert (tmp_path / "evaluation" / "human_ratings.jsonl").read_text().count("\n") == 1


def test_csv_export_is_unblinded_and_defuses_formulas(tmp_path: Path) -> None:
    write_predictions(tmp_path / "evaluation", count=2)
    session = ReviewSession.open(tmp_path / "evaluation")
    session.rate("ex-1", "tie", "=HYPERLINK(\"http://x\")")
    lines = session.csv().splitlines()
    assert lines[0].split(",")[:5] == ["example_id", "choice", "winner", "answer_1_model", "answer_2_model"]
    assert "'=HYPERLINK" in lines[1]


def test_find_predictions_in_a_local_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "pipeline_root" / "gemini-sft-1" / "evaluate-models"
    run_dir.mkdir(parents=True)
    (run_dir / "predictions").write_text("{}\n")
    assert find_predictions(tmp_path) == run_dir / "predictions"
    with pytest.raises(InputFormatError):
        find_predictions(tmp_path / "missing")
