"""Duplicate and conflict decisions on hash arrays."""

from __future__ import annotations

import numpy as np
import pytest

from gemini_sft.dataset.dedup import CONFLICT, DUPLICATE, KEEP, resolve_duplicates

# rows:          0  1  2  3  4  5  6
PROMPTS = np.array([7, 8, 7, 7, 9, 8, 7], dtype=np.int64)
RESPONSES = np.array([1, 2, 1, 3, 4, 2, 1], dtype=np.int64)


def test_keep_first_keeps_each_prompt_leader() -> None:
    decisions = resolve_duplicates(PROMPTS, RESPONSES, "keep_first")
    assert decisions.outcome.tolist() == [KEEP, KEEP, DUPLICATE, CONFLICT, KEEP, DUPLICATE, DUPLICATE]
    assert decisions.reference.tolist()[2:4] == [0, 0] and decisions.reference[5] == 1


def test_drop_all_rejects_every_row_of_a_conflicting_prompt() -> None:
    decisions = resolve_duplicates(PROMPTS, RESPONSES, "drop_all")
    assert decisions.outcome.tolist() == [CONFLICT, KEEP, CONFLICT, CONFLICT, KEEP, DUPLICATE, CONFLICT]
    # rows agreeing with the leader point at the first disagreeing row; the disagreeing one at the leader
    assert decisions.reference[[0, 2, 6]].tolist() == [3, 3, 3] and decisions.reference[3] == 0


def test_decisions_depend_on_file_order_not_on_key_values() -> None:
    shifted = resolve_duplicates(PROMPTS * 1000 - 5, RESPONSES + 17, "drop_all")
    assert shifted.outcome.tolist() == resolve_duplicates(PROMPTS, RESPONSES, "drop_all").outcome.tolist()


def test_empty_and_invalid_input() -> None:
    assert resolve_duplicates(np.empty(0, np.int64), np.empty(0, np.int64), "drop_all").outcome.size == 0
    with pytest.raises(ValueError, match="policy"):
        resolve_duplicates(PROMPTS, RESPONSES, "keep_last")


def test_empty_input_gives_empty_outcomes_and_references() -> None:
    decisions = resolve_duplicates(np.empty(0, np.int64), np.empty(0, np.int64), "keep_first")
    assert decisions.outcome.shape == decisions.reference.shape == (0,)


@pytest.mark.parametrize("responses", [RESPONSES[:-1], np.append(RESPONSES, 5)])
def test_arrays_of_different_lengths_are_refused(responses: np.ndarray) -> None:
    with pytest.raises(ValueError, match=rf"same length.*\(got 7 and {len(responses)}\)"):
        resolve_duplicates(PROMPTS, responses, "drop_all")


def test_a_prompt_seen_once_is_kept_under_both_policies() -> None:
    for policy in ("drop_all", "keep_first"):
        decisions = resolve_duplicates(np.arange(5, dtype=np.int64), np.zeros(5, dtype=np.int64), policy)
        assert decisions.outcome.tolist() == [KEEP] * 5
