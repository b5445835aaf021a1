"""The end of `run --local` says what happened to the candidate: promoted, staged, deployed or rejected."""

from __future__ import annotations

from pathlib import Path

from gemini_sft.local_run import LocalRunResult, _outcome, format_result
from gemini_sft.promotion import PromotionStore, record_rejection
from gemini_sft.review.staging import stage_candidate
from serving_helpers import CANDIDATE, registry_with_champion


def result(tmp_path: Path, outcome: str, passed: bool = True) -> LocalRunResult:
    return LocalRunResult(output_dir=tmp_path, run_dir=tmp_path, log_file=tmp_path / "log", seconds=1.0,
                          gate_passed=passed, gate_reasons=[], outcome=outcome)


def test_a_promotion_says_promoted(tmp_path: Path) -> None:
    registry_with_champion(tmp_path / "registry")
    assert _outcome(tmp_path / "registry", tmp_path) == "PASSED, tuned model promoted"


def test_a_staged_candidate_says_how_to_review_and_approve_it(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path / "registry")
    stage_candidate(store, CANDIDATE)
    text = format_result(result(tmp_path, _outcome(tmp_path / "registry", tmp_path)))
    assert "Gate: PASSED, staged for human review: gemini-sft review" in text
    assert "gemini-sft approve --registry-uri" in text


def test_a_rejection_and_no_registry(tmp_path: Path) -> None:
    store = PromotionStore(str(tmp_path / "registry"))
    record_rejection(store, CANDIDATE, ["tuned - base rougeL = -0.1 < 0"])
    assert _outcome(tmp_path / "registry", tmp_path) == "FAILED, tuned model not promoted"
    assert _outcome(tmp_path / "nowhere", tmp_path) == ""
    assert result(tmp_path, "", passed=False).outcome_text == "FAILED, tuned model not promoted"
