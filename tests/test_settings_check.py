"""The one rule set for pipeline values: every stage record's checks, the region and the recipients."""

from __future__ import annotations

import pytest

from gemini_sft.dataset.settings import CleanConfig
from gemini_sft.errors import ConfigError
from gemini_sft.settings_check import raise_for_settings, setting_problems

RECORDS = [CleanConfig]


def test_good_values_have_no_problem() -> None:
    values = {"train_fraction": 0.7, "validation_fraction": 0.2, "holdout_fraction": 0.1, "location": "europe-west4",
              "notification_emails": ["ml@example.com"]}
    assert setting_problems(values, RECORDS) == []


def test_a_stage_record_refusal_names_the_setting() -> None:
    problems = setting_problems({"train_fraction": 0.9, "validation_fraction": 0.2}, RECORDS)
    assert len(problems) == 1
    assert "train_fraction + validation_fraction + holdout_fraction must be 1" in problems[0]


def test_values_for_other_stages_are_left_to_their_records() -> None:
    assert setting_problems({"epochs": 3, "project": "p"}, RECORDS) == []


def test_region_and_recipients_are_checked() -> None:
    problems = setting_problems(
        {"location": "mars-north1", "notification_emails": ["a@example.com", "b@example.com", "c@example.com", "nope"]},
        RECORDS,
    )
    assert any("mars-north1" in p for p in problems)
    assert any("at most 3" in p for p in problems)
    assert any("'nope' is not an e-mail address" in p for p in problems)


def test_raise_lists_every_problem_in_one_error() -> None:
    with pytest.raises(ConfigError, match="the local run was not started; fix these settings first: .*mars-north1"):
        raise_for_settings({"location": "mars-north1", "seed": -1}, RECORDS, "the local run")
