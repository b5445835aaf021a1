"""Reading the holdout split: one :class:`HoldoutCase` per usable Gemini-format example."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gemini_sft.errors import EvaluationError, InputFormatError
from gemini_sft.examples import EvaluationCase, evaluation_case, example_id, read_examples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldoutCase:
    """One holdout example ready for evaluation, and the line of the holdout file it came from."""

    example_id: str
    case: EvaluationCase
    line_number: int = 0


def load_holdout(path: str | Path) -> tuple[list[HoldoutCase], int]:
    """Read a Gemini-format JSONL holdout file; returns (cases, number of lines skipped).

    Blank lines are ignored; examples without a model turn after a user turn are
    skipped and counted. Raises InputFormatError when the file is missing or a line
    is not a JSON object, EvaluationError when no usable example remains.

    Args:
        path: the holdout JSONL file (the clean step's holdout split).
    """
    file = Path(path)
    if not file.is_file():
        raise InputFormatError(f"holdout file {file} does not exist")
    cases: list[HoldoutCase] = []
    skipped = 0
    seen: set[str] = set()
    for line_number, example in read_examples(file):
        try:
            case = evaluation_case(example)
        except ValueError:
            skipped += 1
            continue
        case_id = example_id(example, line_number)
        if case_id in seen:
            case_id = f"{case_id}@line-{line_number}"
        seen.add(case_id)
        cases.append(HoldoutCase(example_id=case_id, case=case, line_number=line_number))
    if not cases:
        raise EvaluationError(
            f"holdout file {file} has no usable examples ({skipped} lines without a model turn); "
            "check the clean step's holdout fraction"
        )
    if skipped:
        log.warning("holdout: skipped %d examples without a model turn to use as reference", skipped)
    log.info("holdout: %d examples", len(cases))
    return cases, skipped
