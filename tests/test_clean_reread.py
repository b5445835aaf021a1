"""Rows rejected after the first pass (duplicates, conflicts) carry their exact raw text, read again from the source."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from clean_helpers import rejected, run_clean

from gemini_sft.dataset.sources import jsonl_lines_at

FIRST = b'{"input": "Where is my parcel?", "output": "On its way."}'
OTHER = b'{"input": "Can I pay by card?", "output": "Yes."}'


def raw_lines(data: bytes) -> list[bytes]:
    """The raw JSONL lines of ``data`` (with their line ends), as the source reader gives them."""
    return data.removeprefix(b"\xef\xbb\xbf").splitlines(keepends=True)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_jsonl_lines_at_gives_the_requested_lines(tmp_path: Path, compressed: bool) -> None:
    data = b"\xef\xbb\xbf" + FIRST + b"\r\n\n  \n" + OTHER + b"\n" + FIRST + b"\n" + OTHER
    path = tmp_path / "raw.jsonl"
    path.write_bytes(gzip.compress(data) if compressed else data)
    lines = raw_lines(data)
    assert list(jsonl_lines_at(path, [1, 4, 6])) == [lines[0], lines[3], lines[5]]
    assert list(jsonl_lines_at(path, [5])) == [lines[4]]
    assert list(jsonl_lines_at(path, [])) == []


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_duplicates_and_conflicts_keep_their_raw_text_and_line(tmp_path: Path, compressed: bool) -> None:
    conflicting = b'{"input": "Can I pay by card?", "output": "No."}'
    data = (
        b"\xef\xbb\xbf" + FIRST + b"\r\n"  # line 1, with a BOM and a Windows line end
        + b"\n"
        + OTHER + b"\n"  # line 3
        + b"not json\n"  # line 4: rejected in the first pass
        + b"  " + FIRST + b"\r\n"  # line 5: duplicate of line 1
        + conflicting + b"\n"  # line 6: conflicts with line 3
        + FIRST  # line 7: duplicate, no final newline
    )
    _, out = run_clean(tmp_path, gzip.compress(data) if compressed else data)
    rows = [(row["line"], row["reason"], row["raw"]) for row in rejected(out)]
    assert rows == [
        (3, "conflicting_response", OTHER.decode()),
        (4, "unparseable_line", "not json"),
        (5, "duplicate", "  " + FIRST.decode()),
        (6, "conflicting_response", conflicting.decode()),
        (7, "duplicate", FIRST.decode()),
    ]


def test_csv_duplicates_keep_their_row_text(tmp_path: Path) -> None:
    text = 'input,output\n"Where is\nmy parcel?",On its way.\nHi,Hello\n\n"Can I pay, by card?",Yes.\nHi,Hello\n'
    _, out = run_clean(tmp_path, text, name="raw.csv")
    assert [(row["line"], row["reason"], row["raw"]) for row in rejected(out)] == [(7, "duplicate", "Hi,Hello")]
