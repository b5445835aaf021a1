"""Which tuned model is in production, how it got there, and how to undo it.

A Gemini tuning job deploys its model to an endpoint by itself, so "deploying"
here means *promoting*: moving the production alias in Model Registry (done by
the caller through a :class:`ModelRegistry`) and appending a
:class:`PromotionRecord` to a :class:`PromotionStore`, a folder of JSON files
in the pipeline's bucket (``gs://bucket/prefix``, read and written through the
Cloud Storage FUSE mount) or on local disk.

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

import json
import logging
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gemini_sft.names import sanitize_label_value
from gemini_sft.errors import PromotionError
from gemini_sft.storage import GCS_MOUNT, GCS_PREFIX, local_path

log = logging.getLogger(__name__)

RecordKind = Literal["promotion", "rollback", "rejection", "staged", "canary"]

DEFAULT_PRODUCTION_ALIAS = "production"
RECORDS_DIR = "records"
CHAMPION_FILE = "champion.json"

# Model Registry labels written on promotion and rollback.
STATUS_LABEL = "gemini-sft-status"
DATASET_LABEL = "gemini-sft-dataset"
STATUS_PRODUCTION = "production"
STATUS_RETIRED = "retired"
STATUS_ROLLED_BACK = "rolled-back"

_MODEL_NAME = re.compile(r"^(?P<parent>(?:projects/[^/]+/locations/[^/]+/)?models/[^/@]+)(?:@(?P<version>[^/@]+))?$")
_ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,127}$")


class ModelVersion(BaseModel):
    """A model version in Model Registry and the endpoint that serves it.

    ``model`` is the parent resource (``projects/P/locations/L/models/ID``),
    ``version`` its version id (``"1"``); ``endpoint`` may be empty.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str
    version: str
    endpoint: str = ""

    @property
    def versioned_name(self) -> str:
        """``projects/P/locations/L/models/ID@VERSION``, the name Vertex accepts for one version."""
        return f"{self.model}@{self.version}"

    @classmethod
    def parse(cls, model_resource: str, version: str = "", endpoint: str = "") -> "ModelVersion":
        """A version from ``.../models/ID@V`` (or ``.../models/ID`` plus ``version``).

        Raises PromotionError when the name is not a model resource or no version is given.
        """
        match = _MODEL_NAME.match(model_resource.strip())
        if not match:
            raise PromotionError(
                f"{model_resource!r} is not a Model Registry name; expected "
                "projects/P/locations/L/models/ID@VERSION (the tuned model's `model_resource`)."
            )
        resolved_version = match.group("version") or version.strip()
        if not resolved_version:
            raise PromotionError(
                f"Model {model_resource!r} has no version; pass it as ID@VERSION or give the version."
            )
        if match.group("version") and version and version.strip() != match.group("version"):
            raise PromotionError(
                f"Model {model_resource!r} names version {match.group('version')} but version {version!r} was given."
            )
        return cls(model=match.group("parent"), version=resolved_version, endpoint=endpoint.strip())

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "ModelVersion":
        """The version a tuned-model artifact describes (its ``model_resource``, ``model_version``, ``endpoint``).

        Raises PromotionError as :meth:`parse` does.
        """
        return cls.parse(
            str(metadata.get("model_resource", "")),
            version=str(metadata.get("model_version", "")),
            endpoint=str(metadata.get("endpoint", "")),
        )


class Provenance(BaseModel):
    """Where a candidate comes from, as its promotion or rejection record keeps it.

    ``metrics`` are the evaluation's, ``dataset_hash`` the cleaned splits' hash,
    ``pipeline_run`` the run that made the record, ``base_model`` and
    ``tuning_job`` those of the tuned model, ``checkpoint_id`` the checkpoint
    chosen on validation (empty when none was chosen; the model's endpoint is then
    the job's default one).
    """

    model_config = ConfigDict(frozen=True)

    metrics: dict[str, float] = Field(default_factory=dict)
    dataset_hash: str = ""
    pipeline_run: str = ""
    base_model: str = ""
    tuning_job: str = ""
    checkpoint_id: str = ""

    @classmethod
    def of_tuned_model(
        cls, metadata: Mapping[str, Any], *, metrics: Mapping[str, float], dataset_hash: str, pipeline_run: str,
        checkpoint_id: str = "",
    ) -> "Provenance":
        """The provenance of a tuned-model artifact (its metadata names the base model and tuning job)."""
        return cls(
            metrics=dict(metrics),
            dataset_hash=dataset_hash,
            pipeline_run=pipeline_run,
            base_model=str(metadata.get("base_model", "")),
            tuning_job=str(metadata.get("tuning_job", "")),
            checkpoint_id=checkpoint_id,
        )


class PromotionRecord(BaseModel):
    """One event in a store: a promotion, a rollback or a rejected candidate.

    For a promotion, ``model`` is the new champion and ``previous_champion`` the
    one it replaced. For a rollback, ``model`` is the model returned to and
    ``previous_champion`` the one taken out of production. For a rejection,
    ``model`` is the rejected candidate, ``reasons`` the gate's reasons and
    ``previous_champion`` the champion that stayed in production. ``staged``
    (waiting for human review) and ``canary`` records (with ``canary_share``
    and ``shadow``) are written by ``gemini_sft.review.staging``; they never
    change the champion.
    """

    model_config = ConfigDict(extra="ignore")

    record_id: str
    kind: RecordKind
    model: ModelVersion
    created_at: str
    alias: str = DEFAULT_PRODUCTION_ALIAS
    metrics: dict[str, float] = Field(default_factory=dict)
    dataset_hash: str = ""
    pipeline_run: str = ""
    previous_champion: ModelVersion | None = None
    reasons: list[str] = Field(default_factory=list)
    base_model: str = ""
    tuning_job: str = ""
    # The tuned checkpoint chosen on validation (the model's endpoint serves it); continuous tuning starts from it.
    checkpoint_id: str = ""
    # Canary records: the share of requests the staged candidate answers, and whether it answers in shadow.
    canary_share: float = 0.0
    shadow: bool = False
    # Which tuning path made the model; an open-weights deployment also names its deployed model on the endpoint.
    tuning_backend: str = "vertex-gemini"
    deployed_model_id: str = ""

    def to_json(self) -> str:
        """The record as indented JSON (the file format of a store)."""
        return self.model_dump_json(indent=2) + "\n"

    @property
    def provenance(self) -> Provenance:
        """Where the record's model comes from."""
        return Provenance(**{name: getattr(self, name) for name in Provenance.model_fields})


class ModelRegistry(Protocol):
    """The Model Registry operations promotion needs (implemented in ``gemini_sft.vertex_client``)."""

    def add_alias(self, version: ModelVersion, alias: str) -> None:
        """Give ``version`` the alias (Vertex moves it off any other version of the same model)."""

    def remove_alias(self, version: ModelVersion, alias: str) -> None:
        """Take the alias off ``version``; no error when it does not carry it."""

    def merge_labels(self, version: ModelVersion, labels: dict[str, str]) -> None:
        """Set these labels on ``version``, keeping its other labels."""


def utc_now() -> datetime:
    """The current time in UTC (one place to read the clock)."""
    return datetime.now(timezone.utc)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def validate_alias(alias: str) -> str:
    """The alias when Model Registry accepts it, else PromotionError.

    Vertex aliases are lowercase letters, digits and dashes, starting with a
    letter; a bare version number is not an alias.
    """
    if not _ALIAS.match(alias):
        raise PromotionError(
            f"Alias {alias!r} is not valid: use lowercase letters, digits and '-', starting with a letter "
            "(e.g. 'production')."
        )
    return alias


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


def _new_record_id() -> str:
    return uuid.uuid4().hex[:12]


def _append_new_record(
    store: PromotionStore,
    kind: RecordKind,
    model: ModelVersion,
    provenance: Provenance | None,
    now: datetime | None,
    **fields: Any,
) -> PromotionRecord:
    """A new record of ``kind`` about ``model``, stamped with a fresh id and ``now``, appended to ``store``."""
    record = PromotionRecord(
        record_id=_new_record_id(), kind=kind, model=model, created_at=_timestamp(now or utc_now()),
        **(provenance or Provenance()).model_dump(), **fields,
    )
    store.append(record)
    return record


def write_record_artifact(path: str | Path, record: PromotionRecord, registry_uri: str) -> dict[str, Any]:
    """Write ``record`` as JSON to an output artifact's ``path``; returns the metadata the artifact carries.

    The metadata names the record, its kind and model, and the registry; a rejection adds the
    number of reasons, a promotion or rollback the endpoint, alias and previous champion.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(record.to_json(), encoding="utf-8")
    metadata: dict[str, Any] = {"record_id": record.record_id, "kind": record.kind, "model": record.model.versioned_name}
    if record.kind == "rejection":
        metadata["reasons"] = len(record.reasons)
    else:
        metadata.update(
            endpoint=record.model.endpoint,
            alias=record.alias,
            previous_champion=record.previous_champion.versioned_name if record.previous_champion else "",
        )
    metadata["registry_uri"] = registry_uri
    return metadata


def read_metrics(evaluation_json: str) -> dict[str, float]:
    """The flat numeric metrics of an evaluation file's ``{"metrics": {...}}``; non-numbers are skipped.

    Raises PromotionError when the text is not a JSON object.
    """
    try:
        payload = json.loads(evaluation_json) if evaluation_json.strip() else {}
    except json.JSONDecodeError as exc:
        raise PromotionError(f"The evaluation file is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PromotionError("The evaluation file must hold a JSON object with a `metrics` object.")
    metrics = payload.get("metrics", {})
    if not isinstance(metrics, dict):
        raise PromotionError("The evaluation file's `metrics` must be an object of name -> number.")
    return {
        str(name): float(value)
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def read_decision(decision_json: str) -> tuple[bool, list[str]]:
    """``(passed, reasons)`` from the gate's decision JSON.

    Raises PromotionError when the text is not a decision object.
    """
    try:
        payload = json.loads(decision_json)
    except json.JSONDecodeError as exc:
        raise PromotionError(f"The gate decision is not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("passed"), bool):
        raise PromotionError("The gate decision must be a JSON object with a boolean `passed`.")
    reasons = payload.get("reasons") or []
    if not isinstance(reasons, list):
        raise PromotionError("The gate decision's `reasons` must be a list of strings.")
    return payload["passed"], [str(reason) for reason in reasons]


def promote(
    store: PromotionStore,
    candidate: ModelVersion,
    *,
    registry: ModelRegistry | None = None,
    alias: str = DEFAULT_PRODUCTION_ALIAS,
    provenance: Provenance | None = None,
    now: datetime | None = None,
) -> PromotionRecord:
    """Make ``candidate`` the production model and record it, with its ``provenance``.

    With a ``registry``, the alias is added to the candidate and removed from
    the previous champion, and their status labels are updated, before the
    record is written (so a failed registry call leaves no record).
    Promoting the current champion again returns its record unchanged (a
    retried pipeline task is harmless). Raises PromotionError on an invalid
    alias, an unreadable store or a failed registry call.
    """
    validate_alias(alias)
    current = store.champion()
    if current is not None and current.model == candidate:
        log.info("Model version %s is already the champion; nothing to do", candidate.versioned_name)
        return current
    previous = current.model if current else None
    if registry is not None:
        dataset_hash = provenance.dataset_hash if provenance else ""
        extra_labels = {DATASET_LABEL: sanitize_label_value(dataset_hash)} if dataset_hash else {}
        _move_alias(registry, alias, new=candidate, old=previous, old_status=STATUS_RETIRED, new_labels=extra_labels)
    record = _append_new_record(store, "promotion", candidate, provenance, now, alias=alias, previous_champion=previous)
    log.info(
        "Promoted %s to %r (previous champion: %s)",
        candidate.versioned_name,
        alias,
        previous.versioned_name if previous else "none",
    )
    return record


def record_rejection(
    store: PromotionStore,
    candidate: ModelVersion,
    reasons: list[str],
    *,
    provenance: Provenance | None = None,
    now: datetime | None = None,
) -> PromotionRecord:
    """Record that ``candidate`` did not pass the gate, with the gate's reasons and its ``provenance``.

    The champion stays.

    Raises PromotionError when the store cannot be read or written.
    """
    current = store.champion()
    record = _append_new_record(
        store, "rejection", candidate, provenance, now,
        alias=current.alias if current else DEFAULT_PRODUCTION_ALIAS,
        previous_champion=current.model if current else None, reasons=list(reasons),
    )
    log.info("Recorded rejection of %s with %d reason(s)", candidate.versioned_name, len(reasons))
    return record


def rollback_target(store: PromotionStore, to_model: str = "") -> tuple[PromotionRecord, PromotionRecord]:
    """``(current champion record, record of the model to return to)``.

    Without ``to_model`` the target is the champion before the current one;
    with it (``.../models/ID@V``) the target is that model, which must be
    earlier in the production line. Raises PromotionError when there is no
    champion, no earlier one, or ``to_model`` was never in production before
    the current champion.
    """
    line = store.production_line()
    if not line:
        raise PromotionError(f"Nothing is in production in {store.uri}: there is nothing to roll back.")
    current = line[-1]
    earlier = line[:-1]
    if not earlier:
        raise PromotionError(
            f"{current.model.versioned_name} is the first promoted model in {store.uri}: "
            "there is no previous champion to return to."
        )
    if not to_model:
        return current, earlier[-1]
    wanted = ModelVersion.parse(to_model)
    for record in reversed(earlier):
        if record.model.model == wanted.model and record.model.version == wanted.version:
            return current, record
    choices = ", ".join(record.model.versioned_name for record in earlier)
    raise PromotionError(f"{wanted.versioned_name} is not an earlier champion; choose one of: {choices}.")


def rollback(
    store: PromotionStore,
    *,
    registry: ModelRegistry | None = None,
    to_model: str = "",
    reason: str = "",
    pipeline_run: str = "",
    now: datetime | None = None,
) -> PromotionRecord:
    """Return production to the previous champion (or ``to_model``) and record the rollback.

    With a ``registry``, the alias moves back and the labels follow before the
    record is written. Returns the rollback record, whose ``model`` is the new
    champion and ``previous_champion`` the one taken out. Raises
    PromotionError as :func:`rollback_target` does, or when a registry call fails.
    """
    current, target = rollback_target(store, to_model)
    alias = current.alias
    if registry is not None:
        _move_alias(registry, alias, new=target.model, old=current.model, old_status=STATUS_ROLLED_BACK)
    # The model returned to keeps the provenance of its promotion; the record names the run that rolled back.
    provenance = target.provenance.model_copy(update={"pipeline_run": pipeline_run})
    record = _append_new_record(
        store, "rollback", target.model, provenance, now,
        alias=alias, previous_champion=current.model, reasons=[reason] if reason else [],
    )
    log.info("Rolled back %r from %s to %s", alias, current.model.versioned_name, target.model.versioned_name)
    return record


def _move_alias(
    registry: ModelRegistry,
    alias: str,
    *,
    new: ModelVersion,
    old: ModelVersion | None,
    old_status: str,
    new_labels: dict[str, str] | None = None,
) -> None:
    """Alias and ``production`` status label (plus ``new_labels``) onto ``new``; alias off ``old``, its label ``old_status``.

    Within one parent model an alias names one version, so it is taken off the
    old version first (and put back if the new one refuses it); across parents
    the new version gets it first, so production is never left without one.
    Registry failures surface as the PromotionError the registry raises.
    """
    moving_within_model = old is not None and old != new and old.model == new.model
    if moving_within_model:
        registry.remove_alias(old, alias)
        try:
            registry.add_alias(new, alias)
        except PromotionError:
            registry.add_alias(old, alias)
            raise
    else:
        registry.add_alias(new, alias)
        if old is not None and old != new:
            registry.remove_alias(old, alias)
    registry.merge_labels(new, {STATUS_LABEL: STATUS_PRODUCTION, **(new_labels or {})})
    if old is not None and old != new:
        registry.merge_labels(old, {STATUS_LABEL: old_status})


def new_record_id() -> str:
    """A new record id, for records written outside this module (``gemini_sft.review.staging``)."""
    return _new_record_id()


def record_timestamp(moment: datetime | None = None) -> str:
    """A record's ``created_at`` for ``moment`` (default: now): UTC, microseconds, ``Z``."""
    return _timestamp(moment or utc_now())
