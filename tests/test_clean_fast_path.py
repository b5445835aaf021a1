"""The clean stage's orjson fast path agrees with the stdlib ``json`` path on every line.

Rows are parsed by orjson and single-turn examples are encoded by orjson;
the stdlib ``json`` module is the reference (it accepts NaN, lone surrogate
escapes and integers of any size, which orjson rejects or reads differently).
Whatever the line, the fast path must give the same example, the same output
bytes and the same rejection (reason and message) as the stdlib path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clean_helpers import all_kept, rejected, run_clean
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemini_sft.dataset.first_pass import field_label
from gemini_sft.dataset.formats import single_turn_fields
from gemini_sft.dataset.json_lines import parse_line, read_json_line
from gemini_sft.dataset.output_lines import single_turn_line, single_turn_line_utf8
from gemini_sft.dataset.records import RowRejected

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRICKY_LINES: list[bytes] = [
    b'{"input": "nan", "output": "x", "score": NaN}',
    b'{"input": "inf", "output": "x", "score": Infinity, "low": -Infinity}',
    b'{"input": NaN, "output": "x"}',
    b'{"input": "lone high \\ud800", "output": "x"}',
    b'{"input": "lone low \\udc00", "output": "x"}',
    b'{"input": "pair \\ud83d\\ude00 and \\uD83D\\uDE00", "output": "x"}',
    b'{"input": "big", "output": "x", "id": 123456789012345678901234567890}',
    b'{"input": 123456789012345678901234567890, "output": "x"}',
    b'{"input": "edges", "output": "x", "a": 18446744073709551615, "b": -9223372036854775809, "c": 1e400}',
    '{"input": "café 東京 🙂", "output": "naïve"}'.encode(),
    b'{"input": "escaped \\u00e9 \\u6771", "output": "x"}',
    '{"input": "separators \u2028 \u2029 \x85", "output": "x\u2028"}'.encode(),
    b'{"input": "escaped separators \\u2028 \\u0085", "output": "x"}',
    b'{"input": "controls \\u0000 \\u001f \\b \\f \\t \\n \\r \\" \\\\ \\/", "output": "\x7f"}',
    b'{"input": "raw control \x01", "output": "x"}',
    b'{"input": "bad utf-8 \xff", "output": "x"}',
    b'{"input": "encoded surrogate \xed\xa0\x80", "output": "x"}',
    b'{"input": "dup", "output": "first", "output": "second"}',
    b'{"input": "trailing form feed", "output": "x"}\x0c\n',
    b'  {"input": "leading spaces", "output": "x"}\r\n',
    b'\xef\xbb\xbf{"input": "bom inside the file", "output": "x"}',
    b'{"input": "x", "output": "y"} {"extra": 1}',
    b'{"input": "unterminated',
    b"[1, 2]",
    b"1e400",
    b"NaN",
    (
        b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "yo"}]}],'
        b' "systemInstruction": {"parts": [{"text": "sys \\ud800"}]}}'
    ),
    (
        b'{"contents": [{"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"n": 12345678901234567890123}}]},'
        b' {"role": "model", "parts": [{"text": "yo"}]}]}'
    ),
    (
        b'{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},'
        b' {"role": "assistant", "content": "a"}], "meta": NaN}'
    ),
    b'{"input": "nested", "output": "x", "meta": ' + b"[" * 995 + b"]" * 995 + b"}",
    b'{"input": "nested", "output": "x", "meta": ' + b"[" * 1100 + b"]" * 1100 + b"}",
]


def outcome(read: Any, line: bytes) -> tuple[Any, ...]:
    """What reading ``line`` gives: the single-turn fields, or the rejection's reason and message."""
    try:
        _, fields = read(line)
    except RowRejected as rejection:
        return ("rejected", rejection.reason, rejection.detail)
    return ("read", fields)


def stdlib_read(line: bytes) -> tuple[dict[str, Any], Any]:
    """The reference: the stdlib parse and the fields it gives."""
    record = parse_line(line)
    return record, single_turn_fields(record)


def assert_same_output_line(fields: tuple[str, str | None, str, str]) -> None:
    """The orjson-encoded line equals the stdlib-encoded one, or orjson refuses what UTF-8 cannot hold."""
    _, system, prompt, response = fields
    reference = single_turn_line(system, prompt, response, "\n")
    try:
        fast = single_turn_line_utf8(system, prompt, response, b"\n")
    except TypeError:  # a lone surrogate: the clean stage then rejects the row as invalid_encoding
        with pytest.raises(UnicodeEncodeError):
            reference.encode("utf-8")
        return
    assert fast == reference.encode("utf-8")


@pytest.mark.parametrize("line", TRICKY_LINES, ids=range(len(TRICKY_LINES)))
def test_fast_read_agrees_with_stdlib_on_tricky_lines(line: bytes) -> None:
    expected = outcome(stdlib_read, line)
    assert outcome(read_json_line, line) == expected
    if expected[0] == "read" and expected[1] is not None:
        assert_same_output_line(expected[1])


json_numbers = (
    st.integers()
    | st.integers(min_value=2**63 - 10, max_value=2**70)
    | st.integers(min_value=-(2**70), max_value=-(2**63) + 10)
    | st.floats()
)
texts = st.text(max_size=30) | st.sampled_from(["\u2028", "\u2029", "\x85", "\ud800", "\udfff", "\x00", "é", "🙂"])
extras = st.dictionaries(st.sampled_from(["id", "category", "score", "system"]), json_numbers | texts, max_size=2)


@SETTINGS
@given(prompt=texts | json_numbers, response=texts, extra=extras, ascii_only=st.booleans())
def test_fast_read_agrees_with_stdlib_on_any_record(
    prompt: Any, response: str, extra: dict[str, Any], ascii_only: bool
) -> None:
    text = json.dumps({"input": prompt, "output": response, **extra}, ensure_ascii=ascii_only)
    line = text.encode("utf-8", "surrogatepass")  # a lone surrogate written raw is invalid UTF-8
    expected = outcome(stdlib_read, line)
    assert outcome(read_json_line, line) == expected
    if expected[0] == "read":
        if expected[1] is not None:
            assert_same_output_line(expected[1])
        record, _ = read_json_line(line)
        for name in extra:
            assert field_label(record, name, line) == field_label(stdlib_read(line)[0], name, line)


def test_orjson_escapes_every_character_as_the_stdlib_does() -> None:
    every_character = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for system in (None, "", "system \u2028 instruction", every_character):
        assert_same_output_line(("input_output", system, every_character, every_character[::-1]))


def test_clean_keeps_stdlib_semantics(tmp_path: Path) -> None:
    text = "\n".join([
        '{"input": "nan elsewhere", "output": "kept", "score": NaN}',
        '{"input": "lone \\ud800", "output": "rejected"}',
        '{"input": "big id", "output": "kept", "category": 123456789012345678901234567890}',
        '{"input": "deep", "output": "stdlib gives up", "meta": ' + "[" * 995 + "]" * 995 + "}",
        '{"input": "line \u2028 separator", "output": "kept"}',
    ]) + "\n"
    report, out = run_clean(tmp_path, text, stratify_by="field:category")
    assert report.kept_rows == 3
    assert sorted((r["line"], r["reason"]) for r in rejected(out)) == [(2, "invalid_encoding"), (4, "unparseable_line")]
    labels = {label for split in report.version.label_distribution.values() for label in split}
    assert labels == {"(none)", "123456789012345678901234567890"}
    lines = b"".join((out / f"{name}.jsonl").read_bytes() for name in ("train", "validation", "holdout"))
    assert b"\\u2028" in lines and "\u2028".encode() not in lines
    assert {example["contents"][0]["parts"][0]["text"] for example in all_kept(out)} == {
        "nan elsewhere", "big id", "line \u2028 separator",
    }
