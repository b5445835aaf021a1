"""Shared helpers every stage relies on: endpoint settings, model limits, example splitting."""

from __future__ import annotations

import pytest

from gemini_sft.parameters import coerce_value, parse_assignments
from gemini_sft.errors import ConfigError
from gemini_sft.examples import evaluation_case, make_example
from gemini_sft.model_catalog import limits_for
from gemini_sft.storage import gcs_uri_for, local_path
from gemini_sft.vertex_client import VertexSettings, is_loopback_endpoint, resolve_api_endpoint


def test_api_endpoint_comes_from_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERTEX_API_ENDPOINT", raising=False)
    assert resolve_api_endpoint(None) is None
    monkeypatch.setenv("VERTEX_API_ENDPOINT", "http://127.0.0.1:9000/")
    assert resolve_api_endpoint(None) == "http://127.0.0.1:9000"
    assert resolve_api_endpoint("europe-west4-aiplatform.googleapis.com") == (
        "https://europe-west4-aiplatform.googleapis.com"
    )


def test_bad_api_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="not an http"):
        resolve_api_endpoint("ftp://example")


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:1", True),
        ("http://[::1]:8080", True),
        ("https://us-central1-aiplatform.googleapis.com", False),
        (None, False),
    ],
)
def test_loopback_detection(endpoint: str | None, local: bool) -> None:
    assert is_loopback_endpoint(endpoint) is local


def test_settings_require_project_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VERTEX_API_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="project"):
        VertexSettings.create("", "us-central1")
    with pytest.raises(ConfigError, match="region"):
        VertexSettings.create("p", "")
    assert VertexSettings.create("p", "us-central1", "http://127.0.0.1:1").uses_local_server


def test_model_limits_by_family_and_unknown_models() -> None:
    assert limits_for("gemini-2.5-flash-001").name == "gemini-2.5-flash"
    assert limits_for("publishers/google/models/gemini-2.5-flash-lite").name == "gemini-2.5-flash-lite"
    assert limits_for("gemini-2.5-flash").max_tokens_per_example == 131_072
    assert limits_for("projects/p/locations/l/models/123@production").name == "gemini-2.5-flash"
    with pytest.raises(ConfigError, match="cannot be tuned"):
        limits_for("gemini-2.0-flash")


def test_evaluation_case_takes_turns_before_last_model_turn() -> None:
    example = make_example("Where is my parcel?", "Category: shipping", system_instruction="Triage tickets.")
    example["contents"] += [
        {"role": "user", "parts": [{"text": "And the invoice?"}]},
        {"role": "model", "parts": [{"text": "Category: billing"}]},
    ]
    case = evaluation_case(example)
    assert case.reference == "Category: billing"
    assert len(case.contents) == 3 and case.contents[-1]["role"] == "user"
    assert case.system_instruction == "Triage tickets."
    with pytest.raises(ValueError):
        evaluation_case({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})


def test_gcs_uris_map_to_the_fuse_mount() -> None:
    assert str(local_path("gs://bucket/a/b.jsonl")) == "/gcs/bucket/a/b.jsonl"
    assert str(local_path("file:///tmp/x")) == "/tmp/x"
    assert gcs_uri_for("/gcs/bucket/a") == "gs://bucket/a"


def test_command_line_parameters_are_typed_by_the_spec() -> None:
    types = {
        "epochs": "NUMBER_INTEGER",
        "learning_rate_multiplier": "NUMBER_DOUBLE",
        "mask_pii": "BOOLEAN",
        "label_pattern": "STRING",
        "tuning_labels": "STRUCT",
    }
    values = parse_assignments(
        [
            "epochs=5",
            "learning_rate_multiplier=0.5",
            "mask_pii=true",
            r"label_pattern=Category: (\w+)",
            'tuning_labels={"team": "support"}',
        ],
        types,
    )
    assert values == {
        "epochs": 5,
        "learning_rate_multiplier": 0.5,
        "mask_pii": True,
        "label_pattern": r"Category: (\w+)",
        "tuning_labels": {"team": "support"},
    }
    with pytest.raises(ConfigError, match="no parameter 'epoch'"):
        parse_assignments(["epoch=5"], types)
    with pytest.raises(ConfigError, match="must be an integer"):
        coerce_value("epochs", "three", "NUMBER_INTEGER")
    with pytest.raises(ConfigError, match="true or false"):
        coerce_value("mask_pii", "maybe", "BOOLEAN")
    with pytest.raises(ConfigError, match="not NAME=VALUE"):
        parse_assignments(["epochs"], types)
