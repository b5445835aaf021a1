"""Checkpoint selection: each rule, ties to the earlier epoch, fallbacks, a job without intermediate checkpoints."""

from __future__ import annotations

import pytest

from gemini_sft.checkpoints import (
    RULE_BEST_VALIDATION_METRIC,
    RULE_LAST,
    RULE_LOWEST_EVAL_LOSS,
    CheckpointCandidate,
    candidates_from_metadata,
    choose_checkpoint,
    run_summary_tuning,
    with_validation_scores,
)
from gemini_sft.errors import ConfigError


def _three(scores=(0.5, 0.7, 0.6), losses=(1.2, 0.9, 1.1)) -> list[CheckpointCandidate]:
    return [
        CheckpointCandidate(str(epoch), epoch=epoch, step=10 * epoch, endpoint=f"e{epoch}",
                            validation_score=score, eval_loss=loss)
        for epoch, score, loss in zip((1, 2, 3), scores, losses)
    ]


def test_best_validation_metric_takes_the_highest_score_not_the_last() -> None:
    choice = choose_checkpoint(_three(), RULE_BEST_VALIDATION_METRIC)
    assert (choice.checkpoint.epoch, choice.rule) == (2, RULE_BEST_VALIDATION_METRIC)
    assert "0.7000" in choice.reason and "validation" in choice.reason


def test_best_validation_metric_is_the_default() -> None:
    assert choose_checkpoint(_three(scores=(0.9, 0.1, 0.2), losses=(3.0, 0.1, 2.0))).checkpoint.epoch == 1


def test_lowest_eval_loss_ignores_validation_scores() -> None:
    choice = choose_checkpoint(_three(scores=(0.9, 0.1, 0.2), losses=(1.0, 2.0, 0.5)), RULE_LOWEST_EVAL_LOSS)
    assert (choice.checkpoint.epoch, choice.rule) == (3, RULE_LOWEST_EVAL_LOSS)


def test_last_takes_the_last_epoch_whatever_its_order_in_the_list() -> None:
    shuffled = list(reversed(_three()))
    choice = choose_checkpoint(shuffled, RULE_LAST)
    assert (choice.checkpoint.epoch, choice.rule) == (3, RULE_LAST)


@pytest.mark.parametrize("rule, scores, losses", [
    (RULE_BEST_VALIDATION_METRIC, (0.6, 0.8, 0.8), (1.0, 1.0, 1.0)),
    (RULE_LOWEST_EVAL_LOSS, (None, None, None), (1.0, 0.7, 0.7)),
])
def test_ties_go_to_the_earlier_epoch(rule, scores, losses) -> None:
    candidates = list(reversed(_three(scores=scores, losses=losses)))  # list order must not decide
    choice = choose_checkpoint(candidates, rule)
    assert choice.checkpoint.epoch == 2
    assert "earliest epoch wins" in choice.reason


def test_without_validation_scores_the_eval_loss_decides_and_says_so() -> None:
    choice = choose_checkpoint(_three(scores=(None, None, None), losses=(1.0, 0.4, 0.8)))
    assert (choice.checkpoint.epoch, choice.rule, choice.requested_rule) == (
        2, RULE_LOWEST_EVAL_LOSS, RULE_BEST_VALIDATION_METRIC)
    assert "no checkpoint has a validation score" in choice.reason.lower()


def test_without_scores_or_losses_the_last_checkpoint_is_kept_and_says_so() -> None:
    choice = choose_checkpoint(_three(scores=(None, None, None), losses=(None, float("nan"), None)))
    assert (choice.checkpoint.epoch, choice.rule) == (3, RULE_LAST)
    assert "no checkpoint has an eval loss" in choice.reason


def test_a_job_without_intermediate_checkpoints_keeps_its_only_one() -> None:
    only = [CheckpointCandidate("3", epoch=3, step=30, endpoint="e3", validation_score=0.1)]
    choice = choose_checkpoint(only, RULE_BEST_VALIDATION_METRIC)
    assert choice.checkpoint.checkpoint_id == "3"
    assert "intermediate checkpoints were off" in choice.reason


def test_unknown_rule_and_no_checkpoint_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="best_validation_metric"):
        choose_checkpoint(_three(), "best")
    with pytest.raises(ConfigError, match="no checkpoint"):
        choose_checkpoint([], RULE_LAST)


def test_validation_scores_are_set_by_checkpoint_id() -> None:
    scored = with_validation_scores(_three(scores=(None, None, None)), {"1": 0.2, "3": 0.9})
    assert [c.validation_score for c in scored] == [0.2, None, 0.9]
    assert choose_checkpoint(scored).checkpoint.epoch == 3


def test_candidates_come_from_the_tune_artifact_and_choose_by_eval_loss() -> None:
    metadata = {"checkpoints": [
        {"checkpoint_id": "1", "epoch": 1, "step": 34, "endpoint": "e1", "train_loss": 0.8, "eval_loss": 0.79},
        {"checkpoint_id": "2", "epoch": 2, "step": 68, "endpoint": "e2", "train_loss": 0.4, "eval_loss": 0.55},
        {"checkpoint_id": "3", "epoch": 3, "step": 102, "endpoint": "e3", "train_loss": 0.2, "eval_loss": 0.75},
    ]}
    candidates = candidates_from_metadata(metadata)
    assert [c.endpoint for c in candidates] == ["e1", "e2", "e3"]
    choice = choose_checkpoint(candidates)  # no validation scores yet: the eval loss decides
    assert (choice.checkpoint.checkpoint_id, choice.rule) == ("2", RULE_LOWEST_EVAL_LOSS)
    assert choice.as_dict()["endpoint"] == "e2" and choice.as_dict()["requested_rule"] == RULE_BEST_VALIDATION_METRIC


def test_run_summary_tuning_section_names_the_choice_and_the_curves() -> None:
    candidates = with_validation_scores(_three(scores=(None, None, None)), {"1": 0.6, "2": 0.9, "3": 0.8})
    choice = choose_checkpoint(candidates)
    section = run_summary_tuning({"offline_standin": True, "tuning_job": "projects/p/locations/l/tuningJobs/1"},
                                 {"train": [[1, 2.0]], "eval": [[1, 2.1]], "note": ""}, candidates, choice)
    assert section["backend"] == "vertex-gemini" and section["offline_standin"] is True
    assert section["job"].endswith("tuningJobs/1")
    assert [c["validation_score"] for c in section["checkpoints"]] == [0.6, 0.9, 0.8]
    assert section["chosen_checkpoint"]["checkpoint_id"] == "2" and section["chosen_checkpoint"]["rule"] == (
        RULE_BEST_VALIDATION_METRIC)
    assert section["loss_curves"] == {"train": [[1, 2.0]], "eval": [[1, 2.1]]}
    assert run_summary_tuning({}, {}, candidates, None)["backend"] == "vertex-gemini"


def test_run_summary_tuning_section_of_an_open_weights_model_names_the_epoch_its_training_kept() -> None:
    metadata = {"tuning_backend": "open-weights", "chosen_checkpoint": "checkpoints/checkpoint-8",
                "chosen_checkpoint_epoch": 2.0, "chosen_checkpoint_step": 8.0, "chosen_checkpoint_eval_loss": 1.25,
                "chosen_by": "lowest validation loss"}
    section = run_summary_tuning(metadata, {"train": [[4, 2.0], [8, 1.5]], "eval": [[4, 1.4], [8, 1.25]]}, [], None)
    assert section["backend"] == "open-weights" and section["checkpoints"] == []
    chosen = section["chosen_checkpoint"]
    assert (chosen["checkpoint_id"], chosen["epoch"], chosen["step"], chosen["rule"]) == (
        "checkpoints/checkpoint-8", 2, 8, RULE_LOWEST_EVAL_LOSS)
    assert isinstance(chosen["epoch"], int) and "epoch 2," in chosen["reason"]
    assert "epoch 2" in chosen["reason"] and "1.2500" in chosen["reason"] and chosen["endpoint"] == ""
    last = run_summary_tuning({**metadata, "chosen_by": "last epoch (no validation)"}, {}, [], None)
    assert last["chosen_checkpoint"]["rule"] == RULE_LAST and "no validation split" in last["chosen_checkpoint"]["reason"]
    assert run_summary_tuning({"tuning_backend": "open-weights"}, {}, [], None)["chosen_checkpoint"] is None
