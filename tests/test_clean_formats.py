"""Record formats and file containers the clean stage reads."""

from __future__ import annotations

import gzip
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from gemini_sft.dataset.formats import convert_record
from gemini_sft.dataset.output_lines import gemini_json_line
from gemini_sft.dataset.records import (
    FORMAT_GEMINI,
    FORMAT_INPUT_OUTPUT,
    FORMAT_INPUT_TEXT,
    FORMAT_MESSAGES,
    FORMAT_PROMPT_COMPLETION,
    RejectReason,
    RowRejected,
)
from gemini_sft.dataset.sources import (
    CONTAINER_CSV,
    CONTAINER_JSONL,
    CONTAINER_TSV,
    detect_source,
)
from gemini_sft.examples import make_example

SYSTEM = "You triage support tickets."


def gemini(system: str | None, *turns: tuple[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {"contents": [{"role": role, "parts": [{"text": text}]} for role, text in turns]}
    if system is not None:
        record["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
    return record


def as_example(record: dict[str, Any]) -> dict[str, Any]:
    converted = convert_record(record)
    return json.loads(gemini_json_line(converted.system_instruction, converted))


@pytest.mark.parametrize(
    ("record", "expected_format", "expected"),
    [
        ({"input": "Where is my parcel?", "output": "shipping"}, FORMAT_INPUT_OUTPUT,
         make_example("Where is my parcel?", "shipping")),
        ({"input_text": "Refund please", "output_text": "billing"}, FORMAT_INPUT_TEXT,
         make_example("Refund please", "billing")),
        ({"prompt": "App crashes", "completion": "technical"}, FORMAT_PROMPT_COMPLETION,
         make_example("App crashes", "technical")),
        (gemini(SYSTEM, ("user", "Locked out"), ("model", "account")), FORMAT_GEMINI,
         make_example("Locked out", "account", SYSTEM)),
        (gemini(None, ("user", "Locked out"), ("model", "account")), FORMAT_GEMINI, make_example("Locked out", "account")),
        ({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Card declined"},
                       {"role": "assistant", "content": "billing"}]}, FORMAT_MESSAGES,
         make_example("Card declined", "billing", SYSTEM)),
        ({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Card declined"},
                       {"role": "model", "content": "billing"}]}, FORMAT_MESSAGES,
         make_example("Card declined", "billing", SYSTEM)),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                       {"role": "assistant", "content": "hello"}]}, FORMAT_MESSAGES, make_example("Hi", "hello")),
        ({"input": "Where?", "output": "shipping", "system": SYSTEM}, FORMAT_INPUT_OUTPUT,
         make_example("Where?", "shipping", SYSTEM)),
    ],
)
def test_each_format_becomes_the_same_gemini_example(record: dict[str, Any], expected_format: str, expected: dict[str, Any]) -> None:
    assert convert_record(record).source_format == expected_format
    assert as_example(record) == expected


def test_text_is_nfc_normalised_and_trimmed() -> None:
    decomposed = "Zoe\u0308 says: cafe\u0301 \n"
    example = as_example({"input": f"\t {decomposed}", "output": "  feedback\n"})
    assert example["contents"][0]["parts"][0]["text"] == "Zo\u00eb says: caf\u00e9"
    assert example["contents"][1]["parts"][0]["text"] == "feedback"


def test_multi_turn_contents_keep_every_turn_and_the_last_answer_is_the_response() -> None:
    record = gemini(None, ("user", "Hi"), ("model", "Hello, how can I help?"), ("user", " My card was declined "), ("model", "billing"))
    converted = convert_record(record)
    assert converted.response == "billing"
    example = as_example(record)
    assert [c["role"] for c in example["contents"]] == ["user", "model", "user", "model"]
    assert example["contents"][2]["parts"] == [{"text": "My card was declined"}]


def test_non_text_parts_are_kept() -> None:
    file_part = {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/screenshot.png"}}
    record = {"contents": [{"role": "user", "parts": [{"text": "See screenshot"}, file_part]},
                           {"role": "model", "parts": [{"text": "technical"}]}]}
    assert as_example(record)["contents"][0]["parts"] == [{"text": "See screenshot"}, file_part]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"foo": "bar"}, RejectReason.UNKNOWN_FORMAT),
        ({"input": "", "output": "x"}, RejectReason.EMPTY_PROMPT),
        ({"input": "  \n", "output": "x"}, RejectReason.EMPTY_PROMPT),
        ({"output": "x"}, RejectReason.EMPTY_PROMPT),
        ({"input": "x", "output": ""}, RejectReason.EMPTY_RESPONSE),
        ({"input": "x", "output": None}, RejectReason.EMPTY_RESPONSE),
        ({"input": "x"}, RejectReason.EMPTY_RESPONSE),
        ({"input": "x", "output": 3}, RejectReason.INVALID_STRUCTURE),
        ({"input": ["x"], "output": "y"}, RejectReason.INVALID_STRUCTURE),
        ({"contents": []}, RejectReason.INVALID_STRUCTURE),
        ({"contents": "hello"}, RejectReason.INVALID_STRUCTURE),
        ({"contents": [{"role": "user", "parts": "x"}, {"role": "model", "parts": [{"text": "y"}]}]},
         RejectReason.INVALID_STRUCTURE),
        ({"contents": [{"role": "user", "parts": [{"text": 1}]}, {"role": "model", "parts": [{"text": "y"}]}]},
         RejectReason.INVALID_STRUCTURE),
        ({"systemInstruction": 5, **gemini(None, ("user", "a"), ("model", "b"))}, RejectReason.INVALID_STRUCTURE),
        (gemini(None, ("system", "s"), ("user", "a"), ("model", "b")), RejectReason.INVALID_ROLES),
        (gemini(None, ("user", "a"), ("user", "b"), ("model", "c")), RejectReason.INVALID_ROLES),
        (gemini(None, ("user", "a"), ("model", "b"), ("user", "c")), RejectReason.INVALID_ROLES),
        (gemini(None, ("model", "a"), ("user", "b"), ("model", "c")), RejectReason.INVALID_ROLES),
        (gemini(None, ("assistant", "a"),), RejectReason.INVALID_ROLES),
        (gemini(None, ("user", "a"), ("model", "  ")), RejectReason.EMPTY_RESPONSE),
        (gemini(None, ("user", " "), ("model", "b")), RejectReason.EMPTY_PROMPT),
        ({"messages": [{"role": "customer", "content": "a"}, {"role": "agent", "content": "b"}]}, RejectReason.INVALID_ROLES),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
                       {"role": "assistant", "content": "b"}]}, RejectReason.INVALID_ROLES),
        ({"messages": [{"role": "system", "content": "s"}]}, RejectReason.EMPTY_PROMPT),
        ({"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "b"}]}, RejectReason.INVALID_STRUCTURE),
        ({"messages": []}, RejectReason.INVALID_STRUCTURE),
    ],
)
def test_unusable_records_are_rejected_with_a_reason(record: dict[str, Any], reason: RejectReason) -> None:
    with pytest.raises(RowRejected) as caught:
        convert_record(record)
    assert caught.value.reason is reason
    assert caught.value.detail  # a plain-language explanation


def test_gemini_contents_take_precedence_over_other_format_keys() -> None:
    record = {**gemini(None, ("user", "a"), ("model", "b")), "input": "other", "output": "other"}
    assert convert_record(record).source_format == FORMAT_GEMINI


@pytest.mark.parametrize(
    ("name", "content", "container"),
    [
        ("data.jsonl", b'{"input": "a", "output": "b"}\n', CONTAINER_JSONL),
        ("data.csv", b"input,output\na,b\n", CONTAINER_CSV),
        ("data.tsv", b"input\toutput\na\tb\n", CONTAINER_TSV),
        ("export", b"prompt,completion\na,b\n", CONTAINER_CSV),
        ("export.txt", b"\xef\xbb\xbfinput_text\toutput_text\na\tb\n", CONTAINER_TSV),
        ("export", b'\xef\xbb\xbf{"input": "a", "output": "b"}\n', CONTAINER_JSONL),
        ("notes.txt", b"hello world\n", CONTAINER_JSONL),
    ],
)
def test_container_is_detected_by_extension_or_content(tmp_path: Path, name: str, content: bytes, container: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    info = detect_source(path)
    assert (info.container, info.compressed) == (container, False)


def test_gzip_is_detected_by_magic_bytes_whatever_the_name(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"  # no .gz suffix
    path.write_bytes(gzip.compress(b'{"input": "a", "output": "b"}\n'))
    assert detect_source(path).compressed
    csv_path = tmp_path / "data.csv.gz"
    csv_path.write_bytes(gzip.compress(b"input,output\na,b\n"))
    info = detect_source(csv_path)
    assert (info.container, info.compressed) == (CONTAINER_CSV, True)


def test_line_aligned_ranges_cover_the_file_and_start_on_lines(tmp_path: Path) -> None:
    from gemini_sft.dataset.sources import RowCounter, count_newlines, open_rows
    from gemini_sft.parallel import line_aligned_ranges

    path = tmp_path / "data.jsonl"
    lines = [f'{{"input": "question {i}", "output": "{"x" * (i % 7)}"}}\n' for i in range(500)]
    lines[0] = "\ufeff" + lines[0]
    lines[250] = "\n"
    path.write_bytes("".join(lines).encode("utf-8"))
    data = path.read_bytes()
    ranges = line_aligned_ranges(path, 4)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in pairwise(ranges))
    assert all(data[start - 1:start] == b"\n" for start, _ in ranges[1:])
    info = detect_source(path)
    whole_counter = RowCounter()
    stream, rows = open_rows(path, info, whole_counter)
    with stream:
        whole = list(rows)
    parts: list[tuple[int, bytes, object]] = []
    part_counter = RowCounter()
    for start, end in ranges:
        stream, rows = open_rows(path, info, part_counter, (start, end), count_newlines(path, start) + 1)
        with stream:
            parts += list(rows)
    assert parts == whole and len(whole) == 499
    assert (part_counter.rows, part_counter.blank_lines) == (whole_counter.rows, whole_counter.blank_lines) == (499, 1)
    assert whole[0][1].startswith(b'{"input"')  # the BOM is not part of the row


def test_csv_row_with_invalid_utf8_is_a_row_rejection_not_a_file_failure(tmp_path: Path) -> None:
    from gemini_sft.dataset.sources import RowCounter, open_rows

    path = tmp_path / "data.csv"
    path.write_bytes(b"input,output\ncaf\xe9,billing\nok,shipping\n")
    stream, rows = open_rows(path, detect_source(path), RowCounter())
    with stream:
        (line_one, raw_one, bad), (line_two, _, good) = list(rows)
    assert (line_one, raw_one) == (2, b"caf\xe9,billing")
    assert isinstance(bad, RowRejected) and bad.reason is RejectReason.INVALID_ENCODING
    assert (line_two, good) == (3, {"input": "ok", "output": "shipping"})


def test_csv_headers_are_matched_case_insensitively(tmp_path: Path) -> None:
    from gemini_sft.dataset.sources import RowCounter, open_rows

    path = tmp_path / "export.csv"
    path.write_text("Input,Output,System_Instruction,Team\nWhere is it?,shipping,Be brief.,red\n", encoding="utf-8")
    stream, rows = open_rows(path, detect_source(path), RowCounter())
    with stream:
        [(_, _, record)] = list(rows)
    assert record == {"input": "Where is it?", "output": "shipping", "system_instruction": "Be brief.", "Team": "red"}
    assert as_example(record)["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
