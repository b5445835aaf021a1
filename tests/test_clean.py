"""The clean stage's core: nothing lost, every rejection explained, splits, version record."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from clean_helpers import (
    SPLITS,
    all_kept,
    jsonl,
    kept_examples,
    pair,
    prompt_and_response,
    read_jsonl,
    rejected,
    run_clean,
)

from gemini_sft import __version__
from gemini_sft.dataset.clean import clean_dataset
from gemini_sft.dataset.fates import REASON_CODES
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.dataset.version import DatasetVersion, file_sha256
from gemini_sft.errors import ConfigError, InputFormatError


def assert_conserved(report, out: Path) -> None:
    """kept + rejected == rows read, and the files hold exactly those rows."""
    assert report.kept_rows + report.rejected_rows == report.rows_read
    for split in SPLITS:
        assert len(read_jsonl(out / f"{split}.jsonl")) == report.split_rows[split]
    assert sum(report.split_rows.values()) == report.kept_rows
    assert len(rejected(out)) == report.rejected_rows == sum(report.rejected_by_reason.values())


# --- every rejection reason, with line number, detail and the raw text -------------------------

REJECTION_CASES = [
    (b'{"input": "a", "output": "b"', "unparseable_line"),
    (b"not json at all", "unparseable_line"),
    (b"[1, 2, 3]", "not_an_object"),
    (b"NaN", "not_an_object"),
    (b'"just a string"', "not_an_object"),
    (b'{"question": "a", "answer": "b"}', "unknown_format"),
    (b'{"input": "a", "output": 42}', "invalid_structure"),
    (b'{"contents": [{"role": "system", "parts": [{"text": "s"}]}, {"role": "user", "parts": [{"text": "a"}]}]}',
     "invalid_roles"),
    (b'{"input": "   ", "output": "b"}', "empty_prompt"),
    (b'{"input": "a", "output": ""}', "empty_response"),
    (b'{"input": "caf\xc3", "output": "b"}', "invalid_encoding"),
    (b'{"input": "\\ud800 lone surrogate", "output": "b"}', "invalid_encoding"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTION_CASES)
def test_each_rejection_is_recorded_with_line_reason_detail_and_raw_text(tmp_path: Path, raw: bytes, reason: str) -> None:
    good = jsonl(pair("Where is my order?", "shipping")).encode()
    report, out = run_clean(tmp_path, good + b"\n" + raw + b"\n" + good.replace(b"Where", b"When"))
    [row] = rejected(out)
    assert row["line"] == 3  # 1-based, blank line included in the numbering
    assert row["reason"] == reason
    assert isinstance(row["detail"], str) and row["detail"]
    assert row["raw"] == raw.decode("utf-8", errors="backslashreplace")
    assert report.rejected_by_reason[reason] == 1
    assert report.blank_lines == 1
    assert_conserved(report, out)


def test_reason_codes_are_stable() -> None:
    assert set(REASON_CODES) == {
        "invalid_encoding", "unparseable_line", "not_an_object", "unknown_format", "invalid_structure",
        "invalid_roles", "empty_prompt", "empty_response", "response_too_short", "duplicate",
        "conflicting_response", "validation_overflow",
    }


def test_response_shorter_than_the_minimum_is_rejected_only_when_a_minimum_is_set(tmp_path: Path) -> None:
    text = jsonl(pair("Invoice wrong", "billing"), pair("App crash", "tech"), pair("Lost parcel", "shipping"))
    report, _ = run_clean(tmp_path, text)
    assert report.kept_rows == 3  # default: one-word labels are legitimate
    report, out = run_clean(tmp_path, text, min_response_chars=5)
    assert [r["reason"] for r in rejected(out)] == ["response_too_short"]
    assert rejected(out)[0]["line"] == 2
    assert_conserved(report, out)


# --- duplicates and conflicts -------------------------------------------------------------------


def test_exact_duplicates_after_normalisation_are_rejected_and_point_at_the_first(tmp_path: Path) -> None:
    text = jsonl(
        pair("Where is my parcel?", "shipping"),
        pair("  Where is my parcel?\n", "shipping "),  # whitespace differs
        {"prompt": "Where is my parcel?", "completion": "shipping"},  # another format
        {"contents": [{"role": "user", "parts": [{"text": "Where is my parcel?"}]},
                      {"role": "model", "parts": [{"text": "shipping"}]}]},
        pair("Cafe\u0301 order missing", "shipping"),
        pair("Caf\u00e9 order missing", "shipping"),  # the same once NFC-normalised
        pair("Another question", "shipping"),
    )
    report, out = run_clean(tmp_path, text)
    rows = rejected(out)
    assert [(r["line"], r["reason"]) for r in rows] == [(2, "duplicate"), (3, "duplicate"), (4, "duplicate"),
                                                        (6, "duplicate")]
    assert "line 1" in rows[0]["detail"] and "line 5" in rows[3]["detail"]
    assert report.kept_rows == 3
    assert_conserved(report, out)


def test_same_prompt_with_a_different_system_instruction_is_not_a_duplicate(tmp_path: Path) -> None:
    text = jsonl(
        {"input": "Where is my parcel?", "output": "shipping", "system": "Answer with a category."},
        {"input": "Where is my parcel?", "output": "Category: shipping", "system": "Answer in full."},
    )
    report, _ = run_clean(tmp_path, text)
    assert report.kept_rows == 2


def conflict_file() -> str:
    return jsonl(
        pair("Charged twice", "billing"),  # 1
        pair("App crashes on start", "technical"),  # 2
        pair("Charged twice", "account"),  # 3: conflicts with 1
        pair("Charged twice", "billing"),  # 4: duplicate of 1
        pair("Locked out", "account"),  # 5
    )


def test_conflicting_responses_drop_every_row_of_the_prompt_by_default(tmp_path: Path) -> None:
    report, out = run_clean(tmp_path, conflict_file())
    assert {(r["line"], r["reason"]) for r in rejected(out)} == {
        (1, "conflicting_response"), (3, "conflicting_response"), (4, "conflicting_response"),
    }
    assert sorted(prompt_and_response(e)[0] for e in all_kept(out)) == ["App crashes on start", "Locked out"]
    for row in rejected(out):
        assert re.search(r"line (1|3)\b", row["detail"])
    assert_conserved(report, out)


def test_keep_first_keeps_the_first_answer_and_rejects_the_rest(tmp_path: Path) -> None:
    report, out = run_clean(tmp_path, conflict_file(), conflict_policy="keep_first")
    assert [(r["line"], r["reason"]) for r in rejected(out)] == [(3, "conflicting_response"), (4, "duplicate")]
    kept = dict(prompt_and_response(e) for e in all_kept(out))
    assert kept["Charged twice"] == "billing"
    assert_conserved(report, out)


# --- containers ----------------------------------------------------------------------------------

SAMPLE_RECORDS = [pair(f"Ticket number {i} about a parcel", "shipping") for i in range(20)]


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    report, _ = run_clean(tmp_path, b"\xef\xbb\xbf" + jsonl(*SAMPLE_RECORDS).encode())
    assert report.kept_rows == 20 and report.rejected_rows == 0


def test_gzip_input_is_read_transparently(tmp_path: Path) -> None:
    plain, _ = run_clean(tmp_path / "a", jsonl(*SAMPLE_RECORDS, "", "broken"))
    packed, _ = run_clean(tmp_path / "b", gzip.compress(jsonl(*SAMPLE_RECORDS, "", "broken").encode()))
    assert packed.version.source_compressed and not plain.version.source_compressed
    assert (packed.kept_rows, packed.rejected_rows, packed.blank_lines) == (20, 1, 1)
    assert packed.dataset_hash == plain.dataset_hash  # same content, same cleaned dataset


def test_corrupt_gzip_fails_with_an_input_error(tmp_path: Path) -> None:
    data = gzip.compress(jsonl(*SAMPLE_RECORDS).encode() * 50)
    with pytest.raises(InputFormatError, match="truncated or corrupt|cannot be decompressed"):
        run_clean(tmp_path, data[: len(data) // 2])


def test_missing_file_fails_with_an_actionable_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="does not exist"):
        clean_dataset(tmp_path / "nope.jsonl", SplitPaths.in_directory(tmp_path / "out"), CleanConfig())


@pytest.mark.parametrize(("name", "delimiter"), [("tickets.csv", ","), ("tickets.tsv", "\t"), ("tickets", ",")])
def test_csv_and_tsv_rows_are_cleaned_like_jsonl(tmp_path: Path, name: str, delimiter: str) -> None:
    rows = [
        ["input", "output", "category"],
        ["Parcel late, again", "Category: shipping\nPriority: high", "shipping"],
        ["Refund missing", "Category: billing", "billing"],
        ["", "", ""],
        ["only one field"],
        ["Parcel late, again", "Category: shipping\nPriority: high", "shipping"],
        ["   ", "Category: account", "account"],
    ]
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    report, out = run_clean(tmp_path, "\ufeff" + buffer.getvalue(), name=name, stratify_by="field:category")
    assert report.version.source_container == ("tsv" if delimiter == "\t" else "csv")
    assert [(r["line"], r["reason"]) for r in rejected(out)] == [
        (6, "unparseable_line"), (7, "duplicate"), (9, "empty_prompt"),  # quoted newlines span lines
    ]
    assert report.blank_lines == 1
    kept = dict(prompt_and_response(e) for e in all_kept(out))
    assert kept == {"Parcel late, again": "Category: shipping\nPriority: high", "Refund missing": "Category: billing"}
    assert rejected(out)[0]["raw"] == "only one field"
    assert_conserved(report, out)


# --- normalisation and system instruction --------------------------------------------------------


def test_configured_system_instruction_is_applied_to_every_example(tmp_path: Path) -> None:
    text = jsonl(
        pair("Where is my parcel?", "shipping"),
        {"messages": [{"role": "system", "content": "Old instruction"}, {"role": "user", "content": "Refund?"},
                      {"role": "assistant", "content": "billing"}]},
        {"systemInstruction": {"parts": [{"text": "Triage the ticket."}]},
         "contents": [{"role": "user", "parts": [{"text": "Locked out"}]}, {"role": "model", "parts": [{"text": "account"}]}]},
    )
    report, out = run_clean(tmp_path, text, system_instruction="  Triage the ticket. ")
    examples = all_kept(out)
    assert len(examples) == 3
    assert all(e["systemInstruction"] == {"parts": [{"text": "Triage the ticket."}]} for e in examples)
    assert report.system_instructions_replaced == 1


def test_output_lines_are_valid_gemini_examples(tmp_path: Path) -> None:
    text = jsonl(*SAMPLE_RECORDS)
    _, out = run_clean(tmp_path, text)
    for example in all_kept(out):
        assert set(example) == {"contents"}
        assert [c["role"] for c in example["contents"]] == ["user", "model"]


# --- PII -----------------------------------------------------------------------------------------


def test_pii_is_masked_and_counted_per_kind_when_enabled(tmp_path: Path) -> None:
    text = jsonl(
        pair("Mail me at jane.doe@example.com or call +1 415-555-0132", "Category: account"),
        pair("Charged twice on card 4111 1111 1111 1111, order 1234567890123", "Category: billing"),
        pair("Reply to bob@example.org", "Write to bob@example.org"),
    )
    report, out = run_clean(tmp_path, text, mask_pii=True)
    assert report.pii_masked == {"email": 3, "phone": 1, "card": 1}
    texts = json.dumps(all_kept(out))
    assert "example.com" not in texts and "4111" not in texts and "555-0132" not in texts
    assert "1234567890123" in texts  # not a valid card number (Luhn), kept
    assert "[EMAIL]" in texts and "[CARD]" in texts and "[PHONE]" in texts
    unmasked, unmasked_out = run_clean(tmp_path / "plain", text)
    assert unmasked.pii_masked == {"email": 0, "phone": 0, "card": 0}
    assert "jane.doe@example.com" in json.dumps(all_kept(unmasked_out))


# --- splits --------------------------------------------------------------------------------------


def labelled_records(count: int) -> list[dict[str, str]]:
    labels = ["billing"] * 6 + ["shipping"] * 3 + ["feedback"]  # imbalanced on purpose
    return [pair(f"Ticket {i}: something about {labels[i % 10]}", f"Category: {labels[i % 10]}") for i in range(count)]


def test_split_fractions_are_respected(tmp_path: Path) -> None:
    report, out = run_clean(tmp_path, jsonl(*labelled_records(1000)), train_fraction=0.7,
                            validation_fraction=0.2, holdout_fraction=0.1)
    assert report.split_rows == {"train": 700, "validation": 200, "holdout": 100}
    assert_conserved(report, out)


def test_stratified_splits_keep_each_label_share(tmp_path: Path) -> None:
    report, out = run_clean(tmp_path, jsonl(*labelled_records(1000)), stratify_by=r"regex:Category: (\w+)")
    distribution = report.version.label_distribution
    assert distribution["train"] == {"billing": 480, "shipping": 240, "feedback": 80}
    assert distribution["validation"] == {"billing": 60, "shipping": 30, "feedback": 10}
    assert distribution["holdout"] == {"billing": 60, "shipping": 30, "feedback": 10}
    for split, examples in kept_examples(out).items():
        found = Counter(re.search(r"Category: (\w+)", prompt_and_response(e)[1]).group(1) for e in examples)
        assert found == distribution[split]


def test_stratify_by_field_reads_the_raw_record(tmp_path: Path) -> None:
    records = [{"input": f"Ticket {i}", "output": "answer", "team": "red" if i % 4 else "blue"} for i in range(400)]
    report, _ = run_clean(tmp_path, jsonl(*records), stratify_by="field:team")
    assert report.version.label_distribution["validation"] == {"red": 30, "blue": 10}


def test_too_many_strata_is_a_config_error(tmp_path: Path) -> None:
    records = [{"input": f"Ticket {i}", "output": "answer", "id": str(i)} for i in range(1001)]
    with pytest.raises(ConfigError, match="more than 1000 distinct values"):
        run_clean(tmp_path, jsonl(*records), stratify_by="field:id")
    report, _ = run_clean(tmp_path / "at-the-limit", jsonl(*records[:1000]), stratify_by="field:id")
    assert sum(len(labels) for labels in report.version.label_distribution.values()) == 1000


def test_no_prompt_appears_in_two_splits(tmp_path: Path) -> None:
    records = []
    for i in range(300):  # every prompt twice, under two system instructions: both rows are kept
        records.append({"input": f"Ticket {i}", "output": "Category: billing", "system": "Short answers."})
        records.append({"input": f"Ticket {i}", "output": "Category: billing, refund", "system": "Long answers."})
    report, out = run_clean(tmp_path, jsonl(*records))
    assert report.kept_rows == 600
    split_of_prompt: dict[str, set[str]] = {}
    for split, examples in kept_examples(out).items():
        for example in examples:
            split_of_prompt.setdefault(prompt_and_response(example)[0], set()).add(split)
    assert all(len(splits) == 1 for splits in split_of_prompt.values())
    assert report.validation_rows > 0 and report.holdout_rows > 0


@pytest.mark.parametrize(("overflow", "train", "holdout", "dropped"), [
    ("train", 870, 100, 0), ("holdout", 800, 170, 0), ("drop", 800, 100, 70),
])
def test_validation_is_capped_and_the_overflow_goes_where_configured(
    tmp_path: Path, overflow: str, train: int, holdout: int, dropped: int
) -> None:
    report, out = run_clean(tmp_path, jsonl(*labelled_records(1000)), max_validation_examples=30,
                            validation_overflow=overflow, stratify_by=r"regex:Category: (\w+)")
    assert (report.train_rows, report.validation_rows, report.holdout_rows) == (train, 30, holdout)
    assert report.rejected_by_reason["validation_overflow"] == dropped
    assert report.version.label_distribution["validation"] == {"billing": 18, "shipping": 9, "feedback": 3}
    assert all(r["reason"] == "validation_overflow" for r in rejected(out))
    assert_conserved(report, out)


def test_splits_are_deterministic_for_a_seed_and_change_with_it(tmp_path: Path) -> None:
    text = jsonl(*labelled_records(200))
    first, first_out = run_clean(tmp_path / "a", text, seed=7)
    again, again_out = run_clean(tmp_path / "b", text, seed=7)
    other, _ = run_clean(tmp_path / "c", text, seed=8)
    for split in SPLITS:
        assert (first_out / f"{split}.jsonl").read_bytes() == (again_out / f"{split}.jsonl").read_bytes()
    assert first.dataset_hash == again.dataset_hash
    assert other.dataset_hash != first.dataset_hash
    assert other.split_rows == first.split_rows


# --- version record and report -------------------------------------------------------------------


def test_version_record_identifies_the_splits(tmp_path: Path) -> None:
    report, out = run_clean(tmp_path, jsonl(*labelled_records(50), "oops"), seed=3)
    version = report.version
    assert re.fullmatch(r"[0-9a-f]{63}", version.dataset_hash)  # a valid GCP label value
    for split in SPLITS:
        record = version.splits[split]
        assert record.sha256 == hashlib.sha256((out / f"{split}.jsonl").read_bytes()).hexdigest()
        assert record.rows == report.split_rows[split]
    expected = hashlib.sha256("".join(f"{s}:{version.splits[s].sha256}\n" for s in SPLITS).encode()).hexdigest()
    assert version.dataset_sha256 == expected and version.dataset_hash == expected[:63]
    assert version.source_sha256 == file_sha256(tmp_path / "raw.jsonl")
    assert version.counts["rows_read"] == 51 and version.rejected_by_reason["unparseable_line"] == 1
    assert version.config["seed"] == 3
    assert version.code_version == __version__
    assert version.created_at.endswith("+00:00")
    assert DatasetVersion.from_dict(json.loads(version.to_json())) == version


def test_report_has_counts_but_never_example_content(tmp_path: Path) -> None:
    secret = "Zyxwvut confidential ticket"
    text = jsonl(pair(secret, "Category: billing"), *labelled_records(30), pair(secret, "Category: account"), "bad line")
    report, _ = run_clean(tmp_path, text, stratify_by=r"regex:Category: (\w+)")
    markdown = report.to_markdown()
    for expected in ("| read | 33 |", "`conflicting_response` | 2", "`unparseable_line` | 1", report.dataset_hash,
                     "| train |", "billing"):
        assert expected in markdown
    assert secret not in markdown and secret not in report.version.to_json()
    assert "Zyxwvut" not in repr(report)


def test_empty_input_produces_empty_splits_and_a_warning(tmp_path: Path) -> None:
    report, out = run_clean(tmp_path, "\n\n")
    assert (report.rows_read, report.kept_rows, report.blank_lines) == (0, 0, 2)
    assert report.warnings and "no example" in report.warnings[0]
    assert_conserved(report, out)


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "message"), [
    ({"train_fraction": 0.8, "validation_fraction": 0.3, "holdout_fraction": 0.1}, "must be 1"),
    ({"train_fraction": -0.1, "validation_fraction": 0.6, "holdout_fraction": 0.5}, "between 0 and 1"),
    ({"train_fraction": 0.0, "validation_fraction": 0.5, "holdout_fraction": 0.5}, "greater than 0"),
    ({"train_fraction": 1.5, "validation_fraction": 0.0, "holdout_fraction": 0.0}, "between 0 and 1"),
    ({"train_fraction": True, "validation_fraction": 0.0, "holdout_fraction": 0.0}, "between 0 and 1"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": True}, "seed must be a non-negative integer"),
    ({"seed": 1.5}, "seed must be a non-negative integer"),
    ({"conflict_policy": "keep_last"}, "drop_all, keep_first"),
    ({"validation_overflow": "nowhere"}, "train, holdout, drop"),
    ({"max_validation_examples": 0}, "max_validation_examples"),
    ({"min_response_chars": -1}, "min_response_chars"),
    ({"stratify_by": "category"}, "field:NAME"),
    ({"stratify_by": "regex:Category: \\w+"}, "capture group"),
    ({"stratify_by": "regex:(unclosed"}, "does not compile"),
    ({"stratify_by": "field:"}, "field name"),
])
def test_invalid_configuration_is_refused_with_an_actionable_message(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        CleanConfig(**settings)


# --- large files -------------------------------------------------------------------------------


def test_parallel_conversion_gives_exactly_the_single_process_result(tmp_path: Path, monkeypatch, caplog) -> None:
    import gemini_sft.dataset.first_pass as first_pass_module
    from gemini_sft.sample_data import render

    text = render().encode() * 3 + b"\xef\xbb\xbf not a bom here\n" + render(seed=9).encode()
    settings = {"stratify_by": r"regex:Category: (\w+)", "mask_pii": True}
    single, single_out = run_clean(tmp_path / "single", text, **settings)
    monkeypatch.setattr(first_pass_module, "PARALLEL_MIN_BYTES", len(text) // 3)
    monkeypatch.setattr(first_pass_module, "_worker_count", lambda source, info: 3)
    with caplog.at_level("INFO", logger="gemini_sft.dataset.first_pass"):
        parallel, parallel_out = run_clean(tmp_path / "parallel", text, **settings)
    assert "converting in 3 processes" in caplog.text
    for name in ("train", "validation", "holdout", "rejected"):
        assert (single_out / f"{name}.jsonl").read_bytes() == (parallel_out / f"{name}.jsonl").read_bytes()
    assert parallel.version.dataset_hash == single.version.dataset_hash
    assert parallel.version.label_distribution == single.version.label_distribution
    assert (parallel.pii_masked, parallel.blank_lines, parallel.rejected_by_reason) == (
        single.pii_masked, single.blank_lines, single.rejected_by_reason)
