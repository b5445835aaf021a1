"""The one rule set for pipeline values: every stage record's checks, the region and the recipients."""

from __future__ import annotations

import pytest

from gemini_sft.dataset.settings import CleanConfig
from gemini_sft.errors import ConfigError
from gemini_sft.pipelines.gemini_sft_pipeline import STAGE_RECORDS, gemini_sft_pipeline
from gemini_sft.settings_check import pipeline_stage_records, raise_for_settings, recipient_problems, setting_problems
from gemini_sft.submit import PipelineSpec, values_to_check
from gemini_sft.tune import TuningSettings
from gemini_sft.validate import ValidationSettings
from gemini_sft.vertex_client import VertexTarget

RECORDS = pipeline_stage_records()


def pipeline_values(**values: object) -> dict[str, object]:
    """What a run of this version's pipeline would use: its defaults overlaid by ``values``."""
    return values_to_check(PipelineSpec.from_pipeline(gemini_sft_pipeline), values)


def test_the_checks_use_the_pipelines_own_stage_records() -> None:
    assert RECORDS is STAGE_RECORDS
    assert {CleanConfig, TuningSettings, ValidationSettings} <= set(RECORDS)


def test_the_pipelines_defaults_are_accepted_and_typed_by_the_spec() -> None:
    values = pipeline_values(project="p", raw_data_uri="gs://b/raw.jsonl", registry_uri="gs://b/registry")
    assert values["epochs"] == 3 and isinstance(values["epochs"], int)
    assert setting_problems(values, RECORDS) == []


def test_good_values_have_no_problem() -> None:
    values = {"train_fraction": 0.7, "validation_fraction": 0.2, "holdout_fraction": 0.1, "location": "europe-west4",
              "notification_emails": ["ml@example.com"]}
    assert setting_problems(values, RECORDS) == []


def test_a_stage_record_refusal_names_the_setting() -> None:
    problems = setting_problems({"train_fraction": 0.9, "validation_fraction": 0.2}, RECORDS)
    assert len(problems) == 1
    assert "train_fraction + validation_fraction + holdout_fraction must be 1" in problems[0]


def test_adapter_size_is_checked_against_the_models_allowed_sizes() -> None:
    problems = setting_problems(pipeline_values(adapter_size=3), RECORDS)
    assert problems == [
        "adapter_size 3 is not allowed for gemini-2.5-flash; allowed: 1, 2, 4, 8, 16 (or 0 to let Vertex choose)"
    ]
    assert setting_problems(pipeline_values(adapter_size=16), RECORDS) == []


def test_a_setting_two_stages_check_is_reported_once_one_line_per_problem() -> None:
    problems = setting_problems(pipeline_values(epochs=0, learning_rate_multiplier=-1.0), RECORDS)
    assert len(problems) == 2, problems
    assert sum("epochs" in problem for problem in problems) == 1
    assert any("learning_rate_multiplier must be > 0" in problem for problem in problems)
    assert all("\n" not in problem and not problem.startswith("Tuning settings") for problem in problems)


def test_a_required_field_without_a_value_is_named() -> None:
    assert setting_problems({}, [VertexTarget]) == [
        "project has no value; set it in the config's parameters or pass --param project=VALUE"
    ]
    assert setting_problems({"project": "p"}, [VertexTarget]) == []


def test_region_and_recipients_are_checked() -> None:
    problems = setting_problems(
        {"location": "mars-north1", "notification_emails": ["a@example.com", "b@example.com", "c@example.com", "nope"]},
        RECORDS,
    )
    assert any("mars-north1" in p for p in problems)
    assert any("at most 3" in p for p in problems)
    assert any("'nope' is not an e-mail address" in p for p in problems)


def test_recipients_are_shaped_like_addresses() -> None:
    assert recipient_problems(["ml@example.com", "team.lead@corp.example.org"]) == []
    assert len(recipient_problems(["ml@example", "two words@example.com", "@example.com"])) == 3


def test_raise_lists_every_problem_on_its_own_line() -> None:
    with pytest.raises(ConfigError) as caught:
        raise_for_settings({"location": "mars-north1", "seed": -1}, RECORDS, "the local run was not started")
    lines = str(caught.value).splitlines()
    assert lines[0] == "2 settings would be refused (the local run was not started); fix them first:"
    assert lines[1].startswith("  - ") and "seed" in lines[1]
    assert lines[2].startswith("  - location 'mars-north1'")
    raise_for_settings({"seed": 1}, RECORDS, "unused")  # accepted values raise nothing
