"""The model catalogue is one data file; the code and the stand-in read their facts from it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.genai import errors, types

from gemini_sft import model_catalog
from gemini_sft.errors import ConfigError
from gemini_sft.model_catalog import (
    ADAPTER_SIZE_ENUM,
    CATALOG_FILE,
    UncataloguedModelWarning,
    catalog,
    limits_for,
    load_catalog,
)
from gemini_sft.standin import VertexStandIn
from gemini_sft.vertex_client import VertexSettings, genai_client

pytestmark = pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental")

TUNABLE = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
           "gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.1-flash-lite")
DISCONTINUED = ("gemini-2.0-flash", "gemini-2.0-flash-lite")
LIMIT_KEYS = ("max_tokens_per_example", "max_training_examples_text", "max_training_examples_multimodal",
              "max_validation_examples", "max_training_file_bytes", "input_token_limit", "output_token_limit")


def raw_catalog() -> dict[str, Any]:
    return json.loads(CATALOG_FILE.read_text(encoding="utf-8"))


def test_the_catalogue_covers_the_models_vertex_tunes_and_marks_retired_ones() -> None:
    models = catalog().models
    assert set(TUNABLE) <= set(catalog().tunable_names())
    for name in DISCONTINUED:
        assert models[name].status == "discontinued" and models[name].discontinued_on == "2026-06-01"
        assert not models[name].tunable
    assert catalog().default_base_model == model_catalog.DEFAULT_BASE_MODEL == "gemini-2.5-flash"


@pytest.mark.parametrize("name", TUNABLE)
def test_every_tunable_model_has_what_the_code_needs(name: str) -> None:
    entry = raw_catalog()["models"][name]
    for group in ("adapter_sizes", "limits", "thinking", "prices_usd"):
        assert isinstance(entry[group]["verified"], bool), (name, group)
        assert entry[group]["source"].startswith("https://") and entry[group]["read_on"], (name, group)
    assert set(entry["adapter_sizes"]["values"]) <= set(ADAPTER_SIZE_ENUM)
    assert all(isinstance(entry["limits"][key], int) and entry["limits"][key] > 0 for key in LIMIT_KEYS)
    prices = entry["prices_usd"]
    assert prices["thinking_billed_as"] == "output"
    for key in ("training_per_million_tokens", "input_per_million_tokens", "output_per_million_tokens"):
        assert prices[key] is None or prices[key] > 0
        if prices[key] is None:
            assert prices["verified"] is False
    rules = catalog().models[name].thinking
    assert rules is not None and rules.control in ("budget", "level")
    if rules.control == "level":
        assert rules.lowest in rules.levels
    else:
        assert rules.budget_max and (rules.can_disable or rules.budget_min)
    limits = limits_for(name)
    assert limits.name == name and limits.adapter_sizes and limits.price_per_million_training_tokens_usd > 0


def test_thinking_rules_and_prices_are_looked_up_by_model_reference() -> None:
    from gemini_sft.model_catalog import catalog_entry

    pro = catalog_entry("publishers/google/models/gemini-2.5-pro-001")
    assert pro is not None and pro.thinking is not None and not pro.thinking.can_disable
    assert pro.prices is not None and pro.prices.generation_output and pro.prices.verified is False
    flash_35 = catalog_entry("gemini-3.5-flash")
    assert flash_35 is not None and flash_35.thinking is not None and flash_35.thinking.budget_refused
    assert catalog_entry("projects/p/locations/l/models/1@production") is None
    assert catalog_entry("gemini-4-flash") is None


def test_retired_models_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="discontinued on 2026-06-01"):
        limits_for("gemini-2.0-flash-001")


def test_an_uncatalogued_model_warns_naming_the_file_and_does_not_stop_the_user() -> None:
    with pytest.warns(UncataloguedModelWarning) as caught:
        limits = limits_for("publishers/google/models/gemini-4-flash")
    message = str(caught[0].message)
    assert str(CATALOG_FILE) in message and "Add an entry" in message
    assert limits.name == "gemini-4-flash"
    assert limits.max_tokens_per_example == limits_for("gemini-2.5-flash").max_tokens_per_example


def test_a_catalogued_model_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncataloguedModelWarning)
        assert limits_for("gemini-3.5-flash").adapter_sizes


def test_a_malformed_catalogue_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "models.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="Cannot read the model catalogue"):
        load_catalog(broken)
    document = raw_catalog()
    document["models"]["gemini-2.5-flash"]["adapter_sizes"]["values"] = [3]
    broken.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match="gemini-2.5-flash.*malformed"):
        load_catalog(broken)


@pytest.fixture()
def edited_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped catalogue plus a model only this test knows, one adapter size only."""
    document = raw_catalog()
    entry = json.loads(json.dumps(document["models"]["gemini-2.5-flash"]))
    entry["display_name"] = "Test model"
    entry["adapter_sizes"]["values"] = [1]
    entry["thinking"]["can_disable"] = False
    document["models"]["gemini-test-model"] = entry
    path = tmp_path / "models.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    monkeypatch.setattr(model_catalog, "CATALOG_FILE", path)
    catalog.cache_clear()
    yield path
    catalog.cache_clear()


def test_the_standin_checks_come_from_the_catalogue_file(
    edited_catalogue: Path, standin: VertexStandIn, tmp_path: Path
) -> None:
    client = genai_client(VertexSettings.create("p", "us-central1", standin.base_url))
    assert client.models.generate_content(model="gemini-test-model", contents="Hello").text
    with pytest.raises(errors.ClientError) as no_off:
        client.models.generate_content(
            model="gemini-test-model", contents="Hello",
            config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0)),
        )
    assert no_off.value.code == 400
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"contents": [{"role": "user", "parts": [{"text": "q"}]},
                                              {"role": "model", "parts": [{"text": "a"}]}]}) + "\n")
    with pytest.raises(errors.ClientError) as refused:
        client.tunings.tune(
            base_model="gemini-test-model", training_dataset=types.TuningDataset(gcs_uri=str(train)),
            config=types.CreateTuningJobConfig(adapter_size="ADAPTER_SIZE_TWO"),
        )
    assert refused.value.code == 400 and "gemini-test-model" in refused.value.message
    assert limits_for("gemini-test-model").adapter_sizes == (1,)
