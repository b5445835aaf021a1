"""Where each kept row came from: per split, the raw file's line of every row, in the split's order.

Vertex names the training examples it truncated or dropped by their index in
the training file; with this record the tune stage names the line of the raw
file instead, the line a user edits. The clean stage writes it as a file of
its own (``source_lines.json``): the examples carry nothing extra, because
Vertex refuses a field it does not know.

The document::

    {"version": 1, "source": URI, "container": "jsonl" | "csv" | "tsv",
     "splits": {"train": {"rows": N, "sha256": HEX, "lines": [3, 4, 9, ...]}, "validation": ..., "holdout": ...}}

A line is the 1-based line of the raw file where the row starts (for CSV/TSV
the line where its record starts, since a quoted cell may span lines), as in
``rejected.jsonl``. ``rows`` and ``sha256`` are the split file's, so a reader
can tell whether a record describes the split file it holds. The record costs
8 bytes per row in memory for a moment and a few bytes per row on disk; it
follows from the file alone, so the same data and settings give the same file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gemini_sft.dataset.splits import SPLIT_NAMES
from gemini_sft.dataset.version import FileRecord
from gemini_sft.errors import CleanInvariantError

SOURCE_LINES_VERSION = 1
SOURCE_LINES_FILE = "source_lines.json"


@dataclass(frozen=True)
class SplitSourceLines:
    """One split's rows: how many, the split file's SHA-256, and each row's line in the raw file, in order."""

    rows: int
    sha256: str
    lines: Sequence[int]


@dataclass(frozen=True)
class SourceLines:
    """The raw file (``source``, as the clean stage recorded it) and the lines of every split's rows."""

    source: str
    container: str
    splits: Mapping[str, SplitSourceLines]

    def to_dict(self) -> dict[str, Any]:
        """The document as plain JSON values."""
        return {
            "version": SOURCE_LINES_VERSION,
            "source": self.source,
            "container": self.container,
            "splits": {
                name: {"rows": split.rows, "sha256": split.sha256, "lines": list(split.lines)}
                for name, split in self.splits.items()
            },
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> SourceLines:
        """The record of a decoded document; raises ValueError when it is not one this code can read.

        Args:
            document: the decoded ``source_lines.json``.
        """
        if document.get("version") != SOURCE_LINES_VERSION:
            raise ValueError(f"source lines version {document.get('version')!r}, expected {SOURCE_LINES_VERSION}")
        splits = {}
        for name, split in dict(document.get("splits") or {}).items():
            lines = split.get("lines")
            if not isinstance(lines, list) or len(lines) != split.get("rows"):
                raise ValueError(f"the {name} split's lines do not match its row count")
            splits[name] = SplitSourceLines(int(split["rows"]), str(split.get("sha256", "")), lines)
        return cls(str(document.get("source", "")), str(document.get("container", "")), splits)


def split_source_lines(fates: bytes | bytearray, lines: Any, split_rows: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Each split's rows' raw-file lines, in the order the split file holds them.

    Rows are copied to their split files in source order, so a split's rows
    are the source rows whose fate is that split's code, in order.

    Args:
        fates: per source row, its fate byte after the decisions (a split code for a kept row).
        lines: per source row, its 1-based line (an ``array("q")`` or anything with the buffer protocol).
        split_rows: the rows written to each split file; raises CleanInvariantError when a count differs.
    """
    fate_codes = np.frombuffer(fates, dtype=np.uint8)
    line_of_row = np.frombuffer(lines, dtype=np.int64)
    found = {}
    for code, name in enumerate(SPLIT_NAMES):
        found[name] = line_of_row[fate_codes == code]
        if len(found[name]) != split_rows[name]:
            raise CleanInvariantError(
                f"the {name} split has {split_rows[name]} rows but {len(found[name])} source lines"
            )
    return found


def write_source_lines(
    path: Path, source: str, container: str, lines: Mapping[str, np.ndarray], split_files: Mapping[str, FileRecord]
) -> None:
    """Write ``source_lines.json``: the raw file and, per split, its rows, SHA-256 and each row's line.

    Args:
        path: the file to write.
        source: the raw file as recorded (its URI, else its path).
        container: how it was read (jsonl, csv, tsv).
        lines: per split, the lines of its rows (:func:`split_source_lines`).
        split_files: per split, what was written to its file (rows, SHA-256).
    """
    record = SourceLines(source, container, {
        name: SplitSourceLines(split_files[name].rows, split_files[name].sha256, lines[name].tolist())
        for name in SPLIT_NAMES
    })
    Path(path).write_text(json.dumps(record.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")


def read_source_lines(path: str | Path) -> SourceLines:
    """The record in ``path``; raises OSError when it cannot be read, ValueError when it is not a record.

    Args:
        path: a ``source_lines.json`` the clean stage wrote.
    """
    with Path(path).open("rb") as stream:
        document = json.load(stream)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return SourceLines.from_dict(document)
