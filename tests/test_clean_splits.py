"""Split assignment on compact arrays: groups stay together, fractions per stratum, cap, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from gemini_sft.dataset.splits import (
    DROPPED,
    HOLDOUT,
    TRAIN,
    VALIDATION,
    SplitPlan,
    assign_splits,
    group_ids_by_first_appearance,
)

PLAN = SplitPlan(0.8, 0.1, 0.1, seed=42, max_validation=5000, overflow="train")


def test_examples_of_one_group_share_a_split() -> None:
    groups = np.repeat(np.arange(200, dtype=np.int64), 3)  # every group has three examples
    splits = assign_splits(groups, np.zeros(len(groups), dtype=np.int64), PLAN)
    assert all(len(set(splits[groups == g])) == 1 for g in range(200))
    assert np.bincount(splits, minlength=3).tolist() == [480, 60, 60]


def test_fractions_hold_inside_every_stratum() -> None:
    labels = np.array([0] * 700 + [1] * 200 + [2] * 100)
    splits = assign_splits(np.arange(1000, dtype=np.int64), labels, PLAN)
    for label, size in ((0, 700), (1, 200), (2, 100)):
        counts = np.bincount(splits[labels == label], minlength=3)
        assert counts.tolist() == [size * 8 // 10, size // 10, size // 10]


def test_same_seed_same_split_other_seed_other_split() -> None:
    groups = np.arange(500, dtype=np.int64)
    labels = np.zeros(500, dtype=np.int64)
    first = assign_splits(groups, labels, PLAN)
    assert np.array_equal(first, assign_splits(groups, labels, PLAN))
    other = assign_splits(groups, labels, SplitPlan(0.8, 0.1, 0.1, seed=43, max_validation=5000, overflow="train"))
    assert not np.array_equal(first, other)
    assert np.bincount(other).tolist() == np.bincount(first).tolist()


@pytest.mark.parametrize(("overflow", "destination"), [("train", TRAIN), ("holdout", HOLDOUT), ("drop", DROPPED)])
def test_validation_cap_moves_whole_groups_keeping_the_label_mix(overflow: str, destination: int) -> None:
    groups = np.repeat(np.arange(1000, dtype=np.int64), 2)
    labels = np.repeat(np.arange(1000) % 4 == 0, 2).astype(np.int64)  # a quarter of the groups are label 1
    plan = SplitPlan(0.5, 0.4, 0.1, seed=1, max_validation=100, overflow=overflow)
    uncapped = assign_splits(groups, labels, SplitPlan(0.5, 0.4, 0.1, 1, 10**9, "train"))
    splits = assign_splits(groups, labels, plan)
    assert (splits == VALIDATION).sum() == 100
    moved = (uncapped == VALIDATION) & (splits != VALIDATION)
    assert moved.sum() == 800 - 100 and set(splits[moved].tolist()) == {destination}
    assert abs((labels[splits == VALIDATION] == 1).sum() - 25) <= 2  # a quarter, up to one group of rounding
    assert all(len(set(splits[groups == g])) == 1 for g in range(0, 1000, 37))


def test_empty_input() -> None:
    assert assign_splits(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), PLAN).size == 0


def test_group_ids_follow_first_appearance_whatever_the_key_values() -> None:
    keys = np.array([42, -7, 42, 99, -7, 5], dtype=np.int64)
    assert group_ids_by_first_appearance(keys).tolist() == [0, 1, 0, 2, 1, 3]
    assert group_ids_by_first_appearance(keys * -3 + 11).tolist() == [0, 1, 0, 2, 1, 3]
    assert group_ids_by_first_appearance(np.empty(0, dtype=np.int64)).size == 0


def test_interleaved_groups_stay_together() -> None:
    ids = group_ids_by_first_appearance(np.tile(np.arange(100, dtype=np.int64) * 31, 3))
    splits = assign_splits(ids, np.zeros(len(ids), dtype=np.int64), PLAN)
    assert all(len(set(splits[ids == g])) == 1 for g in range(100))


def test_a_single_validation_group_over_the_cap_moves_whole() -> None:
    # Two prompts with ten examples each: one lands in train, the other in validation, which is capped at 5.
    groups = np.repeat(np.arange(2, dtype=np.int64), 10)
    labels = np.zeros(20, dtype=np.int64)
    uncapped = assign_splits(groups, labels, SplitPlan(0.5, 0.5, 0.0, seed=3, max_validation=10, overflow="train"))
    assert np.bincount(uncapped, minlength=3).tolist() == [10, 10, 0]
    for overflow, destination in (("train", TRAIN), ("holdout", HOLDOUT), ("drop", DROPPED)):
        splits = assign_splits(groups, labels, SplitPlan(0.5, 0.5, 0.0, seed=3, max_validation=5, overflow=overflow))
        assert (splits == VALIDATION).sum() == 0
        assert set(splits[uncapped == VALIDATION].tolist()) == {destination}
        assert np.array_equal(splits[uncapped == TRAIN], uncapped[uncapped == TRAIN])


def test_a_validation_split_exactly_at_the_cap_is_kept_whole() -> None:
    groups = np.arange(100, dtype=np.int64)
    labels = np.zeros(100, dtype=np.int64)
    splits = assign_splits(groups, labels, SplitPlan(0.8, 0.1, 0.1, seed=5, max_validation=10, overflow="drop"))
    assert np.bincount(splits, minlength=4).tolist() == [80, 10, 10, 0]


@pytest.mark.parametrize(
    ("fractions", "counts"),
    [
        ((1.0, 0.0, 0.0), [40, 0, 0]),
        ((0.5, 0.5, 0.0), [20, 20, 0]),
        ((0.5, 0.0, 0.5), [20, 0, 20]),
        ((0.25, 0.25, 0.5), [10, 10, 20]),
    ],
)
def test_the_edge_fractions_zero_and_one(fractions: tuple[float, float, float], counts: list[int]) -> None:
    plan = SplitPlan(*fractions, seed=7, max_validation=5000, overflow="train")
    splits = assign_splits(np.arange(40, dtype=np.int64), np.zeros(40, dtype=np.int64), plan)
    assert np.bincount(splits, minlength=3).tolist() == counts


def test_a_group_on_a_cut_goes_to_the_later_split() -> None:
    # Four one-example groups have midpoints 1/8, 3/8, 5/8, 7/8; the cuts fall on 3/8 and 5/8 exactly.
    splits = assign_splits(np.arange(4, dtype=np.int64), np.zeros(4, dtype=np.int64),
                           SplitPlan(0.375, 0.25, 0.375, 0, 5000, "train"))
    assert np.bincount(splits, minlength=3).tolist() == [1, 1, 2]


def test_a_group_takes_the_label_of_its_first_example() -> None:
    # Group 0's first example is label 1, the rest label 0: stratifying counts the group once, as label 1.
    groups = np.array([0, 1, 0, 2, 0, 3], dtype=np.int64)
    labels = np.array([1, 0, 0, 0, 0, 0], dtype=np.int64)
    plan = SplitPlan(0.5, 0.5, 0.0, seed=0, max_validation=5000, overflow="train")
    splits = assign_splits(groups, labels, plan)
    assert len(set(splits[groups == 0].tolist())) == 1
    # Alone in its stratum, group 0 has its midpoint at 1/2 and goes to validation.
    assert splits[0] == VALIDATION
