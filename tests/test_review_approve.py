"""The human gate: staging instead of promoting, approve thresholds, reject reasons, what status reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.errors import PromotionError
from gemini_sft.promotion import PromotionStore, Provenance
from gemini_sft.review.staging import find_staged, promote_or_stage, staged_candidates
from gemini_sft.review.ratings import Rating, RatingsFile
from serving_helpers import BASE_MODEL, CANDIDATE, PRODUCTION, registry_with_champion


class RecordingRegistry:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add_alias(self, version, alias):
        self.calls.append(("add", version.versioned_name, alias))

    def remove_alias(self, version, alias):
        self.calls.append(("remove", version.versioned_name, alias))

    def merge_labels(self, version, labels):
        self.calls.append(("labels", version.versioned_name))


def test_require_human_review_stages_the_candidate_and_leaves_production_alone(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path)
    registry = RecordingRegistry()
    record = promote_or_stage(store, CANDIDATE, require_human_review=True, registry=registry, provenance=Provenance(
                                  base_model=BASE_MODEL, pipeline_run="run-2", metrics={"tuned_rougeL": 0.9}))
    assert record.kind == "staged" and record.previous_champion == PRODUCTION
    assert registry.calls == []
    assert store.champion().model == PRODUCTION
    assert json.loads((tmp_path / "champion.json").read_text())["model"]["model"] == PRODUCTION.model
    assert [r.model for r in staged_candidates(store)] == [CANDIDATE]
    assert find_staged(store, "run-2").model == CANDIDATE
    assert find_staged(store, CANDIDATE.versioned_name).model == CANDIDATE
    with pytest.raises(PromotionError, match="staged: run-2"):
        find_staged(store, "run-9")

    promoted = promote_or_stage(store, CANDIDATE, require_human_review=False, registry=registry)
    assert promoted.kind == "promotion" and store.champion().model == CANDIDATE
    assert ("add", CANDIDATE.versioned_name, "production") in registry.calls
    assert staged_candidates(store) == []


def _ratings(path: Path, wins: int, ties: int, losses: int, skips: int = 0) -> Path:
    file = RatingsFile(path)
    path.touch()
    choices = ["2"] * wins + ["tie"] * ties + ["1"] * losses + ["skip"] * skips
    for n, choice in enumerate(choices):
        file.append(Rating.make(f"ex-{n}", choice, ("base", "tuned")))
    return path


def _approve(registry: Path, ratings: Path, *extra: str) -> int:
    return main(["approve", "--registry-uri", str(registry), "--no-registry", "--ratings", str(ratings),
                 *extra, "run-2"])


@pytest.mark.parametrize(
    ("wins", "ties", "losses", "skips", "min_share", "approved"),
    [
        (3, 0, 1, 0, "0.75", True),       # 0.75 reaches 0.75
        (2, 1, 1, 0, "0.75", False),      # (2 + 0.5) / 4 = 0.625
        (2, 2, 0, 0, "0.75", True),       # (2 + 1) / 4 = 0.75: ties count as half
        (1, 0, 0, 9, "0.5", False),       # skips do not count: 1 rating < 3
        (0, 0, 0, 0, "0.5", False),
    ],
)
def test_approve_promotes_only_when_the_win_rate_reaches_the_share(
    tmp_path: Path, capsys, wins, ties, losses, skips, min_share, approved
) -> None:
    store = registry_with_champion(tmp_path / "registry", staged=True)
    ratings = _ratings(tmp_path / "human_ratings.jsonl", wins, ties, losses, skips)
    code = _approve(tmp_path / "registry", ratings, "--min-win-rate", min_share)
    out = capsys.readouterr().out
    assert code == (0 if approved else 1)
    assert (store.champion().model == CANDIDATE) is approved
    if approved:
        assert store.champion().metrics["human_wins"] == wins
    else:
        assert out.startswith("Not approved") and staged_candidates(store)[0].model == CANDIDATE


def test_the_share_comes_from_the_config_with_a_default(tmp_path: Path, capsys) -> None:
    store = registry_with_champion(tmp_path / "registry", staged=True)
    ratings = _ratings(tmp_path / "human_ratings.jsonl", 3, 0, 2)    # 0.6
    config = tmp_path / "prod.yaml"
    config.write_text(
        "project: my-project-dev\npipeline_root: gs://bucket/root\nmin_human_win_rate: 0.7\n", encoding="utf-8")
    assert main(["approve", "--config", str(config), "--registry-uri", str(tmp_path / "registry"), "--no-registry",
                 "--ratings", str(ratings), "run-2"]) == 1
    assert "is below the required 0.700" in capsys.readouterr().out
    assert _approve(tmp_path / "registry", ratings) == 0              # no config: the default share, 0.5
    assert store.champion().model == CANDIDATE


def test_reject_records_the_reason_and_ends_the_wait(tmp_path: Path, capsys) -> None:
    store = registry_with_champion(tmp_path / "registry", staged=True)
    code = main(["reject", "--registry-uri", str(tmp_path / "registry"), "--reason", "tone is off", "run-2"])
    assert code == 0
    last = store.history()[-1]
    assert last.kind == "rejection" and last.model == CANDIDATE
    assert last.reasons == ["rejected in human review: tone is off"]
    assert staged_candidates(store) == [] and store.champion().model == PRODUCTION
    assert main(["reject", "--registry-uri", str(tmp_path / "registry"), "--reason", "again", "run-2"]) == 1


def test_canary_commands_record_set_and_clear(tmp_path: Path, capsys) -> None:
    store = registry_with_champion(tmp_path / "registry", staged=True)
    uri = str(tmp_path / "registry")
    assert main(["canary", "set", "--registry-uri", uri, "--share", "10%", "run-2"]) == 0
    assert main(["canary", "set", "--registry-uri", uri, "--shadow", "run-2"]) == 0
    assert main(["canary", "clear", "--registry-uri", uri, "--reason", "done"]) == 0
    assert [(r.canary_share, r.shadow) for r in store.history() if r.kind == "canary"] == [
        (0.1, False), (0.0, True), (0.0, False)]
    assert main(["canary", "set", "--registry-uri", uri, "--share", "abc", "run-2"]) == 2
    assert isinstance(PromotionStore(uri).champion().model, type(PRODUCTION))


def test_the_chosen_checkpoint_survives_staging_and_approval(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path / "registry")
    staged = promote_or_stage(store, CANDIDATE, require_human_review=True, provenance=Provenance(
        base_model=BASE_MODEL, pipeline_run="run-2", checkpoint_id="2"))
    assert staged.checkpoint_id == "2"
    assert _approve(tmp_path / "registry", _ratings(tmp_path / "ratings.jsonl", 3, 0, 0), "--min-win-rate", "0.5") == 0
    assert store.champion().model == CANDIDATE
    assert store.champion().checkpoint_id == "2"
