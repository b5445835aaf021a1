"""An open model Vertex tunes is checked against the token limit of the tuning mode it will be tuned in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_sft.cli import main
from gemini_sft.errors import ConfigError
from gemini_sft.examples import make_example
from gemini_sft.model_catalog import managed_open_model
from gemini_sft.settings_check import pipeline_stage_records, setting_problems
from gemini_sft.tokens import estimate_example_tokens
from gemini_sft.validate import ValidationSettings, validate_splits

LLAMA = "meta/llama3_1@llama-3.1-8b-instruct"
SCOUT = "meta/llama4@llama-4-scout-17b-16e-instruct"


def _lengths(model: str) -> dict[str, int]:
    entry = managed_open_model(model)
    assert entry is not None and entry.open_model is not None
    return entry.open_model.max_sequence_length


def _split_with_a_long_example(tmp_path: Path) -> tuple[Path, int]:
    """A training split whose line 2 is longer than Llama 3.1's PEFT_ADAPTER limit and shorter than FULL's."""
    lengths = _lengths(LLAMA)
    long_example = make_example("word " * 4000, "short answer", "Be brief.")
    tokens = estimate_example_tokens(long_example)
    assert lengths["PEFT_ADAPTER"] < tokens < lengths["FULL"]  # the catalogue's two limits, one each side
    rows = [make_example("question 0", "answer 0", "Be brief."), long_example,
            *(make_example(f"question {i}", f"answer {i}", "Be brief.") for i in range(1, 20))]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path, tokens


def _too_long(path: Path, **settings: str) -> list[tuple[int | None, str]]:
    report = validate_splits(path, None, ValidationSettings(base_model=LLAMA, price_per_million_tokens_usd=1.0,
                                                            **settings), None).train
    return [(issue.line, issue.message) for issue in report.errors if issue.code == "too_many_tokens"]


def test_an_example_above_the_peft_limit_is_refused_under_peft_and_passes_under_full(tmp_path: Path) -> None:
    path, tokens = _split_with_a_long_example(tmp_path)
    refused = _too_long(path, tuning_mode="PEFT_ADAPTER")
    assert [line for line, _ in refused] == [2]
    message = refused[0][1]
    assert f"{tokens:,} tokens" in message and "4,096" in message and "tuning_mode PEFT_ADAPTER" in message
    assert "Shorten it or split the conversation" in message and "set tuning_mode=FULL (its limit is 8,192)" in message
    assert _too_long(path, tuning_mode="FULL") == []


def test_with_no_mode_the_stricter_limit_is_assumed_and_the_message_says_so(tmp_path: Path) -> None:
    path, _ = _split_with_a_long_example(tmp_path)
    refused = _too_long(path)
    assert [line for line, _ in refused] == [2]
    assert "no tuning_mode given" in refused[0][1] and "stricter PEFT_ADAPTER limit is assumed" in refused[0][1]
    assert "set tuning_mode=FULL" in refused[0][1]


def test_gemini_keeps_its_own_limit(tmp_path: Path) -> None:
    path, _ = _split_with_a_long_example(tmp_path)
    report = validate_splits(path, None, ValidationSettings(), None).train
    assert report.valid  # 5,000 tokens are far below Gemini's limit per example


def test_a_mode_the_model_does_not_offer_or_a_mode_for_gemini_is_refused_naming_the_setting() -> None:
    assert list(_lengths(SCOUT)) == ["PEFT_ADAPTER"]
    with pytest.raises(ConfigError, match="tuning_mode 'FULL' is not offered for meta/llama4"):
        ValidationSettings(base_model=SCOUT, tuning_mode="FULL")
    with pytest.raises(ConfigError, match="tuning_mode 'FULL' is for open models"):
        ValidationSettings(tuning_mode="FULL")
    # at an entry point the refusal is one line naming the setting, not one per stage that reads it
    problems = setting_problems({"base_model": SCOUT, "tuning_mode": "FULL"}, pipeline_stage_records())
    assert len([line for line in problems if line.startswith("tuning_mode 'FULL'")]) == 1


def test_the_cli_takes_the_mode_and_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _split_with_a_long_example(tmp_path)
    common = ["validate", str(path), "--base-model", LLAMA, "--price-per-million-tokens-usd", "1", "--json"]
    assert main(common + ["--tuning-mode", "FULL"]) == 0
    capsys.readouterr()
    assert main(common + ["--tuning-mode", "PEFT_ADAPTER"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert [(error["line"], error["code"]) for error in document["errors"]] == [(2, "too_many_tokens")]
