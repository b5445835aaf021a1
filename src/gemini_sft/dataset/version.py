"""The dataset version record: what identifies a cleaned dataset and how it was made."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from gemini_sft.dataset.splits import SPLIT_NAMES

GCP_LABEL_VALUE_MAX = 63


@dataclass(frozen=True)
class FileRecord:
    """One output file: rows, size in bytes and SHA-256 (lowercase hex)."""

    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class DatasetVersion:
    """What identifies a cleaned dataset and how it was made (written as ``dataset_version.json``).

    ``dataset_hash`` is the first 63 hex digits of ``dataset_sha256`` (the
    SHA-256 over the three split hashes), short enough for a GCP label value.
    ``source_uri`` is the object read; ``source_uri_pattern`` the raw data URI
    as configured, with any ``{date}`` / ``{latest}`` placeholders (lineage of
    scheduled runs), empty when none was given.
    """

    dataset_hash: str
    dataset_sha256: str
    splits: dict[str, FileRecord]
    rejected: FileRecord
    counts: dict[str, int]
    rejected_by_reason: dict[str, int]
    pii_masked: dict[str, int]
    source_formats: dict[str, int]
    label_distribution: dict[str, dict[str, int]]
    config: dict[str, Any]
    source_uri: str
    source_sha256: str
    source_container: str
    source_compressed: bool
    code_version: str
    created_at: str
    source_uri_pattern: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetVersion:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["splits"] = {name: FileRecord(**record) for name, record in data["splits"].items()}
        values["rejected"] = FileRecord(**data["rejected"])
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})



def file_sha256(path: Path) -> str:
    """SHA-256 (lowercase hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path, rows: int) -> FileRecord:
    return FileRecord(rows=rows, bytes=os.path.getsize(path), sha256=file_sha256(path))


def dataset_sha256(split_hashes: dict[str, str]) -> str:
    """SHA-256 over the split names and hashes, in train, validation, holdout order."""
    text = "".join(f"{name}:{split_hashes[name]}\n" for name in SPLIT_NAMES)
    return hashlib.sha256(text.encode("ascii")).hexdigest()
