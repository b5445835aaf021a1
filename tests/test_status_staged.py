"""``gemini-sft status`` lists the candidates staged for review and the canary or shadow in force."""

from __future__ import annotations

import json
from pathlib import Path

from gemini_sft.cli import main
from gemini_sft.review.staging import find_staged, set_canary
from serving_helpers import CANDIDATE, PRODUCTION, registry_with_champion


def test_status_shows_the_staged_candidate_and_its_canary(tmp_path: Path, capsys) -> None:
    store = registry_with_champion(tmp_path, staged=True)
    assert main(["status", "--registry-uri", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"In production ('production'): {PRODUCTION.versioned_name}" in out
    waiting = out.split("Staged for human review (1, oldest first", 1)[1].split("History")[0].splitlines()[1:]
    assert len(waiting) == 1 and "run=run-2" in waiting[0]
    assert CANDIDATE.versioned_name.split("/models/")[-1] in waiting[0] and "canary" not in waiting[0]

    set_canary(store, find_staged(store, "run-2"), share=0.1)
    assert main(["status", "--registry-uri", str(tmp_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["pipeline_run"] for r in document["staged"]] == ["run-2"]
    assert document["canary"]["canary_share"] == 0.1
    assert main(["status", "--registry-uri", str(tmp_path)]) == 0
    assert "canary 10% of requests" in capsys.readouterr().out

    set_canary(store, find_staged(store, "run-2"), share=0.0, shadow=True)
    assert main(["status", "--registry-uri", str(tmp_path)]) == 0
    assert "  shadow" in capsys.readouterr().out


def test_status_says_nothing_of_staging_when_nothing_waits(tmp_path: Path, capsys) -> None:
    registry_with_champion(tmp_path)
    assert main(["status", "--registry-uri", str(tmp_path)]) == 0
    assert "Staged for human review" not in capsys.readouterr().out
