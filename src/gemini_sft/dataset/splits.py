"""Assigning kept examples to train / validation / holdout.

Works on compact arrays (one 64-bit prompt-group hash and one label id per
example), never on the examples themselves, so the cleaning stage can split a
file of any size with little memory.

Rules:

* Examples sharing a prompt group go to the same split, so no prompt appears
  in two splits. Groups are numbered in order of first appearance, which
  makes the split reproducible from process-local hashes.
* Within each stratum (a label value, or everything when not stratified)
  groups are shuffled with ``seed`` and cut by cumulative example count at the
  configured fractions, so every stratum keeps the fractions up to rounding.
* When validation holds more than ``max_validation`` examples, whole groups
  (last in shuffled order) move to the overflow destination: train, holdout,
  or :data:`DROPPED`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gemini_sft.dataset.dedup import group_equal_keys

TRAIN = 0
VALIDATION = 1
HOLDOUT = 2
DROPPED = 3
SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "holdout")
OVERFLOW_DESTINATIONS: dict[str, int] = {"train": TRAIN, "holdout": HOLDOUT, "drop": DROPPED}


@dataclass(frozen=True)
class SplitPlan:
    """Fractions, seed and validation cap of a split; see :func:`assign_splits`."""

    train_fraction: float
    validation_fraction: float
    holdout_fraction: float
    seed: int
    max_validation: int
    overflow: str  # a key of OVERFLOW_DESTINATIONS


def group_ids_by_first_appearance(keys: np.ndarray) -> np.ndarray:
    """Dense group ids (0, 1, ...) for equal ``keys``, numbered in order of first appearance.

    The numbering depends only on which keys are equal and on their order, not
    on the key values, so process-local hashes give reproducible ids.
    """
    count = len(keys)
    if count == 0:
        return np.empty(0, dtype=np.int64)
    groups = group_equal_keys(keys)
    first_rows = groups.order[groups.starts]  # the stable sort puts each group's first row first
    renumber = np.empty(len(first_rows), dtype=np.int64)
    renumber[np.argsort(first_rows, kind="stable")] = np.arange(len(first_rows))
    ids = np.empty(count, dtype=np.int64)
    ids[groups.order] = renumber[groups.group]
    return ids


def assign_splits(group_ids: np.ndarray, labels: np.ndarray, plan: SplitPlan) -> np.ndarray:
    """Split code (TRAIN, VALIDATION, HOLDOUT or DROPPED) for each example.

    ``group_ids`` numbers each example's prompt group 0, 1, ... in order of
    first appearance (see :func:`group_ids_by_first_appearance`); ``labels``
    (ints) is each example's stratum, all zeros when not stratifying. A group
    takes the label of its first example. Deterministic for equal inputs and
    seed.
    """
    count = len(group_ids)
    if count == 0:
        return np.empty(0, dtype=np.uint8)
    group_count = int(group_ids.max()) + 1
    group_sizes = np.bincount(group_ids, minlength=group_count)
    previous_max = np.empty(count, dtype=np.int64)
    previous_max[0] = -1
    np.maximum.accumulate(group_ids[:-1], out=previous_max[1:])
    is_first = group_ids > previous_max
    del previous_max
    group_labels = np.asarray(labels)[is_first]  # label of the first example of groups 0, 1, ...
    del is_first
    rng = np.random.default_rng(plan.seed)
    order = rng.permutation(group_count)
    # Stable sort by label keeps the shuffled order inside each stratum.
    order = order[np.argsort(group_labels[order], kind="stable")]
    ordered_labels = group_labels[order]
    boundaries = np.flatnonzero(np.r_[True, ordered_labels[1:] != ordered_labels[:-1], True])
    del ordered_labels
    group_split = np.empty(group_count, dtype=np.uint8)
    cut_train = plan.train_fraction
    cut_validation = plan.train_fraction + plan.validation_fraction
    for start, end in zip(boundaries[:-1].tolist(), boundaries[1:].tolist()):
        sizes = group_sizes[order[start:end]]
        # The midpoint of each group's span decides where it falls, which rounds fairly.
        position = np.cumsum(sizes, dtype=np.float64)
        total = position[-1]
        position -= sizes * 0.5
        position /= total
        del sizes
        stratum_split = np.full(end - start, HOLDOUT, dtype=np.uint8)
        stratum_split[position < cut_validation] = VALIDATION
        stratum_split[position < cut_train] = TRAIN
        del position
        group_split[order[start:end]] = stratum_split
    _cap_validation(group_split, group_sizes, group_labels, order, plan)
    return group_split[group_ids]


def _cap_validation(
    group_split: np.ndarray, group_sizes: np.ndarray, group_labels: np.ndarray, order: np.ndarray, plan: SplitPlan
) -> None:
    """Move validation groups beyond ``plan.max_validation`` examples to the overflow destination.

    Groups are kept in order of their relative rank inside their stratum, so
    the capped validation split keeps the label mix.
    """
    in_validation = order[group_split[order] == VALIDATION]  # validation groups in shuffled order
    if in_validation.size == 0 or group_sizes[in_validation].sum() <= plan.max_validation:
        return
    labels = group_labels[in_validation]
    by_label = np.argsort(labels, kind="stable")
    sorted_labels = labels[by_label]
    run_starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    run_lengths = np.diff(np.r_[run_starts, len(sorted_labels)])
    index_in_run = np.arange(len(sorted_labels)) - np.repeat(run_starts, run_lengths)
    rank = np.empty(len(in_validation), dtype=np.float64)
    rank[by_label] = index_in_run / np.repeat(run_lengths, run_lengths)
    by_rank = in_validation[np.argsort(rank, kind="stable")]
    kept = np.cumsum(group_sizes[by_rank]) <= plan.max_validation
    group_split[by_rank[~kept]] = OVERFLOW_DESTINATIONS[plan.overflow]
