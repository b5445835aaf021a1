"""Promote a candidate, record a rejection, roll back: the production alias and the records follow.

A Gemini tuning job deploys its model to an endpoint by itself, so "deploying"
here means *promoting*: moving the production alias in Model Registry (done by
the caller through a :class:`ModelRegistry`) and appending a record to a
:class:`~gemini_sft.promotion.store.PromotionStore`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Protocol

from gemini_sft.errors import PromotionError
from gemini_sft.names import sanitize_label_value
from gemini_sft.promotion.records import DEFAULT_PRODUCTION_ALIAS, ModelVersion, PromotionRecord, Provenance
from gemini_sft.promotion.store import PromotionStore, append_new_record

log = logging.getLogger(__name__)

# Model Registry labels written on promotion and rollback.
STATUS_LABEL = "gemini-sft-status"
DATASET_LABEL = "gemini-sft-dataset"
STATUS_PRODUCTION = "production"
STATUS_RETIRED = "retired"
STATUS_ROLLED_BACK = "rolled-back"

_ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,127}$")


class ModelRegistry(Protocol):
    """The Model Registry operations promotion needs (implemented in ``gemini_sft.vertex_client``)."""

    def add_alias(self, version: ModelVersion, alias: str) -> None:
        """Give ``version`` the alias (Vertex moves it off any other version of the same model)."""

    def remove_alias(self, version: ModelVersion, alias: str) -> None:
        """Take the alias off ``version``; no error when it does not carry it."""

    def merge_labels(self, version: ModelVersion, labels: dict[str, str]) -> None:
        """Set these labels on ``version``, keeping its other labels."""


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
    record = append_new_record(store, "promotion", candidate, provenance, now, alias=alias, previous_champion=previous)
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
    record = append_new_record(
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
    record = append_new_record(
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
