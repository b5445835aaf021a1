"""The records of the promotion history: model versions, where a candidate comes from, one event.

A :class:`PromotionRecord` is one file of a store (:mod:`gemini_sft.promotion.store`), never rewritten;
its ``created_at`` and ``record_id`` come from :func:`record_timestamp` and :func:`new_record_id`.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from gemini_sft.errors import PromotionError

RecordKind = Literal["promotion", "rollback", "rejection", "staged", "canary"]

DEFAULT_PRODUCTION_ALIAS = "production"

_MODEL_NAME = re.compile(r"^(?P<parent>(?:projects/[^/]+/locations/[^/]+/)?models/[^/@]+)(?:@(?P<version>[^/@]+))?$")


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


def utc_now() -> datetime:
    """The current time in UTC (one place to read the clock)."""
    return datetime.now(timezone.utc)


def new_record_id() -> str:
    """A new record id: 12 hex digits, unique within a store."""
    return uuid.uuid4().hex[:12]


def record_timestamp(moment: datetime | None = None) -> str:
    """A record's ``created_at`` for ``moment`` (default: now): UTC, microseconds, ``Z``."""
    return (moment or utc_now()).astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
