"""Deciding exact duplicates and conflicting answers from hashes, without holding examples.

Input is two integer arrays in file order: a key of each example's prompt
(system instruction included) and a key of its response. Rows with equal
prompt keys form a group whose first row in file order leads it.

* Same prompt, same response as the leader: ``DUPLICATE`` (the leader is kept).
* Same prompt, different response: ``CONFLICT``. With policy ``drop_all``
  every row of a group holding a conflict is a ``CONFLICT`` (the labels are
  ambiguous, none can be trusted); with ``keep_first`` the leader is kept and
  the other rows are ``DUPLICATE`` or ``CONFLICT``.

Each rejected row also gets the index of a row it clashes with, so the reason
can name a line: the leader, or, for rows agreeing with the leader under
``drop_all``, the first row that disagrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEEP = 0
DUPLICATE = 1
CONFLICT = 2
POLICIES: tuple[str, ...] = ("drop_all", "keep_first")


@dataclass(frozen=True)
class KeyGroups:
    """Rows grouped by equal keys, in key order (ties in file order); see :func:`group_equal_keys`.

    ``order`` is the row index of each sorted position; ``starts`` marks the
    sorted positions that start a group (the group's first row in file order,
    its leader); ``group`` is the group number (0, 1, ... in key order) of each
    sorted position.
    """

    order: np.ndarray
    starts: np.ndarray
    group: np.ndarray


def group_equal_keys(keys: np.ndarray) -> KeyGroups:
    """Group the rows of ``keys`` (one integer key per row, at least one row) by equal key.

    Args:
        keys: one integer key per row, in file order.
    """
    order = np.argsort(keys, kind="stable")  # by key, then file order
    sorted_keys = keys[order]
    starts = np.empty(len(keys), dtype=bool)
    starts[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=starts[1:])
    del sorted_keys
    return KeyGroups(order=order, starts=starts, group=np.cumsum(starts) - 1)


@dataclass(frozen=True)
class DuplicateDecisions:
    """Per row: ``outcome`` (KEEP, DUPLICATE or CONFLICT) and ``reference`` (index of the row it clashes with)."""

    outcome: np.ndarray
    reference: np.ndarray


def resolve_duplicates(prompt_keys: np.ndarray, response_keys: np.ndarray, policy: str) -> DuplicateDecisions:
    """Decide every row; deterministic given the keys' equalities and the file order.

    Raises ValueError for an unknown policy or arrays of different lengths.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}; expected one of {POLICIES}")
    count = len(prompt_keys)
    if len(response_keys) != count:
        raise ValueError(
            f"prompt_keys and response_keys must have the same length, one key each per row "
            f"(got {count} and {len(response_keys)})"
        )
    if count == 0:
        return DuplicateDecisions(np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64))
    groups = group_equal_keys(prompt_keys)  # by prompt, then file order
    order, starts, group = groups.order, groups.starts, groups.group
    del groups
    first_position = np.flatnonzero(starts)
    sorted_responses = response_keys[order]
    differs = sorted_responses != sorted_responses[first_position][group]
    del sorted_responses
    reference = order[first_position][group]  # each row's group leader

    outcome = np.where(starts, KEEP, np.where(differs, CONFLICT, DUPLICATE)).astype(np.uint8)
    del starts
    if policy == "drop_all":
        in_conflict = np.logical_or.reduceat(differs, first_position)[group]
        outcome[in_conflict] = CONFLICT
        differing = np.flatnonzero(differs)
        groups_with_difference, first_index = np.unique(group[differing], return_index=True)
        first_differing = np.zeros(len(first_position), dtype=np.int64)
        first_differing[groups_with_difference] = order[differing[first_index]]
        agree = in_conflict & ~differs
        reference[agree] = first_differing[group[agree]]
    del group, differs

    outcome_in_file_order = np.empty(count, dtype=np.uint8)
    outcome_in_file_order[order] = outcome
    reference_in_file_order = np.empty(count, dtype=np.int64)
    reference_in_file_order[order] = reference
    return DuplicateDecisions(outcome_in_file_order, reference_in_file_order)
