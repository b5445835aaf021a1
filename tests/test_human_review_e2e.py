"""require_human_review end to end: a local run stages its candidate, status shows it, approve promotes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.promotion import PromotionStore
from gemini_sft.review.items import find_predictions
from gemini_sft.review.ratings import Rating, RatingsFile
from gemini_sft.review.staging import staged_candidates
from gemini_sft.serving import read_contract

pytestmark = pytest.mark.e2e


def test_a_reviewed_run_stages_the_candidate_until_people_approve_it(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(["run", "--local", "--output", str(run_dir), "--param", "require_human_review=true"]) == 0
    store = PromotionStore(str(run_dir / "registry"))
    # the gate passed, but nothing is in production: the candidate waits for people
    assert store.champion() is None
    [staged] = staged_candidates(store)
    assert staged.kind == "staged" and staged.metrics["tuned_rougeL"] > staged.metrics["base_rougeL"]
    # the output contract is stored even though the candidate is not promoted yet
    contract = read_contract(store, staged.model.versioned_name)
    assert contract is not None and contract.training_answers > 0

    capsys.readouterr()
    assert main(["status", "--registry-uri", str(run_dir / "registry")]) == 0
    shown = capsys.readouterr().out
    assert "Nothing is in production yet" in shown
    assert "Staged for human review (1" in shown and staged.model.versioned_name.split("/models/")[-1] in shown
    assert main(["status", "--registry-uri", str(run_dir / "registry"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in document["staged"]] == [staged.model.model_dump(mode="json")]

    predictions = find_predictions(run_dir)
    ratings = predictions.parent / "human_ratings.jsonl"
    ratings.touch()
    file = RatingsFile(ratings)
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    for row in rows[:4]:
        file.append(Rating.make(row["example_id"], "2", ("base", "tuned")))
    code = main(["approve", "--registry-uri", str(run_dir / "registry"), "--no-registry",
                 "--ratings", str(ratings), str(run_dir)])
    assert code == 0, capsys.readouterr().out
    assert store.champion().model == staged.model
    assert staged_candidates(store) == []
