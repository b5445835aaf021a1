"""Canary routing (sticky, by share), shadow answers (logged, never returned) and their records."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_sft.errors import PromotionError
from gemini_sft.promotion import ModelVersion
from gemini_sft.review.staging import active_canary, canary_history, set_canary, stage_candidate, staged_candidates
from gemini_sft.serving import ModelReply, ShadowLog, canary_position, goes_to_canary
from serving_helpers import (
    BASE_MODEL,
    CANDIDATE,
    GOOD,
    PARENT,
    PRODUCTION,
    ScriptedModel,
    registry_with_champion,
    scripted_client,
)

KEYS = [f"user-{n}" for n in range(10_000)]


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25, 0.5])
def test_the_share_of_keys_routed_to_the_canary_is_within_two_points(share: float) -> None:
    routed = sum(goes_to_canary(key, CANDIDATE.versioned_name, share) for key in KEYS)
    assert abs(routed / len(KEYS) - share) <= 0.02


def test_routing_is_sticky_and_raising_the_share_only_adds_keys() -> None:
    at_10 = {k for k in KEYS if goes_to_canary(k, CANDIDATE.versioned_name, 0.10)}
    again = {k for k in KEYS if goes_to_canary(k, CANDIDATE.versioned_name, 0.10)}
    at_20 = {k for k in KEYS if goes_to_canary(k, CANDIDATE.versioned_name, 0.20)}
    assert at_10 == again and at_10 < at_20
    other = {k for k in KEYS if goes_to_canary(k, PARENT + "/models/999@1", 0.10)}
    assert len(other & at_10) < len(at_10) / 2                     # a new candidate draws other keys
    assert not any(goes_to_canary(k, CANDIDATE.versioned_name, 0.0) for k in KEYS[:100])
    assert all(goes_to_canary(k, CANDIDATE.versioned_name, 1.0) for k in KEYS[:100])
    assert 0.0 <= canary_position("x", "y") < 1.0


def _models() -> dict[str, ScriptedModel]:
    return {
        PRODUCTION.endpoint: ScriptedModel(PRODUCTION.endpoint, ModelReply(GOOD, "STOP")),
        CANDIDATE.endpoint: ScriptedModel(CANDIDATE.endpoint, ModelReply(GOOD + "\nNote: from the candidate", "STOP")),
        BASE_MODEL: ScriptedModel(BASE_MODEL, ModelReply("base", "STOP")),
    }


def test_the_client_sends_the_canary_share_to_the_candidate_sticky_by_request_key(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path, staged=True)
    set_canary(store, staged_candidates(store)[0], share=0.3, reason="first step")
    client = scripted_client(store, _models())
    first = {key: client.ask("same question", request_key=key).answered_by for key in KEYS[:400]}
    second = {key: client.ask("same question", request_key=key).answered_by for key in KEYS[:400]}
    assert first == second
    share = sum(by == "canary" for by in first.values()) / len(first)
    assert 0.2 <= share <= 0.4
    assert set(first.values()) == {"canary", "tuned"}


def test_an_unfit_canary_answer_falls_back_to_production(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path, staged=True)
    set_canary(store, staged_candidates(store)[0], share=1.0)
    models = _models()
    models[CANDIDATE.endpoint] = ScriptedModel(CANDIDATE.endpoint, ModelReply("", "STOP"))
    answer = scripted_client(store, models).ask("q", request_key="k")
    assert (answer.answered_by, answer.fallback_reason, answer.text) == ("tuned", "empty", GOOD)


def test_shadow_answers_are_logged_next_to_production_and_never_returned(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path, staged=True)
    set_canary(store, staged_candidates(store)[0], share=0.0, shadow=True)
    models = _models()
    client = scripted_client(store, models)
    answers = [client.ask(f"question {n}", request_key=f"user-{n}") for n in range(5)]
    assert {a.answered_by for a in answers} == {"tuned"} and {a.text for a in answers} == {GOOD}
    entries = ShadowLog(store.files).read(CANDIDATE.versioned_name)
    assert len(entries) == 5
    assert {e.prompt for e in entries} == {f"question {n}" for n in range(5)}
    assert all(e.production_text == GOOD and e.shadow_text.endswith("from the candidate") for e in entries)
    assert all(e.production_model == PRODUCTION.endpoint and e.shadow_model == CANDIDATE.endpoint for e in entries)
    assert all("user-" not in e.request_key_sha256 for e in entries)   # the log keeps a digest, not the key
    assert len(models[CANDIDATE.endpoint].requests) == 5


def test_canary_records_keep_the_history_and_one_candidate_at_a_time(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path, staged=True)
    staged = staged_candidates(store)[0]
    set_canary(store, staged, share=0.05, reason="start small")
    set_canary(store, staged, share=0.25)
    assert active_canary(store).canary_share == 0.25
    other = stage_candidate(store, ModelVersion(model=f"{PARENT}/models/300", version="1", endpoint=f"{PARENT}/endpoints/301"))
    with pytest.raises(PromotionError, match="already has a canary"):
        set_canary(store, other, share=0.1)
    set_canary(store, staged, share=0.0, reason="clear")
    assert active_canary(store) is None
    assert [r.canary_share for r in canary_history(store, staged.model)] == [0.05, 0.25, 0.0]
    assert store.champion().model == PRODUCTION                        # canaries never move production
    with pytest.raises(PromotionError):
        set_canary(store, staged, share=1.5)
    with pytest.raises(PromotionError):
        set_canary(store, staged, share=0.2, shadow=True)
