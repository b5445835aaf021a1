"""``gemini-sft ask`` over HTTP against the offline stand-in, and the whole human-review flow after a local run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.promotion import PromotionStore, Provenance, promote
from gemini_sft.review.staging import stage_candidate, staged_candidates
from gemini_sft.review.server import ReviewSession
from gemini_sft.serving import fallback_reason, read_contract
from gemini_sft.standin import VertexStandIn
from serving_helpers import BASE_MODEL, GOOD, standin_endpoint, write_training_file


def _ask(capsys, registry: Path, standin: VertexStandIn, *extra: str) -> dict:
    capsys.readouterr()
    code = main(["ask", "--registry-uri", str(registry), "--api-endpoint", standin.base_url, "--json", *extra,
                 "My card was charged twice"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_ask_falls_back_to_the_base_model_when_the_tuned_endpoint_answers_empty(
    tmp_path: Path, standin: VertexStandIn, capsys
) -> None:
    silent = standin_endpoint(standin, write_training_file(tmp_path / "silent.jsonl", ["", ""]))
    registry = tmp_path / "registry"
    promote(PromotionStore(str(registry)), silent, provenance=Provenance(base_model=BASE_MODEL))

    answer = _ask(capsys, registry, standin)
    assert answer["answered_by"] == "base" and answer["fallback_reason"] == "empty"
    assert answer["model"] == BASE_MODEL and answer["text"].strip()
    tuned_calls = standin.requests_to(silent.endpoint.rsplit("/", 1)[-1] + ":generateContent")
    assert len(tuned_calls) == 1
    config = tuned_calls[0].body.get("generationConfig", {})
    assert config.get("responseLogprobs") is True
    assert "responseSchema" not in config and "responseMimeType" not in config and "responseJsonSchema" not in config


def test_ask_returns_the_tuned_answer_and_says_so(tmp_path: Path, standin: VertexStandIn, capsys) -> None:
    tuned = standin_endpoint(standin, write_training_file(tmp_path / "train.jsonl", [GOOD]))
    registry = tmp_path / "registry"
    promote(PromotionStore(str(registry)), tuned, provenance=Provenance(base_model=BASE_MODEL))
    answer = _ask(capsys, registry, standin)
    assert (answer["answered_by"], answer["model"], answer["fallback_reason"], answer["text"]) == (
        "tuned", tuned.endpoint, None, GOOD)
    assert any("no output contract" in note for note in answer["notes"])


@pytest.mark.e2e
def test_local_run_review_approve_then_ask(tmp_path: Path, capsys) -> None:
    from gemini_sft.local_run import run_local

    with VertexStandIn() as standin:
        run = run_local(output_dir=tmp_path / "run", standin=standin)
        run_champion = PromotionStore(str(run.output_dir / "registry")).champion()
        registry = tmp_path / "registry"
        store = PromotionStore(str(registry))
        stage_candidate(store, run_champion.model, provenance=Provenance(
            base_model=run_champion.base_model, pipeline_run=run.run_dir.name, metrics=run_champion.metrics))

        session = ReviewSession.open(run.output_dir)
        for item in session.items[:2]:                              # too few ratings: not approved
            session.rate(item.example_id, "1" if item.shown[0] == "tuned" else "2")
        capsys.readouterr()
        assert main(["approve", "--registry-uri", str(registry), "--no-registry", str(run.output_dir)]) == 1
        assert "at least 3 are needed" in capsys.readouterr().out
        assert main(["approve", "--registry-uri", str(registry), "--no-registry", "--min-win-rate", "0.9",
                     "--min-ratings", "2", str(run.output_dir)]) == 0      # 2 wins of 2 reach 0.9
        assert store.champion() is not None and store.champion().model == run_champion.model
        assert staged_candidates(store) == []
        assert store.champion().metrics["human_win_rate"] == 1.0
        assert (registry / "contracts" / (run_champion.model.versioned_name.rsplit("/", 1)[-1] + ".json")).is_file()

        answer = _ask(capsys, registry, standin)
    assert answer["answered_by"] == "tuned" and answer["fallback_reason"] is None
    assert answer["text"].startswith("Category: ") and not any("no output contract" in n for n in answer["notes"])

    # the rules applied to the evaluation's own answers: the tuned ones keep the contract, the base ones do not
    contract = read_contract(store, run_champion.model.versioned_name)
    rows = [json.loads(line) for line in session.predictions.read_text(encoding="utf-8").splitlines()]
    tuned = [fallback_reason(r["tuned"]["answer"], r["tuned"]["finish_reason"], contract) for r in rows]
    base = [fallback_reason(r["base"]["answer"], r["base"]["finish_reason"], contract) for r in rows]
    assert tuned.count(None) == len(rows)
    assert set(base) == {"contract_lines"}
