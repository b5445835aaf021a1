"""Property-based tests: cleaning conserves rows on any input; format conversion round-trips."""

from __future__ import annotations

import json
import tempfile
import unicodedata
from pathlib import Path

from clean_helpers import all_kept, prompt_and_response, read_jsonl, rejected
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemini_sft.dataset.clean import clean_dataset
from gemini_sft.dataset.formats import convert_record
from gemini_sft.dataset.output_lines import gemini_json_line
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.errors import InputFormatError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
format_keys = st.sampled_from(
    ["input", "output", "input_text", "output_text", "prompt", "completion", "contents", "messages",
     "systemInstruction", "system", "role", "parts", "text"]
)
records = st.dictionaries(format_keys | st.text(max_size=6), json_values, max_size=4)
lines = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    records.map(lambda r: json.dumps(r).encode()),
    st.builds(lambda p, r: json.dumps({"input": p, "output": r}).encode(), st.text(max_size=20), st.text(max_size=20)),
    st.sampled_from([b"", b"  ", b"\t", b"\xef\xbb\xbf", b"{}", b"[]", b"NaN", b'{"input": "a", "output": "b"}']),
)


def expected_rows(data: bytes) -> tuple[int, int]:
    """(rows, blank lines) as a reader must count them: lines split on \\n, blank when only whitespace."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    physical = data.split(b"\n")
    if physical and physical[-1] == b"":
        physical.pop()
    blank = sum(1 for line in physical if not line.strip())
    return len(physical) - blank, blank


@SETTINGS
@given(st.lists(lines, max_size=25), st.sampled_from(["drop_all", "keep_first"]), st.booleans())
def test_every_row_is_kept_or_rejected_whatever_the_input(raw_lines: list[bytes], policy: str, mask: bool) -> None:
    data = b"\n".join(raw_lines)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        source = root / "raw.jsonl"
        source.write_bytes(data)
        out = root / "out"
        config = CleanConfig(conflict_policy=policy, mask_pii=mask)
        if data.startswith(b"\x1f\x8b"):  # gzip magic: a damaged stream is a file-level input error
            try:
                clean_dataset(source, SplitPaths.in_directory(out), config)
            except InputFormatError:
                pass
            return
        report = clean_dataset(source, SplitPaths.in_directory(out), config)
        rows, blank = expected_rows(data)
        assert (report.rows_read, report.blank_lines) == (rows, blank)
        assert report.kept_rows + report.rejected_rows == rows
        assert len(all_kept(out)) == report.kept_rows
        rejected_rows = rejected(out)
        assert len(rejected_rows) == report.rejected_rows
        assert [r["line"] for r in rejected_rows] == sorted(r["line"] for r in rejected_rows)
        assert len({r["line"] for r in rejected_rows}) == len(rejected_rows)


printable = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(lambda t: t.strip())


def nfc_trimmed(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


@SETTINGS
@given(printable, printable, st.sampled_from([("input", "output"), ("input_text", "output_text"), ("prompt", "completion")]))
def test_single_turn_formats_round_trip_through_gemini(prompt: str, response: str, fields: tuple[str, str]) -> None:
    if not nfc_trimmed(prompt) or not nfc_trimmed(response):
        return
    converted = convert_record({fields[0]: prompt, fields[1]: response})
    example = json.loads(gemini_json_line(None, converted))
    assert prompt_and_response(example) == (nfc_trimmed(prompt), nfc_trimmed(response))
    again = convert_record(example)  # Gemini in, the same example out
    assert json.loads(gemini_json_line(None, again)) == example


@SETTINGS
@given(st.lists(st.tuples(printable, printable), min_size=1, max_size=15, unique_by=lambda pr: nfc_trimmed(pr[0])))
def test_cleaned_file_round_trips_prompts_and_responses(pairs: list[tuple[str, str]]) -> None:
    pairs = [(p, r) for p, r in pairs if nfc_trimmed(p) and nfc_trimmed(r)]
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        source = root / "raw.jsonl"
        source.write_text("".join(json.dumps({"input": p, "output": r}) + "\n" for p, r in pairs), encoding="utf-8")
        out = root / "out"
        report = clean_dataset(source, SplitPaths.in_directory(out), CleanConfig())
        assert report.rejected_rows == 0
        kept = sorted(prompt_and_response(e) for e in all_kept(out))
        assert kept == sorted((nfc_trimmed(p), nfc_trimmed(r)) for p, r in pairs)
        for split in ("train", "validation", "holdout"):
            for example in read_jsonl(out / f"{split}.jsonl"):
                assert set(example) == {"contents"}


cells = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=15)


@SETTINGS
@given(st.lists(st.lists(cells, min_size=1, max_size=4), max_size=15), st.sampled_from([",", "\t"]))
def test_csv_rows_are_conserved_too(rows: list[list[str]], delimiter: str) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)  # quotes every field holding \r or \n
    writer.writerow(["input", "output", "label"])
    writer.writerows(rows)
    text = buffer.getvalue()
    expected_rows = sum(1 for record in list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))[1:]
                        if any(cell.strip() for cell in record))
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        source = root / ("raw.tsv" if delimiter == "\t" else "raw.csv")
        source.write_text(text, encoding="utf-8", newline="")
        out = root / "out"
        report = clean_dataset(source, SplitPaths.in_directory(out), CleanConfig(stratify_by="field:label"))
        assert report.rows_read == expected_rows
        assert report.kept_rows + report.rejected_rows == expected_rows
        assert len(all_kept(out)) == report.kept_rows and len(rejected(out)) == report.rejected_rows
