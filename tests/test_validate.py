"""The validate core: every rule with its code and line, limits, tokens, streaming and robustness."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemini_sft.errors import ConfigError, DatasetInvalidError, InputFormatError, VertexApiError
from gemini_sft.examples import make_example
from gemini_sft.model_catalog import limits_for
from gemini_sft.tokens import estimate_example_tokens
from gemini_sft.validate import reading
from gemini_sft.validate import run as validate_run
from gemini_sft.validate import (
    ERROR_CODES,
    TOKEN_SOURCE_API,
    TOKEN_SOURCE_ESTIMATE,
    WARNING_CODES,
    ValidationConfig,
    ValidationReport,
    raise_if_invalid,
    validate_dataset,
)

SI = {"parts": [{"text": "You are a support agent."}]}


def good(prompt: str = "Where is my order?", answer: str = "It ships tomorrow.", si: dict | None = SI) -> dict:
    example: dict[str, Any] = {}
    if si is not None:
        example["systemInstruction"] = si
    example["contents"] = [
        {"role": "user", "parts": [{"text": prompt}]},
        {"role": "model", "parts": [{"text": answer}]},
    ]
    return example


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


def write_lines(path: Path, lines: list[bytes], newline_at_end: bool = True) -> Path:
    path.write_bytes(b"\n".join(lines) + (b"\n" if newline_at_end else b""))
    return path


def run(tmp_path: Path, lines: list[bytes], **config: Any) -> ValidationReport:
    return validate_dataset(write_lines(tmp_path / "data.jsonl", lines), ValidationConfig(**config))


def issues(report: ValidationReport, code: str) -> list[int | None]:
    return [i.line for i in report.errors + report.warnings if i.code == code]


def turns(*roles_and_texts: tuple[Any, Any]) -> list[dict]:
    return [{"role": role, "parts": [{"text": text}]} for role, text in roles_and_texts]


# One bad line per error code; the bad line is always line 2, after a valid line 1.
BAD_LINES: dict[str, bytes] = {
    "invalid_utf8": b'{"contents": "caf\xe9"}',
    "invalid_json": b'{"contents": [',
    "non_finite_number": b'{"contents": [], "score": NaN}',
    "not_an_object": b'["user", "model"]',
    "blank_line": b"   ",
    "missing_contents": line({"systemInstruction": SI}),
    "invalid_contents": line({"contents": "hello"}),
    "empty_contents": line({"contents": []}),
    "invalid_turn": line({"contents": ["hi", {"role": "model", "parts": [{"text": "a"}]}]}),
    "invalid_role": line({"contents": turns(("user", "q"), ("assistant", "a"))}),
    "system_role_in_contents": line({"contents": turns(("system", "s"), ("user", "q"), ("model", "a"))}),
    "consecutive_roles": line({"contents": turns(("user", "q"), ("user", "q2"), ("model", "a"))}),
    "first_turn_not_user": line({"contents": turns(("model", "hello"), ("user", "q"), ("model", "a"))}),
    "last_turn_not_model": line({"contents": turns(("user", "q"), ("model", "a"), ("user", "q2"))}),
    "missing_parts": line({"contents": [{"role": "user", "content": "q"}, {"role": "model", "parts": [{"text": "a"}]}]}),
    "empty_parts": line({"contents": [{"role": "user", "parts": []}, {"role": "model", "parts": [{"text": "a"}]}]}),
    "invalid_part": line({"contents": [{"role": "user", "parts": ["q"]}, {"role": "model", "parts": [{"text": "a"}]}]}),
    "invalid_text": line({"contents": turns(("user", 42), ("model", "a"))}),
    "empty_text": line({"contents": turns(("user", "q"), ("model", "  \n"))}),
    "invalid_file_data": line(
        {
            "contents": [
                {"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "https://x/y.png"}}]},
                {"role": "model", "parts": [{"text": "a cat"}]},
            ]
        }
    ),
    "invalid_system_instruction": line({"systemInstruction": "be nice", "contents": turns(("user", "q"), ("model", "a"))}),
    "too_many_tokens": line(good(prompt="x" * (4 * 131_072 + 8))),
}


def test_every_line_level_error_code_has_a_case() -> None:
    file_level = {"byte_order_mark", "line_too_long", "file_too_large", "too_many_examples",
                  "too_many_validation_examples", "no_examples", "compressed_file"}
    assert set(BAD_LINES) | file_level == set(ERROR_CODES)


@pytest.mark.parametrize("code", sorted(BAD_LINES))
def test_each_error_is_reported_with_its_code_and_line(tmp_path: Path, code: str) -> None:
    report = run(tmp_path, [line(good()), BAD_LINES[code], line(good())])
    assert not report.valid
    assert 2 in issues(report, code), report.errors
    # no other line is blamed, and the message says how to fix it without quoting the data
    assert all(issue.line == 2 for issue in report.errors), report.errors
    flagged = [issue for issue in report.errors if issue.code == code]
    assert all(len(issue.message) > 30 for issue in flagged)
    assert report.error_counts[code] >= 1


def test_a_valid_file_has_no_errors_and_counts_every_example(tmp_path: Path) -> None:
    examples = [good(f"question {i}", f"answer {i}") for i in range(150)]
    report = run(tmp_path, [line(e) for e in examples])
    assert report.valid
    assert report.errors == [] and report.error_counts == {}
    assert report.examples == 150
    assert report.warnings == []
    assert report.token_source == TOKEN_SOURCE_ESTIMATE
    expected = [estimate_example_tokens(e) for e in examples]
    assert report.token_stats.total == sum(expected)
    assert report.token_stats.min == min(expected)
    assert report.token_stats.max == max(expected)


def test_multi_turn_multimodal_and_function_parts_are_valid(tmp_path: Path) -> None:
    example = {
        "systemInstruction": {"role": "system", "parts": [{"text": "Describe images."}, {"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "What is this?"},
                                       {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/cat.png"}}]},
            {"role": "model", "parts": [{"text": "A cat."}]},
            {"role": "user", "parts": [{"text": "Colour?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "lookup"}]}],
    }
    report = run(tmp_path, [line(example)] * 3)
    assert report.valid, report.errors
    assert report.multimodal_examples == 3
    assert report.token_stats.total == 3 * estimate_example_tokens(example)


def test_several_errors_on_one_line_are_all_reported(tmp_path: Path) -> None:
    bad = {"contents": turns(("model", "a"), ("model", " "), ("user", "q"))}
    report = run(tmp_path, [line(bad)])
    assert {"first_turn_not_user", "consecutive_roles", "empty_text", "last_turn_not_model"} <= set(report.error_counts)


def test_system_role_message_says_where_to_move_it(tmp_path: Path) -> None:
    report = run(tmp_path, [BAD_LINES["system_role_in_contents"]])
    (issue,) = [i for i in report.errors if i.code == "system_role_in_contents"]
    assert "systemInstruction" in issue.message


def test_assistant_role_gets_a_hint_to_use_model(tmp_path: Path) -> None:
    report = run(tmp_path, [BAD_LINES["invalid_role"]])
    assert "'model'" in report.errors[0].message


def test_byte_order_mark_is_reported_and_the_first_line_still_checked(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line(good()) + b"\n" + line({"contents": []}) + b"\n")
    report = validate_dataset(path, ValidationConfig())
    assert issues(report, "byte_order_mark") == [1]
    assert report.examples == 2
    assert issues(report, "empty_contents") == [2]
    assert report.token_stats.examples == 2


def test_crlf_line_endings_and_a_missing_final_newline_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"\r\n".join(line(good()) for _ in range(3)))
    report = validate_dataset(path, ValidationConfig())
    assert report.valid, report.errors
    assert report.examples == 3


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    report = run(tmp_path, [line(good()), b"", line(good()), line({"contents": []})])
    assert issues(report, "blank_line") == [2]
    assert issues(report, "empty_contents") == [4]
    assert report.examples == 3
    assert report.lines == 4


def test_infinity_is_rejected_like_nan(tmp_path: Path) -> None:
    report = run(tmp_path, [b'{"contents": [], "x": -Infinity}'])
    assert issues(report, "non_finite_number") == [1]
    assert "-Infinity" in report.errors[0].message


def test_deeply_nested_json_is_reported_not_raised(tmp_path: Path) -> None:
    report = run(tmp_path, [b"[" * 100_000 + b"]" * 100_000, line(good())])
    assert issues(report, "invalid_json") == [1]


def test_trailing_garbage_after_the_object_is_invalid_json(tmp_path: Path) -> None:
    report = run(tmp_path, [line(good()) + b" {}"])
    assert issues(report, "invalid_json") == [1]


def test_leading_whitespace_is_accepted(tmp_path: Path) -> None:
    report = run(tmp_path, [b"  " + line(good())])
    assert report.valid, report.errors


def test_inline_data_is_refused_with_a_fix(tmp_path: Path) -> None:
    example = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]},
                            {"role": "model", "parts": [{"text": "a"}]}]}
    report = run(tmp_path, [line(example)])
    assert issues(report, "invalid_part") == [1]
    assert "fileData" in report.errors[0].message


@pytest.mark.parametrize(
    "file_data",
    [{"fileUri": "gs://b/x.png"}, {"mimeType": "image/png"}, "gs://b/x.png", {"mimeType": "png", "fileUri": "gs://"}],
)
def test_file_data_needs_mime_type_and_gcs_uri(tmp_path: Path, file_data: Any) -> None:
    example = {"contents": [{"role": "user", "parts": [{"fileData": file_data}]},
                            {"role": "model", "parts": [{"text": "a"}]}]}
    report = run(tmp_path, [line(example)])
    assert issues(report, "invalid_file_data") == [1]


@pytest.mark.parametrize(
    "instruction",
    [None, {"parts": []}, {"parts": [{"text": " "}]}, {"parts": "x"}, {"parts": [{"fileData": {}}]}, ["x"]],
)
def test_system_instruction_shape(tmp_path: Path, instruction: Any) -> None:
    report = run(tmp_path, [line({"systemInstruction": instruction, "contents": turns(("user", "q"), ("model", "a"))})])
    assert issues(report, "invalid_system_instruction") == [1]


# ---------------------------------------------------------------------------- warnings


def test_unknown_keys_are_warnings_at_every_level(tmp_path: Path) -> None:
    example = good()
    example["id"] = 7
    example["contents"][0]["name"] = "alice"
    example["contents"][1]["parts"][0]["thought"] = False
    example["systemInstruction"] = {"parts": [{"text": "x"}], "lang": "en"}
    report = run(tmp_path, [line(good()), line(example)])
    assert report.valid
    assert issues(report, "unknown_key") == [2, 2, 2, 2]
    messages = " ".join(i.message for i in report.warnings)
    assert "'id'" in messages and "'name'" in messages and "'thought'" in messages and "'lang'" in messages


def test_missing_system_instruction_is_one_warning_with_the_first_line(tmp_path: Path) -> None:
    lines = [line(good())] * 150 + [line(good(si=None))] * 3
    report = run(tmp_path, lines)
    assert report.valid
    assert issues(report, "missing_system_instruction") == [151]
    assert report.warning_counts["missing_system_instruction"] == 1
    assert "3 example" in report.warnings[0].message


def test_inconsistent_system_instructions_point_at_the_first_different_one(tmp_path: Path) -> None:
    other = {"parts": [{"text": "You are a pirate."}]}
    report = run(tmp_path, [line(good())] * 120 + [line(good(si=other))])
    assert report.valid
    assert issues(report, "inconsistent_system_instructions") == [121]


def test_few_examples_warns_but_does_not_fail(tmp_path: Path) -> None:
    report = run(tmp_path, [line(good())] * 99)
    assert report.valid
    assert issues(report, "few_examples") == [None]
    assert run(tmp_path, [line(good())] * 100).warnings == []


def test_few_examples_is_not_a_warning_for_a_validation_file(tmp_path: Path) -> None:
    report = run(tmp_path, [line(good())] * 10, split="validation")
    assert report.valid and report.warnings == []


def test_near_token_limit_warns_once_with_the_first_line(tmp_path: Path) -> None:
    near = good(prompt="x" * (4 * 125_000))
    report = run(tmp_path, [line(good()), line(near), line(near)])
    assert report.valid
    assert issues(report, "near_token_limit") == [2]


def test_every_warning_code_is_documented() -> None:
    assert {"unknown_key", "missing_system_instruction", "inconsistent_system_instructions", "few_examples",
            "near_token_limit", "token_count_api_unavailable", "token_count_api_skipped"} == set(WARNING_CODES)


# ---------------------------------------------------------------------------- file-level limits


@pytest.fixture
def tiny_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Limits small enough to test the file-level rules on small files."""
    small = replace(
        limits_for("gemini-2.5-flash"),
        max_training_file_bytes=2_000,
        max_training_examples_text=5,
        max_training_examples_multimodal=3,
        max_validation_examples=4,
    )
    monkeypatch.setattr(validate_run, "limits_for", lambda model: small)


def test_empty_file_has_no_examples(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = validate_dataset(path, ValidationConfig())
    assert not report.valid
    assert issues(report, "no_examples") == [None]
    assert report.token_stats.examples == 0 and report.estimated_cost_usd == 0.0


def test_file_too_large(tmp_path: Path, tiny_limits: None) -> None:
    report = run(tmp_path, [line(good("q" * 500))] * 4)
    assert issues(report, "file_too_large") == [None]


def test_too_many_examples(tmp_path: Path, tiny_limits: None) -> None:
    report = run(tmp_path, [line(good("q", "a", si=None))] * 6)
    assert issues(report, "too_many_examples") == [None]
    assert run(tmp_path, [line(good("q", "a", si=None))] * 5).valid


def test_multimodal_files_have_a_lower_example_limit(tmp_path: Path, tiny_limits: None) -> None:
    example = {"contents": [{"role": "user", "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x"}}]},
                            {"role": "model", "parts": [{"text": "a"}]}]}
    report = run(tmp_path, [line(example)] * 4)
    assert issues(report, "too_many_examples") == [None]


def test_too_many_validation_examples(tmp_path: Path, tiny_limits: None) -> None:
    lines = [line(good("q", "a", si=None))] * 5
    assert issues(run(tmp_path, lines, split="validation"), "too_many_validation_examples") == [None]
    assert "too_many_validation_examples" not in run(tmp_path, lines).error_counts


def test_validation_cap_is_5000_for_gemini_2_5(tmp_path: Path) -> None:
    lines = [line(good(f"q{i}", "a"))for i in range(5_001)]
    report = run(tmp_path, lines, split="validation")
    assert issues(report, "too_many_validation_examples") == [None]
    assert "5,000" in report.errors[0].message
    assert run(tmp_path, lines[:5_000], split="validation").valid


def test_a_line_too_long_to_be_an_example_is_skipped_not_buffered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "MAX_LINE_BYTES", 4_096)
    lines = [line(good()), line(good(prompt="x" * 20_000)), line({"contents": []})]
    report = run(tmp_path, lines, chunk_bytes=1_024)
    assert issues(report, "line_too_long") == [2]
    assert issues(report, "empty_contents") == [3]
    assert report.examples == 3


# ---------------------------------------------------------------------------- report and API


def test_json_shape_is_exactly_the_documented_one(tmp_path: Path) -> None:
    report = run(tmp_path, [line(good()), BAD_LINES["invalid_role"]])
    document = report.to_json_dict()
    assert list(document) == ["valid", "examples", "errors", "warnings", "token_stats", "estimated_cost_usd"]
    assert document["valid"] is False and document["examples"] == 2
    assert document["errors"][0] == {"line": 2, "code": "invalid_role", "message": report.errors[0].message}
    assert set(document["token_stats"]) == {"examples", "min", "mean", "p50", "p95", "max", "total"}
    json.dumps(document)  # serialisable


def test_markdown_groups_errors_by_code_with_line_numbers(tmp_path: Path) -> None:
    lines = [line(good())] + [BAD_LINES["invalid_role"]] * 8 + [BAD_LINES["empty_contents"]]
    markdown = run(tmp_path, lines).to_markdown()
    assert "`invalid_role`" in markdown and "(8)" in markdown
    assert "line 2:" in markdown and "line 6:" in markdown
    assert "and 3 more" in markdown
    assert "`empty_contents`" in markdown and "line 10:" in markdown
    assert "offline estimates" in markdown


def test_stored_errors_are_capped_but_counts_are_complete(tmp_path: Path) -> None:
    report = run(tmp_path, [BAD_LINES["empty_contents"]] * 1_500, chunk_bytes=4_096)
    assert len(report.errors) == 1_000
    assert report.error_counts["empty_contents"] == 1_500
    assert [i.line for i in report.errors] == list(range(1, 1_001))


def test_results_do_not_depend_on_chunking_or_workers(tmp_path: Path) -> None:
    lines = []
    for i in range(400):
        lines.append(line(good(f"q{i} " * (i % 17), f"a{i}")))
        if i % 37 == 0:
            lines.append(BAD_LINES["consecutive_roles"])
        if i % 53 == 0:
            lines.append(b"\xff not utf8")
    lines[0] = b"\xef\xbb\xbf" + lines[0]
    path = write_lines(tmp_path / "mixed.jsonl", lines, newline_at_end=False)
    reference = validate_dataset(path, ValidationConfig(workers=1))
    assert issues(reference, "byte_order_mark") == [1]
    for config in (ValidationConfig(workers=1, chunk_bytes=1_024), ValidationConfig(workers=2, chunk_bytes=2_048)):
        other = validate_dataset(path, config)
        assert other.to_json_dict() == reference.to_json_dict()
        assert other.error_counts == reference.error_counts


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", [line(good())] * 300)
    seen: list[tuple[int, int]] = []
    validate_dataset(path, ValidationConfig(chunk_bytes=4_096), progress=lambda done, total: seen.append((done, total)))
    assert len(seen) > 1
    assert seen[-1] == (path.stat().st_size, path.stat().st_size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_missing_file_raises_input_format_error(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="missing.jsonl"):
        validate_dataset(tmp_path / "missing.jsonl", ValidationConfig())


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ValidationConfig(model="gemini-1.0-pro")


def test_raise_if_invalid_names_lines_and_codes(tmp_path: Path) -> None:
    report = run(tmp_path, [line(good()), BAD_LINES["invalid_role"]])
    with pytest.raises(DatasetInvalidError, match=r"line 2: \[invalid_role\]"):
        raise_if_invalid(report)
    raise_if_invalid(run(tmp_path, [line(good())]))


def test_no_example_content_reaches_logs_or_messages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "SECRET-4111-1111-1111-1111"
    lines = [
        line(good(secret, secret)),
        line({"contents": turns(("user", secret), ("assistant", secret))}),
        line({"systemInstruction": secret, "contents": [{"role": "user", "parts": [{"text": secret}]}]}),
        (b'{"contents": "' + secret.encode() + b'" trailing'),
        line(good(secret * 140_000)),
    ]
    with caplog.at_level(logging.DEBUG):
        report = run(tmp_path, lines)
    assert not report.valid
    assert secret not in caplog.text
    assert secret not in json.dumps(report.to_json_dict())
    assert secret not in report.to_markdown()


class FakeCounter:
    """Counts 10 tokens per character of the first user text, like an API would (differently from the estimate)."""

    def __init__(self, fail_after_calls: int | None = None) -> None:
        self.calls = 0
        self.fail_after_calls = fail_after_calls

    def count_example_tokens(self, examples: Any) -> list[int]:
        self.calls += 1
        if self.fail_after_calls is not None and self.calls > self.fail_after_calls:
            raise VertexApiError("HTTP 503")
        return [10 * len(e["contents"][0]["parts"][0]["text"]) for e in examples]


def test_token_counter_counts_replace_the_estimate(tmp_path: Path) -> None:
    report = validate_dataset(
        write_lines(tmp_path / "api.jsonl", [line(good("abcd")), line(good("a" * 20_000)), BAD_LINES["empty_contents"]]),
        ValidationConfig(),
        token_counter=FakeCounter(),
    )
    assert report.token_source == TOKEN_SOURCE_API
    # the two valid examples are counted by the API; the invalid one keeps its estimate
    assert report.token_stats.max == 200_000
    assert report.token_stats.examples == 3
    assert issues(report, "too_many_tokens") == [2]
    assert "countTokens API" in [i for i in report.errors if i.code == "too_many_tokens"][0].message
    assert issues(report, "empty_contents") == [3]


def test_token_counter_failure_falls_back_to_the_estimate_and_says_so(tmp_path: Path) -> None:
    lines = [line(good(f"q{i}")) for i in range(200)]
    path = write_lines(tmp_path / "api.jsonl", lines)
    report = validate_dataset(path, ValidationConfig(chunk_bytes=2_048), token_counter=FakeCounter(fail_after_calls=2))
    offline = validate_dataset(path, ValidationConfig())
    assert report.token_source == TOKEN_SOURCE_ESTIMATE
    assert issues(report, "token_count_api_unavailable") == [None]
    assert report.token_stats == offline.token_stats
    assert report.valid


def test_validation_split_is_not_billed(tmp_path: Path) -> None:
    report = run(tmp_path, [line(good())] * 3, split="validation")
    assert report.estimated_cost_usd == 0.0


def test_cost_follows_the_formula(tmp_path: Path) -> None:
    examples = [good(f"q{i}" * i, "a") for i in range(120)]
    report = run(tmp_path, [line(e) for e in examples], epochs=4, price_per_million_tokens_usd=2.0)
    tokens = sum(estimate_example_tokens(e) for e in examples)
    assert report.billable_tokens == (tokens + 8 * 120) * 4
    assert report.estimated_cost_usd == pytest.approx((tokens + 8 * 120) * 4 * 2.0 / 1e6)


# ---------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)
roles = st.sampled_from(["user", "model", "system", "assistant", "", None])
parts = st.lists(
    st.one_of(
        st.fixed_dictionaries({"text": st.text(max_size=30)}),
        st.fixed_dictionaries({"fileData": st.fixed_dictionaries(
            {"mimeType": st.sampled_from(["image/png", "x"]), "fileUri": st.sampled_from(["gs://b/x", "http://x"])})}),
        json_values,
    ),
    max_size=3,
)
turn = st.one_of(
    st.fixed_dictionaries({"role": st.one_of(roles, json_values), "parts": st.one_of(parts, json_values)}),
    json_values,
)
example_like = st.one_of(
    st.fixed_dictionaries(
        {"contents": st.one_of(st.lists(turn, max_size=4), json_values)},
        optional={
            "systemInstruction": st.one_of(st.fixed_dictionaries({"parts": st.one_of(parts, json_values)}), json_values),
            "tools": json_values,
        },
    ),
    json_values,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.integers(min_value=1_024, max_value=4_096))
def test_the_validator_never_raises_on_arbitrary_bytes(tmp_path: Path, data: bytes, chunk_bytes: int) -> None:
    path = tmp_path / "arbitrary.jsonl"
    path.write_bytes(data)
    report = validate_dataset(path, ValidationConfig(chunk_bytes=chunk_bytes))
    json.dumps(report.to_json_dict())
    report.to_markdown()
    assert report.examples <= data.count(b"\n") + 1
    assert report.valid == (report.error_counts == {})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(example_like, min_size=1, max_size=8), st.booleans())
def test_token_estimates_match_the_estimator_on_any_shape(tmp_path: Path, examples: list[Any], raw_utf8: bool) -> None:
    def dump(example: Any) -> str:
        text = json.dumps(example, ensure_ascii=not raw_utf8)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates can only be written escaped
            text = json.dumps(example)
        return text

    path = tmp_path / "shapes.jsonl"
    path.write_text("\n".join(dump(e) for e in examples) + "\n", encoding="utf-8")
    report = validate_dataset(path, ValidationConfig())
    objects = [e for e in examples if isinstance(e, dict)]
    assert report.token_stats.examples == len(objects)
    assert report.token_stats.total == sum(estimate_example_tokens(e) for e in objects)
    assert report.examples == len(examples)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(min_size=1, max_size=40).filter(lambda t: t.strip()),
                          st.text(min_size=1, max_size=40).filter(lambda t: t.strip())), min_size=1, max_size=10))
def test_examples_built_by_make_example_are_valid(tmp_path: Path, pairs: list[tuple[str, str]]) -> None:
    path = tmp_path / "made.jsonl"
    path.write_text("\n".join(json.dumps(make_example(p, r, "Be brief.")) for p, r in pairs) + "\n", encoding="utf-8")
    report = validate_dataset(path, ValidationConfig())
    assert report.error_counts == {}, report.errors


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"\n", b"ab", b"{}", b"x" * 300, b"\r\n", b"\n\n"]), max_size=60),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=8, max_value=400),
    st.integers(min_value=0, max_value=3),
)
def test_offset_chunks_agree_with_data_chunks(pieces: list[bytes], chunk_bytes: int, max_line: int, skip: int) -> None:
    import io

    content = b"".join(pieces)
    with_data = list(reading.read_chunks(io.BytesIO(content[skip:]), chunk_bytes, max_line, skip))
    offsets = list(reading.chunk_offsets(io.BytesIO(content[skip:]), chunk_bytes, max_line, skip))

    def shape(item: Any) -> tuple:
        if isinstance(item, reading.LongLine):
            return ("long", item.bytes_done)
        return ("chunk", item.offset, item.length, item.bytes_done)

    assert [shape(i) for i in offsets] == [shape(i) for i in with_data]
    # memory stays bounded: no chunk is larger than a read plus the longest line kept
    assert all(i.length <= chunk_bytes + max_line + 1 for i in offsets if isinstance(i, reading.Chunk))
    covered = b""
    for item in with_data:
        if isinstance(item, reading.Chunk):
            assert item.data.endswith(b"\n")
            assert item.data.rstrip(b"\n") == content[item.offset : item.offset + item.length].rstrip(b"\n")
            assert item.data.count(b"\n") == max(content[item.offset : item.offset + item.length].count(b"\n"), 1)
            covered += content[item.offset : item.offset + item.length]
    if not any(isinstance(i, reading.LongLine) for i in with_data):
        assert covered == content[skip:]


def test_non_ascii_text_is_estimated_from_its_utf8_size(tmp_path: Path) -> None:
    from gemini_sft.tokens import estimate_text_tokens

    assert estimate_text_tokens("abcdefgh") == 2
    assert estimate_text_tokens("注文注文") == 3  # 12 UTF-8 bytes, 4 per token
    assert estimate_text_tokens("café") == 2  # 5 bytes
    example = good("注文" * 100, "配送 café")
    # 3 turns (system instruction included); UTF-8 bytes: 24 + 600 + 12 = 636 -> 159 tokens
    assert estimate_example_tokens(example) == 3 * 3 + 159
    for raw_utf8 in (True, False):
        path = tmp_path / "cjk.jsonl"
        path.write_text(json.dumps(example, ensure_ascii=not raw_utf8) + "\n", encoding="utf-8")
        report = validate_dataset(path, ValidationConfig())
        assert report.token_stats.total == estimate_example_tokens(example)


@pytest.mark.parametrize(
    "example",
    [
        {"contents": 5},
        {"contents": True},
        {"contents": {"role": "user"}},
        {"contents": [{"role": "user", "parts": 5}, {"role": "model", "parts": {"text": "a"}}]},
        {"contents": [{"role": "user", "parts": [{"text": ["a"]}]}], "systemInstruction": {"parts": 3}},
        {"contents": [{"role": ["user"], "parts": [{"text": "q"}]}]},
        {"contents": [{"role": {"x": 1}, "parts": [{"text": "q"}]}]},
    ],
)
def test_odd_value_types_are_reported_not_raised(tmp_path: Path, example: dict) -> None:
    report = run(tmp_path, [line(example)])
    assert not report.valid
    assert all(issue.line == 1 for issue in report.errors)


def test_token_counter_is_not_asked_about_more_examples_than_the_cap(tmp_path: Path) -> None:
    lines = [line(good(f"question {i}")) for i in range(300)]
    path = write_lines(tmp_path / "big.jsonl", lines)
    counter = FakeCounter()
    report = validate_dataset(path, ValidationConfig(chunk_bytes=4_096, max_api_examples=100), token_counter=counter)
    assert report.token_source == TOKEN_SOURCE_ESTIMATE
    assert report.token_stats == validate_dataset(path, ValidationConfig()).token_stats
    (warning,) = [w for w in report.warnings if w.code == "token_count_api_skipped"]
    assert "more than 100 examples" in warning.message and "x the offline estimate" in warning.message
    assert counter.calls >= 1
    small = validate_dataset(path, ValidationConfig(max_api_examples=300), token_counter=FakeCounter())
    assert small.token_source == TOKEN_SOURCE_API


@pytest.mark.parametrize(
    "raw_line",
    [
        '{"contents":[{"role":"user","parts":[{"text":"é' + "\\u00e9" * 7 + ' \\n x"}]},'
        '{"role":"model","parts":[{"text":"ok"}]}]}',
        '{"contents":[{"role":"user","parts":[{"text":"' + "\\n\\t\\\"" * 5 + 'é"}]},'
        '{"role":"model","parts":[{"text":"\\u6ce8\\u6587 注文"}]}]}',
        '{"systemInstruction":{"parts":[{"text":"\\u6ce8\\u6587"}]},"contents":[{"role":"user","parts":[{"text":"q\\\\u"}]},'
        '{"role":"model","parts":[{"text":"ü"}]}]}',
    ],
)
def test_escaped_and_raw_non_ascii_in_one_line_are_both_counted(tmp_path: Path, raw_line: str) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(raw_line.encode("utf-8") + b"\n")
    report = validate_dataset(path, ValidationConfig())
    assert report.valid, report.errors
    assert report.token_stats.total == estimate_example_tokens(json.loads(raw_line))


def test_a_compressed_file_is_one_clear_error(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(line(good()) for _ in range(50))))
    report = validate_dataset(path, ValidationConfig())
    assert report.error_counts == {"compressed_file": 1}
    assert issues(report, "compressed_file") == [None]
    assert "gzip" in report.errors[0].message


def test_failing_worker_processes_fall_back_to_checking_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    def broken(*args: Any, **kwargs: Any) -> None:
        raise BrokenProcessPool("a worker was killed")

    path = write_lines(tmp_path / "w.jsonl", [b"\xef\xbb\xbf" + line(good())] + [line(good())] * 150 + [b"[]"])
    reference = validate_dataset(path, ValidationConfig(workers=1))
    monkeypatch.setattr(validate_run, "_validate_parallel", broken)
    report = validate_dataset(path, ValidationConfig(workers=2, chunk_bytes=1_024))
    assert report.to_json_dict() == reference.to_json_dict()
    assert issues(report, "byte_order_mark") == [1] and issues(report, "not_an_object") == [152]
