"""The decisions made from the whole file: duplicates, conflicts, and each kept row's split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gemini_sft.dataset.dedup import CONFLICT, DUPLICATE, KEEP, resolve_duplicates
from gemini_sft.dataset.fates import FATE_OF_REASON, FATE_PENDING, LATE
from gemini_sft.dataset.first_pass import FirstPass
from gemini_sft.dataset.records import RejectReason
from gemini_sft.dataset.settings import CleanConfig
from gemini_sft.dataset.splits import DROPPED, assign_splits, group_ids_by_first_appearance


@dataclass
class Decisions:
    """Per converted row: destination (a split code, or LATE for a late rejection) and referenced line."""

    destinations: np.ndarray
    reference_lines: np.ndarray



def decide(state: FirstPass, config: CleanConfig) -> Decisions:
    """Decide every converted row: duplicate, conflict, a split, or validation overflow; updates ``state.fates``.

    Args:
        state: the first pass's keys, labels and fates.
        config: the conflict policy and the split plan.
    """
    count = len(state.conflict_keys)
    if count == 0:
        return Decisions(np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64))
    fates = np.frombuffer(state.fates, dtype=np.uint8).copy()
    rows = np.flatnonzero(fates == FATE_PENDING)  # row index of each converted row
    duplicates = resolve_duplicates(
        np.frombuffer(state.conflict_keys, dtype=np.int64),
        np.frombuffer(state.response_keys, dtype=np.int64),
        config.conflict_policy,
    )
    fate_of_converted = np.full(count, FATE_PENDING, dtype=np.uint8)
    fate_of_converted[duplicates.outcome == DUPLICATE] = FATE_OF_REASON[RejectReason.DUPLICATE]
    fate_of_converted[duplicates.outcome == CONFLICT] = FATE_OF_REASON[RejectReason.CONFLICTING_RESPONSE]

    kept = np.flatnonzero(duplicates.outcome == KEEP)
    if len(state.system_variants) <= 1:  # kept prompts are unique: every example is its own group
        group_ids = np.arange(len(kept), dtype=np.int64)
    else:
        group_ids = group_ids_by_first_appearance(np.frombuffer(state.group_keys, dtype=np.int64)[kept])
    if state.label_names:
        labels = np.frombuffer(state.label_ids, dtype=np.int16)[kept]
    else:
        labels = np.zeros(len(kept), dtype=np.int16)
    splits = assign_splits(group_ids, labels, config.split_plan())
    del group_ids, labels
    fate_of_converted[kept] = np.where(splits == DROPPED, FATE_OF_REASON[RejectReason.VALIDATION_OVERFLOW], splits)
    fates[rows] = fate_of_converted
    state.fates = bytearray(fates.tobytes())
    destinations = np.where(fate_of_converted < LATE, fate_of_converted, LATE).astype(np.uint8)
    line_of_row = np.frombuffer(state.lines, dtype=np.int64)
    return Decisions(destinations, line_of_row[rows[duplicates.reference]])
