"""The promotion history kept as a folder of JSON files: one file per event, never rewritten.

Layout of a store::

    <root>/records/<UTC time>-<kind>-<id>.json   one file per event, never rewritten
    <root>/champion.json                          copy of the record of the current champion

The records are the source of truth. The champion is found by replaying them:
a promotion puts a model on top of the production line, a rollback returns to
an earlier model of that line, a rejection changes nothing. ``champion.json``
is a convenience for readers (a serving application) and is rewritten after
every change.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from gemini_sft.errors import PromotionError
from gemini_sft.promotion.records import (
    ModelVersion, PromotionRecord, Provenance, RecordKind, new_record_id, record_timestamp,
)
from gemini_sft.storage import GCS_MOUNT, GCS_PREFIX, local_path

log = logging.getLogger(__name__)

RECORDS_DIR = "records"
CHAMPION_FILE = "champion.json"


class RecordFiles(Protocol):
    """Text files under a store's root, addressed by relative paths such as ``records/x.json``.

    Failures are OSError subclasses: FileNotFoundError, FileExistsError (a
    create-only write found the file), PermissionError.
    """

    location: str

    def names(self, folder: str) -> list[str]:
        """File names directly in ``folder`` (empty when it does not exist)."""

    def read_text(self, path: str) -> str:
        """The content of one file."""

    def write_text(self, path: str, text: str, *, create_only: bool = False) -> None:
        """Write one file whole (readers never see half of it); ``create_only`` refuses to overwrite."""

    def delete(self, path: str) -> None:
        """Remove one file; nothing happens when it does not exist."""


class LocalFiles:
    """:class:`RecordFiles` in a local folder (also a ``gs://`` bucket mounted at ``/gcs/BUCKET``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def names(self, folder: str) -> list[str]:
        directory = self.root / folder
        if not directory.is_dir():
            return []
        return sorted(entry.name for entry in directory.iterdir() if entry.is_file() and not entry.name.startswith("."))

    def read_text(self, path: str) -> str:
        return (self.root / path).read_text(encoding="utf-8")

    def write_text(self, path: str, text: str, *, create_only: bool = False) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if create_only and target.exists():
            raise FileExistsError(str(target))
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)

    def delete(self, path: str) -> None:
        (self.root / path).unlink(missing_ok=True)


def files_for(uri: str) -> RecordFiles:
    """How to reach the files of ``uri``: a local folder, the ``/gcs`` mount, or the Cloud Storage API.

    A ``gs://`` URI goes through the Cloud Storage FUSE mount when the bucket
    is mounted (on Vertex AI Pipelines), else through the Cloud Storage API
    with Application Default Credentials (a laptop, CI).
    """
    if uri.startswith(GCS_PREFIX):
        bucket = uri[len(GCS_PREFIX):].split("/", 1)[0]
        if not (Path(GCS_MOUNT) / bucket).is_dir():
            from gemini_sft.vertex_client import CloudStorageFiles

            return CloudStorageFiles(uri)
    return LocalFiles(local_path(uri))


class PromotionStore:
    """The promotion history kept under a URI (local folder, ``file://`` or ``gs://``).

    ``files`` defaults to :func:`files_for`. Reading an empty or missing store
    gives an empty history. Raises PromotionError when a record is not a valid
    record or the store cannot be read or written.
    """

    def __init__(self, uri: str, files: RecordFiles | None = None) -> None:
        if not uri or not uri.strip():
            raise PromotionError(
                "No promotion registry is configured: set `registry_uri` (e.g. gs://BUCKET/gemini-sft/registry)."
            )
        self.uri = uri.strip().rstrip("/")
        self.files: RecordFiles = files if files is not None else files_for(self.uri)

    def _failure(self, action: str, exc: OSError) -> PromotionError:
        return PromotionError(
            f"Cannot {action} the promotion registry {self.uri}: {exc.strerror or exc}. "
            "Check the path and that you (or the pipeline's service account) may read and write it."
        )

    def history(self) -> list[PromotionRecord]:
        """Every record, oldest first."""
        records: list[PromotionRecord] = []
        try:
            names = [name for name in self.files.names(RECORDS_DIR) if name.endswith(".json")]
            texts = [(name, self.files.read_text(f"{RECORDS_DIR}/{name}")) for name in names]
        except OSError as exc:
            raise self._failure("read", exc) from exc
        for name, text in texts:
            try:
                records.append(PromotionRecord.model_validate_json(text))
            except (ValidationError, ValueError) as exc:
                raise PromotionError(
                    f"Promotion record {self.uri}/{RECORDS_DIR}/{name} is not a valid record "
                    f"({exc.__class__.__name__}); fix or remove that file."
                ) from exc
        records.sort(key=lambda record: (record.created_at, record.record_id))
        return records

    def production_line(self) -> list[PromotionRecord]:
        """The promotions still in force, oldest first; the last one is the champion.

        A rollback drops the records above the model it returned to; a
        rejection changes nothing.
        """
        line: list[PromotionRecord] = []
        for record in self.history():
            if record.kind == "promotion":
                if line and line[-1].model == record.model:
                    continue
                line.append(record)
            elif record.kind == "rollback":
                while line and line[-1].model != record.model:
                    line.pop()
                if not line:
                    line.append(record)
        return line

    def champion(self) -> PromotionRecord | None:
        """The record of the model in production, or None when nothing was promoted."""
        line = self.production_line()
        return line[-1] if line else None

    def append(self, record: PromotionRecord) -> str:
        """Write a new record and refresh ``champion.json``; returns the record's URI."""
        name = f"{record.created_at.replace(':', '').replace('-', '')}-{record.kind}-{record.record_id}.json"
        path = f"{RECORDS_DIR}/{name}"
        try:
            self.files.write_text(path, record.to_json(), create_only=True)
        except FileExistsError as exc:
            raise PromotionError(
                f"Promotion record {self.uri}/{path} already exists; records are never overwritten."
            ) from exc
        except OSError as exc:
            raise self._failure("write", exc) from exc
        champion = self.champion()
        try:
            if champion is None:
                self.files.delete(CHAMPION_FILE)
            else:
                self.files.write_text(CHAMPION_FILE, champion.to_json())
        except OSError as exc:
            raise self._failure("write", exc) from exc
        log.info("Recorded %s %s in %s", record.kind, record.record_id, self.uri)
        return f"{self.uri}/{path}"


def append_new_record(
    store: PromotionStore,
    kind: RecordKind,
    model: ModelVersion,
    provenance: Provenance | None,
    now: datetime | None,
    **fields: Any,
) -> PromotionRecord:
    """A new record of ``kind`` about ``model``, stamped with a fresh id and ``now``, appended to ``store``.

    Args:
        store: the store the record is appended to.
        kind: what the record says happened (promotion, rollback, rejection, staged, canary).
        model: the model version the record is about.
        provenance: where the model comes from (metrics, dataset hash, run, base model, job, checkpoint).
        now: the record's time; None means now.
        **fields: the other record fields (alias, previous_champion, reasons, ...).

    Raises PromotionError when the store cannot be written.
    """
    record = PromotionRecord(
        record_id=new_record_id(), kind=kind, model=model, created_at=record_timestamp(now),
        **(provenance or Provenance()).model_dump(), **fields,
    )
    store.append(record)
    return record
