"""The human gate and the rollout steps of a candidate, as records in the promotion registry.

A candidate that passed the automatic gate while human review is required is
recorded as ``staged``: the champion does not change. It leaves the staged
state when a promotion (approval) or a rejection of the same model version is
recorded. While staged it may answer a share of production requests, or
answer in shadow (``canary`` records; the newest one of a candidate is in
force). Every step is a record, so the history shows who answered when.

A status view shows :func:`staged_candidates` (waiting for a decision) and
:func:`active_canary` (the share or shadow in force).
"""

from __future__ import annotations

import logging
from datetime import datetime

from gemini_sft.errors import PromotionError
from gemini_sft.promotion.actions import ModelRegistry, promote, record_rejection, validate_alias
from gemini_sft.promotion.records import DEFAULT_PRODUCTION_ALIAS, ModelVersion, PromotionRecord, Provenance
from gemini_sft.promotion.store import PromotionStore, append_new_record

log = logging.getLogger(__name__)


def stage_candidate(
    store: PromotionStore,
    candidate: ModelVersion,
    *,
    provenance: Provenance | None = None,
    now: datetime | None = None,
) -> PromotionRecord:
    """Record ``candidate`` as staged, waiting for people to approve or reject it; the champion stays.

    Raises PromotionError when the store cannot be read or written.
    """
    current = store.champion()
    record = append_new_record(
        store, "staged", candidate, provenance, now,
        alias=current.alias if current else DEFAULT_PRODUCTION_ALIAS,
        previous_champion=current.model if current else None, reasons=["waiting for human review"],
    )
    log.info("Staged %s for human review", candidate.versioned_name)
    return record


def promote_or_stage(
    store: PromotionStore,
    candidate: ModelVersion,
    *,
    require_human_review: bool,
    registry: ModelRegistry | None = None,
    alias: str = DEFAULT_PRODUCTION_ALIAS,
    provenance: Provenance | None = None,
    now: datetime | None = None,
) -> PromotionRecord:
    """:func:`promote` the candidate, or with ``require_human_review`` only :func:`stage_candidate` it.

    A staged candidate touches neither Model Registry nor the champion. Raises PromotionError as those do.
    """
    if require_human_review:
        validate_alias(alias)
        return stage_candidate(store, candidate, provenance=provenance, now=now)
    return promote(store, candidate, registry=registry, alias=alias, provenance=provenance, now=now)


def _provenance_of(staged: PromotionRecord, review_metrics: dict[str, float] | None) -> Provenance:
    """The staged record's provenance, its metrics joined by the human review's."""
    return staged.provenance.model_copy(update={"metrics": {**staged.metrics, **(review_metrics or {})}})


def staged_candidates(store: PromotionStore) -> list[PromotionRecord]:
    """The staged records still waiting for a decision, oldest first (what ``status`` shows as staged).

    A staged model version leaves the list when a promotion or rejection of it is recorded later.
    """
    waiting: dict[ModelVersion, PromotionRecord] = {}
    for record in store.history():
        if record.kind == "staged":
            waiting[record.model] = record
        elif record.kind in ("promotion", "rejection"):
            waiting.pop(record.model, None)
    return list(waiting.values())


def find_staged(store: PromotionStore, run_or_model: str) -> PromotionRecord:
    """The staged record whose pipeline run, model version (``.../models/ID@V``) or endpoint is ``run_or_model``.

    Raises PromotionError naming the staged candidates when none matches.
    """
    wanted = run_or_model.strip()
    staged = staged_candidates(store)
    for record in reversed(staged):
        if wanted in (record.pipeline_run, record.model.versioned_name, record.model.endpoint, record.record_id):
            return record
    if not staged:
        raise PromotionError(f"No candidate is staged in {store.uri}: nothing waits for human review.")
    choices = ", ".join(f"{r.pipeline_run or '-'} ({r.model.versioned_name})" for r in staged)
    raise PromotionError(f"No staged candidate matches {wanted!r}; staged: {choices}.")


def approve_staged(
    store: PromotionStore,
    staged: PromotionRecord,
    *,
    registry: ModelRegistry | None = None,
    review_metrics: dict[str, float] | None = None,
    now: datetime | None = None,
) -> PromotionRecord:
    """Promote a staged candidate after people approved it; the promotion record keeps the review's metrics.

    Raises PromotionError when the record is not a waiting staged candidate, or as :func:`promote` does.
    """
    if staged.kind != "staged" or staged.model not in {r.model for r in staged_candidates(store)}:
        raise PromotionError(f"{staged.model.versioned_name} is not waiting for review in {store.uri}.")
    return promote(
        store,
        staged.model,
        registry=registry,
        alias=staged.alias,
        provenance=_provenance_of(staged, review_metrics),
        now=now,
    )


def reject_staged(
    store: PromotionStore,
    staged: PromotionRecord,
    reason: str,
    *,
    review_metrics: dict[str, float] | None = None,
    now: datetime | None = None,
) -> PromotionRecord:
    """Record that people rejected a staged candidate, with their reason; it stops any canary of it.

    Raises PromotionError when the reason is empty or the record is not a waiting staged candidate.
    """
    if not reason.strip():
        raise PromotionError("Give the reason for rejecting the candidate (--reason).")
    if staged.kind != "staged" or staged.model not in {r.model for r in staged_candidates(store)}:
        raise PromotionError(f"{staged.model.versioned_name} is not waiting for review in {store.uri}.")
    return record_rejection(
        store,
        staged.model,
        [f"rejected in human review: {reason.strip()}"],
        provenance=_provenance_of(staged, review_metrics),
        now=now,
    )


def canary_history(store: PromotionStore, model: ModelVersion | None = None) -> list[PromotionRecord]:
    """Every canary record (of ``model`` only, when given), oldest first."""
    return [r for r in store.history() if r.kind == "canary" and (model is None or r.model == model)]


def active_canary(store: PromotionStore) -> PromotionRecord | None:
    """The canary in force: the newest canary record of a still-staged candidate with a share or shadow on."""
    waiting = {record.model for record in staged_candidates(store)}
    latest: dict[ModelVersion, PromotionRecord] = {}
    for record in canary_history(store):
        latest[record.model] = record
    live = [r for model, r in latest.items() if model in waiting and (r.canary_share > 0 or r.shadow)]
    return max(live, key=lambda r: (r.created_at, r.record_id)) if live else None


def set_canary(
    store: PromotionStore,
    staged: PromotionRecord,
    *,
    share: float,
    shadow: bool = False,
    reason: str = "",
    now: datetime | None = None,
) -> PromotionRecord:
    """Record that a staged candidate answers ``share`` (0-1) of requests, or in shadow; share 0 without shadow clears.

    One candidate at a time: raises PromotionError when another candidate's canary is in force, when the
    share is outside [0, 1], or when the candidate is not waiting for review.
    """
    if not 0.0 <= share <= 1.0:
        raise PromotionError(f"The canary share must be between 0 and 1 (e.g. 0.1 for 10%), got {share}.")
    if shadow and share > 0:
        raise PromotionError("A candidate answers either in shadow or a share of requests, not both.")
    if staged.model not in {r.model for r in staged_candidates(store)}:
        raise PromotionError(f"{staged.model.versioned_name} is not a staged candidate in {store.uri}.")
    current = active_canary(store)
    if current is not None and current.model != staged.model and (share > 0 or shadow):
        raise PromotionError(
            f"{current.model.versioned_name} already has a canary; clear it first (gemini-sft canary clear)."
        )
    champion = store.champion()
    # A canary record names the candidate's run and base model; it never changes the champion.
    record = append_new_record(
        store, "canary", staged.model, Provenance(pipeline_run=staged.pipeline_run, base_model=staged.base_model),
        now, alias=staged.alias, previous_champion=champion.model if champion else None,
        reasons=[reason] if reason else [], canary_share=float(share), shadow=bool(shadow),
    )
    log.info("Canary of %s: share %.3f, shadow %s", staged.model.versioned_name, share, shadow)
    return record
