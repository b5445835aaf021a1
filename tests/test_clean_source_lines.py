"""The clean stage's source lines: every split row's line in the raw file, in the split's order."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from clean_helpers import SPLITS, kept_examples, prompt_and_response, run_clean

from gemini_sft.dataset.clean import clean_dataset
from gemini_sft.dataset.formats import convert_record
from gemini_sft.dataset.settings import CleanConfig, SplitPaths
from gemini_sft.dataset.source_lines import read_source_lines
from gemini_sft.sample_data import render


def _raw_records(raw_text: str) -> dict[int, dict]:
    """The record of each JSONL line holding one, by 1-based line."""
    prompts = {}
    for number, line in enumerate(raw_text.splitlines(), start=1):
        try:
            record = json.loads(line.removeprefix("\ufeff"))
        except ValueError:
            continue
        if isinstance(record, dict):
            prompts[number] = record
    return prompts


@pytest.mark.parametrize("compressed", [False, True])
def test_every_split_row_is_traced_to_its_raw_line(tmp_path: Path, compressed: bool) -> None:
    text = render()  # the shipped sample's kind: blank lines, duplicates, conflicts, several formats
    name = "raw.jsonl.gz" if compressed else "raw.jsonl"
    report, out = run_clean(tmp_path, gzip.compress(text.encode()) if compressed else text, name=name)
    record = read_source_lines(out / "source_lines.json")
    assert record.source == str(tmp_path / name) and record.container == "jsonl"
    raw_records = _raw_records(text)
    again = SplitPaths.in_directory(tmp_path / "again")
    clean_dataset(tmp_path / name, again, CleanConfig())
    assert again.source_lines.read_bytes() == (out / "source_lines.json").read_bytes()
    dropped_before = 0
    for split, examples in kept_examples(out).items():
        lines = record.splits[split].lines
        assert record.splits[split].rows == len(examples) == report.split_rows[split]
        assert record.splits[split].sha256 == report.version.splits[split].sha256
        assert list(lines) == sorted(lines)
        for example, line in zip(examples, lines, strict=True):
            # The raw row on that line converts to this example.
            assert convert_record(raw_records[line]).response == prompt_and_response(example)[1]
        dropped_before += sum(1 for position, line in enumerate(lines, start=1) if line != position)
    assert dropped_before  # rows were dropped, so split positions and raw lines differ


def test_parallel_conversion_records_the_same_lines(tmp_path: Path, monkeypatch) -> None:
    import gemini_sft.dataset.first_pass as first_pass_module

    text = (render() * 3 + render(seed=9)).encode()
    _, single_out = run_clean(tmp_path / "single", text)
    monkeypatch.setattr(first_pass_module, "PARALLEL_MIN_BYTES", len(text) // 3)
    monkeypatch.setattr(first_pass_module, "_worker_count", lambda source, info: 3)
    _, parallel_out = run_clean(tmp_path / "parallel", text)
    single = read_source_lines(single_out / "source_lines.json")
    parallel = read_source_lines(parallel_out / "source_lines.json")
    assert {s: list(single.splits[s].lines) for s in SPLITS} == {s: list(parallel.splits[s].lines) for s in SPLITS}


def test_csv_rows_are_traced_to_the_line_where_their_record_starts(tmp_path: Path) -> None:
    text = "input,output\n" + "".join(f'"q{n}","answer\n{n}"\n' for n in range(30))
    _, out = run_clean(tmp_path, text, name="raw.csv")
    record = read_source_lines(out / "source_lines.json")
    assert record.container == "csv"
    for split, examples in kept_examples(out).items():
        for example, line in zip(examples, record.splits[split].lines, strict=True):
            number = int(prompt_and_response(example)[0].removeprefix("q"))
            assert line == 2 + 2 * number  # the header is line 1; each record spans two lines
